"""Writes the reference files the C unit tests read, made with NumPy and
python3-onnx (references nobody here wrote). Usage: unit_data.py DIR"""
import os
import sys

import numpy as np
from onnx import TensorProto, helper, numpy_helper

d = sys.argv[1]
os.makedirs(d, exist_ok=True)
bits = np.arange(65536, dtype=np.uint32).astype(np.uint16)
np.save(os.path.join(d, "f16_bits.npy"), bits)
np.save(os.path.join(d, "f16_as_f32.npy"), bits.view(np.float16).astype(np.float32))
rng = np.random.default_rng(0)
samples = np.concatenate([
    rng.standard_normal(20000).astype(np.float32) * 10.0 ** rng.integers(-9, 6, 20000),
    np.array([0.0, -0.0, 65504, 65519, 65520, 1e-8, 5.96e-8, 2.98e-8, 3e-8, np.inf, -np.inf, np.nan], np.float32),
]).astype(np.float32)
np.save(os.path.join(d, "f32_samples.npy"), samples)
with np.errstate(over="ignore"):
    np.save(os.path.join(d, "f32_samples_as_f16.npy"), samples.astype(np.float16).view(np.uint16))
arrays = {
    "t_f32": rng.standard_normal((2, 3, 4)).astype(np.float32),
    "t_i64": rng.integers(-1 << 40, 1 << 40, (5,)).astype(np.int64),
    "t_u8": rng.integers(0, 255, (3, 3)).astype(np.uint8),
    "t_f64": rng.standard_normal((4,)),
    "t_scalar": np.array(3.5, np.float32),
}
for name, a in arrays.items():
    np.save(os.path.join(d, name + ".npy"), a)
    open(os.path.join(d, name + ".pb"), "wb").write(numpy_helper.from_array(a, name).SerializeToString())
typed = {"t_i32_typed": (np.array([[1, -2, 3]], np.int32), TensorProto.INT32),
         "t_f32_typed": (np.array([0.5, -1.25], np.float32), TensorProto.FLOAT)}
for name, (a, t) in typed.items():
    np.save(os.path.join(d, name + ".npy"), a)
    tp = helper.make_tensor(name, t, a.shape, a.flatten().tolist())  # typed fields, not raw_data
    open(os.path.join(d, name + ".pb"), "wb").write(tp.SerializeToString())
x = rng.standard_normal((2, 3, 5)).astype(np.float32)
np.save(os.path.join(d, "k_x.npy"), x)
e = np.exp(x - x.max(axis=2, keepdims=True))
np.save(os.path.join(d, "k_softmax.npy"), (e / e.sum(axis=2, keepdims=True)).astype(np.float32))
np.save(os.path.join(d, "k_transpose.npy"), np.ascontiguousarray(x.transpose(2, 0, 1)))
# GEMM with ragged sizes (not multiples of any tile) and K beyond one packing slice
ga = rng.standard_normal((37, 300)).astype(np.float32)
gb = rng.standard_normal((300, 45)).astype(np.float32)
np.save(os.path.join(d, "g_a.npy"), ga)
np.save(os.path.join(d, "g_b.npy"), gb)
np.save(os.path.join(d, "g_at.npy"), np.ascontiguousarray(ga.T))
np.save(os.path.join(d, "g_bt.npy"), np.ascontiguousarray(gb.T))
np.save(os.path.join(d, "g_c.npy"), (ga.astype(np.float64) @ gb.astype(np.float64)).astype(np.float32))
# N = 49 (7x7 planes): the last panel's 17 columns take the AVX-512 tail kernel's 16-wide block and one column
gb49 = rng.standard_normal((300, 49)).astype(np.float32)
np.save(os.path.join(d, "g_b49.npy"), gb49)
np.save(os.path.join(d, "g_c49.npy"), (ga.astype(np.float64) @ gb49.astype(np.float64)).astype(np.float32))
# 130 rows (two row blocks of the packing) times 100 columns (short rows: B read in place at any M)
ga130 = rng.standard_normal((130, 300)).astype(np.float32)
gb100 = rng.standard_normal((300, 100)).astype(np.float32)
np.save(os.path.join(d, "g_a130.npy"), ga130)
np.save(os.path.join(d, "g_b100.npy"), gb100)
np.save(os.path.join(d, "g_c130.npy"), (ga130.astype(np.float64) @ gb100.astype(np.float64)).astype(np.float32))
