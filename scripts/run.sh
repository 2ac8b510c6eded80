#!/usr/bin/env bash
# The main job: set up, build, start the OpenAI-compatible server with the default model
# (SmolLM2-135M-Instruct on the CPU backend), send it one chat request with curl, print the answer,
# and stop the server gracefully (SIGTERM).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake --preset cpu >/dev/null
cmake --build --preset cpu -j "$(nproc)" --target vortex
build/cpu/bin/vortex --version

log=$(mktemp)
build/cpu/bin/vortex serve --port 0 --flows block_topk,quest >"$log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true; rm -f "$log"' EXIT
port=""
for _ in $(seq 1 600); do
  port=$(sed -n 's/.*listening on http:\/\/[^:]*:\([0-9]*\).*/\1/p' "$log")
  [ -n "$port" ] && break
  kill -0 "$server" 2>/dev/null || { cat "$log"; echo "run: vortex serve failed" >&2; exit 1; }
  sleep 0.1
done
[ -n "$port" ] || { cat "$log"; echo "run: vortex serve did not start" >&2; exit 1; }
cat "$log"

request='{"messages": [{"role": "user", "content": "What is the capital of France?"}],
          "max_tokens": 64, "temperature": 0}'
echo "POST /v1/chat/completions: What is the capital of France?"
curl -sS "http://127.0.0.1:$port/v1/chat/completions" -H 'Content-Type: application/json' \
  -d "$request"
echo
echo "The same with sparse attention (block_topk, 4 pages per row):"
curl -sS "http://127.0.0.1:$port/v1/chat/completions" -H 'Content-Type: application/json' \
  -d "${request%\}}, \"vortex\": {\"flow\": \"block_topk\", \"topk_val\": 4}}"
echo

kill -TERM "$server"
wait "$server"
echo "run: server stopped cleanly"
