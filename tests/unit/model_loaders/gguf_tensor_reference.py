#!/usr/bin/env python3
"""Dequantizes named tensors of a GGUF file with the `gguf` package (the independent reference
for smollm2_test.cpp). Usage: gguf_tensor_reference.py MODEL.gguf NAME:OUT [NAME:OUT ...]
OUT receives the tensor as little-endian fp32, row-major [out, in]."""
import sys

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize


def main() -> None:
    reader = GGUFReader(sys.argv[1])
    tensors = {t.name: t for t in reader.tensors}
    for job in sys.argv[2:]:
        name, dst = job.split(":")
        t = tensors[name]
        dequantize(t.data, t.tensor_type).astype("<f4").reshape(-1).tofile(dst)


if __name__ == "__main__":
    main()
