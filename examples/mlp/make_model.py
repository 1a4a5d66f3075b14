"""Builds the bundled example: a 2-layer MLP classifier (Gemm, Relu, Gemm, Softmax)
with fixed random weights, and one input batch. Usage: make_model.py OUTDIR"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

out = sys.argv[1] if len(sys.argv) > 1 else "."
rng = np.random.default_rng(7)
w1 = rng.standard_normal((16, 32)).astype(np.float32) * 0.3
b1 = rng.standard_normal(32).astype(np.float32) * 0.1
w2 = rng.standard_normal((32, 4)).astype(np.float32) * 0.3
b2 = rng.standard_normal(4).astype(np.float32) * 0.1
nodes = [
    helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], name="fc1"),
    helper.make_node("Relu", ["h"], ["hr"], name="relu1"),
    helper.make_node("Gemm", ["hr", "w2", "b2"], ["logits"], name="fc2"),
    helper.make_node("Softmax", ["logits"], ["probs"], name="softmax", axis=1),
]
graph = helper.make_graph(
    nodes, "mlp",
    [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 16])],
    [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [2, 4])],
    [numpy_helper.from_array(a, n) for a, n in [(w1, "w1"), (b1, "b1"), (w2, "w2"), (b2, "b2")]],
)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
onnx.checker.check_model(model)
onnx.save(model, os.path.join(out, "mlp.onnx"))
np.save(os.path.join(out, "input_0.npy"), rng.standard_normal((2, 16)).astype(np.float32))
