#!/usr/bin/env python3
"""CPU test of tools/gpu/plot_sweep.py and the sweep section of tools/gpu/summarize.py on a small
fixture sweep JSON (invented values in the shape `vortex bench decode --contexts` writes):
the SVG parses as XML, has one series per flow x budget with dense drawn boldest, a log2 x-axis
(doubling contexts equally spaced), a gap where a point failed; the Markdown has a row per context.
  plot_sweep_test.py REPO_ROOT FIXTURE_JSON WORK_DIR
"""
import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

SVG = "{http://www.w3.org/2000/svg}"
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print(f"FAILED: {what}", file=sys.stderr)


def main():
    repo, fixture, work = sys.argv[1], sys.argv[2], sys.argv[3]
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(os.path.join(work, "bench"))
    sweep_json = os.path.join(work, "bench", "sweep.json")
    shutil.copy(fixture, sweep_json)
    sweep = json.load(open(fixture))
    svg_path = os.path.join(work, "bench", "sweep.svg")
    md_path = os.path.join(work, "sweep.md")
    r = subprocess.run([sys.executable, os.path.join(repo, "tools", "gpu", "plot_sweep.py"),
                        sweep_json, "--svg", svg_path, "--md", md_path],
                       capture_output=True, text=True)
    check(r.returncode == 0, f"plot_sweep.py exit {r.returncode}: {r.stderr}")
    if r.returncode != 0:
        return 1

    root = ET.parse(svg_path).getroot()  # raises on malformed XML
    check(root.tag == SVG + "svg", f"root element is {root.tag}")
    groups = [g for g in root.iter(SVG + "g") if g.get("class") == "series"]
    expected = {(p["flow"], p.get("budget_pages")) for p in sweep["points"] if "error" not in p}
    labels = [g.get("data-series") for g in groups]
    check(len(groups) == len(expected), f"{len(groups)} series drawn, {len(expected)} expected")
    check(labels[:1] == ["dense"], f"dense is not the first series: {labels}")

    def widths(g):
        return [float(pl.get("stroke-width")) for pl in g.iter(SVG + "polyline")]

    dense = groups[0]
    others = [w for g in groups[1:] for w in widths(g)]
    check(bool(others) and min(widths(dense)) > max(others), "dense is not drawn boldest")

    # Log2 x-axis: the dense markers (r 4.5) of 4K, 8K, 16K are equally spaced.
    circles = list(root.iter(SVG + "circle"))
    dense_x = sorted({float(c.get("cx")) for c in circles if c.get("r") == "4.5"})
    check(len(dense_x) == 3, f"dense markers at {dense_x}")
    if len(dense_x) == 3:
        check(abs((dense_x[1] - dense_x[0]) - (dense_x[2] - dense_x[1])) < 0.2,
              f"x-axis is not log2: {dense_x}")
    # Higher tok/s is higher on the plot (smaller y): dense falls with context in the fixture.
    dense_pts = sorted((float(c.get("cx")), float(c.get("cy"))) for c in circles
                       if c.get("r") == "4.5")
    check(all(a[1] < b[1] for a, b in zip(dense_pts, dense_pts[1:])),
          f"dense y does not grow as its tok/s falls: {dense_pts}")
    # The failed point (quest 32 at 8K) leaves two polylines of one point each.
    quest32 = [g for g in groups if g.get("data-series") == "quest 32"]
    check(len(quest32) == 1 and len(list(quest32[0].iter(SVG + "polyline"))) == 2,
          "the failed point does not split its series")
    # Reduced batch: hollow markers and a note.
    text = " ".join("".join(t.itertext()) for t in root.iter(SVG + "text"))
    check("B=24 at 16K" in text, "no note of the reduced batch")
    check("1 point(s) failed" in text, "no note of the failed point")

    md = open(md_path).read()
    for label in ("| 4K | 32 |", "| 8K | 32 |", "| 16K | 24 |"):
        check(md.count(label) == 2, f"Markdown lacks two rows '{label}'")
    check("block_topk 16" in md and "(2.00x)" in md, "Markdown lacks the speed-ups")
    check("quest 32 at 8192: decode step: fixture error" in md, "Markdown lacks the failed point")

    # summarize.py folds the sweep into summary.json / summary.md.
    r = subprocess.run([sys.executable, os.path.join(repo, "tools", "gpu", "summarize.py"), work],
                       capture_output=True, text=True)
    summary = json.load(open(os.path.join(work, "summary.json")))
    check(summary.get("decode_sweep", {}).get("points") == sweep["points"],
          "summary.json does not carry the sweep points")
    smd = open(os.path.join(work, "summary.md")).read()
    check("Decode sweep" in smd and "| 16K | 24 |" in smd, "summary.md lacks the sweep tables")

    if failures:
        print(f"{len(failures)} check(s) failed", file=sys.stderr)
        return 1
    print("plot_sweep: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
