#!/usr/bin/env bash
# A/B of the decode step under two environment settings, interleaved (A B A B ...) in one run so
# the shared machine's noise falls on both alike; every round is one `vortex bench decode` process
# over dense, block_topk and quest at B=32, L=16K, 32 pages (the issue 6/7 shape):
#   tools/gpu/ab.sh VAR=A VAR=B [--rounds N] [--bundle DIR] [--out DIR] [--context L] [--batch B]
# e.g. tools/gpu/ab.sh VORTEX_PDL=0 VORTEX_PDL=1. Writes OUT/ab/<setting>-<round>.json and
# OUT/ab/summary.json (per flow and setting: every round's median and mean step, their medians,
# and the ratios B/A), and prints the summary. Runs on the GPU machine like check.sh.
set -uo pipefail
cd "$(dirname "$0")/../.."
[ $# -ge 2 ] || { sed -n '2,9p' "$0"; exit 2; }
a="$1"; b="$2"; shift 2
rounds=3; bundle=""; out="${OUT:-gpu-report}"; context=16384; batch=32
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds="$2"; shift 2 ;;
    --bundle) bundle="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --context) context="$2"; shift 2 ;;
    --batch) batch="$2"; shift 2 ;;
    *) echo "ab.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
for s in "$a" "$b"; do
  case "$s" in *=*) ;; *) echo "ab.sh: settings are VAR=VALUE, got '$s'" >&2; exit 2 ;; esac
done
if [ -z "$bundle" ]; then
  if [ -d build/gpu-bundle/bin ]; then bundle=build/gpu-bundle; else bundle=build/cuda; fi
fi
# shellcheck source=tools/gpu/env.sh
. tools/gpu/env.sh
mkdir -p "$out/ab"
for r in $(seq 1 "$rounds"); do
  for s in "$a" "$b"; do
    tag=$(echo "$s" | tr -c 'A-Za-z0-9_=.\n-' '_')
    echo "== round $r: $s"
    env "$s" "$bundle/bin/vortex" bench decode --model synthetic:qwen3-1.7b --batch "$batch" \
      --contexts "$context" --flows dense,block_topk,quest --budgets 32 --bos 1 --eos 1 \
      --layers-skip 0 --page-size 16 --steps 30 --warmup 10 --seed 1 \
      --json "$out/ab/$tag-$r.json" > "$out/ab/$tag-$r.log" 2>&1
    echo "exit $?"
  done
done
$py - "$out/ab" "$a" "$b" <<'PY'
import glob, json, os, statistics, sys
d, a, b = sys.argv[1], sys.argv[2], sys.argv[3]
tag = lambda s: "".join(c if c.isalnum() or c in "_=.-" else "_" for c in s)
res = {}
for s in (a, b):
    for f in sorted(glob.glob(os.path.join(d, tag(s) + "-*.json"))):
        for p in json.load(open(f)).get("points", []):
            res.setdefault(p["flow"], {}).setdefault(s, []).append(
                (p["step_ms_median"], statistics.mean(p["step_ms"])))
summary = {"a": a, "b": b, "flows": {}}
for flow, by in res.items():
    # median: the typical step; mean: what throughput sees (steps that complete a page included)
    row = {s: {"rounds_ms": [m for m, _ in v], "median_ms": statistics.median([m for m, _ in v]),
               "rounds_mean_ms": [x for _, x in v],
               "mean_ms": statistics.median([x for _, x in v])} for s, v in by.items()}
    if a in by and b in by:
        row["b_over_a"] = row[b]["median_ms"] / row[a]["median_ms"]
        row["b_over_a_mean"] = row[b]["mean_ms"] / row[a]["mean_ms"]
    summary["flows"][flow] = row
    print(f"{flow:12s} " + "  ".join(f"{s}: {row[s]['median_ms']:.3f} ms (mean {row[s]['mean_ms']:.3f})"
                                     for s in by)
          + (f"  B/A {row['b_over_a']:.3f} (mean {row['b_over_a_mean']:.3f})"
             if "b_over_a" in row else ""))
json.dump(summary, open(os.path.join(d, "summary.json"), "w"), indent=1)
PY
