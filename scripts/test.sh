#!/usr/bin/env bash
# Sets up (scripts/setup.sh) and runs the whole test suite: builds the cpu preset and runs every
# CPU test with CTest; when the CUDA toolkit is present, also builds the cuda preset (compile and
# link only: CI has no GPU). Prints CTest's summary. Exit status is non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
jobs=$(nproc)
cmake --preset cpu >/dev/null
cmake --build --preset cpu -j "$jobs"
if command -v nvcc >/dev/null 2>&1 || [ -x /usr/local/cuda/bin/nvcc ]; then
  export PATH="$PATH:/usr/local/cuda/bin"
  echo "test: building the cuda preset (compile only; GPU tests run via tools/gpu/check.sh)"
  cmake --preset cuda >/dev/null
  cmake --build --preset cuda -j "$jobs"
fi
ctest --preset cpu
