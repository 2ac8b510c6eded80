#!/usr/bin/env bash
# CI smoke version of `vortex eval`: SmolLM2 at a 1K context, passkey + single needle, dense vs
# block_topk at 1/8 of the context, plus a short perplexity window. Checks the run completes, the
# JSON holds every cell, sparse rows really attend a fraction of the pages, and dense perplexity
# is in a sane range. Skips (exit 77) when the model file is absent.
set -euo pipefail
vortex="$1"
out="$2"
model_dir="${VORTEX_MODEL_DIR:-$HOME/.cache/vortex/models}"
if [ ! -s "$model_dir/SmolLM2-135M-Instruct.Q4_1.gguf" ]; then
  echo "SKIP: SmolLM2 not fetched (scripts/fetch_model.sh)"
  exit 77
fi
mkdir -p "$out"
"$vortex" eval --model smollm2-135m --tasks passkey,niah_single --contexts 1024 --samples 1 \
  --flows dense,block_topk:1/8 --ppl-contexts 512 --ppl-tokens 32 --ppl-windows 1 --quiet \
  --json "$out/eval.json" --md "$out/eval.md" --svg "$out/eval.svg"
python3 - "$out/eval.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
cells = {(c["config"], c["task"]): c for c in d["cells"]}
for cfg in ("dense", "block_topk:1/8"):
    for task in ("passkey", "niah_single", "all"):
        assert (cfg, task) in cells, f"missing cell {cfg} {task}"
sparse = cells[("block_topk:1/8", "all")]
assert 0.0 < sparse["selected_fraction"] < 0.5, sparse
assert "diff_vs_dense" in sparse
ppl = {p["config"]: p["ppl"] for p in d["perplexity"]}
assert 1.0 < ppl["dense"] < 200.0, ppl
assert ppl["block_topk:1/8"] >= 1.0, ppl
print("eval smoke ok:", {k: round(v, 2) for k, v in ppl.items()}, "sparse fraction",
      round(sparse["selected_fraction"], 3))
PY
