#!/usr/bin/env bash
# A/B(/C...) of the decode step under several settings, interleaved (A B C A B C ...) in one run
# so the shared machine's noise falls on all alike; every round is one `vortex bench decode`
# process over dense, block_topk and quest at B=32, L=16K, 32 pages (the issue 6/7 shape):
#   tools/gpu/ab.sh SETTING SETTING [SETTING...] [--rounds N] [--bundle DIR] [--out DIR]
#                   [--context L] [--batch B] [--flows F,G]
# A setting is VAR=VALUE[,VAR=VALUE...]; VORTEX_BIN=PATH runs another `vortex` binary (a variant
# built with different compile-time switches) instead of the bundle's. E.g.
#   tools/gpu/ab.sh VORTEX_PDL=0 VORTEX_PDL=1,VORTEX_SKINNY_GEMM=on
# Writes OUT/ab/<setting>-<round>.json and OUT/ab/summary.json (per flow and setting: every
# round's median and mean step, their medians, and each setting's ratio to the first), and prints
# the summary. Runs on the GPU machine like check.sh.
set -uo pipefail
cd "$(dirname "$0")/../.."
settings=()
rounds=3; bundle=""; out="${OUT:-gpu-report}"; context=16384; batch=32; flows=dense,block_topk,quest
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds="$2"; shift 2 ;;
    --bundle) bundle="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --context) context="$2"; shift 2 ;;
    --batch) batch="$2"; shift 2 ;;
    --flows) flows="$2"; shift 2 ;;
    --*) echo "ab.sh: unknown option $1" >&2; exit 2 ;;
    *) settings+=("$1"); shift ;;
  esac
done
[ ${#settings[@]} -ge 2 ] || { sed -n '2,13p' "$0"; exit 2; }
for s in "${settings[@]}"; do
  case "$s" in *=*) ;; *) echo "ab.sh: settings are VAR=VALUE[,VAR=VALUE], got '$s'" >&2; exit 2 ;; esac
done
if [ -z "$bundle" ]; then
  if [ -d build/gpu-bundle/bin ]; then bundle=build/gpu-bundle; else bundle=build/cuda; fi
fi
# shellcheck source=tools/gpu/env.sh
. tools/gpu/env.sh
mkdir -p "$out/ab"
for r in $(seq 1 "$rounds"); do
  for s in "${settings[@]}"; do
    tag=$(echo "$s" | tr -c 'A-Za-z0-9_=.\n-' '_')
    bin="$bundle/bin/vortex"
    vars=()
    IFS=, read -r -a pairs <<< "$s"
    for kv in "${pairs[@]}"; do
      case "$kv" in VORTEX_BIN=*) bin="${kv#VORTEX_BIN=}" ;; *) vars+=("$kv") ;; esac
    done
    echo "== round $r: $s"
    env "${vars[@]}" "$bin" bench decode --model synthetic:qwen3-1.7b --batch "$batch" \
      --contexts "$context" --flows "$flows" --budgets 32 --bos 1 --eos 1 \
      --layers-skip 0 --page-size 16 --steps 30 --warmup 10 --seed 1 \
      --json "$out/ab/$tag-$r.json" > "$out/ab/$tag-$r.log" 2>&1
    echo "exit $?"
  done
done
$py - "$out/ab" "${settings[@]}" <<'PY'
import glob, json, os, statistics, sys
d, settings = sys.argv[1], sys.argv[2:]
tag = lambda s: "".join(c if c.isalnum() or c in "_=.-" else "_" for c in s)
res = {}
for s in settings:
    for f in sorted(glob.glob(os.path.join(d, tag(s) + "-*.json"))):
        for p in json.load(open(f)).get("points", []):
            res.setdefault(p["flow"], {}).setdefault(s, []).append(
                (p["step_ms_median"], statistics.mean(p["step_ms"])))
summary = {"settings": settings, "flows": {}}
for flow, by in res.items():
    # median: the typical step; mean: what throughput sees (steps that complete a page included)
    row = {s: {"rounds_ms": [m for m, _ in v], "median_ms": statistics.median([m for m, _ in v]),
               "rounds_mean_ms": [x for _, x in v],
               "mean_ms": statistics.median([x for _, x in v])} for s, v in by.items()}
    base = settings[0]
    for s in by:
        if s != base and base in by:
            row[s]["over_first"] = row[s]["median_ms"] / row[base]["median_ms"]
            row[s]["over_first_mean"] = row[s]["mean_ms"] / row[base]["mean_ms"]
    summary["flows"][flow] = row
    print(f"{flow}:")
    for s in by:
        ratio = (f"  x{row[s]['over_first']:.3f} of the first (mean x{row[s]['over_first_mean']:.3f})"
                 if "over_first" in row[s] else "")
        print(f"  {s}: {row[s]['median_ms']:.3f} ms (mean {row[s]['mean_ms']:.3f}){ratio}")
json.dump(summary, open(os.path.join(d, "summary.json"), "w"), indent=1)
PY
