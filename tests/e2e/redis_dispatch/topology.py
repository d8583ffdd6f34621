"""Throwaway Redis Cluster and Sentinel deployments from the local ``redis-server`` binary, in a tmp dir.

Never the shared Redis: every server here runs on free ports of its own and is killed by its fixture.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import redis
import redis.cluster
import redis.sentinel
from redis.crc import key_slot

from tests.support.procs import free_port

from .harness import wait_until

SERVICE = "lgmaster"
PASSWORD = "data-secret"
SENTINEL_PASSWORD = "sentinel-secret"
CLUSTER_PASSWORD = "cluster-secret"


def _binary(name: str) -> str:
    return shutil.which(name) or name


class Certs:
    """A throwaway CA, a server certificate for 127.0.0.1 and a client certificate, made with ``openssl``."""

    def __init__(self, tmp: Path) -> None:
        self.dir = tmp / "certs"
        self.dir.mkdir(parents=True)
        self.ca, ca_key = self.dir / "ca.crt", self.dir / "ca.key"
        self._openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", self.ca,
                      "-days", "1", "-subj", "/CN=lockgate-test-ca")
        self.server_cert, self.server_key = self._issue("server", "subjectAltName=DNS:localhost,IP:127.0.0.1")
        self.client_cert, self.client_key = self._issue("client", "extendedKeyUsage=clientAuth")

    def _issue(self, name: str, extension: str) -> tuple[Path, Path]:
        key, csr, cert, ext = (self.dir / f"{name}.{suffix}" for suffix in ("key", "csr", "crt", "ext"))
        ext.write_text(extension + "\n")
        self._openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", f"/CN={name}")
        self._openssl("x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey", self.dir / "ca.key",
                      "-CAcreateserial", "-out", cert, "-days", "1", "-extfile", ext)
        return cert, key

    @staticmethod
    def _openssl(*args: str | Path) -> None:
        subprocess.run([_binary("openssl"), *map(str, args)], check=True, capture_output=True, timeout=60)


class Server:
    """One ``redis-server`` (data node or Sentinel) with its own dir and log."""

    def __init__(self, tmp: Path, name: str, args: list[str], *, sentinel: bool = False,
                 password: str | None = None, tls: Certs | None = None) -> None:
        """``tls``: serve TLS only (no plain port), and require a client certificate signed by the CA."""
        self.port = free_port()
        self.dir = tmp / f"{name}-{self.port}"
        self.dir.mkdir(parents=True)
        self.log = self.dir / "server.log"
        if sentinel:
            conf = self.dir / "sentinel.conf"
            conf.write_text("\n".join([f"port {self.port}", "bind 127.0.0.1", f"dir {self.dir}", *args]) + "\n")
            cmd = [_binary("redis-server"), str(conf), "--sentinel"]
        else:
            ports = ["--port", str(self.port)] if tls is None else [
                "--port", "0", "--tls-port", str(self.port), "--tls-cert-file", str(tls.server_cert),
                "--tls-key-file", str(tls.server_key), "--tls-ca-cert-file", str(tls.ca), "--tls-auth-clients", "yes"]
            cmd = [_binary("redis-server"), *ports, "--bind", "127.0.0.1", "--save", "",
                   "--appendonly", "no", "--dir", str(self.dir), *args]
        self._cmd = [*cmd, "--logfile", str(self.log)]
        self.proc = subprocess.Popen(self._cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        tls_args: dict[str, Any] = {} if tls is None else {
            "ssl": True, "ssl_ca_certs": str(tls.ca), "ssl_certfile": str(tls.client_cert),
            "ssl_keyfile": str(tls.client_key)}
        self.client = redis.Redis(port=self.port, socket_timeout=5, password=password, **tls_args)
        wait_until(self._up, 10, f"redis-server on {self.port}")

    def restart(self) -> None:
        """Same port, same dir (a Cluster node rejoins from its nodes.conf), no data (no persistence)."""
        self.proc = subprocess.Popen(self._cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(self._up, 10, f"redis-server on {self.port} to restart")

    def _up(self) -> bool:
        if self.proc.poll() is not None:
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(f"redis-server on {self.port} exited: {log}")
        try:
            return bool(self.client.ping())
        except redis.RedisError:
            return False

    def info(self, section: str) -> dict[str, Any]:
        return dict(self.client.info(section))

    def kill(self) -> None:
        self.client.close()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


class Cluster:
    """Three masters (no replicas): ``redis-cli --cluster create``, then ``cluster_state:ok`` on every node.
    Every node requires a password, so that auth is shown to pass through to the Cluster client."""

    def __init__(self, tmp: Path, masters: int = 3, node_timeout_ms: int = 3000) -> None:
        self.nodes: list[Server] = []
        try:
            for i in range(masters):
                # cluster-port: the bus port is free too (the default, port + 10000, might not be).
                self.nodes.append(Server(tmp, f"cluster{i}", [
                    "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                    "--cluster-node-timeout", str(node_timeout_ms), "--cluster-port", str(free_port()),
                    "--requirepass", CLUSTER_PASSWORD, "--masterauth", CLUSTER_PASSWORD], password=CLUSTER_PASSWORD))
            addresses = [f"127.0.0.1:{n.port}" for n in self.nodes]
            subprocess.run([_binary("redis-cli"), "-a", CLUSTER_PASSWORD, "--no-auth-warning", "--cluster", "create",
                            *addresses, "--cluster-replicas", "0", "--cluster-yes"],
                           check=True, capture_output=True, timeout=60)
            wait_until(self.ok, 30, "cluster_state:ok on every node", interval=0.1)
        except BaseException:
            self.close()
            raise
        self.url = f"redis+cluster://:{CLUSTER_PASSWORD}@" + ",".join(addresses)

    def ok(self) -> bool:
        return all(_cluster_ok(n) for n in self.nodes)

    def node_of(self, key: str) -> Server:
        """The master serving ``key``'s slot."""
        slot = key_slot(key.encode())
        for row in self.nodes[0].client.execute_command("CLUSTER", "SLOTS"):
            start, end, master = int(row[0]), int(row[1]), row[2]
            if start <= slot <= end:
                return next(n for n in self.nodes if n.port == int(master[1]))
        raise LookupError(key)

    def migrate(self, key: str, dest: Server) -> None:
        """Move ``key``'s slot, with its keys, to ``dest`` the way ``redis-cli --cluster reshard`` does: clients
        meet ASK while it moves and MOVED afterwards."""
        slot = key_slot(key.encode())
        src = self.node_of(key)
        src_id, dest_id = (_s(n.client.execute_command("CLUSTER", "MYID")) for n in (src, dest))
        dest.client.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", src_id)
        src.client.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", dest_id)
        while keys := src.client.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100):
            src.client.execute_command("MIGRATE", "127.0.0.1", dest.port, "", 0, 5000, "AUTH", CLUSTER_PASSWORD,
                                       "KEYS", *keys)
        for node in (dest, src, *(n for n in self.nodes if n not in (dest, src))):
            node.client.execute_command("CLUSTER", "SETSLOT", slot, "NODE", dest_id)

    def client(self) -> redis.cluster.RedisCluster:
        return redis.cluster.RedisCluster(
            startup_nodes=[redis.cluster.ClusterNode("127.0.0.1", n.port) for n in self.nodes],
            password=CLUSTER_PASSWORD)

    def close(self) -> None:
        for node in self.nodes:
            node.kill()


def _cluster_ok(node: Server) -> bool:
    try:
        text = node.client.execute_command("CLUSTER", "INFO")
    except redis.RedisError:
        return False
    state = text.decode() if isinstance(text, bytes) else str(text)
    return "cluster_state:ok" in state


class SentinelSetup:
    """A master, a replica of it, and one Sentinel watching them (quorum 1, so SENTINEL FAILOVER works alone).

    Everything requires a password, the Sentinel its own, so that auth is shown to pass through."""

    def __init__(self, tmp: Path) -> None:
        self.servers: list[Server] = []
        auth = ["--requirepass", PASSWORD, "--masterauth", PASSWORD]
        try:
            self.master = self._add(Server(tmp, "master", auth, password=PASSWORD))
            self.replica = self._add(Server(tmp, "replica", [*auth, "--replicaof", "127.0.0.1",
                                                              str(self.master.port)], password=PASSWORD))
            wait_until(lambda: self.replica.info("replication").get("master_link_status") == "up", 20,
                       "the replica to sync")
            self.sentinel = self._add(Server(tmp, "sentinel", [
                f"sentinel monitor {SERVICE} 127.0.0.1 {self.master.port} 1",
                f"sentinel down-after-milliseconds {SERVICE} 2000",
                f"sentinel failover-timeout {SERVICE} 10000",
                f"sentinel parallel-syncs {SERVICE} 1",
                f"sentinel auth-pass {SERVICE} {PASSWORD}",
                f"requirepass {SENTINEL_PASSWORD}",
            ], sentinel=True, password=SENTINEL_PASSWORD))
            wait_until(self._replica_known, 30, "the Sentinel to know the replica", interval=0.1)
        except BaseException:
            self.close()
            raise
        self.url = f"redis+sentinel://:{PASSWORD}@127.0.0.1:{self.sentinel.port}/{SERVICE}/0"

    def _add(self, server: Server) -> Server:
        self.servers.append(server)
        return server

    def _replica_known(self) -> bool:
        replicas = self.sentinel.client.execute_command("SENTINEL", "REPLICAS", SERVICE)
        return any(_flag_dict(r).get("flags") == "slave" for r in replicas or ())

    def master_port(self) -> int:
        _, port = self.sentinel.client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE)
        return int(port)

    def client(self) -> redis.Redis:
        sentinel = redis.sentinel.Sentinel([("127.0.0.1", self.sentinel.port)],
                                           sentinel_kwargs={"password": SENTINEL_PASSWORD})
        return sentinel.master_for(SERVICE, socket_timeout=5, password=PASSWORD)

    def failover(self, timeout: float = 30) -> int:
        """``SENTINEL FAILOVER`` (retried while the Sentinel finds no good replica yet); returns the new port."""
        before = self.master_port()

        def ask() -> bool:
            try:
                return bool(self.sentinel.client.execute_command("SENTINEL", "FAILOVER", SERVICE))
            except redis.ResponseError as exc:
                if "NOGOODSLAVE" in str(exc) or "INPROG" in str(exc):
                    return False
                raise

        wait_until(ask, timeout, "the Sentinel to accept the failover", interval=0.2)
        wait_until(lambda: self.master_port() != before, timeout, "a new master", interval=0.05)
        return self.master_port()

    def close(self) -> None:
        for server in self.servers:
            server.kill()


def _flag_dict(row: Any) -> dict[str, str]:
    if isinstance(row, dict):
        return {_s(k): _s(v) for k, v in row.items()}
    items = [_s(x) for x in row]
    return dict(zip(items[::2], items[1::2], strict=False))


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def settle(seconds: float) -> None:
    time.sleep(seconds)
