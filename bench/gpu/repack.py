"""Carry large wheels as xz instead of their own zip compression: fewer `device` runs to bring them over.

A wheel's files are deflated one by one, and GPU kernels deflate badly: sglang-kernel's flash_ops.abi3.so is
1,758 MB raw and 578 MB in its wheel; xz, which sees the repeats between the kernels of one library, takes the
whole wheel from 615 to 314 MB (flashinfer-cubin 448 -> 68 MB, vllm 304 -> 204 MB). So ``pack`` rewrites a
wheel uncompressed (the same entries in the same order, so its RECORD still holds) and compresses that with xz;
on the GPU machine ``unpack`` turns it back into an installable (uncompressed) wheel. pip installs it as any
other: the hashes in RECORD are of the files, not of the archive.

    python3 bench/gpu/repack.py pack WHEEL... [--min-mb 8]     (here, by stage.sh: WHEEL -> WHEEL.xz)
    python3 bench/gpu/repack.py unpack DIR                     (on the machine, by env.sh's install_wheels)
"""

from __future__ import annotations

import argparse
import lzma
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

CHUNK = 1 << 24


def store(wheel: Path, out: Path) -> None:
    """The wheel's entries, in order and with their metadata, in a zip that does not compress."""
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED, allowZip64=True) as dst:
        for info in src.infolist():
            copy = zipfile.ZipInfo(info.filename, date_time=info.date_time)
            copy.external_attr = info.external_attr  # keeps the executable bits of scripts and libraries
            copy.compress_type = zipfile.ZIP_STORED
            with src.open(info) as r, dst.open(copy, "w", force_zip64=info.file_size > 0x7FFFFFFF) as w:
                shutil.copyfileobj(r, w, CHUNK)


def pack(wheel: Path, threads: int = 0) -> Path:
    """WHEEL -> WHEEL.xz (the uncompressed wheel, xz -9); the original is removed."""
    stored = wheel.with_name(wheel.name + ".stored")
    store(wheel, stored)
    out = wheel.with_name(wheel.name + ".xz")
    if shutil.which("xz"):  # the binary compresses on every core; Python's lzma on one
        with out.open("wb") as f:
            subprocess.run(["xz", "-9", f"-T{threads}", "-c", str(stored)], stdout=f, check=True)
    else:
        with stored.open("rb") as r, lzma.open(out, "wb", preset=9) as w:
            shutil.copyfileobj(r, w, CHUNK)
    stored.unlink()
    wheel.unlink()
    return out


def unpack(folder: Path) -> list[Path]:
    """Every WHEEL.xz in FOLDER -> WHEEL, with Python's lzma (no xz binary needed on the machine)."""
    done = []
    for packed in sorted(folder.glob("*.whl.xz")):
        wheel = packed.with_name(packed.name.removesuffix(".xz"))
        partial = wheel.with_name(wheel.name + ".partial")
        with lzma.open(packed, "rb") as r, partial.open("wb") as w:
            shutil.copyfileobj(r, w, CHUNK)
        partial.rename(wheel)  # a run cut short leaves no half wheel for pip to find
        packed.unlink()
        done.append(wheel)
    return done


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack", help="rewrite wheels uncompressed and xz them (WHEEL -> WHEEL.xz)")
    p.add_argument("wheels", nargs="+", type=Path)
    p.add_argument("--min-mb", type=float, default=8.0, help="leave smaller wheels as they are")
    u = sub.add_parser("unpack", help="every WHEEL.xz of a folder back into WHEEL")
    u.add_argument("folder", type=Path)
    args = ap.parse_args()
    if args.command == "pack":
        for wheel in args.wheels:
            size = wheel.stat().st_size
            if size < args.min_mb * 1e6:
                continue
            out = pack(wheel)
            print(f"{wheel.name}: {size / 1e6:.0f} MB -> {out.stat().st_size / 1e6:.0f} MB as xz", flush=True)
    else:
        for wheel in unpack(args.folder):
            print(f"unpacked {wheel.name} ({wheel.stat().st_size / 1e6:.0f} MB)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
