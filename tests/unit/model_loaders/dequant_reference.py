#!/usr/bin/env python3
"""Dequantizes raw GGML blocks with the `gguf` package (the independent reference for
dequant_test.cpp). Usage: dequant_reference.py TYPE:IN:OUT [TYPE:IN:OUT ...]
TYPE is a GGMLQuantizationType name (Q4_K, BF16, ...); IN holds whole blocks; OUT receives the
fp32 values, little-endian."""
import sys

import numpy as np
from gguf import GGMLQuantizationType
from gguf.quants import dequantize


def main() -> None:
    for job in sys.argv[1:]:
        type_name, src, dst = job.split(":")
        qtype = GGMLQuantizationType[type_name]
        raw = np.fromfile(src, dtype=np.uint8).reshape(1, -1)
        out = dequantize(raw, qtype).astype("<f4", copy=False).reshape(-1)
        out.tofile(dst)


if __name__ == "__main__":
    main()
