#!/usr/bin/env python3
"""CPU test of the kernel-trace section of tools/gpu/summarize.py on a fixture
(`vortex bench decode --trace` JSON with invented values): summary.json carries the median step
per flow, summary.md has its stage table with the shares of the span.
  summarize_trace_test.py REPO_ROOT FIXTURE_JSON WORK_DIR
"""
import json
import os
import shutil
import subprocess
import sys


def main():
    repo, fixture, work = sys.argv[1], sys.argv[2], sys.argv[3]
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(os.path.join(work, "bench"))
    shutil.copy(fixture, os.path.join(work, "bench", "decode_trace_dense.json"))
    subprocess.run([sys.executable, os.path.join(repo, "tools", "gpu", "summarize.py"), work],
                   capture_output=True, text=True)
    failures = []
    summary = json.load(open(os.path.join(work, "summary.json")))
    want = json.load(open(fixture))["trace"]["median_step"]
    if summary.get("kernel_trace", {}).get("dense") != want:
        failures.append("summary.json does not carry the dense median step")
    if "block_topk" in summary.get("kernel_trace", {}):
        failures.append("summary.json invents a block_topk trace")
    md = open(os.path.join(work, "summary.md")).read()
    for line in ("## Kernel trace of the decode step", "**dense**: span 1000.0 us, no kernel running 50.0 us (5.0 %, 10 gaps",
                 "| attention | 700.0 | 70.0 | 2 | 350.00 |", "| GEMM | 240.0 | 24.0 | 8 | 30.00 |"):
        if line not in md:
            failures.append(f"summary.md lacks: {line}")
    for f in failures:
        print(f"FAILED: {f}", file=sys.stderr)
    if failures:
        return 1
    print("summarize trace: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
