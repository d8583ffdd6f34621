"""Runs the gateway under uvicorn (uvloop + httptools) in the current process."""

from __future__ import annotations

import contextlib
import logging
import socket
import sys
from types import FrameType

import uvicorn

from gateway.app import asgi_app
from gateway.config.schema import Config
from gateway.edge import guarded_protocol
from gateway.gctune import tune_gc
from gateway.runtime import Runtime

log = logging.getLogger("lockgate.server")


class GatewayServer(uvicorn.Server):
    """uvicorn re-raises SIGTERM/SIGINT after its graceful shutdown, so the process dies by the signal;
    a gateway that drained cleanly should exit 0 instead, for supervisors that count that as a failure."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        tune_gc()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        self._captured_signals.clear()


def uvicorn_config(runtime: Runtime, host: str, port: int) -> uvicorn.Config:
    server = runtime.config.server
    return uvicorn.Config(
        asgi_app(runtime), host=host, port=port, lifespan="on", log_config=None, access_log=False,
        loop="uvloop" if sys.platform != "win32" else "asyncio",
        http=guarded_protocol(server.header_timeout_s, server.max_connections),
        timeout_graceful_shutdown=int(runtime.config.server.shutdown_grace_s) or None,
        # Streams are long-lived: keep idle keep-alive connections a little while, not forever.
        timeout_keep_alive=15, server_header=False)


async def serve(runtime: Runtime, host: str, port: int) -> None:
    server = GatewayServer(uvicorn_config(runtime, host, port))
    await server.serve()


def shared_port_socket(host: str, port: int) -> socket.socket:
    """A listening-ready socket bound with SO_REUSEPORT: every gateway process on the host binds its own, and
    the kernel balances new connections across them."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def run(config: Config, host: str | None = None, port: int | None = None, *, local_workers: bool = True) -> int:
    host = host or config.server.host
    port = config.server.port if port is None else port
    runtime = Runtime(config, local_workers=local_workers)
    cfg = uvicorn_config(runtime, host, port)
    server = GatewayServer(cfg)
    sockets = [shared_port_socket(host, port)] if config.server.reuse_port else None
    log.info("lockgate serving %d model(s) on http://%s:%d (dispatch: %s%s)", len(config.models), host, port,
             config.dispatch.kind, ", port shared" if sockets else "")
    with contextlib.suppress(KeyboardInterrupt):
        server.run(sockets=sockets)
    return 0 if server.started or not server.should_exit else 1


