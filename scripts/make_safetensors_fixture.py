#!/usr/bin/env python3
"""Writes tests/fixtures/safetensors/python_small.safetensors with the Python `safetensors` package.

The C++ reader test (tests/data/test_safetensors.cpp) checks every tensor below, so keep the two in
step. Values are simple formulas so the test can recompute them.
Requires: pip install safetensors numpy
"""
import os

import numpy as np
from safetensors.numpy import save_file

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
out = os.path.join(root, "tests", "fixtures", "safetensors", "python_small.safetensors")

tensors = {
    "encoder.weight": (np.arange(6, dtype=np.float32).reshape(2, 3) * 0.5 - 1.0),  # F32 [2,3]
    "scale": np.array(3.25, dtype=np.float64),                                      # F64 scalar
    "ids": np.array([-2, 0, 7, 1 << 40], dtype=np.int64),                           # I64 [4]
    "half": np.array([1.0, -2.5, 65504.0], dtype=np.float16),                       # F16 [3]
    "counts": np.arange(4, dtype=np.int32).reshape(2, 2) - 1,                       # I32 [2,2]
    "small": np.array([-300, 300], dtype=np.int16),                                 # I16 [2]
    "bytes": np.array([0, 255, 7], dtype=np.uint8),                                 # U8 [3]
    "flags": np.array([True, False, True], dtype=np.bool_),                         # BOOL [3]
    "empty": np.zeros((0, 4), dtype=np.float32),                                    # F32 [0,4]
}
save_file(tensors, out, metadata={"format": "np", "made_by": "scripts/make_safetensors_fixture.py"})
print("wrote", out, os.path.getsize(out), "bytes")
