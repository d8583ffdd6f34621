"""Make sure a headless Chromium is installed for the HTML report test (Debian's ``chromium`` package).

Installs it with apt-get when missing and we are root; exits non-zero with a reason otherwise.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

NAMES = ("chromium", "chromium-browser", "google-chrome")


def find() -> str | None:
    return next((path for name in NAMES if (path := shutil.which(name))), None)


def main() -> int:
    found = find()
    if found:
        print(f"chromium: {found}")
        return 0
    if os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=False, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=False, env=env)
        found = find()
    if found is None:
        print("chromium: not installed and cannot install it (need root and apt-get): apt-get install chromium",
              file=sys.stderr)
        return 1
    print(f"chromium: installed {found}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
