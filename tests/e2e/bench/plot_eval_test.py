#!/usr/bin/env python3
"""CPU test of tools/gpu/plot_eval.py on a small fixture: the SVG parses, has one panel per
context and one point per "all" row, and a file without cells is refused; with --bench (a decode
sweep fixture beside the eval fixture) each config sits at its own sweep point's tokens/s.
  plot_eval_test.py REPO_ROOT FIXTURE_JSON WORK_DIR
"""
import json
import os
import subprocess
import sys
import xml.dom.minidom


def main():
    repo, fixture, work = sys.argv[1:4]
    os.makedirs(work, exist_ok=True)
    tool = os.path.join(repo, "tools", "gpu", "plot_eval.py")
    out = os.path.join(work, "eval.svg")
    r = subprocess.run([sys.executable, tool, fixture, "--svg", out], capture_output=True, text=True)
    assert r.returncode == 0, f"plot_eval.py exit {r.returncode}: {r.stderr}"
    doc = xml.dom.minidom.parse(out)
    circles = doc.getElementsByTagName("circle")
    assert len(circles) == 4, f"expected 4 points (the 'all' rows), got {len(circles)}"
    titles = [c.getElementsByTagName("title")[0].firstChild.data for c in circles]
    assert any(t.startswith("quest:1/16: 10.0") for t in titles), titles
    panels = [t.firstChild.data for t in doc.getElementsByTagName("text")
              if t.firstChild is not None and t.firstChild.nodeType == t.TEXT_NODE
              and t.firstChild.data.endswith(" tokens")]
    assert panels == ["2048 tokens", "4096 tokens"], panels
    # Accuracy vs throughput: block_topk:1/8 at 2K keeps 128 / 8 = 16 pages -> 25000 tok/s (not
    # the 8-page point), quest:1/16 at 4K keeps 256 / 16 = 16 pages: no such point, so it is left
    # out; dense takes its context's dense point.
    sweep = os.path.join(os.path.dirname(fixture), "eval_sweep_fixture.json")
    r = subprocess.run([sys.executable, tool, fixture, "--svg", out, "--bench", sweep],
                       capture_output=True, text=True)
    assert r.returncode == 0, f"plot_eval.py --bench exit {r.returncode}: {r.stderr}"
    doc = xml.dom.minidom.parse(out)
    titles = sorted(c.getElementsByTagName("title")[0].firstChild.data
                    for c in doc.getElementsByTagName("circle"))
    assert titles == ["block_topk:1/8: 46.0 \u00b1 9.8 %, 2.5e+04 tokens/s",
                      "dense: 38.0 \u00b1 9.6 %, 1.5e+04 tokens/s",
                      "dense: 56.0 \u00b1 9.8 %, 2e+04 tokens/s"], titles
    empty = os.path.join(work, "empty.json")
    with open(empty, "w") as f:
        json.dump({}, f)
    r = subprocess.run([sys.executable, tool, empty, "--svg", out], capture_output=True, text=True)
    assert r.returncode != 0 and "no cells" in r.stderr, (r.returncode, r.stderr)
    print("plot_eval ok")


if __name__ == "__main__":
    main()
