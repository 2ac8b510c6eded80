#!/usr/bin/env bash
# The main job: set up, build, and run Vortex (today: the CLI's help and a self-check).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake --preset cpu >/dev/null
cmake --build --preset cpu -j "$(nproc)" --target vortex
build/cpu/bin/vortex --version
build/cpu/bin/vortex --help
build/cpu/bin/vortex selfcheck
