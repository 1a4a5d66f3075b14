"""Mixture-of-Experts: the kiln.MoE op against NumPy (examples/moe/make_model.py's
reference) and ONNX Runtime (com.microsoft.MoE through onnxruntime-node), at 1
and 2 threads; routing profiles against the reference's own counts; the
placement pass and `kiln place` on the shipped targets."""
import json
import os
import shutil
import sys
import tempfile

import numpy as np

from harness import KILN, ROOT, main, run

TMP = tempfile.mkdtemp(prefix="kiln-moe-")
MODELS = os.path.join(TMP, "models")
os.makedirs(MODELS)
r = run([sys.executable, os.path.join(ROOT, "examples", "moe", "make_model.py"), MODELS])
assert r.returncode == 0, r.stderr
ORT = os.path.join(ROOT, "bench", "ort_run.js")


def model(name):
    p = os.path.join(MODELS, name)
    ins = sorted(os.path.join(MODELS, f) for f in os.listdir(MODELS) if f.startswith(name + "_in"))
    return p + ".onnx", ins


def compile_run(name, threads, extra=()):
    onnx_path, ins = model(name)
    exe = os.path.join(TMP, name)
    if not os.path.exists(exe):
        r = run([KILN, "compile", onnx_path, "-o", exe])
        assert r.returncode == 0, r.stderr
    out = os.path.join(TMP, "%s_t%d" % (name, threads))
    r = run([exe] + ins + ["-o", out, "--threads", str(threads)] + list(extra))
    assert r.returncode == 0, r.stderr
    return np.load(os.path.join(out, "output_0.npy"))


def check(name, with_ort):
    ref = np.load(os.path.join(MODELS, name + "_ref.npy"))
    outs = [compile_run(name, t) for t in (1, 2)]
    for y in outs:
        np.testing.assert_allclose(y, ref, rtol=1e-3, atol=1e-4 * np.abs(ref).max())
    np.testing.assert_array_equal(outs[0], outs[1])  # thread count does not change results
    if with_ort:
        onnx_path, ins = model(name)
        od = os.path.join(TMP, name + "_ort")
        r = run(["node", ORT, onnx_path, "1", "1", od] + ins)
        assert r.returncode == 0, r.stderr
        np.testing.assert_allclose(outs[0], np.load(os.path.join(od, "output_0.npy")), rtol=1e-3, atol=1e-4 * np.abs(ref).max())


def test_ort_relu():
    check("ort_relu", True)


def test_ort_gelu_normalized():
    check("ort_gelu", True)


def test_ort_silu():
    check("ort_silu", True)


def test_ort_swiglu_interleaved():
    check("ort_swiglu", True)


def test_ort_3d_input_k3():
    check("ort_norm3d", True)


def test_ort_no_biases():
    check("ort_nobias", True)


def test_deepseek_block_numpy():
    check("deepseek", False)


def test_routing_profile_counts():
    """--routing-profile-out: per-expert counts equal the reference's, summed over --repeat runs."""
    for name in ("deepseek", "ort_norm3d"):
        prof = os.path.join(TMP, name + ".prof.json")
        compile_run(name, 2, ["--repeat", "3", "--routing-profile-out", prof])
        p = json.load(open(prof))
        want = json.load(open(os.path.join(MODELS, name + "_counts.json")))
        assert p["format"] == "kiln-routing-profile" and p["runs"] == 3
        assert [layer["name"] for layer in p["layers"]] == list(want)
        for layer in p["layers"]:
            assert layer["counts"] == [3 * c for c in want[layer["name"]]], layer
            assert layer["tokens"] * layer["top_k"] == sum(layer["counts"])


if __name__ == "__main__":
    rc = main(globals(), "moe")
    shutil.rmtree(TMP, ignore_errors=True)
    sys.exit(rc)
