#!/usr/bin/env python3
"""Plots a `vortex bench decode --contexts ...` sweep: tokens/s against context (log2 axis), one
line per flow x budget, dense in bold; writes the SVG by hand (no plotting library: the GPU
machine and CI need only python3) and a Markdown table.
  plot_sweep.py SWEEP_JSON [--svg OUT.svg] [--md OUT.md] [--png OUT.png]
--svg defaults to SWEEP_JSON with .svg; the Markdown goes to --md or stdout. --png needs
rsvg-convert, the cairosvg module or ImageMagick (skipped with a note when none is there).
"""
import argparse
import json
import math
import os
import shutil
import subprocess
import sys
from xml.sax.saxutils import escape

# Base colour per sparse flow (in --flows order); budgets of a flow are shades of it.
FLOW_COLOURS = ["#1f5fbf", "#d9541e", "#2a9d3f", "#8e44ad", "#b8860b", "#c0392b"]
FLOW_DASHES = ["", "7 4", "2 3", "10 3 2 3", "4 2", "1 2"]


def load(path):
    with open(path) as f:
        return json.load(f)


def series_of(sweep):
    """[(key, label, flow, budget, [point, ...] by context)] for the points without errors; dense
    first, then flows in --flows order, budgets ascending."""
    order = []
    by_key = {}
    for p in sweep.get("points", []):
        if p.get("error") is not None or p.get("tok_s") is None:
            continue
        key = (p["flow"], p.get("budget_pages"))
        if key not in by_key:
            by_key[key] = []
            order.append(key)
        by_key[key].append(p)
    flows = sweep.get("config", {}).get("flows", [])

    def rank(key):
        flow, budget = key
        dense = budget is None
        return (0 if dense else 1, flows.index(flow) if flow in flows else len(flows),
                budget if budget is not None else 0)

    out = []
    for key in sorted(order, key=rank):
        flow, budget = key
        pts = sorted(by_key[key], key=lambda p: p["context"])
        label = flow if budget is None else f"{flow} {budget}"
        out.append((key, label, flow, budget, pts))
    return out


def context_label(c):
    return f"{c // 1024}K" if c % 1024 == 0 else str(c)


def nice_step(span, ticks=5):
    raw = span / max(1, ticks)
    mag = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def shade(hex_colour, t):
    """Mixes a #rrggbb colour with white (t = 0: the colour, 1: white)."""
    r, g, b = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    mix = lambda c: int(round(c + (255 - c) * t))
    return f"#{mix(r):02x}{mix(g):02x}{mix(b):02x}"


def fmt_int(x):
    return f"{x:,.0f}"


def notes_of(sweep, series):
    """Footnotes of the plot: reduced batches, failed points, an incomplete sweep."""
    notes = []
    reduced = sorted({(p["context"], p["batch"]) for _, _, _, _, pts in series for p in pts
                      if p.get("batch_reduced")})
    if reduced:
        notes.append("hollow markers: batch reduced to fit the KV cache ("
                     + ", ".join(f"B={b} at {context_label(c)}" for c, b in reduced) + ")")
    errors = [p for p in sweep.get("points", []) if p.get("error") is not None]
    if errors:
        notes.append(f"{len(errors)} point(s) failed and are not drawn (see the JSON)")
    if not sweep.get("complete", True):
        notes.append("incomplete sweep (stopped early)")
    return notes


def svg(sweep):
    """The plot as an SVG document (a string)."""
    series = series_of(sweep)
    cfg = sweep.get("config", {})
    contexts = sorted({p["context"] for _, _, _, _, pts in series for p in pts}) or \
        sorted(cfg.get("contexts", [])) or [1024]
    notes = notes_of(sweep, series)
    W, H = 960, 560 + 15 * len(notes)
    left, right, top, bottom = 86, 250, 74, 70 + 15 * len(notes)
    pw, ph = W - left - right, H - top - bottom
    lx0, lx1 = math.log2(contexts[0]) - 0.3, math.log2(contexts[-1]) + 0.3
    ymax = max([p["tok_s"] for _, _, _, _, pts in series for p in pts] or [1.0])
    step = nice_step(ymax * 1.05)
    ytop = step * math.ceil(ymax * 1.05 / step)

    def X(c):
        return left + (math.log2(c) - lx0) / (lx1 - lx0) * pw

    def Y(v):
        return top + ph - v / ytop * ph

    o = []
    o.append(f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
             f'viewBox="0 0 {W} {H}" font-family="Helvetica, Arial, sans-serif" font-size="12">')
    o.append(f'<rect x="0" y="0" width="{W}" height="{H}" fill="white"/>')
    title = (f"Decode throughput vs context: {cfg.get('model', '?')}, B={cfg.get('batch', '?')}, "
             f"page {cfg.get('page_size', '?')}")
    o.append(f'<text x="{left}" y="28" font-size="17" font-weight="bold">{escape(title)}</text>')
    bw = sweep.get("ceilings", {}).get("read_gbps")
    sub = f"{sweep.get('device', '?')} | git {sweep.get('git_sha', '?')}"
    if bw:
        sub += f" | read BW {bw:,.0f} GB/s"
    sub += (f" | bos {cfg.get('bos', '?')}, eos {cfg.get('eos', '?')}, "
            f"dense layers {cfg.get('layers_skip', [])}; budget = pages kept per row")
    o.append(f'<text x="{left}" y="48" font-size="11" fill="#444">{escape(sub)}</text>')
    # Grid and axes.
    v = 0.0
    while v <= ytop + 1e-9:
        y = Y(v)
        o.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + pw}" y2="{y:.1f}" '
                 f'stroke="#e3e3e3" stroke-width="1"/>')
        o.append(f'<text x="{left - 8}" y="{y + 4:.1f}" text-anchor="end">{fmt_int(v)}</text>')
        v += step
    for c in contexts:
        x = X(c)
        o.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + ph}" '
                 f'stroke="#efefef" stroke-width="1"/>')
        o.append(f'<text x="{x:.1f}" y="{top + ph + 18}" text-anchor="middle">'
                 f'{escape(context_label(c))}</text>')
    o.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" '
             f'stroke="#444" stroke-width="1"/>')
    o.append(f'<text x="{left + pw / 2:.1f}" y="{top + ph + 42}" text-anchor="middle" font-size="13">'
             f'context (tokens per request, log2 scale)</text>')
    o.append(f'<text transform="translate(22 {top + ph / 2:.1f}) rotate(-90)" '
             f'text-anchor="middle" font-size="13">tokens/s (B / step time)</text>')
    # Series.
    sparse_flows = []
    for _, _, flow, budget, _ in series:
        if budget is not None and flow not in sparse_flows:
            sparse_flows.append(flow)
    budgets_of = {f: sorted({b for _, _, fl, b, _ in series if fl == f and b is not None})
                  for f in sparse_flows}
    legend = []
    for key, label, flow, budget, pts in series:
        if budget is None:
            colour, width, dash = "#000000", 3.5, ""
        else:
            fi = sparse_flows.index(flow)
            bs = budgets_of[flow]
            t = 0.0 if len(bs) == 1 else 0.5 * bs.index(budget) / (len(bs) - 1)
            colour = shade(FLOW_COLOURS[fi % len(FLOW_COLOURS)], t)
            width, dash = 1.8, FLOW_DASHES[fi % len(FLOW_DASHES)]
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        # One polyline per run of consecutive contexts: a failed point leaves a gap.
        o.append(f'<g class="series" data-series="{escape(label)}">')
        runs, run = [], []
        for p in pts:
            if run and contexts.index(p["context"]) != contexts.index(run[-1]["context"]) + 1:
                runs.append(run)
                run = []
            run.append(p)
        runs.append(run)
        for r in runs:
            coords = " ".join(f"{X(p['context']):.1f},{Y(p['tok_s']):.1f}" for p in r)
            o.append(f'<polyline points="{coords}" fill="none" stroke="{colour}" '
                     f'stroke-width="{width}"{dash_attr} stroke-linejoin="round"/>')
        for p in pts:
            hollow = bool(p.get("batch_reduced"))
            tip = (f"{label} at {p['context']}: {p['tok_s']:,.0f} tok/s, step "
                   f"{p.get('step_ms_median', 0):.3f} ms, B={p.get('batch')}")
            if p.get("speedup_vs_dense") is not None:
                tip += f", {p['speedup_vs_dense']:.2f}x dense"
            if p.get("pct_of_roofline") is not None:
                tip += f", {p['pct_of_roofline']:.1f}% of roofline"
            o.append(f'<circle cx="{X(p["context"]):.1f}" cy="{Y(p["tok_s"]):.1f}" '
                     f'r="{4.5 if budget is None else 3.5}" fill="{"white" if hollow else colour}" '
                     f'stroke="{colour}" stroke-width="1.5"><title>{escape(tip)}</title></circle>')
        o.append("</g>")
        legend.append((label, colour, width, dash))
    # Legend.
    lx, ly = left + pw + 22, top + 8
    o.append(f'<text x="{lx}" y="{ly}" font-weight="bold">flow, budget (pages)</text>')
    for i, (label, colour, width, dash) in enumerate(legend):
        y = ly + 20 + 19 * i
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        o.append(f'<line x1="{lx}" y1="{y - 4}" x2="{lx + 34}" y2="{y - 4}" stroke="{colour}" '
                 f'stroke-width="{width}"{dash_attr}/>')
        o.append(f'<text x="{lx + 42}" y="{y}">{escape(label)}</text>')
    for i, n in enumerate(notes):
        o.append(f'<text x="{left}" y="{top + ph + 66 + 15 * i}" font-size="11" '
                 f'fill="#a00">{escape(n)}</text>')
    o.append("</svg>")
    return "\n".join(o) + "\n"


def markdown(sweep, heading="###"):
    """Markdown tables: tokens/s with the speed-up over dense, then % of roofline."""
    series = series_of(sweep)
    cfg = sweep.get("config", {})
    contexts = sorted({p["context"] for _, _, _, _, pts in series for p in pts})
    cell = {(s[0], p["context"]): p for s in series for p in s[4]}
    batch = {}
    for p in sweep.get("points", []):
        batch.setdefault(p["context"], p.get("batch"))
    # Warm-up steps actually run (the bench runs on until a step completed a page): a range.
    runs = sorted({p["warmup_run"] for p in sweep.get("points", []) if "warmup_run" in p})
    warm = (str(cfg.get("warmup", "?")) if not runs else
            str(runs[0]) if len(runs) == 1 else f"{runs[0]}-{runs[-1]}")
    md = [f"{heading} Decode sweep: {cfg.get('model', '?')}, B={cfg.get('batch', '?')}, page "
          f"{cfg.get('page_size', '?')}, {sweep.get('device', '?')} (git {sweep.get('git_sha', '?')})",
          "",
          f"Command: `{sweep.get('command', '?')}`. Budget = pages kept per row and sparse layer "
          f"(topk_val + bos + eos). {warm} warm-up + {cfg.get('steps', '?')} "
          f"timed graph-replayed steps per point; tok/s = B / median step.",
          ""]
    head = "| context | B | " + " | ".join(s[1] for s in series) + " |"
    rule = "|---|---|" + "---|" * len(series)
    md += ["tokens/s (speed-up over dense at the same context)", "", head, rule]
    for c in contexts:
        row = [context_label(c), str(batch.get(c, "?"))]
        for s in series:
            p = cell.get((s[0], c))
            if p is None:
                row.append("-")
            elif p.get("speedup_vs_dense") is not None and s[3] is not None:
                row.append(f"{p['tok_s']:,.0f} ({p['speedup_vs_dense']:.2f}x)")
            else:
                row.append(f"{p['tok_s']:,.0f}")
        md.append("| " + " | ".join(row) + " |")
    md += ["", "% of roofline (bytes per step / measured read bandwidth) and GB per step", "",
           head, rule]
    for c in contexts:
        row = [context_label(c), str(batch.get(c, "?"))]
        for s in series:
            p = cell.get((s[0], c))
            row.append("-" if p is None else
                       f"{p.get('pct_of_roofline', 0):.1f}% ({p.get('bytes_per_step', 0) / 1e9:.2f} GB)")
        md.append("| " + " | ".join(row) + " |")
    errors = [p for p in sweep.get("points", []) if p.get("error") is not None]
    if errors:
        md += ["", "Failed points:", ""]
        for p in errors:
            b = p.get("budget_pages")
            md.append(f"- {p['flow']}{'' if b is None else ' ' + str(b)} at {p['context']}: "
                      f"{p['error']}")
    if any(p.get("graph_replayed") is False for _, _, _, _, pts in series for p in pts):
        md += ["", "Some points did not replay CUDA graphs (see the JSON)."]
    if not sweep.get("complete", True):
        md += ["", "The sweep stopped early: points are missing."]
    return "\n".join(md) + "\n"


def write_png(svg_path, png_path):
    """Rasterises the SVG with whichever converter is here; False when none worked."""
    cmds = []
    if shutil.which("rsvg-convert"):
        cmds.append(["rsvg-convert", "-o", png_path, svg_path])
    try:
        import cairosvg  # noqa: PLC0415 (optional)
        cairosvg.svg2png(url=svg_path, write_to=png_path)
        return True
    except Exception:  # noqa: BLE001 (missing module or its native library)
        pass
    for tool in ("magick", "convert"):  # ImageMagick
        if shutil.which(tool):
            cmds.append([tool, "-density", "110", svg_path, png_path])
    for cmd in cmds:
        try:
            subprocess.run(cmd, check=True, capture_output=True)
            return True
        except (OSError, subprocess.CalledProcessError):
            continue
    return False


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sweep_json")
    ap.add_argument("--svg", help="SVG output (default: SWEEP_JSON with .svg)")
    ap.add_argument("--md", help="Markdown output (default: stdout)")
    ap.add_argument("--png", help="PNG output (rsvg-convert, cairosvg or ImageMagick)")
    args = ap.parse_args(argv)
    sweep = load(args.sweep_json)
    svg_path = args.svg or os.path.splitext(args.sweep_json)[0] + ".svg"
    with open(svg_path, "w") as f:
        f.write(svg(sweep))
    print(f"plot_sweep: wrote {svg_path}", file=sys.stderr)
    md = markdown(sweep)
    if args.md:
        with open(args.md, "w") as f:
            f.write(md)
        print(f"plot_sweep: wrote {args.md}", file=sys.stderr)
    else:
        sys.stdout.write(md)
    if args.png:
        if write_png(svg_path, args.png):
            print(f"plot_sweep: wrote {args.png}", file=sys.stderr)
        else:
            print("plot_sweep: no rsvg-convert, cairosvg or ImageMagick here; PNG not written",
                  file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
