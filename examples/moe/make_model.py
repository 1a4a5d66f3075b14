"""Builds Mixture-of-Experts models with python3-onnx, their inputs, and NumPy
reference outputs.

  make_model.py OUTDIR [NAME...]     (default: every model below)

Each NAME gives OUTDIR/NAME.onnx, NAME_in0.npy, NAME_in1.npy... (the graph
inputs in order), NAME_ref.npy (the NumPy reference output) and
NAME_counts.json (how many tokens the reference routes to each expert, per
layer).

- ort_relu, ort_gelu, ort_silu, ort_swiglu, ort_norm3d, ort_nobias: ONNX
  Runtime's com.microsoft.MoE in the forms its CPU kernel implements (softmax
  routing, fc1/fc2, SwiGLU interleaved in fc1), also run by onnxruntime-node.
- deepseek: a DeepSeek-V3-style block in kiln's own domain (ai.kiln MoE):
  router MatMul, sigmoid scores with a selection bias, group-limited top-k
  (pick 2 of 4 groups, then 4 of 16 experts), normalized weights times a
  scaling factor, SwiGLU experts with separate gate (fc1) and up (fc3)
  matrices, and a shared expert built from ordinary ops, added to the result.
- moe: the MoE block of `make bench` (com.microsoft.MoE, 512 tokens, hidden
  512, 16 experts of inter 1024, top-2).
"""
import json
import math
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def act_np(h, act, alpha=1.0, beta=0.0, limit=np.inf, fusion=1, up=None):
    """The expert activation; returns [n, I]."""
    if act == "swiglu":
        if up is not None:
            g, lin = h, up
        elif fusion == 1:
            g, lin = h[:, 0::2], h[:, 1::2]
        else:
            half = h.shape[1] // 2
            g, lin = h[:, :half], h[:, half:]
        g = np.minimum(g, limit)
        lin = np.clip(lin, -limit, limit)
        return g / (1 + np.exp(-alpha * g)) * (lin + beta)
    if act == "relu":
        a = np.maximum(h, 0)
    elif act == "gelu":  # the tanh form, as ONNX Runtime's MoE computes it
        a = 0.5 * h * (1 + np.tanh(math.sqrt(2 / math.pi) * (h + 0.044715 * h ** 3)))
    elif act == "silu":
        a = h / (1 + np.exp(-h))
    else:
        a = h
    return a * up if up is not None else a


def moe_ref(x, logits, w1, b1, w2, b2, w3=None, b3=None, rbias=None, k=1, act="relu", normalize=0, scoring="softmax",
            scale=1.0, n_group=1, topk_group=None, alpha=1.0, beta=0.0, limit=np.inf, fusion=1):
    """NumPy reference of kiln.MoE (float64). Returns (y, counts)."""
    x2 = x.reshape(-1, x.shape[-1]).astype(np.float64)
    lg = logits.astype(np.float64)
    T, E = lg.shape
    if scoring == "sigmoid":
        s = 1 / (1 + np.exp(-lg))
    else:
        s = np.exp(lg - lg.max(1, keepdims=True))
        s /= s.sum(1, keepdims=True)
    choice = s + (rbias if rbias is not None else 0)
    y = np.zeros_like(x2)
    counts = np.zeros(E, np.int64)
    topk_group = topk_group or n_group
    for t in range(T):
        c = choice[t].copy()
        if n_group > 1:
            gs = E // n_group
            grp = c.reshape(n_group, gs)
            gscore = np.sort(grp, axis=1)[:, ::-1][:, :min(2, gs)].sum(1)
            keep = np.argsort(-gscore, kind="stable")[:topk_group]
            mask = np.full(n_group, True)
            mask[keep] = False
            c = c.reshape(n_group, gs)
            c[mask] = -np.inf
            c = c.reshape(E)
        sel = np.argsort(-c, kind="stable")[:k]
        wts = s[t, sel]
        if normalize:
            wts = wts / wts.sum()
        wts = wts * scale
        for e, wt in zip(sel, wts):
            counts[e] += 1
            h = x2[t:t + 1] @ w1[e].T.astype(np.float64) + (b1[e] if b1 is not None else 0)
            up = None
            if w3 is not None:
                up = x2[t:t + 1] @ w3[e].T.astype(np.float64) + (b3[e] if b3 is not None else 0)
            a = act_np(h, act, alpha, beta, limit, fusion, up)
            y[t] += wt * (a @ w2[e].T.astype(np.float64) + (b2[e] if b2 is not None else 0))[0]
    return y.reshape(x.shape).astype(np.float32), counts


def init(name, a):
    return numpy_helper.from_array(np.ascontiguousarray(a), name)


def ort_model(name, rng, T=32, H=16, I=24, E=8, k=2, act="relu", normalize=0, bias=True, shape3d=False, scale=0.3):
    I1 = 2 * I if act == "swiglu" else I
    w1 = (rng.standard_normal((E, I1, H)) * scale).astype(np.float32)
    w2 = (rng.standard_normal((E, H, I)) * scale).astype(np.float32)
    b1 = (rng.standard_normal((E, I1)) * 0.1).astype(np.float32) if bias else None
    b2 = (rng.standard_normal((E, H)) * 0.1).astype(np.float32) if bias else None
    xshape = (2, T // 2, H) if shape3d else (T, H)
    x = rng.standard_normal(xshape).astype(np.float32)
    r = rng.standard_normal((T, E)).astype(np.float32)
    attrs = dict(k=k, activation_type=act, normalize_routing_weights=normalize)
    if act == "swiglu":
        attrs["swiglu_fusion"] = 1
    inits = [init("fc1", w1), init("fc2", w2)] + ([init("fc1_b", b1), init("fc2_b", b2)] if bias else [])
    ins = ["x", "router", "fc1", "fc1_b" if bias else "", "fc2", "fc2_b" if bias else ""]
    node = helper.make_node("MoE", ins, ["y"], name="moe0", domain="com.microsoft", **attrs)
    g = helper.make_graph([node], name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(xshape)),
                                         helper.make_tensor_value_info("router", TensorProto.FLOAT, [T, E])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(xshape))], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    y, counts = moe_ref(x, r, w1, b1, w2, b2, k=k, act=act, normalize=normalize)
    return m, [x, r], y, {"moe0": counts}


def deepseek(rng, T=48, H=32, I=16, E=16, k=4, n_group=4, topk_group=2, scale=2.5):
    """A DeepSeek-V3-style MoE block with a shared expert."""
    x = rng.standard_normal((T, H)).astype(np.float32)
    wr = (rng.standard_normal((H, E)) * 0.5).astype(np.float32)
    rbias = (rng.standard_normal(E) * 0.05).astype(np.float32)
    w1 = (rng.standard_normal((E, I, H)) * 0.2).astype(np.float32)
    w3 = (rng.standard_normal((E, I, H)) * 0.2).astype(np.float32)
    w2 = (rng.standard_normal((E, H, I)) * 0.2).astype(np.float32)
    sg = (rng.standard_normal((H, 2 * I)) * 0.2).astype(np.float32)
    su = (rng.standard_normal((H, 2 * I)) * 0.2).astype(np.float32)
    sd = (rng.standard_normal((2 * I, H)) * 0.2).astype(np.float32)
    nodes = [
        helper.make_node("MatMul", ["x", "wr"], ["logits"], name="router"),
        helper.make_node("MoE", ["x", "logits", "fc1", "", "fc2", "", "fc3", "", "rbias"], ["routed"], name="moe0",
                         domain="ai.kiln", k=k, activation_type="swiglu", scoring_func="sigmoid", normalize_routing_weights=1,
                         routed_scaling_factor=scale, n_group=n_group, topk_group=topk_group),
        helper.make_node("MatMul", ["x", "sg"], ["g"], name="shared_gate"),
        helper.make_node("Sigmoid", ["g"], ["gs"], name="shared_sigmoid"),
        helper.make_node("Mul", ["g", "gs"], ["silu"], name="shared_silu"),
        helper.make_node("MatMul", ["x", "su"], ["u"], name="shared_up"),
        helper.make_node("Mul", ["silu", "u"], ["h"], name="shared_mul"),
        helper.make_node("MatMul", ["h", "sd"], ["shared"], name="shared_down"),
        helper.make_node("Add", ["routed", "shared"], ["y"], name="combine"),
    ]
    inits = [init(n, a) for n, a in [("wr", wr), ("rbias", rbias), ("fc1", w1), ("fc2", w2), ("fc3", w3), ("sg", sg), ("su", su), ("sd", sd)]]
    g = helper.make_graph(nodes, "deepseek_moe", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [T, H])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [T, H])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.kiln", 1)])
    logits = x.astype(np.float64) @ wr
    routed, counts = moe_ref(x, logits, w1, None, w2, None, w3, None, rbias, k=k, act="swiglu", normalize=1,
                             scoring="sigmoid", scale=scale, n_group=n_group, topk_group=topk_group)
    xd = x.astype(np.float64)
    gg = xd @ sg
    shared = ((gg / (1 + np.exp(-gg))) * (xd @ su)) @ sd
    return m, [x], (routed + shared).astype(np.float32), {"moe0": counts}


BUILDERS = {
    "ort_relu": lambda rng: ort_model("ort_relu", rng, act="relu"),
    "ort_gelu": lambda rng: ort_model("ort_gelu", rng, act="gelu", normalize=1),
    "ort_silu": lambda rng: ort_model("ort_silu", rng, act="silu"),
    "ort_swiglu": lambda rng: ort_model("ort_swiglu", rng, act="swiglu"),
    "ort_norm3d": lambda rng: ort_model("ort_norm3d", rng, act="relu", normalize=1, shape3d=True, k=3),
    "ort_nobias": lambda rng: ort_model("ort_nobias", rng, act="silu", bias=False, E=4, k=1),
    "deepseek": deepseek,
    "moe": lambda rng: ort_model("moe", rng, T=512, H=512, I=1024, E=16, k=2, act="silu", scale=0.05),
}


def build(outdir, name):
    rng = np.random.default_rng(sorted(BUILDERS).index(name) + 7)
    m, ins, ref, counts = BUILDERS[name](rng)
    onnx.save(m, os.path.join(outdir, name + ".onnx"))
    for i, a in enumerate(ins):
        np.save(os.path.join(outdir, "%s_in%d.npy" % (name, i)), a)
    np.save(os.path.join(outdir, name + "_ref.npy"), ref)
    with open(os.path.join(outdir, name + "_counts.json"), "w") as f:
        json.dump({k: v.tolist() for k, v in counts.items()}, f)


if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else "."
    os.makedirs(out, exist_ok=True)
    for name in sys.argv[2:] or sorted(BUILDERS):
        build(out, name)
