#!/usr/bin/env python3
"""Scatter of a `vortex eval` grid (tools/gpu/e2e.sh's eval.json: one run per context): mean
accuracy over the tasks against the fraction of KV pages each config read, one colour per flow,
one panel per context, dense at 1.0. Hand-written SVG (no plotting library needed).
  plot_eval.py EVAL_JSON --svg OUT.svg [--bench SWEEP_JSON]
With --bench (a `vortex bench decode --contexts ... --flows ... --budgets ...` sweep JSON of the
same model shape), the x axis is that sweep's decode tokens/s instead: a config flow:a/b at
context C is the sweep point of that flow, context C and budget max(bos + eos,
floor(ceil(C / page) * a / b)) pages (the default budget policy), dense the dense point.
"""
import argparse
import json
import sys
from xml.sax.saxutils import escape

COLOURS = {"dense": "#000000", "block_topk": "#1f5fbf", "gqa_block_topk": "#2a9d3f",
           "quest": "#d9541e", "streaming": "#8e44ad"}
W, H, PAD_L, PAD_B, PANEL_W, PANEL_H = 330, 300, 50, 45, 260, 220


def points(run):
    """[(config, flow, selected fraction, accuracy, ci95)] of the "all" rows."""
    out = []
    for c in run["cells"]:
        if c["task"] != "all":
            continue
        flow = c["config"].split(":")[0]
        out.append((c["config"], flow, c["selected_fraction"], c["accuracy"], c.get("ci95", 0.0)))
    return out


def budget_pages(cfg, ctx, page, bos, eos):
    """Pages a config keeps per row at context `ctx` (None for dense or a page-count config)."""
    if ":" not in cfg:
        return None
    b = cfg.split(":", 1)[1]
    pages = -(-ctx // page)
    if "/" in b:
        num, den = (float(x) for x in b.split("/"))
        return max(bos + eos, int(pages * num / den))
    return int(b) + bos + eos


def with_throughput(pts, ctx, sweep):
    """Replaces each point's x (page fraction) by the sweep's tokens/s; drops unmatched points."""
    sparse = {(p["flow"], p["budget_pages"]): p["tok_s"] for p in sweep["points"]
              if p["context"] == ctx and p["flow"] != "dense"}
    dense = next((p["tok_s"] for p in sweep["points"]
                  if p["context"] == ctx and p["flow"] == "dense"), None)
    cfg = sweep.get("config", {})
    page, bos, eos = cfg.get("page_size", 16), cfg.get("bos", 1), cfg.get("eos", 1)
    out = []
    for c, flow, _frac, acc, ci in pts:
        if flow == "dense":
            tok = dense
        else:
            tok = sparse.get((flow, budget_pages(c, ctx, page, bos, eos)))
        if tok is not None:
            out.append((c, flow, tok, acc, ci))
    return out


def panel(x0, ctx, pts, xmax=1.0, unit="of pages"):
    s = [f'<g transform="translate({x0},20)">',
         f'<rect x="{PAD_L}" y="0" width="{PANEL_W - PAD_L}" height="{PANEL_H}" fill="none" '
         f'stroke="#999"/>',
         f'<text x="{(PANEL_W + PAD_L) / 2}" y="-6" text-anchor="middle" font-size="13">'
         f'{ctx} tokens</text>']

    def X(f):  # fraction of pages read (0..1), or tokens/s (0..xmax)
        return PAD_L + f / xmax * (PANEL_W - PAD_L - 10) + 5

    def Y(a):  # accuracy, 0..100
        return PANEL_H - a / 100.0 * (PANEL_H - 10) - 5

    for a in range(0, 101, 25):
        s.append(f'<line x1="{PAD_L}" x2="{PANEL_W}" y1="{Y(a):.1f}" y2="{Y(a):.1f}" '
                 f'stroke="#eee"/><text x="{PAD_L - 4}" y="{Y(a) + 4:.1f}" font-size="10" '
                 f'text-anchor="end">{a}</text>')
    for i in range(5):
        f = xmax * i / 4
        s.append(f'<text x="{X(f):.1f}" y="{PANEL_H + 14}" font-size="10" '
                 f'text-anchor="middle">{f:.3g}</text>')
    for cfg, flow, frac, acc, ci in pts:
        col = COLOURS.get(flow, "#555555")
        s.append(f'<line x1="{X(frac):.1f}" x2="{X(frac):.1f}" y1="{Y(max(0, acc - ci)):.1f}" '
                 f'y2="{Y(min(100, acc + ci)):.1f}" stroke="{col}" stroke-opacity="0.4"/>')
        s.append(f'<circle cx="{X(frac):.1f}" cy="{Y(acc):.1f}" r="4" fill="{col}">'
                 f'<title>{escape(cfg)}: {acc:.1f} ± {ci:.1f} %, {frac:.4g} {unit}</title>'
                 f'</circle>')
    s.append('</g>')
    return "\n".join(s)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("eval_json")
    ap.add_argument("--svg", required=True)
    ap.add_argument("--bench", help="decode sweep JSON: x = its tokens/s (see above)")
    a = ap.parse_args(argv)
    sweep = json.load(open(a.bench)) if a.bench else None
    runs = json.load(open(a.eval_json))
    if "cells" in runs:  # a single `vortex eval --json` file
        runs = {"eval": runs}
    panels = []
    for _name, run in sorted(runs.items()):
        ctxs = sorted({c["context"] for c in run["cells"]})
        for ctx in ctxs:
            sub = dict(run, cells=[c for c in run["cells"] if c["context"] == ctx])
            pts = points(sub)
            if sweep is not None:
                pts = with_throughput(pts, ctx, sweep)
            panels.append((ctx, pts))
    if not panels:
        sys.exit("plot_eval.py: no cells in " + a.eval_json)
    width = W * len(panels) + 20
    legend = " ".join(
        f'<tspan fill="{c}">● {f}</tspan>' for f, c in COLOURS.items())
    body = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{H + 40}" '
            f'font-family="sans-serif">',
            f'<rect width="100%" height="100%" fill="white"/>']
    for i, (ctx, pts) in enumerate(panels):
        if sweep is None:
            body.append(panel(10 + i * W, ctx, pts))
        else:
            xmax = max([p[2] for p in pts] + [1.0]) * 1.1
            body.append(panel(10 + i * W, ctx, pts, xmax, "tokens/s"))
    if sweep is None:
        xlabel = "fraction of KV pages read per decode step (selected / candidate)"
    else:
        sc = sweep.get("config", {})
        xlabel = (f"decode tokens/s, B={sc.get('batch', '?')} ({sweep.get('device', 'GPU')}, "
                  f"{sc.get('model', 'the same shape')})")
    body.append(f'<text x="{width / 2}" y="{H + 8}" text-anchor="middle" font-size="12">'
                f'{escape(xlabel)}</text>')
    body.append(f'<text x="14" y="{H / 2}" font-size="12" transform="rotate(-90 14 {H / 2})" '
                f'text-anchor="middle">accuracy, mean of tasks (%) ± 95% CI</text>')
    body.append(f'<text x="{width / 2}" y="{H + 30}" text-anchor="middle" font-size="12">'
                f'{legend}</text>')
    body.append("</svg>")
    with open(a.svg, "w") as f:
        f.write("\n".join(body) + "\n")


if __name__ == "__main__":
    main()
