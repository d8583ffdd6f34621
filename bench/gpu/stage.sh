#!/usr/bin/env bash
# Prepare, off the GPU machine, everything the bake-off carries there (docs/gpu-bakeoff.md):
#   vLLM 0.26.0 and its wheels, lockgate's extra runtime wheels, lockgate itself as a wheel, and a redis-server
#   with its shared libraries; packed into folders that fit one `device` run beside the working tree (64 MiB in
#   all; large wheels as xz, split into parts where still too large), one folder per run, gathered on the
#   machine in /tmp/st.
# `sglang` instead stages SGLang 0.5.15's wheels (sglang-0.5.15.txt, ~1.2 GB, 0.5 GB as xz) into folders s0..sN,
# carried into /tmp/sgst (bench/gpu/sglang_install.sh installs them apart from vLLM's).
# Packing takes a while on a small machine (xz -9: ~5 min for vLLM's set, ~16 min for SGLang's on 2 cores).
# Usage: bench/gpu/stage.sh [vllm|sglang] [OUTDIR]   (default .st/gpu, or .st/sglang; .gitignore has /.st/)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
kind=vllm
case ${1:-} in vllm|sglang) kind=$1; shift ;; esac
if [ "$kind" = sglang ]; then
  out=${1:-$root/.st/sglang} prefix=s lists=("$here/sglang-0.5.15.txt")
else
  out=${1:-$root/.st/gpu} prefix=c lists=("$here/vllm-0.26.0.txt" "$here/lockgate-extra.txt")
fi
dl=$(mktemp -d)
trap 'rm -rf "$dl"' EXIT
platforms=()
for p in manylinux_2_39 manylinux_2_35 manylinux_2_34 manylinux_2_31 manylinux_2_28 manylinux_2_27 manylinux_2_26 \
         manylinux_2_24 manylinux_2_17 manylinux2014 manylinux1; do platforms+=(--platform "${p}_x86_64"); done
for list in "${lists[@]}"; do
  grep -vE '^\s*(#|$)' "$list" | while read -r req; do
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      "${platforms[@]}" --platform any -d "$dl" "$req" 2>/dev/null || { echo "could not download $req" >&2; exit 1; }
  done
done
if [ "$kind" = vllm ]; then
  python3 -m pip wheel -q --no-deps -w "$dl" "$root"  # isolated build: the system setuptools may predate PEP 639
  # redis-server and the libraries it links that a stock Ubuntu image may lack (glibc comes from the machine).
  bundle=$dl/redis-bundle
  mkdir -p "$bundle/lib"
  cp "$(command -v redis-server)" "$bundle/"
  ldd "$(command -v redis-server)" | awk '/=> \//{print $3}' | grep -vE '/lib(c|m|pthread|dl|rt)\.so' \
    | xargs -I{} cp -L {} "$bundle/lib/"
  tar -C "$dl" -czf "$dl/redis-bundle.tgz" redis-bundle
  rm -rf "$bundle"
fi
# Large wheels travel as xz of their uncompressed selves (bench/gpu/repack.py): xz finds the repeats between GPU
# kernels that a wheel's deflate cannot (sglang-kernel 615 -> 314 MB, flashinfer-cubin 448 -> 68 MB, vllm 304 ->
# 204 MB); install_wheels (env.sh) unpacks them on the machine.
python3 "$here/repack.py" pack "$dl"/*.whl
# A run carries the working tree too (its tracked files), and the tree grows with every lease's data: the folders
# get what is left of 64 MiB after it, less 1 MiB for untracked notes.
tree=$(git -C "$root" ls-files -z | (cd "$root" && xargs -0 stat -c %s) | awk '{s += $1} END {print s + 0}')
python3 - "$dl" "$out" "$prefix" "$tree" <<'PY'
import os, shutil, subprocess, sys
src, dst, prefix, tree = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
cap = 63 * 1024 * 1024 - tree
files = sorted(os.listdir(src), key=lambda f: -os.path.getsize(os.path.join(src, f)))
bins: list[list] = []
for f in files:
    p = os.path.join(src, f); s = os.path.getsize(p)
    if s > cap:  # split: bench/gpu/setup.sh reassembles NAME.part.* into NAME on the machine
        subprocess.run(["split", "-b", str(cap), "-d", p, os.path.join(src, f + ".part.")], check=True)
        os.remove(p)
        for part in sorted(x for x in os.listdir(src) if x.startswith(f + ".part.")):
            bins.append([os.path.getsize(os.path.join(src, part)), [part]])
        continue
    for b in bins:
        if b[0] + s <= cap:
            b[0] += s; b[1].append(f); break
    else:
        bins.append([s, [f]])
shutil.rmtree(dst, ignore_errors=True)
os.makedirs(dst)
for i, (s, names) in enumerate(bins):
    d = os.path.join(dst, "%s%d" % (prefix, i)); os.makedirs(d)
    for n in names:
        shutil.move(os.path.join(src, n), os.path.join(d, n))
    print(d, s // 1048576, "MiB", len(names), "files")
print("%d folders, one `device` run each: %s0 .. %s%d (the last one with setup.sh)" % (len(bins), prefix, prefix,
                                                                                   len(bins) - 1))
PY
