#!/usr/bin/env bash
# The GPU check: runs every GPU test binary, a compute-sanitizer pass over a few of them, the
# kernel benchmark and the PyTorch peers, the decode-step benchmarks and the decode sweep
# (tokens/s vs context, tools/gpu/plot_sweep.py); writes JSON + Markdown under $OUT and prints a
# summary table last. Runs on the GPU machine from the repository root, over binaries built
# elsewhere (tools/gpu/bundle.sh here, then carry build/gpu-bundle):
#   tools/gpu/check.sh [--bundle DIR] [--out DIR] [--quick] [--no-peers] [--no-sanitize]
#                      [--no-bench] [--no-kernel-bench] [--no-sweep] [--sweep-only] [--budget SECONDS]
# --sweep-only runs the decode sweep and the summary alone (files: environment.txt,
# bench/sweep.{json,svg,log}, summary.{json,md}).
# DIR defaults to build/gpu-bundle, else build/cuda (a cuda-preset build dir: gpu_tests/, bin/).
# OUT defaults to $OUT (the device runner's output folder), else ./gpu-report. Every stage gets
# what is left of --budget (default 540 s, under a 10-minute command limit); the summary always runs.
set -uo pipefail
cd "$(dirname "$0")/../.."

bundle=""
out="${OUT:-gpu-report}"
quick=0
peers=1
sanitize=1
bench=1
kbench=1
sweep=1
sweep_only=0
budget=540
while [ $# -gt 0 ]; do
  case "$1" in
    --bundle) bundle="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --quick) quick=1; shift ;;
    --no-peers) peers=0; shift ;;
    --no-sanitize) sanitize=0; shift ;;
    --no-bench) bench=0; shift ;;
    --no-sweep) sweep=0; shift ;;
    --no-kernel-bench) kbench=0; shift ;;
    --sweep-only) sweep_only=1; shift ;;
    --budget) budget="$2"; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "check.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
if [ -z "$bundle" ]; then
  if [ -d build/gpu-bundle/gpu_tests ]; then bundle=build/gpu-bundle; else bundle=build/cuda; fi
fi
if [ ! -d "$bundle/gpu_tests" ]; then
  echo "check.sh: no $bundle/gpu_tests; build with tools/gpu/bundle.sh and carry build/gpu-bundle" >&2
  exit 2
fi
mkdir -p "$out/tests" "$out/bench"
t_start=$(date +%s)
# left CAP: seconds this stage may take (at most CAP, what is left of the budget minus a margin).
left() {
  local rem=$(( budget - ($(date +%s) - t_start) - 15 ))
  [ "$rem" -gt "$1" ] && rem=$1
  echo "$rem"
}

# Unpack the bundle's compressed files and set LD_LIBRARY_PATH and $py (shared with e2e.sh).
# shellcheck source=tools/gpu/env.sh
. tools/gpu/env.sh

{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "git: $(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"
  echo "bundle: $bundle"
  [ -f "$bundle/MANIFEST.txt" ] && sed -n '2,3p' "$bundle/MANIFEST.txt"
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader 2>&1
  echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
} > "$out/environment.txt"
cat "$out/environment.txt"

# 1. Every GPU test binary (gtest JSON + log each).
[ "$sweep_only" = 0 ] && echo "== GPU tests"
for exe in "$bundle"/gpu_tests/*; do
  [ "$sweep_only" = 1 ] && break
  [ -x "$exe" ] || continue
  name=$(basename "$exe")
  missing=$(ldd "$exe" 2>&1 | grep "not found" || true)
  if [ -n "$missing" ]; then
    echo "$name: missing libraries: $missing" | tee "$out/tests/$name.log"
    echo "{\"missing_libraries\": true}" > "$out/tests/$name.json"
    continue
  fi
  lim=$(left 300)
  if [ "$lim" -lt 10 ]; then echo "$name: skipped, time budget spent" | tee "$out/tests/$name.log"; continue; fi
  timeout "$lim" "$exe" --gtest_output="json:$out/tests/$name.json" > "$out/tests/$name.log" 2>&1
  rc=$?
  echo "$name: exit $rc ($(grep -E '^\[  (PASSED|FAILED) ' "$out/tests/$name.log" | tr '\n' ' '))"
  echo "$rc" > "$out/tests/$name.rc"
done

# 2. compute-sanitizer memcheck over small cases (catches out-of-bounds and misaligned accesses).
if [ "$sanitize" = 1 ] && [ "$sweep_only" = 0 ] && command -v compute-sanitizer >/dev/null 2>&1; then
  echo "== compute-sanitizer"
  san() {  # san NAME FILTER
    local exe="$bundle/gpu_tests/$1"
    [ -x "$exe" ] || return 0
    local lim
    lim=$(left 120)
    if [ "$lim" -lt 20 ]; then echo "sanitize $1: skipped, time budget spent"; return 0; fi
    timeout "$lim" compute-sanitizer --tool memcheck --error-exitcode 99 "$exe" \
      --gtest_filter="$2" > "$out/tests/sanitize_$1.log" 2>&1
    local rc=$?
    echo "$rc" > "$out/tests/sanitize_$1.rc"
    echo "sanitize $1 ($2): exit $rc ($(grep -E 'ERROR SUMMARY' "$out/tests/sanitize_$1.log" | tail -1))"
  }
  san kernels_cuda_decode_attention_test 'PagedDecodeAttention.EmptyRequestsGiveZeros:PagedDecodeAttention.GraphReplayFollowsNewLengths:PagedDecodeAttention.OddGroupsAndPeakedScores'
  san kernels_cuda_row_topk_test 'RowTopK.TargetShape32x8x1024:RowTopK.HeavyTiesBreakTowardsLowerPages:RowTopK.VeryLongRowsTakeTheUncachedPath'
  san kernels_cuda_sparse_planner_test 'SparsePlanner.SubstitutedPolicyFunctor'
  san kernels_cuda_block_topk_flow_test '*'
  # cudamodel: the model kernels (small cases) and one graph-replayed model step.
  san kernels_cuda_model_test 'CudaEmbedding.*:CudaRmsNorm.*:CudaRopeAppend.*:CudaSampling.Greedy*:CudaCausalAttention.*:CudaSkinnyGemm.*'
  san model_cuda_test 'CudaModel.GraphReplayedDecodeEqualsEagerDecode'
fi

# 3. Kernel benchmark and 4. PyTorch peers, in the same run.
qflag=""
[ "$quick" = 1 ] && qflag="--quick"
if [ "$bench" = 1 ] && [ "$kbench" = 1 ] && [ "$sweep_only" = 0 ] && [ -x "$bundle/bin/vortex_kernel_bench" ] && [ "$(left 300)" -ge 30 ]; then
  echo "== vortex_kernel_bench $qflag"
  timeout "$(left 300)" "$bundle/bin/vortex_kernel_bench" $qflag --json "$out/bench/kernels.json" \
    --md "$out/bench/kernels.md" 2> "$out/bench/kernels.log"
  echo "exit $? ($(wc -l < "$out/bench/kernels.log") log lines)"
fi
if [ "$bench" = 1 ] && [ "$sweep_only" = 0 ] && [ "$peers" = 1 ] && [ "$(left 240)" -ge 30 ]; then
  if $py -c "import torch; assert torch.cuda.is_available()" 2>/dev/null; then
    echo "== PyTorch peers $qflag"
    timeout "$(left 240)" $py bench/peers/torch_decode_peer.py $qflag --json "$out/bench/peers.json" \
      2> "$out/bench/peers.log"
    echo "exit $?"
  else
    echo "== PyTorch peers skipped: no torch with CUDA" | tee "$out/bench/peers.log"
  fi
fi

# --- cudamodel: decode-step benchmark (vortex bench decode, dense and block_topk) and its
# PyTorch peer (bench/peers/torch_decode_step.py); B=32, L=16K, qwen3-1.7b shape. -------------
if [ "$bench" = 1 ] && [ "$sweep_only" = 0 ] && [ -x "$bundle/bin/vortex" ]; then
  steps=50
  [ "$quick" = 1 ] && steps=20
  for flow in dense block_topk; do
    if [ "$(left 150)" -lt 40 ]; then echo "== vortex bench decode --flow $flow: skipped, time budget spent"; continue; fi
    echo "== vortex bench decode --flow $flow"
    timeout "$(left 150)" "$bundle/bin/vortex" bench decode --model synthetic:qwen3-1.7b \
      --batch 32 --context 16384 --flow "$flow" --topk-val 30 --bos 1 --eos 1 --layers-skip 0 \
      --steps "$steps" --json "$out/bench/decode_$flow.json" > "$out/bench/decode_$flow.log" 2>&1
    echo "exit $? ($(grep -E '^(decode step|throughput \(B|roofline|GPU idle)' "$out/bench/decode_$flow.log" | tr -s ' ' | tr '\n' ';'))"
  done
  # Where the step's time goes, kernel by kernel (CUPTI over graph replays; a separate run so
  # the timed steps above are untraced). Chrome traces: open in ui.perfetto.dev.
  for flow in dense block_topk; do
    if [ "$(left 150)" -lt 60 ]; then echo "== kernel trace --flow $flow: skipped, time budget spent"; continue; fi
    echo "== vortex bench decode --flow $flow --trace"
    timeout "$(left 150)" "$bundle/bin/vortex" bench decode --model synthetic:qwen3-1.7b \
      --batch 32 --context 16384 --flow "$flow" --topk-val 30 --bos 1 --eos 1 --layers-skip 0 \
      --steps 5 --trace "$out/bench/trace_$flow.json" --json "$out/bench/decode_trace_$flow.json" \
      > "$out/bench/decode_trace_$flow.log" 2>&1
    echo "exit $? ($(grep -E '^  (span|no kernel running|GEMM|attention|sparse fused) ' "$out/bench/decode_trace_$flow.log" | tr -s ' ' | tr '\n' ';'))"
  done
fi
if [ "$bench" = 1 ] && [ "$sweep_only" = 0 ] && [ "$peers" = 1 ] && [ "$(left 150)" -ge 40 ]; then
  if $py -c "import torch; assert torch.cuda.is_available()" 2>/dev/null; then
    echo "== PyTorch decode step peer $qflag"
    timeout "$(left 150)" $py bench/peers/torch_decode_step.py --model qwen3-1.7b --batch 32 \
      --context 16384 $qflag --json "$out/bench/torch_decode_step.json" \
      > "$out/bench/torch_decode_step.log" 2>&1
    echo "exit $? ($(grep -E 'step|bytes' "$out/bench/torch_decode_step.log" | tr -s ' ' | tr '\n' ';'))"
  fi
fi
# --- end cudamodel --------------------------------------------------------------------------

# Decode sweep (issue 7): tokens/s vs context 4K-32K, dense once per context, block_topk and quest
# at budgets 16-128 pages per row; one process, one model, one KV cache sized for 32K (B=32:
# ~131 GB with both flows' summaries; the batch shrinks where it would not fit). The JSON is
# rewritten after every point, so a timeout keeps what was measured; summarize.py folds it into
# summary.json and its tables into summary.md.
if [ "$sweep" = 1 ] && { [ "$bench" = 1 ] || [ "$sweep_only" = 1 ]; } && [ -x "$bundle/bin/vortex" ]; then
  if [ "$(left 150)" -lt 60 ]; then
    echo "== decode sweep: skipped, time budget spent"
  else
    sw_warmup=10; sw_steps=20
    [ "$quick" = 1 ] && { sw_warmup=5; sw_steps=10; }
    echo "== vortex bench decode sweep (contexts 4K-32K x budgets 16-128, dense/block_topk/quest)"
    timeout "$(left 150)" "$bundle/bin/vortex" bench decode --model synthetic:qwen3-1.7b \
      --batch 32 --page-size 16 --contexts 4096,8192,16384,32768 --budgets 16,32,64,128 \
      --flows dense,block_topk,quest --bos 1 --eos 1 --layers-skip 0 --warmup "$sw_warmup" \
      --steps "$sw_steps" --json "$out/bench/sweep.json" > "$out/bench/sweep.log" 2>&1
    echo "exit $? ($(grep -E '^(sweep of|KV cache:|batch at)' "$out/bench/sweep.log" | tr '\n' ';'))"
    if [ -f "$out/bench/sweep.json" ]; then
      $py tools/gpu/plot_sweep.py "$out/bench/sweep.json" --svg "$out/bench/sweep.svg" --md /dev/null
    fi
  fi
fi

echo "== done in $(( $(date +%s) - t_start )) s"
$py tools/gpu/summarize.py "$out"
