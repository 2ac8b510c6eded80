#!/usr/bin/env bash
# Builds the GPU test binaries and vortex_kernel_bench HERE (cuda preset; the GPU machine has no
# Debian -dev packages) and gathers them into a small relocatable folder to carry to the GPU
# machine, where tools/gpu/check.sh runs them:
#   tools/gpu/bundle.sh [--build-dir build/cuda] [--out build/gpu-bundle] [--no-build]
# Layout: OUT/gpu_tests/* (every ctest test labelled `gpu`), OUT/bin/vortex_kernel_bench,
# OUT/lib/ (shared libraries the binaries need beyond glibc/libstdc++ and the CUDA toolkit's
# cuBLAS/NVRTC -- normally none, the binaries link with --as-needed and static gtest/cudart),
# OUT/data/austen.txt.xz (eval haystack, when present), OUT/MANIFEST.txt. Debug info is
# stripped to keep the folder far below the 64 MiB carry limit.
set -euo pipefail
cd "$(dirname "$0")/../.."

build_dir=build/cuda
out=build/gpu-bundle
do_build=1
while [ $# -gt 0 ]; do
  case "$1" in
    --build-dir) build_dir="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --no-build) do_build=0; shift ;;
    *) echo "bundle.sh: unknown option $1" >&2; exit 2 ;;
  esac
done

if [ "$do_build" = 1 ]; then
  cmake --preset cuda >/dev/null
  targets=$(ctest --test-dir "$build_dir" -L gpu --show-only=json-v1 2>/dev/null |
    python3 -c 'import json,sys; d=json.load(sys.stdin); print(" ".join(sorted({t["name"] for t in d["tests"]})))')
  echo "bundle: building ${targets} vortex_kernel_bench"
  # Test names equal their target names (vortex_add_test); the test commands only resolve once
  # the executables exist, so build by name.
  # shellcheck disable=SC2086
  cmake --build "$build_dir" -j2 --target ${targets} vortex_kernel_bench
  cmake --build "$build_dir" -j2 --target vortex  # cudamodel: `vortex bench decode`
fi

# The binaries report the SHA of the tree they were built from (version.h is refreshed on every
# build), with "-dirty" when tracked files had uncommitted changes; say so when that is the case.
built_sha=$(sed -n 's/.*VORTEX_GIT_SHA "\(.*\)".*/\1/p' "$build_dir/generated/vortex/version.h" 2>/dev/null)
head_sha=$(git rev-parse --short=12 HEAD)
if [ -n "$built_sha" ] && [ "$built_sha" != "$head_sha" ]; then
  echo "bundle: note: the binaries report git $built_sha, the tree is $head_sha" >&2
fi

rm -rf "$out"
mkdir -p "$out/gpu_tests" "$out/bin" "$out/lib"
ctest --test-dir "$build_dir" -L gpu --show-only=json-v1 2>/dev/null |
  python3 -c 'import json,sys; d=json.load(sys.stdin); [print(t["command"][0]) for t in d["tests"] if t.get("command")]' |
  sort -u | while read -r exe; do
    cp "$exe" "$out/gpu_tests/"
  done
cp "$build_dir/bin/vortex_kernel_bench" "$out/bin/"
cp "$build_dir/bin/vortex" "$out/bin/"  # cudamodel: `vortex bench decode` in check.sh

# Shared libraries that a stock Ubuntu + CUDA toolkit would not provide.
system_re='^(linux-vdso|libc\.so|libm\.so|libstdc\+\+|libgcc_s|ld-linux|librt|libpthread|libdl|libcublas|libcublasLt|libnvrtc|libcudart|libcuda\.so)'
for f in "$out"/gpu_tests/* "$out"/bin/*; do
  strip --strip-debug "$f"
  ldd "$f" | awk '{print $1, $3}' | while read -r name path; do
    if ! echo "$name" | grep -Eq "$system_re" && [ -n "$path" ] && [ -f "$path" ]; then
      cp -L "$path" "$out/lib/"
    fi
  done
done
# `vortex bench decode --trace` loads CUPTI at run time (ldd does not see it): the toolkit's
# copy travels too, so the GPU machine need not have the same CUPTI on its library path.
for cupti in /usr/local/cuda/lib64/libcupti.so.13 /usr/local/cuda/lib/libcupti.so.13 \
             /usr/local/cuda/extras/CUPTI/lib64/libcupti.so.13; do
  if [ -f "$cupti" ]; then cp -L "$cupti" "$out/lib/"; break; fi
done
# cudamodel: the CpuModel oracle of the model tests needs OpenBLAS (36 MB); large libraries travel
# xz-compressed (OpenBLAS: ~4 MB) and check.sh unpacks them next to the others.
for lib in "$out"/lib/*; do
  [ -f "$lib" ] && [ "$(stat -c %s "$lib")" -gt 4000000 ] && xz -T2 -9 "$lib"
done

# Large executables are xz-compressed too (the whole carry must stay under 64 MiB); check.sh
# unpacks them in place before running anything.
for f in "$out"/gpu_tests/* "$out"/bin/*; do
  [ -f "$f" ] && [ "$(stat -c %s "$f")" -gt 6000000 ] && xz -T2 -6 "$f"
done

# The eval haystack (Austen text from scripts/setup.sh) for tools/gpu/e2e.sh, xz-compressed.
hay="${VORTEX_DATA_DIR:-$HOME/.cache/vortex/data}/austen.txt"
if [ -s "$hay" ]; then
  mkdir -p "$out/data"
  xz -T2 -9 -c "$hay" > "$out/data/austen.txt.xz"
fi

{
  echo "vortex GPU bundle"
  echo "git: $(git rev-parse --short=12 HEAD) $(git status --porcelain | grep -q . && echo '(dirty)')"
  echo "built: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(. /etc/os-release; echo "$PRETTY_NAME"), $(nvcc --version | tail -1)"
  (cd "$out" && find . -type f ! -name MANIFEST.txt -printf '%s\t%p\n' | sort -k2)
} > "$out/MANIFEST.txt"
size=$(du -sm "$out" | cut -f1)
echo "bundle: $out ($size MiB)"
cat "$out/MANIFEST.txt"
if [ "$size" -ge 60 ]; then
  echo "bundle: WARNING: $size MiB is close to the 64 MiB carry limit" >&2
fi
