"""Make sure a Redis answers at LOCKGATE_REDIS_URL (default redis://127.0.0.1:6379/0).

If none answers, start a throwaway one (no persistence) from the local ``redis-server`` binary, installing
Debian's package first when the binary is missing and we are root. Exits non-zero with a reason otherwise.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import redis


def reachable(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except (redis.RedisError, OSError):
        return False


def main() -> int:
    url = os.environ.get("LOCKGATE_REDIS_URL", "redis://127.0.0.1:6379/0")
    if reachable(url):
        print(f"redis: reachable at {url}")
        return 0
    parsed = urlparse(url)
    if parsed.hostname not in ("127.0.0.1", "localhost", "::1"):
        print(f"redis: {url} is not reachable and is not local; start it or set LOCKGATE_REDIS_URL", file=sys.stderr)
        return 1
    binary = shutil.which("redis-server")
    if binary is None and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "update", "-qq"], check=False)
        subprocess.run(["apt-get", "install", "-y", "-qq", "redis-server"], check=False)
        binary = shutil.which("redis-server")
    if binary is None:
        print("redis: no Redis reachable and no redis-server binary; install redis-server", file=sys.stderr)
        return 1
    workdir = Path(".lockgate-redis").resolve()
    workdir.mkdir(exist_ok=True)
    port = str(parsed.port or 6379)
    subprocess.run([binary, "--port", port, "--bind", "127.0.0.1", "--daemonize", "yes", "--save", "",
                    "--appendonly", "no", "--dir", str(workdir), "--logfile", str(workdir / "redis.log")],
                   check=True)
    for _ in range(50):
        if reachable(url):
            print(f"redis: started a throwaway redis-server on port {port}")
            return 0
        time.sleep(0.1)
    print("redis: started redis-server but it does not answer", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
