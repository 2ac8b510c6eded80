#!/usr/bin/env bash
# End-to-end GPU results (issue 8), over binaries built elsewhere (tools/gpu/bundle.sh; carry
# build/gpu-bundle):
#   1. offline serving throughput, `vortex bench serve --offline --device cuda`, the same requests
#      for dense, block_topk and quest (synthetic:qwen3-1.7b, 1K prompt x G generated, EOS ignored);
#   2. (--online) online latency: `vortex serve --device cuda` on synthetic:qwen3-1.7b and
#      `vortex bench serve --online` with ~16K-token prompts at a few Poisson rates, dense vs
#      block_topk;
#   3. the accuracy grid, `vortex eval --device cuda` on SmolLM2-135M-Instruct (real weights: the
#      GGUF must be in $VORTEX_MODEL_DIR, default build/model) at 2K/4K/8K, dense vs block_topk,
#      gqa_block_topk, quest and streaming at 1/8 and 1/16 of the context.
#   tools/gpu/e2e.sh [--bundle DIR] [--out DIR] [--budget S] [--requests N] [--gen-len G]
#                    [--samples N] [--contexts 2048,4096,8192] [--no-serve] [--no-eval] [--no-engine-test] [--online] [--rates 0.5,1,2]
#                    [--serve-flows block_topk,dense,quest] [--no-custom]
# Writes e2e.json (every serving result), eval.json/.md and e2e.log under OUT ($OUT, else
# ./gpu-e2e): few files, since the device runner returns only a handful.
set -uo pipefail
cd "$(dirname "$0")/../.."

bundle=build/gpu-bundle
out="${OUT:-gpu-e2e}"
budget=580
requests=auto  # as many as the GPU holds at 17K tokens dense: 64 with >= 120 GiB (H200), else 32
gen_len=16384
samples=25
contexts=2048,4096,8192
serve=1
do_eval=1
online=0
engine_test=1
rates=0.5,1,2  # up to where 16K prefills (~0.25 s each on an H200) queue
serve_flows=block_topk,dense,quest
custom_stage=1
while [ $# -gt 0 ]; do
  case "$1" in
    --bundle) bundle="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --budget) budget="$2"; shift 2 ;;
    --requests) requests="$2"; shift 2 ;;
    --gen-len) gen_len="$2"; shift 2 ;;
    --samples) samples="$2"; shift 2 ;;
    --contexts) contexts="$2"; shift 2 ;;
    --no-serve) serve=0; shift ;;
    --no-eval) do_eval=0; shift ;;
    --online) online=1; shift ;;
    --no-engine-test) engine_test=0; shift ;;
    --rates) rates="$2"; shift 2 ;;
    --serve-flows) serve_flows="$2"; shift 2 ;;
    --no-custom) custom_stage=0; shift ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "e2e.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$out" "$out/parts"
if [ "$requests" = auto ]; then
  mem_mib=$(nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits 2>/dev/null | head -1)
  if [ "${mem_mib:-0}" -ge 122880 ]; then requests=64; else requests=32; fi
fi
t_start=$(date +%s)
left() {
  local rem=$(( budget - ($(date +%s) - t_start) - 10 ))
  [ "$rem" -gt "$1" ] && rem=$1
  echo "$rem"
}
# shellcheck source=tools/gpu/env.sh
. tools/gpu/env.sh
vortex="$bundle/bin/vortex"
export VORTEX_MODEL_DIR="${VORTEX_MODEL_DIR:-$(pwd)/build/model}"
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ) git: $(git rev-parse --short=12 HEAD 2>/dev/null)"
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>&1
} | tee "$out/e2e.log"

# The engine on the CUDA backend first: the stages below rely on it.
if [ "$engine_test" = 1 ] && [ -x "$bundle/gpu_tests/engine_cuda_backend_test" ]; then
  echo "== engine_cuda_backend_test" | tee -a "$out/e2e.log"
  timeout "$(left 120)" "$bundle/gpu_tests/engine_cuda_backend_test" >> "$out/e2e.log" 2>&1
  echo "exit $?" | tee -a "$out/e2e.log"
fi

if [ "$serve" = 1 ]; then
  # dense second: a budget cut should cost a sparse flow, not the baseline.
  for flow in ${serve_flows//,/ }; do
    lim=$(left 330)
    if [ "$lim" -lt 30 ]; then echo "serve $flow: skipped, time budget spent" | tee -a "$out/e2e.log"; continue; fi
    echo "== bench serve --offline --flow $flow ($requests x 1024 + $gen_len)" | tee -a "$out/e2e.log"
    timeout "$lim" "$vortex" bench serve --offline --device cuda --model synthetic:qwen3-1.7b \
      --requests "$requests" --prompt-len 1024 --gen-len "$gen_len" --flow "$flow" \
      --topk-val 30 --bos 1 --eos 1 --layers-skip 0 --max-batch "$requests" \
      --max-tokens-per-step 4096 --quiet --json "$out/parts/offline_$flow.json" >> "$out/e2e.log" 2>&1
    echo "exit $?" | tee -a "$out/e2e.log"
  done
fi

# A flow that is not built in, loaded from JSON at run time (NVRTC-compiled; no rebuild): greedy
# text on SmolLM2 (compare with the CPU's in docs/results.md) and serving throughput.
custom=flows/examples/centroid_norm_bonus.json
if [ "$custom_stage" = 1 ] && [ "$(left 120)" -ge 60 ]; then
  echo "== custom JSON flow $custom" | tee -a "$out/e2e.log"
  if [ -f "$VORTEX_MODEL_DIR/SmolLM2-135M-Instruct.Q4_1.gguf" ]; then
    timeout "$(left 60)" "$vortex" generate --device cuda --model smollm2-135m --chat \
      --prompt "Write three sentences about the history of Paris." --max-tokens 60 \
      --flow "$custom" --topk-val 2 >> "$out/e2e.log" 2>&1
    echo "exit $?" | tee -a "$out/e2e.log"
  fi
  timeout "$(left 90)" "$vortex" bench serve --offline --device cuda --model synthetic:qwen3-1.7b \
    --requests 32 --prompt-len 4096 --gen-len 256 --flow "$custom" --topk-val 30 --bos 1 --eos 1 \
    --layers-skip 0 --max-batch 32 --max-tokens-per-step 8192 --quiet \
    --json "$out/parts/offline_custom.json" >> "$out/e2e.log" 2>&1
  echo "exit $?" | tee -a "$out/e2e.log"
fi

if [ "$online" = 1 ] && [ "$(left 300)" -ge 120 ]; then
  port=8123
  echo "== online: vortex serve --device cuda (synthetic:qwen3-1.7b)" | tee -a "$out/e2e.log"
  "$vortex" serve --device cuda --model synthetic:qwen3-1.7b --flows block_topk --topk-val 30 \
    --bos 1 --eos 1 --layers-skip 0 --port "$port" --max-batch 64 --max-tokens-per-step 8192 \
    --max-queue 1024 > "$out/parts/serve.log" 2>&1 &
  server=$!
  up=0
  for _ in $(seq 1 180); do
    if python3 -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$port/health', timeout=1)" 2>/dev/null; then up=1; break; fi
    kill -0 "$server" 2>/dev/null || break
    sleep 1
  done
  if [ "$up" = 1 ]; then
    for rate in ${rates//,/ }; do
      for flow in dense block_topk; do
        lim=$(left 150)
        if [ "$lim" -lt 60 ]; then echo "online $flow @ $rate: skipped, time budget spent" | tee -a "$out/e2e.log"; continue; fi
        echo "== bench serve --online --flow $flow --rate $rate" | tee -a "$out/e2e.log"
        # ~16K-token prompts: the synthetic model's tokenizer is byte-level and a prompt word is 3 bytes.
        timeout "$lim" "$vortex" bench serve --online --url "http://127.0.0.1:$port" \
          --model synthetic:qwen3-1.7b --flow "$flow" --topk-val 30 --rate "$rate" --duration 40 \
          --prompt-len 5400 --gen-len 128 --json "$out/parts/online_${flow}_$rate.json" \
          >> "$out/e2e.log" 2>&1
        echo "exit $?" | tee -a "$out/e2e.log"
      done
    done
  else
    echo "online: the server did not come up" | tee -a "$out/e2e.log"
    tail -20 "$out/parts/serve.log" | tee -a "$out/e2e.log"
  fi
  kill -INT "$server" 2>/dev/null
  wait "$server" 2>/dev/null
fi

if [ "$do_eval" = 1 ]; then
  hay="$bundle/data/austen.txt"
  [ -f "$hay.xz" ] && python3 -c 'import lzma,sys; open(sys.argv[2],"wb").write(lzma.open(sys.argv[1]).read())' "$hay.xz" "$hay"
  # One invocation per context length, so a run cut by the budget keeps the lengths it finished.
  for ctx in ${contexts//,/ }; do
    lim=$(left 260)
    if [ "$lim" -lt 60 ]; then echo "eval $ctx: skipped, time budget spent" | tee -a "$out/e2e.log"; continue; fi
    echo "== eval at $ctx tokens ($samples samples per task)" | tee -a "$out/e2e.log"
    ppl=""
    [ "$ctx" = 2048 ] && ppl="--ppl-contexts 2048 --ppl-tokens 128 --ppl-windows 4"
    # shellcheck disable=SC2086
    timeout "$lim" "$vortex" eval --device cuda --model smollm2-135m \
      --tasks passkey,niah_single,niah_multikey,vt --contexts "$ctx" \
      --depths 0.1,0.3,0.5,0.7,0.9 --samples "$samples" --max-tokens 24 \
      --flows dense,block_topk:1/8,block_topk:1/16,gqa_block_topk:1/8,gqa_block_topk:1/16,quest:1/8,quest:1/16,streaming:1/8,streaming:1/16 \
      --haystack "$hay" $ppl --quiet \
      --json "$out/parts/eval_$ctx.json.eval" --md "$out/parts/eval_$ctx.md" >> "$out/e2e.log" 2>&1
    echo "exit $?" | tee -a "$out/e2e.log"
    [ -f "$out/parts/eval_$ctx.md" ] && cat "$out/parts/eval_$ctx.md" >> "$out/eval.md"
  done
  python3 - "$out" <<'PYEOF'
import glob, json, os, sys
out = sys.argv[1]
runs = {}
for f in sorted(glob.glob(os.path.join(out, "parts", "eval_*.json.eval"))):
    runs[os.path.basename(f).split(".")[0]] = json.load(open(f))
if runs:
    json.dump(runs, open(os.path.join(out, "eval.json"), "w"), indent=1)
PYEOF
fi

# One JSON with every serving result (the runner returns only a few files).
python3 - "$out" <<'PYEOF'
import glob, json, os, sys
out = sys.argv[1]
merged = {}
for f in sorted(glob.glob(os.path.join(out, "parts", "*.json"))):
    try:
        merged[os.path.basename(f)[:-5]] = json.load(open(f))
    except Exception as e:  # a run killed by its timeout leaves no or partial JSON
        merged[os.path.basename(f)[:-5]] = {"error": str(e)}
json.dump(merged, open(os.path.join(out, "e2e.json"), "w"), indent=1)
for k, v in merged.items():
    if v.get("mode") == "offline":
        r = v["results"][0]
        print(f"{k}: {r['config']} {r['tokens_per_s']:.1f} tok/s, {v['generated_tokens']} tokens in {v['seconds']:.1f} s")
    elif v.get("mode") == "online":
        print(f"{k}: " + json.dumps({x: v.get(x) for x in ("achieved_rate", "errors", "ttft_s", "e2e_s")}))
PYEOF
[ -f "$out/parts/serve.log" ] && tail -5 "$out/parts/serve.log" >> "$out/e2e.log"
rm -rf "$out/parts"
echo "== done in $(( $(date +%s) - t_start )) s" | tee -a "$out/e2e.log"
