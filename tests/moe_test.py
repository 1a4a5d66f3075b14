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
import onnx
import onnx.helper
import onnx.numpy_helper

from harness import KILN, ROOT, input_files, main, run

TMP = tempfile.mkdtemp(prefix="kiln-moe-")
MODELS = os.path.join(TMP, "models")
os.makedirs(MODELS)
r = run([sys.executable, os.path.join(ROOT, "examples", "moe", "make_model.py"), MODELS])
assert r.returncode == 0, r.stderr
ORT = os.path.join(ROOT, "bench", "ort_run.js")


def model(name):
    p = os.path.join(MODELS, name)
    ins = input_files(MODELS, name)
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


def test_run_time_tokens():
    """The DeepSeek-style block with its token count symbolic (x as [1, T, H],
    reshaped to [T, H]): the executable specializes it when it runs, matches the
    NumPy reference, and its routing profile counts what the reference routes."""
    onnx_path, ins = model("deepseek")
    m = onnx.load(onnx_path)
    g = m.graph
    x = g.input[0]
    H = x.type.tensor_type.shape.dim[1].dim_value
    g.input.remove(x)
    g.input.insert(0, onnx.helper.make_tensor_value_info("x3", onnx.TensorProto.FLOAT, [1, "T", H]))
    g.initializer.append(onnx.numpy_helper.from_array(np.array([-1, H], np.int64), "flat"))
    g.node.insert(0, onnx.helper.make_node("Reshape", ["x3", "flat"], [x.name]))
    for v in g.output:
        v.type.tensor_type.shape.dim[0].dim_param = "T"
    path = os.path.join(TMP, "deepseek_tokens.onnx")
    onnx.save(m, path)
    x3 = os.path.join(TMP, "deepseek_x3.npy")
    np.save(x3, np.load(ins[0])[None])
    exe, out, prof = os.path.join(TMP, "deepseek_tokens"), os.path.join(TMP, "deepseek_tokens_out"), os.path.join(TMP, "tokens.prof.json")
    r = run([KILN, "compile", path, "-o", exe, "-v"])
    assert r.returncode == 0 and "shapes known only at run time" in r.stderr, r.stderr
    r = run([exe, x3] + ins[1:] + ["-o", out, "--routing-profile-out", prof])
    assert r.returncode == 0, r.stderr
    ref = np.load(os.path.join(MODELS, "deepseek_ref.npy"))
    np.testing.assert_allclose(np.load(os.path.join(out, "output_0.npy")), ref, rtol=1e-3, atol=1e-4 * np.abs(ref).max())
    want = json.load(open(os.path.join(MODELS, "deepseek_counts.json")))
    p = json.load(open(prof))
    assert [layer["name"] for layer in p["layers"]] == list(want)
    for layer in p["layers"]:
        assert layer["counts"] == want[layer["name"]], layer


# ---- placement ----

import moe_place  # noqa: E402  (bench/, on the path by harness: the DeepSeek-V3 description and Zipf profiles)

TARGETS = ["host", "kunpeng920", "ascend910c-node", "ascend910c-cluster-1024", "mlu370-node", "h800-cluster-2048"]


def place(model, *args, ok=True):
    r = run([KILN, "place", model, "--format", "json"] + list(args))
    assert (r.returncode == 0) == ok, r.stderr
    return json.loads(r.stdout) if ok else r


def check_plan(plan, loads=None):
    """Recomputes every device's load from the slots and checks the totals."""
    for L in plan["layers"]:
        E, T, k = L["experts"], L["tokens"], L["top_k"]
        reps = [0] * E
        for dv in L["devices"]:
            for e, r in dv["experts"]:
                reps[e] += 1
                assert r >= 1
        assert min(reps) >= 1 and sum(reps) == L["slots"], reps
        for dv in L["devices"]:
            for e, r in dv["experts"]:
                assert r == reps[e]
        load = loads[L["name"]] if loads else [T * k / E] * E
        dev = [sum(load[e] / reps[e] for e, _ in dv["experts"]) for dv in L["devices"]]
        np.testing.assert_allclose(dev, [dv["load"] for dv in L["devices"]], rtol=1e-6, atol=1e-6)
        mean = sum(dev) / len(dev)
        assert abs(sum(dev) - T * k) < 1e-6 * T * k
        np.testing.assert_allclose(L["imbalance"], max(dev) / mean, rtol=1e-6)
        heaviest = max(load[e] / reps[e] for e in range(E))
        np.testing.assert_allclose(L["lower_bound"], max(mean, heaviest), rtol=1e-6)
        assert L["predicted_us"] > 0 and L["predicted_us"] == max(dv["predicted_us"] for dv in L["devices"])


def test_place_every_shipped_target():
    model, _ = model_path("deepseek")
    for t in TARGETS:
        for strat in ("contiguous", "round-robin", "balanced"):
            plan = place(model, "--target", t, "--placement", strat)
            assert plan["placement"] == strat
            check_plan(plan)


def model_path(name):
    return model(name)


def zipf_setup(tmp):
    kir, prof = os.path.join(tmp, "one.kir"), os.path.join(tmp, "zipf.json")
    moe_place.deepseek_kir(kir, 1, 4096)
    moe_place.zipf_profile(prof, ["layer3.moe"], 4096)
    tgt = json.load(open(os.path.join(ROOT, "targets", "h800-cluster-2048.json")))
    tgt.update(nodes=4)
    tp = os.path.join(tmp, "h800-32.json")
    json.dump(tgt, open(tp, "w"))
    return kir, prof, tp


def test_place_zipf_balanced_goal():
    """256 experts, Zipf 1.0, 32 devices, 32 redundant slots: balanced within 1.05 of the
    mean and 2% of the lower bound; contiguous far worse."""
    kir, prof, tp = zipf_setup(TMP)
    loads = {"layer3.moe": None}
    p = json.load(open(prof))["layers"][0]
    loads["layer3.moe"] = [c / sum(p["counts"]) * 4096 * 8 for c in p["counts"]]
    bal = place(kir, "--target", tp, "--routing-profile", prof, "--redundant", "32")
    con = place(kir, "--target", tp, "--routing-profile", prof, "--placement", "contiguous")
    check_plan(bal, loads)
    check_plan(con, loads)
    b, c = bal["layers"][0], con["layers"][0]
    assert b["slots"] == 288
    assert b["imbalance"] <= 1.05 and b["bound_ratio"] <= 1.02, b
    assert c["imbalance"] > 2 * b["imbalance"] and c["predicted_us"] > b["predicted_us"]


def test_place_profiles_merge():
    """Two --routing-profile files give the plan of their sum."""
    kir, prof, tp = zipf_setup(TMP)
    p = json.load(open(prof))
    half = json.loads(json.dumps(p))
    for L in half["layers"]:
        L["counts"] = [c // 2 for c in L["counts"]]
        L["tokens"] //= 2
    rest = json.loads(json.dumps(p))
    for L, H in zip(rest["layers"], half["layers"]):
        L["counts"] = [c - h for c, h in zip(L["counts"], H["counts"])]
        L["tokens"] -= H["tokens"]
    a, b = os.path.join(TMP, "half.json"), os.path.join(TMP, "rest.json")
    json.dump(half, open(a, "w"))
    json.dump(rest, open(b, "w"))
    merged = place(kir, "--target", tp, "--routing-profile", a, "--routing-profile", b)
    whole = place(kir, "--target", tp, "--routing-profile", prof)
    assert merged["layers"] == whole["layers"]


def test_place_deepseek_v3_scale():
    """DeepSeek-V3's 58 MoE layers (weights not materialized) on 1,024 Ascend 910C."""
    kir, prof = os.path.join(TMP, "v3.kir"), os.path.join(TMP, "v3.json")
    moe_place.deepseek_kir(kir, 58, 32768)
    moe_place.zipf_profile(prof, ["layer%d.moe" % (l + 3) for l in range(58)], 32768)
    plan = place(kir, "--target", "ascend910c-cluster-1024", "--routing-profile", prof)
    assert len(plan["layers"]) == 58 and plan["target"]["devices"] == 1024
    assert plan["total"]["max_device_memory_bytes"] <= plan["total"]["device_memory_bytes"]
    check_plan({"layers": plan["layers"][:2]}, {L["name"]: [c / sum(L["counts"]) * 32768 * 8 for c in L["counts"]]
                                                 for L in json.load(open(prof))["layers"][:2]})


def test_profile_round_trip_into_compile():
    """A binary's profile feeds kiln compile; the dump after place shows the plan."""
    onnx_path, ins = model("deepseek")
    prof = os.path.join(TMP, "rt.prof.json")
    compile_run("deepseek", 1, ["--routing-profile-out", prof])
    out = os.path.join(TMP, "after_place.kir")
    r = run([KILN, "dump", onnx_path, "--after", "place", "--routing-profile", prof, "--target", "ascend910c-node", "-o", out])
    assert r.returncode == 0, r.stderr
    text = open(out).read()
    assert 'kiln.routing = "profile"' in text and 'kiln.target = "ascend910c-node"' in text and "kiln.predicted_us" in text
    exe = os.path.join(TMP, "from_dump")
    r = run([KILN, "compile", out, "-o", exe, "--routing-profile", prof])  # the dump reads back; its plan is redone
    assert r.returncode == 0, r.stderr
    r = run([exe] + ins + ["-o", os.path.join(TMP, "from_dump_out")])
    assert r.returncode == 0, r.stderr
    np.testing.assert_allclose(np.load(os.path.join(TMP, "from_dump_out", "output_0.npy")),
                               np.load(os.path.join(MODELS, "deepseek_ref.npy")), rtol=1e-3, atol=1e-4)


def test_depfile_names_profile_and_target():
    onnx_path, _ = model("deepseek")
    prof = os.path.join(TMP, "dep.prof.json")
    compile_run("deepseek", 1, ["--routing-profile-out", prof])
    exe = os.path.join(TMP, "dep_exe")
    r = run([KILN, "compile", onnx_path, "-o", exe, "-MD", "--routing-profile", prof, "--target", "ascend910c-node"])
    assert r.returncode == 0, r.stderr
    dep = open(exe + ".d").read()
    assert prof in dep and "ascend910c-node.json" in dep and onnx_path in dep, dep


def bad(args, needle, code=1):
    r = run([KILN] + args)
    assert r.returncode == code, (args, r.returncode, r.stderr)
    assert needle in r.stderr, (needle, r.stderr)
    assert "Traceback" not in r.stderr and "Sanitizer" not in r.stderr


def test_place_bad_inputs():
    model_p, _ = model("deepseek")
    d = os.path.join(TMP, "bad")
    os.makedirs(d, exist_ok=True)

    def write(name, text):
        p = os.path.join(d, name)
        open(p, "w").write(text)
        return p
    good = json.load(open(os.path.join(ROOT, "targets", "ascend910c-node.json")))
    no_mem = dict(good, device={k: v for k, v in good["device"].items() if k != "memory_GiB"})
    bad(["place", model_p, "--target", write("nomem.json", json.dumps(no_mem))], '"memory_GiB"')
    neg = dict(good, devices_per_node=-3)
    bad(["place", model_p, "--target", write("neg.json", json.dumps(neg))], "devices_per_node")
    bad(["place", model_p, "--target", write("notjson.json", "{nodes: 1")], "error")
    tiny = dict(good, device=dict(good["device"], memory_GiB=0.002))
    bad(["place", model("moe")[0], "--target", write("tiny.json", json.dumps(tiny))], "do not fit")
    bad(["place", model_p, "--target", "no-such-target"], "no such target")
    bad(["place", model_p, "--placement", "random"], "--placement", 2)
    bad(["place", model_p, "--redundant", "x"], "--redundant", 2)
    bad(["place", model_p, "--placement", "contiguous", "--redundant", "3"], "needs --placement balanced")
    prof = {"format": "kiln-routing-profile", "version": 1, "runs": 1,
            "layers": [{"name": "moe0", "experts": 5, "top_k": 4, "tokens": 10, "counts": [1, 2, 3, 4, 5]}]}
    bad(["place", model_p, "--routing-profile", write("p5.json", json.dumps(prof))], "has 5 experts")
    prof["layers"][0].update(experts=16, counts=[-1] * 16)
    bad(["place", model_p, "--routing-profile", write("neg.json", json.dumps(prof))], "counts must be")
    bad(["place", model_p, "--routing-profile", write("other.json", '{"format": "x"}')], "not a kiln routing profile")
    # counts that overflowed the merged totals (found by tests/fuzz)
    prof["layers"][0].update(counts=[1] * 16)
    bad(["place", model_p, "--routing-profile", write("runs.json", json.dumps(dict(prof, runs=1e10)))], '"runs"')
    many = dict(prof, layers=[dict(prof["layers"][0], tokens=9e17)] * 2)
    bad(["place", model_p, "--routing-profile", write("tokens.json", json.dumps(many))], "counts more than 1e18 tokens")
    bad(["place", model_p, "--routing-profile", os.path.join(d, "missing.json")], "cannot read")
    out = os.path.join(d, "plan.txt")
    bad(["place", "/usr/share/libonnx-testdata/data/node/test_relu/model.onnx", "-o", out], "no Mixture-of-Experts layer")
    assert not os.path.exists(out) and not os.path.exists(out + ".tmp")
    # a malformed MoE: fc2 weights of the wrong shape
    kir = write("badshape.kir", "kiln 1\ngraph \"g\" opset 17 {\n  input %x : f32[4,8]\n  input %r : f32[4,3]\n"
                "  input %w1 : f32[3,6,8]\n  input %w2 : f32[3,8,5]\n"
                "  %y : f32[4,8] = kiln.MoE \"m\" (%x, %r, %w1, _, %w2) {k = 2}\n  output %y\n}\n")
    bad(["compile", kir, "-o", os.path.join(d, "never")], "fc1 weights must be [3, 5, 8]")
    assert not os.path.exists(os.path.join(d, "never"))


if __name__ == "__main__":
    rc = main(globals(), "moe")
    shutil.rmtree(TMP, ignore_errors=True)
    sys.exit(rc)
