#!/usr/bin/env python3
"""CPU test of tools/gpu/plot_eval.py on a small fixture: the SVG parses, has one panel per
context and one point per "all" row, and a file without cells is refused.
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
    empty = os.path.join(work, "empty.json")
    with open(empty, "w") as f:
        json.dump({}, f)
    r = subprocess.run([sys.executable, tool, empty, "--svg", out], capture_output=True, text=True)
    assert r.returncode != 0 and "no cells" in r.stderr, (r.returncode, r.stderr)
    print("plot_eval ok")


if __name__ == "__main__":
    main()
