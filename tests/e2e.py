"""End-to-end tests: compile, run, emit lib/obj/c/header, depfiles, dump and
round trip, kiln run. Every numeric result is checked against NumPy."""
import json
import os
import shutil
import sys
import tempfile
import time

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from harness import KILN, ROOT, input_files, main, run

TMP = tempfile.mkdtemp(prefix="kiln-e2e-")
os.chdir(TMP)  # `kiln dump` to stdout writes MODEL.weights in the current folder: keep it out of the tree
MLP = os.path.join(ROOT, "examples", "mlp")


def mlp_model(dirname):
    r = run([sys.executable, os.path.join(MLP, "make_model.py"), dirname])
    assert r.returncode == 0, r.stderr
    return os.path.join(dirname, "mlp.onnx"), os.path.join(dirname, "input_0.npy")


def mlp_reference(model_path, x):
    """The MLP computed by NumPy from the model's own weights."""
    m = onnx.load(model_path)
    w = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    h = np.maximum(x @ w["w1"] + w["b1"], 0)
    z = h @ w["w2"] + w["b2"]
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def fresh(name):
    d = os.path.join(TMP, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d


def test_compile_and_run_matches_numpy():
    d = fresh("run")
    model, inp = mlp_model(d)
    exe = os.path.join(d, "m")
    r = run([KILN, "compile", model, "-o", exe])
    assert r.returncode == 0, r.stderr
    r = run([exe, inp, "-o", os.path.join(d, "out")])
    assert r.returncode == 0, r.stderr
    got = np.load(os.path.join(d, "out", "output_0.npy"))
    np.testing.assert_allclose(got, mlp_reference(model, np.load(inp)), rtol=1e-4, atol=1e-6)


def test_pb_input_and_output_and_repeat():
    d = fresh("pb")
    model, inp = mlp_model(d)
    x = np.load(inp)
    with open(os.path.join(d, "in.pb"), "wb") as f:
        f.write(numpy_helper.from_array(x, "x").SerializeToString())
    exe = os.path.join(d, "m")
    assert run([KILN, "compile", model, "-o", exe, "--threads", "2"]).returncode == 0
    r = run([exe, os.path.join(d, "in.pb"), "-o", d, "--format", "pb", "--repeat", "5", "--threads", "1"])
    assert r.returncode == 0, r.stderr
    assert r.stderr.startswith("latency_ms min="), r.stderr
    fields = dict(kv.split("=") for kv in r.stderr.split()[1:])
    assert float(fields["min"]) <= float(fields["median"]) <= float(fields["max"])
    t = onnx.TensorProto()
    t.ParseFromString(open(os.path.join(d, "output_0.pb"), "rb").read())
    np.testing.assert_allclose(numpy_helper.to_array(t), mlp_reference(model, x), rtol=1e-4, atol=1e-6)


def test_emit_lib_links_into_c_program_with_make():
    d = fresh("embed")
    shutil.copytree(os.path.join(ROOT, "examples", "embed"), os.path.join(d, "embed"))
    model, inp = mlp_model(d)
    env = dict(os.environ, KILN=KILN)
    mk = ["make", "-C", os.path.join(d, "embed"), "KILN=" + KILN, "MODEL=" + model]
    r = run(mk, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    x = np.load(inp)
    x.tofile(os.path.join(d, "in.f32"))
    r = run([os.path.join(d, "embed", "demo"), os.path.join(d, "in.f32"), os.path.join(d, "out.f32")])
    assert r.returncode == 0, r.stderr
    got = np.fromfile(os.path.join(d, "out.f32"), dtype=np.float32).reshape(2, 4)
    np.testing.assert_allclose(got, mlp_reference(model, x), rtol=1e-4, atol=1e-6)
    # the depfile names the model: touching it rebuilds the library, else nothing is done
    r = run(mk + ["-q", "demo"])
    assert r.returncode == 0, "make -q says demo is out of date right after a build"
    time.sleep(1.1)
    os.utime(model)
    r = run(mk + ["-q", "demo"])
    assert r.returncode != 0, "make did not see the model change through the depfile"
    r = run(mk)
    assert r.returncode == 0 and "kiln" in r.stdout and "compile" in r.stdout, r.stdout


def lib_program(d, model, name, prog, backend, header_says):
    """Compiles model to lib{name}.a with backend (the header must contain
    header_says), links the C program prog against it, runs it: its stdout lines."""
    lib = os.path.join(d, "lib%s.a" % name)
    r = run([KILN, "compile", model, "--emit", "lib", "-o", lib, "--name", name, "--backend", backend])
    assert r.returncode == 0, r.stderr
    assert header_says in open(os.path.join(d, name + ".h")).read()
    exe = os.path.join(d, "main_" + backend)
    cc = os.environ.get("CC", "cc").split()  # the sanitizer build sets CC with its flags
    r = run(cc + ["-o", exe, prog, "-I", d, lib, "-L", os.path.join(os.path.dirname(os.path.dirname(KILN)), "lib"), "-lkilnrt", "-lm", "-lpthread"])
    assert r.returncode == 0, r.stderr
    r = run([exe])
    assert r.returncode == 0, r.stderr
    return r.stdout.split("\n")


def test_library_output_shape_sized_at_run_time():
    """A library whose output's size depends on the data (NonZero): the header
    gives the upper bound, PREFIX_output_shape the run's dims (both backends),
    and the data are that shape, row-major; checked against NumPy."""
    d = fresh("dynlib")
    g = helper.make_graph([helper.make_node("Greater", ["x", "t"], ["m"]), helper.make_node("NonZero", ["m"], ["y"])], "nz",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 4])], [helper.make_tensor_value_info("y", TensorProto.INT64, None)],
                          [numpy_helper.from_array(np.array(0.5, np.float32), "t")])
    model = os.path.join(d, "nz.onnx")
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), model)
    prog = os.path.join(d, "main.c")
    with open(prog, "w") as f:
        f.write("""#include <stdio.h>
#include "nz.h"
int main(void) {
    float x[12];
    int64_t y[2 * 12];
    for (int i = 0; i < 12; i++) x[i] = (float)((i * 7) % 10) / 10;
    nz_ctx *c = nz_create(1);
    const void *in[1] = {x};
    void *out[1] = {y};
    if (!c || nz_run(c, in, out) != 0) return 1;
    const int64_t *s = nz_output_shape(c, 0);
    printf("%lld %lld %lld %lld\\n", (long long)nz_outputs[0].shape[0], (long long)nz_outputs[0].shape[1], (long long)s[0], (long long)s[1]);
    for (int i = 0; i < s[0] * s[1]; i++) printf("%lld ", (long long)y[i]);
    printf("\\n");
    nz_destroy(c);
    return 0;
}
""")
    x = np.array([((i * 7) % 10) / 10 for i in range(12)], np.float32).reshape(3, 4)
    want = np.stack(np.nonzero(x > 0.5))
    for backend in ["c", "llvm"]:
        lines = lib_program(d, model, "nz", prog, backend, "sized at run time")
        assert lines[0].split() == ["2", "12", "2", str(want.shape[1])], lines[0]
        assert [int(v) for v in lines[1].split()] == list(want.ravel()), (lines[1], want)


def batch_model(d):
    """y = relu(x @ w) + s: x [batch, 4] has a symbolic batch, s [3] none."""
    w = (np.arange(12, dtype=np.float32).reshape(4, 3) - 5) / 7
    g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
                           helper.make_node("Add", ["r", "s"], ["y"])], "bm",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4]),
                           helper.make_tensor_value_info("s", TensorProto.FLOAT, [3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])], [numpy_helper.from_array(w, "w")])
    model = os.path.join(d, "bm.onnx")
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), model)
    return model, lambda x, s: np.maximum(x @ w, 0) + s


def test_library_run_batch():
    """A library of a model with a symbolic batch: the header marks the batched
    input and output, PREFIX_run_batch runs 3 samples (the unbatched input is
    shared), refuses n = 0; both backends; checked against NumPy."""
    d = fresh("batchlib")
    model, ref = batch_model(d)
    prog = os.path.join(d, "main.c")
    with open(prog, "w") as f:
        f.write("""#include <stdio.h>
#include "bm.h"
int main(void) {
    float x[3 * 4], s[3] = {0.5f, -1.0f, 2.0f}, y[3 * 3];
    for (int i = 0; i < 12; i++) x[i] = (float)((i * 5) % 11) / 4 - 1;
    bm_ctx *c = bm_create(1);
    const void *in[2] = {x, s};
    void *out[1] = {y};
    if (!c || bm_run_batch(c, 3, in, out) != 0 || bm_run_batch(c, 0, in, out) != 2) return 1;
    printf("%d %d %d %lld %lld\\n", bm_BATCHED, bm_inputs[0].batch, bm_inputs[1].batch, (long long)bm_outputs[0].shape[0], (long long)bm_outputs[0].nbytes);
    for (int i = 0; i < 9; i++) printf("%.6f ", y[i]);
    printf("\\n");
    bm_destroy(c);
    return 0;
}
""")
    x = np.array([((i * 5) % 11) / 4 - 1 for i in range(12)], np.float32).reshape(3, 4)
    want = ref(x, np.array([0.5, -1, 2], np.float32))
    for backend in ["c", "llvm"]:
        lines = lib_program(d, model, "bm", prog, backend, "dim 0 is the batch")
        assert lines[0].split() == ["1", "1", "0", "1", "12"], lines[0]
        np.testing.assert_allclose(np.array([float(v) for v in lines[1].split()]).reshape(3, 3), want, rtol=1e-5, atol=1e-6)


def run_on(d, exe, x, *others):
    """exe run on x (saved as d/x.npy) and the other input files: its output_0."""
    np.save(os.path.join(d, "x.npy"), x)
    r = run([exe, os.path.join(d, "x.npy")] + list(others) + ["-o", os.path.join(d, "out")])
    assert r.returncode == 0, r.stderr
    return np.load(os.path.join(d, "out", "output_0.npy"))


def test_symbolic_batch_executable_and_dump_roundtrip():
    """One executable runs batches of 1 and 5; the text IR writes the batch as
    f32[?,4] and compiles back to a model that runs any batch too."""
    d = fresh("batchexe")
    model, ref = batch_model(d)
    s = np.array([1, 0, -1], np.float32)
    np.save(os.path.join(d, "s.npy"), s)
    r = run([KILN, "dump", model, "-o", os.path.join(d, "bm.kir")])
    assert r.returncode == 0, r.stderr
    assert "input %x : f32[?,4]" in open(os.path.join(d, "bm.kir")).read()
    for src in [model, os.path.join(d, "bm.kir")]:
        exe = os.path.join(d, "bm")
        r = run([KILN, "compile", src, "-o", exe])
        assert r.returncode == 0, r.stderr
        r = run([exe, "--help"])
        assert "f32[N,4]" in r.stdout and "N is the batch" in r.stdout, r.stdout
        for n in [1, 5]:
            x = np.random.default_rng(n).standard_normal((n, 4)).astype(np.float32)
            np.testing.assert_allclose(run_on(d, exe, x, os.path.join(d, "s.npy")), ref(x, s), rtol=1e-5, atol=1e-6)


def test_text_ir_symbolic_dims_run_time():
    """A text IR input with a symbolic dimension other than the batch
    (f32[2,?]) compiles to an executable that takes it from its input file
    (--help shows '?'), at two sizes, against NumPy."""
    d = fresh("kirsym")
    src = os.path.join(d, "t.kir")
    with open(src, "w") as f:
        f.write('kiln 1\ngraph "t" opset 13 {\n  input %x : f32[2,?]\n  %y : f32[?] = Relu "r" (%x)\n  output %y\n}\n')
    exe = os.path.join(d, "t")
    r = run([KILN, "compile", src, "-o", exe])
    assert r.returncode == 0, r.stderr
    r = run([exe, "--help"])
    assert "'x' f32[2,?]" in r.stdout and "? is any size" in r.stdout, r.stdout
    for n in [3, 11]:
        x = np.random.default_rng(n).standard_normal((2, n)).astype(np.float32)
        np.testing.assert_array_equal(run_on(d, exe, x), np.maximum(x, 0))


def strings_model(d):
    """Cast float -> string, StringNormalizer (LOWER, stopwords), Cast string -> float."""
    g = helper.make_graph([helper.make_node("Cast", ["x"], ["s"], to=TensorProto.STRING),
                           helper.make_node("StringNormalizer", ["w"], ["n"], case_change_action="LOWER", stopwords=["THE", "a"]),
                           helper.make_node("Cast", ["sn"], ["f"], to=TensorProto.FLOAT)], "strs",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3]), helper.make_tensor_value_info("w", TensorProto.STRING, [5]),
                           helper.make_tensor_value_info("sn", TensorProto.STRING, [3])],
                          [helper.make_tensor_value_info("s", TensorProto.STRING, [2, 3]), helper.make_tensor_value_info("n", TensorProto.STRING, None),
                           helper.make_tensor_value_info("f", TensorProto.FLOAT, [3])])
    model = os.path.join(d, "strs.onnx")
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), model)
    return model


def test_string_tensors_npy_pb_and_library():
    """String inputs as NumPy unicode and bytes arrays and as TensorProto .pb,
    string outputs as .npy (bytes) and .pb: float -> string as NumPy's str()
    writes each value, stopwords removed case-insensitively and ASCII lowered
    as Python does, string -> float as NumPy parses; a C program passes
    kiln_str inputs to the library (both backends)."""
    d = fresh("strings")
    model = strings_model(d)
    x = np.array([[0.1, 1e-5, 123456.0], [-0.0, np.inf, 3.0e38]], np.float32)
    words = np.array(["The", "Quick", "brown", "a", "DOG"])
    nums = np.array([b"1.5", b"-2e3", b"nan"])
    np.save(os.path.join(d, "x.npy"), x)
    np.save(os.path.join(d, "w.npy"), words)
    np.save(os.path.join(d, "sn.npy"), nums)
    with open(os.path.join(d, "w.pb"), "wb") as f:
        f.write(numpy_helper.from_array(words.astype(object), "w").SerializeToString())
    exe = os.path.join(d, "strs")
    r = run([KILN, "compile", model, "-o", exe])
    assert r.returncode == 0, r.stderr
    want_s = [str(v) for v in x.ravel()]
    want_n = [w.lower() for w in words if w.lower() not in ("the", "a")]
    for wfile, fmt in [("w.npy", "npy"), ("w.pb", "pb")]:
        out = os.path.join(d, "out_" + fmt)
        r = run([exe, os.path.join(d, "x.npy"), os.path.join(d, wfile), os.path.join(d, "sn.npy"), "-o", out, "--format", fmt])
        assert r.returncode == 0, r.stderr
        if fmt == "npy":
            got = [np.load(os.path.join(out, "output_%d.npy" % k)) for k in range(3)]
            got_s, got_n = [v.decode() for v in got[0].ravel()], [v.decode() for v in got[1]]
            f = got[2]
        else:
            got = []
            for k in range(3):
                t = onnx.TensorProto()
                t.ParseFromString(open(os.path.join(out, "output_%d.pb" % k), "rb").read())
                got.append(numpy_helper.to_array(t))
            got_s, got_n, f = [str(v) for v in got[0].ravel()], [str(v) for v in got[1]], got[2]
        assert got_s == want_s, (got_s, want_s)
        assert got_n == want_n, (got_n, want_n)
        np.testing.assert_array_equal(f, nums.astype(np.float32))
    prog = os.path.join(d, "main.c")
    with open(prog, "w") as fp:
        fp.write("""#include <stdio.h>
#include "strs.h"
int main(void) {
    float x[6] = {0.25f, 2.0f, -1e-7f, 1.0f, 0.5f, 7.0f};
    kiln_str w[5] = {{"A", 1}, {"list", 4}, {"OF", 2}, {"the", 3}, {"Words", 5}}, sn[3] = {{"3.25", 4}, {"1e2", 3}, {"-0", 2}};
    kiln_str s[6], n[5];
    float f[3];
    strs_ctx *c = strs_create(1);
    const void *in[3] = {x, w, sn};
    void *out[3] = {s, n, f};
    if (!c || strs_run(c, in, out) != 0) return 1;
    for (int i = 0; i < 6; i++) printf("%.*s ", (int)s[i].n, s[i].p);
    printf("\\n%lld:", (long long)strs_output_shape(c, 1)[0]);
    for (int i = 0; i < strs_output_shape(c, 1)[0]; i++) printf(" %.*s", (int)n[i].n, n[i].p);
    printf("\\n%g %g %g\\n", f[0], f[1], f[2]);
    strs_destroy(c);
    return 0;
}
""")
    xs = np.array([0.25, 2.0, -1e-7, 1.0, 0.5, 7.0], np.float32)
    for backend in ["c", "llvm"]:
        lines = lib_program(d, model, "strs", prog, backend, "kiln_str")
        assert lines[0].split() == [str(v) for v in xs], lines[0]
        assert lines[1] == "3: list of words", lines[1]
        assert lines[2].split() == ["3.25", "100", "-0"], lines[2]


def test_sequence_inputs_and_outputs():
    """A sequence input (SequenceProto .pb, its tensors' shapes from --shape
    NAME=[...]) mapped by SequenceMap (x * 2 + t) and extended by
    SequenceInsert; the sequence output as a SequenceProto .pb and as one .npy
    per tensor; checked against NumPy. A file of the wrong length is refused."""
    d = fresh("seqio")
    body = helper.make_graph([helper.make_node("Mul", ["e", "two"], ["m"]), helper.make_node("Add", ["m", "t_in"], ["r"])], "body",
                             [helper.make_tensor_value_info("e", TensorProto.FLOAT, None), helper.make_tensor_value_info("t_in", TensorProto.FLOAT, None)],
                             [helper.make_tensor_value_info("r", TensorProto.FLOAT, None)],
                             [numpy_helper.from_array(np.array(2, np.float32), "two")])
    seq_t = helper.make_tensor_sequence_value_info
    g = helper.make_graph([helper.make_node("SequenceMap", ["s", "t"], ["m"], body=body),
                           helper.make_node("SequenceInsert", ["m", "t"], ["out"])], "seqio",
                          [seq_t("s", TensorProto.FLOAT, None), helper.make_tensor_value_info("t", TensorProto.FLOAT, [3])],
                          [seq_t("out", TensorProto.FLOAT, None), helper.make_tensor_value_info("t2", TensorProto.FLOAT, [3])])
    g.node.append(helper.make_node("Identity", ["t"], ["t2"]))
    model = os.path.join(d, "seqio.onnx")
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), model)
    xs = [np.arange(6, dtype=np.float32).reshape(2, 3), np.array([[1, -1, 0.5]], np.float32)]
    t = np.array([10, 20, 30], np.float32)
    seq = onnx.helper.make_sequence("s", onnx.SequenceProto.TENSOR, [numpy_helper.from_array(x) for x in xs])
    open(os.path.join(d, "s.pb"), "wb").write(seq.SerializeToString())
    np.save(os.path.join(d, "t.npy"), t)
    exe = os.path.join(d, "seqio")
    r = run([KILN, "compile", model, "-o", exe, "--shape", "s=[2x3,1x3]"])
    assert r.returncode == 0, r.stderr
    want = [x * 2 + t for x in xs] + [t]
    r = run([exe, os.path.join(d, "s.pb"), os.path.join(d, "t.npy"), "-o", os.path.join(d, "pb"), "--format", "pb"])
    assert r.returncode == 0, r.stderr
    got = onnx.SequenceProto()
    got.ParseFromString(open(os.path.join(d, "pb", "output_0.pb"), "rb").read())
    got = [numpy_helper.to_array(x) for x in got.tensor_values]
    assert len(got) == 3 and all(np.array_equal(a, b) for a, b in zip(got, want)), got
    assert sorted(os.listdir(os.path.join(d, "pb"))) == ["output_0.pb", "output_1.pb"]
    r = run([exe, os.path.join(d, "s.pb"), os.path.join(d, "t.npy"), "-o", os.path.join(d, "npy")])
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(os.path.join(d, "npy"))) == ["output_0_0.npy", "output_0_1.npy", "output_0_2.npy", "output_1.npy"]
    for j in range(3):
        np.testing.assert_array_equal(np.load(os.path.join(d, "npy", "output_0_%d.npy" % j)), want[j])
    np.testing.assert_array_equal(np.load(os.path.join(d, "npy", "output_1.npy")), t)
    short = onnx.helper.make_sequence("s", onnx.SequenceProto.TENSOR, [numpy_helper.from_array(xs[0])])
    open(os.path.join(d, "short.pb"), "wb").write(short.SerializeToString())
    r = run([exe, os.path.join(d, "short.pb"), os.path.join(d, "t.npy"), "-o", os.path.join(d, "bad")])
    assert r.returncode == 1 and "expected a sequence of 2 tensors, found 1" in r.stderr, r.stderr
    assert not os.path.exists(os.path.join(d, "bad")) or not os.listdir(os.path.join(d, "bad"))
    r = run([KILN, "compile", model, "-o", exe])
    assert r.returncode == 1 and "input 's' is a sequence: give the shapes of its tensors with --shape s=[" in r.stderr, r.stderr


def test_empty_sequence_output():
    """An empty sequence output: an empty SequenceProto (no .npy files)."""
    d = fresh("seqempty")
    s_out = helper.make_value_info("s", helper.make_sequence_type_proto(helper.make_tensor_type_proto(TensorProto.FLOAT, [2])))
    g = helper.make_graph([helper.make_node("SequenceEmpty", [], ["s"]), helper.make_node("Relu", ["x"], ["y"])], "se",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])], [s_out, helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    model, exe = os.path.join(d, "se.onnx"), os.path.join(d, "se")
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), model)
    np.save(os.path.join(d, "x.npy"), np.array([-1, 2], np.float32))
    assert run([KILN, "compile", model, "-o", exe]).returncode == 0
    r = run([exe, os.path.join(d, "x.npy"), "-o", os.path.join(d, "o"), "--format", "pb"])
    assert r.returncode == 0, r.stderr
    sq = onnx.SequenceProto()
    sq.ParseFromString(open(os.path.join(d, "o", "output_0.pb"), "rb").read())
    assert len(sq.tensor_values) == 0
    t = onnx.TensorProto()
    t.ParseFromString(open(os.path.join(d, "o", "output_1.pb"), "rb").read())
    np.testing.assert_array_equal(numpy_helper.to_array(t), [0, 2])
    r = run([exe, os.path.join(d, "x.npy"), "-o", os.path.join(d, "n")])
    assert r.returncode == 0 and sorted(os.listdir(os.path.join(d, "n"))) == ["output_1.npy"], r.stderr


def test_optional_inputs_and_outputs():
    """An optional tensor input, present (--shape o=2x2) or absent (o=none),
    read from ONNX OptionalProto files: OptionalHasElement is a constant of
    the compile, Identity passes the optional to an optional output, written
    as an OptionalProto (or, present, as .npy; nothing when absent); a file
    that disagrees with the compile is refused."""
    d = fresh("optio")
    opt_t = helper.make_value_info("o", helper.make_optional_type_proto(helper.make_tensor_type_proto(TensorProto.FLOAT, [2, 2])))
    opt_out = helper.make_value_info("p", helper.make_optional_type_proto(helper.make_tensor_type_proto(TensorProto.FLOAT, [2, 2])))
    g = helper.make_graph([helper.make_node("OptionalHasElement", ["o"], ["has"]), helper.make_node("Identity", ["o"], ["p"])], "optio",
                          [opt_t], [helper.make_tensor_value_info("has", TensorProto.BOOL, []), opt_out])
    model = os.path.join(d, "optio.onnx")
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 16)]), model)
    x = np.array([[1.5, -2], [3, 4]], np.float32)
    present = helper.make_optional("o", onnx.OptionalProto.TENSOR, numpy_helper.from_array(x))
    absent = onnx.OptionalProto(name="o", elem_type=onnx.OptionalProto.UNDEFINED)
    for name, msg in [("present.pb", present), ("absent.pb", absent)]:
        open(os.path.join(d, name), "wb").write(msg.SerializeToString())
    for spec, good, bad in [("o=2x2", "present.pb", "absent.pb"), ("o=none", "absent.pb", "present.pb")]:
        exe = os.path.join(d, "opt_" + spec[2:])
        r = run([KILN, "compile", model, "-o", exe, "--shape", spec])
        assert r.returncode == 0, r.stderr
        out = os.path.join(d, "out_" + spec[2:])
        r = run([exe, os.path.join(d, good), "-o", out, "--format", "pb"])
        assert r.returncode == 0, r.stderr
        t = onnx.TensorProto()
        t.ParseFromString(open(os.path.join(out, "output_0.pb"), "rb").read())
        assert bool(numpy_helper.to_array(t)) == (good == "present.pb")
        o = onnx.OptionalProto()
        o.ParseFromString(open(os.path.join(out, "output_1.pb"), "rb").read())
        if good == "present.pb":
            assert o.elem_type == onnx.OptionalProto.TENSOR and np.array_equal(numpy_helper.to_array(o.tensor_value), x)
        else:
            assert o.elem_type == onnx.OptionalProto.UNDEFINED
        r = run([exe, os.path.join(d, good), "-o", out + "_npy"])
        assert r.returncode == 0, r.stderr
        files = sorted(os.listdir(out + "_npy"))
        assert files == (["output_0.npy", "output_1.npy"] if good == "present.pb" else ["output_0.npy"]), files
        r = run([exe, os.path.join(d, bad), "-o", os.path.join(d, "bad")])
        assert r.returncode == 1 and "expected an" in r.stderr and "optional" in r.stderr, r.stderr
        assert not os.path.exists(os.path.join(d, "bad"))


def test_emit_obj_so_header_and_deterministic_c():
    d = fresh("emit")
    model, _ = mlp_model(d)
    for kind, out in [("obj", "m.o"), ("so", "libm.so"), ("header", "m.h"), ("c", "m1.c"), ("c", "m2.c")]:
        r = run([KILN, "compile", model, "--emit", kind, "-o", os.path.join(d, out), "--name", "m"])
        assert r.returncode == 0, (kind, r.stderr)
        assert os.path.getsize(os.path.join(d, out)) > 0
    assert os.path.exists(os.path.join(d, "m.h"))
    h = open(os.path.join(d, "m.h")).read()
    for sym in ["m_create", "m_run", "m_destroy", "m_inputs", "m_NUM_INPUTS"]:
        assert sym in h, sym
    assert open(os.path.join(d, "m1.c"), "rb").read() == open(os.path.join(d, "m2.c"), "rb").read()
    assert "node 'fc1' (Gemm)" in open(os.path.join(d, "m1.c")).read()
    r = run(["nm", "-D", os.path.join(d, "libm.so")])
    assert " T m_run" in r.stdout


def test_dump_formats():
    d = fresh("dump")
    model, _ = mlp_model(d)
    r = run([KILN, "dump", model, "--after", "fuse"])
    assert r.returncode == 0 and "Relu" not in r.stdout and "kiln.clip_min = 0.0" in r.stdout, r.stdout
    r = run([KILN, "dump", model, "--format", "json"])
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout)
    assert [n["op"] for n in j["nodes"]][0] == "Gemm"
    r = run([KILN, "dump", model, "--format", "dot"])
    assert r.returncode == 0 and r.stdout.startswith("digraph")
    dd = os.path.join(d, "passes")
    r = run([KILN, "compile", model, "-o", os.path.join(d, "m"), "--dump-after", "all", "--dump-dir", dd])
    assert r.returncode == 0, r.stderr
    names = sorted(os.listdir(dd))
    assert [n for n in names if n.endswith(".kir")] == ["00-canonicalize.kir", "01-infer.kir", "02-dce.kir", "03-cse.kir", "04-fold-bn.kir", "05-patterns.kir", "06-fuse.kir", "07-place.kir", "08-plan.kir"], names


def bench_model(d, name):
    """bench/models.py's model name written into d: (its path, its input files)."""
    r = run([sys.executable, os.path.join(ROOT, "bench", "models.py"), d, name])
    assert r.returncode == 0, r.stderr
    return os.path.join(d, name + ".onnx"), input_files(d, name)


def roundtrip(model, inputs, d, after=None):
    kir = os.path.join(d, "m.kir")
    cmd = [KILN, "dump", model, "-o", kir] + (["--after", after] if after else [])
    r = run(cmd)
    assert r.returncode == 0, r.stderr
    outs = []
    for src in [model, kir]:
        exe = os.path.join(d, "exe")
        r = run([KILN, "compile", src, "-o", exe])
        assert r.returncode == 0, (src, r.stderr)
        od = os.path.join(d, "o")
        shutil.rmtree(od, ignore_errors=True)
        r = run([exe] + inputs + ["-o", od])
        assert r.returncode == 0, r.stderr
        outs.append(np.load(os.path.join(od, "output_0.npy")))
    return outs


def test_dump_roundtrip_mlp():
    d = fresh("rt")
    model, inp = mlp_model(d)
    for after in [None, "infer"]:
        a, b = roundtrip(model, [inp], d, after)
        assert np.array_equal(a, b)
        np.testing.assert_allclose(b, mlp_reference(model, np.load(inp)), rtol=1e-4, atol=1e-6)


def test_dump_roundtrip_control_flow():
    """If, Loop and Scan with captures (bench/models.py's control model) through
    the text IR: the same outputs as from the ONNX file."""
    d = fresh("rtc")
    model, ins = bench_model(d, "control")
    a, b = roundtrip(model, ins, d)
    assert np.array_equal(a, b)
    assert "capture %" in open(os.path.join(d, "m.kir")).read()


def test_dump_roundtrip_concat_of_300_inputs():
    """A Concat of 300 inputs through the text IR: the same outputs as from the
    ONNX file, and NumPy's concatenation."""
    d = fresh("rtcat")
    model, ins = bench_model(d, "concat_many")
    a, b = roundtrip(model, ins, d)
    assert np.array_equal(a, b)
    m = onnx.load(model)
    x = np.load(ins[0])
    c = onnx.numpy_helper.to_array(m.graph.initializer[0])
    want = np.concatenate([[x, np.maximum(x, 0), c][i % 3] for i in range(300)], axis=1)
    np.testing.assert_allclose(b, want, rtol=0, atol=0)


def test_if_on_constant_compiles_the_branch_taken():
    """An If whose condition is a constant: only the branch taken is inferred and
    compiled (the other here is invalid), also through the text IR."""
    d = fresh("ifconst")
    vi = helper.make_tensor_value_info
    then = helper.make_graph([helper.make_node("Relu", ["x"], ["o"])], "then", [], [vi("o", TensorProto.FLOAT, None)])
    bad = helper.make_graph([helper.make_node("Concat", ["x", "x"], ["o2"], axis=5)], "else", [], [vi("o2", TensorProto.FLOAT, None)])
    g = helper.make_graph([helper.make_node("If", ["c"], ["y"], then_branch=then, else_branch=bad)], "g", [vi("x", TensorProto.FLOAT, [3])],
                          [vi("y", TensorProto.FLOAT, None)], [numpy_helper.from_array(np.array(True), "c")])
    model = os.path.join(d, "if.onnx")
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), model)
    x = np.array([-1, 2, -3], np.float32)
    np.save(os.path.join(d, "x.npy"), x)
    a, b = roundtrip(model, [os.path.join(d, "x.npy")], d)
    np.testing.assert_array_equal(a, np.maximum(x, 0))
    np.testing.assert_array_equal(b, a)


def test_step_profiler():
    """KILN_PROFILE=1: the executable prints each step's time per run (slowest
    first, percentages adding up to 100) and the totals by op and kernel, with
    both backends; without it, nothing; the outputs are the same either way."""
    d = fresh("prof")
    model, inp = mlp_model(d)
    for backend in ["c", "llvm"]:
        exe = os.path.join(d, "m_" + backend)
        r = run([KILN, "compile", model, "-o", exe, "--backend", backend])
        assert r.returncode == 0, r.stderr
        r = run([exe, inp, "-o", os.path.join(d, "plain"), "--repeat", "5"])
        assert r.returncode == 0 and "kiln profile" not in r.stderr, r.stderr
        r = run([exe, inp, "-o", os.path.join(d, "prof"), "--repeat", "5"], env=dict(os.environ, KILN_PROFILE="1"))
        assert r.returncode == 0, r.stderr
        lines = r.stderr.splitlines()
        head = [i for i, l in enumerate(lines) if l.startswith("kiln profile: 5 runs")]
        assert head, r.stderr
        by_op = lines.index("  by op:")
        steps = [l.split() for l in lines[head[0] + 2:by_op]]
        assert any("(Gemm)" in " ".join(t) for t in steps), r.stderr
        times = [float(t[0]) for t in steps]
        assert times == sorted(times, reverse=True), r.stderr
        assert abs(sum(float(t[1]) for t in steps) - 100) < 0.1, r.stderr
        assert any(l.endswith("Gemm [gemm]") for l in lines[by_op + 1:]), r.stderr
        a = np.load(os.path.join(d, "plain", "output_0.npy"))
        assert np.array_equal(a, np.load(os.path.join(d, "prof", "output_0.npy")))


def test_training_dropout_matches_numpy_seeded_mask():
    """Training-mode Dropout with a seed draws NumPy's legacy np.random.seed(s);
    uniform() sequence (MT19937): mask and output equal NumPy's, over more draws
    than one generator state holds."""
    d = fresh("dropout")
    x = np.random.default_rng(5).standard_normal((7, 300)).astype(np.float32)
    inits = [numpy_helper.from_array(np.array(0.3, np.float32), "r"), numpy_helper.from_array(np.array(True), "t")]
    node = helper.make_node("Dropout", ["x", "r", "t"], ["y", "m"], seed=1234)
    g = helper.make_graph([node], "d", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, x.shape),
                           helper.make_tensor_value_info("m", TensorProto.BOOL, x.shape)], inits)
    model = os.path.join(d, "d.onnx")
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), model)
    np.save(os.path.join(d, "x.npy"), x)
    exe = os.path.join(d, "d")
    r = run([KILN, "compile", model, "-o", exe])
    assert r.returncode == 0, r.stderr
    for _ in range(2):  # the same mask on every run
        r = run([exe, os.path.join(d, "x.npy"), "-o", os.path.join(d, "o")])
        assert r.returncode == 0, r.stderr
        np.random.seed(1234)
        mask = np.random.uniform(0, 1, x.shape) >= np.float32(0.3)
        np.testing.assert_array_equal(np.load(os.path.join(d, "o", "output_1.npy")), mask)
        np.testing.assert_array_equal(np.load(os.path.join(d, "o", "output_0.npy")), mask * x / (np.float32(1) - np.float32(0.3)))


def test_dump_roundtrip_fused_cnn():
    """A conv net with fused elementwise chains, constants of several dtypes,
    and shape arithmetic that folds; its .kir round trip must agree with NumPy."""
    d = fresh("rt2")
    rng = np.random.default_rng(3)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Mul", ["c", "half"], ["m"], name="scale"),
        helper.make_node("Sigmoid", ["m"], ["s"], name="sig"),
        helper.make_node("Add", ["s", "c"], ["a"], name="res"),
        helper.make_node("Shape", ["a"], ["shp"], name="shape"),
        helper.make_node("Gather", ["shp", "zero"], ["n"], name="batch", axis=0),
        helper.make_node("Unsqueeze", ["n", "zeros"], ["n1"], name="unsq"),
        helper.make_node("Concat", ["n1", "minus1"], ["newshape"], name="cat", axis=0),
        helper.make_node("Reshape", ["a", "newshape"], ["y"], name="flat"),
    ]
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b"),
             numpy_helper.from_array(np.array(0.5, np.float32), "half"),
             numpy_helper.from_array(np.array(0, np.int64), "zero"),
             numpy_helper.from_array(np.array([0], np.int64), "zeros"),
             numpy_helper.from_array(np.array([-1], np.int64), "minus1")]
    g = helper.make_graph(nodes, "cnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 5, 5])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    model = os.path.join(d, "cnn.onnx")
    onnx.save(m, model)
    x = rng.standard_normal((2, 3, 5, 5)).astype(np.float32)
    np.save(os.path.join(d, "x.npy"), x)
    r = run([KILN, "dump", model])
    assert "kiln.Fused" in r.stdout, r.stdout
    a, bb = roundtrip(model, [os.path.join(d, "x.npy")], d)
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    c = np.zeros((2, 4, 5, 5), np.float64)
    for i in range(5):
        for j in range(5):
            c[:, :, i, j] = np.einsum("nchw,mchw->nm", xp[:, :, i:i + 3, j:j + 3], w)
    c += b[None, :, None, None]
    ref = (1 / (1 + np.exp(-0.5 * c)) + c).reshape(2, -1)
    np.testing.assert_allclose(a, ref, rtol=1e-4, atol=1e-5)
    assert np.array_equal(a, bb)


def test_cse_merges_duplicates_and_threads_agree():
    d = fresh("cse")
    nodes = [helper.make_node("Exp", ["x"], ["a"], name="e1"), helper.make_node("Exp", ["x"], ["b"], name="e2"),
             helper.make_node("MatMul", ["a", "b"], ["y"], name="mm")]
    g = helper.make_graph(nodes, "cse", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [256, 256])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [64, 64])])
    model = os.path.join(d, "cse.onnx")
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), model)
    r = run([KILN, "dump", model, "--after", "cse"])
    assert r.returncode == 0 and r.stdout.count("= Exp") == 1, r.stdout
    r = run([KILN, "dump", model, "--after", "infer"])
    assert r.stdout.count("= Exp") == 2, r.stdout
    x = np.random.default_rng(5).standard_normal((256, 256)).astype(np.float32) * 0.1
    np.save(os.path.join(d, "x.npy"), x)
    exe = os.path.join(d, "m")
    assert run([KILN, "compile", model, "-o", exe]).returncode == 0
    outs = []
    for t in ["1", "2"]:
        od = os.path.join(d, "o" + t)
        r = run([exe, os.path.join(d, "x.npy"), "-o", od, "--threads", t])
        assert r.returncode == 0, r.stderr
        outs.append(np.load(os.path.join(od, "output_0.npy")))
    assert np.array_equal(outs[0], outs[1])
    np.testing.assert_allclose(outs[0], np.exp(x) @ np.exp(x), rtol=1e-4)


def conv2d_ref(x, w, pad):
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    n, c, h, ww = x.shape
    m, _, kh, kw = w.shape
    oh, ow = h + 2 * pad - kh + 1, ww + 2 * pad - kw + 1
    y = np.zeros((n, m, oh, ow))
    for i in range(oh):
        for j in range(ow):
            y[:, :, i, j] = np.einsum("nchw,mchw->nm", xp[:, :, i:i + kh, j:j + kw], w)
    return y


def test_batchnorm_folds_into_conv():
    d = fresh("foldbn")
    rng = np.random.default_rng(9)
    w = rng.standard_normal((6, 3, 3, 3)).astype(np.float32)
    sc, bi, mu, va = [rng.standard_normal(6).astype(np.float32) for _ in range(4)]
    va = np.abs(va) + 0.5
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("BatchNormalization", ["c", "s", "b", "m", "v"], ["bn"], name="bn", epsilon=1e-3),
             helper.make_node("Clip", ["bn", "lo", "hi"], ["y"], name="relu6")]
    inits = [numpy_helper.from_array(a, n) for a, n in [(w, "w"), (sc, "s"), (bi, "b"), (mu, "m"), (va, "v"),
                                                         (np.array(0, np.float32), "lo"), (np.array(0.6, np.float32), "hi")]]
    g = helper.make_graph(nodes, "foldbn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 6, 8, 8])], inits)
    model = os.path.join(d, "m.onnx")
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), model)
    r = run([KILN, "dump", model, "--after", "fold-bn"])
    assert r.returncode == 0 and "BatchNormalization" not in r.stdout and "Conv" in r.stdout, r.stdout
    r = run([KILN, "dump", model, "--after", "fuse"])
    assert "kiln.clip_max = 0.60000002" in r.stdout and "Clip" not in r.stdout.replace("kiln.clip", ""), r.stdout
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    np.save(os.path.join(d, "x.npy"), x)
    for level in ["-O0", "-O2"]:
        exe = os.path.join(d, "m" + level)
        assert run([KILN, "compile", model, "-o", exe, level]).returncode == 0
        r = run([exe, os.path.join(d, "x.npy"), "-o", os.path.join(d, level)])
        assert r.returncode == 0, r.stderr
        got = np.load(os.path.join(d, level, "output_0.npy"))
        c = conv2d_ref(x, w, 1)
        ref = (c - mu[None, :, None, None]) / np.sqrt(va[None, :, None, None] + 1e-3) * sc[None, :, None, None] + bi[None, :, None, None]
        ref = np.clip(ref, 0, np.float32(0.6))
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)


def test_folding_agrees_with_generated_code():
    """The same chains on a graph input (computed by the generated C) and on a
    constant (folded by the compiler's Kir interpreter) must agree bit for bit,
    and with NumPy."""
    d = fresh("fold")
    xf = np.linspace(-3, 3, 64).astype(np.float32)
    xi = np.arange(-32, 32).astype(np.int32)
    xu = np.arange(64).astype(np.uint8)
    def chain(pref, f, i, u):
        return [
            helper.make_node("Sin", [f], [pref + "s"]),
            helper.make_node("Softplus", [pref + "s"], [pref + "sp"]),
            helper.make_node("Selu", [pref + "sp"], [pref + "se"]),
            helper.make_node("HardSigmoid", [pref + "se"], [pref + "_f"], alpha=0.3),
            helper.make_node("Mod", [i, "seven"], [pref + "m"]),
            helper.make_node("Sign", [pref + "m"], [pref + "_i"]),
            helper.make_node("BitShift", [u, "two"], [pref + "_u"], direction="LEFT"),
            helper.make_node("Less", [f, "zero"], [pref + "lt"]),
            helper.make_node("Where", [pref + "lt", f, pref + "_f"], [pref + "_w"]),
        ]
    inits = [numpy_helper.from_array(xf, "cf"), numpy_helper.from_array(xi, "ci"), numpy_helper.from_array(xu, "cu"),
             numpy_helper.from_array(np.array(7, np.int32), "seven"), numpy_helper.from_array(np.array(2, np.uint8), "two"),
             numpy_helper.from_array(np.array(0, np.float32), "zero")]
    nodes = chain("x", "xf", "xi", "xu") + chain("c", "cf", "ci", "cu")
    g = helper.make_graph(nodes, "fold",
                          [helper.make_tensor_value_info("xf", TensorProto.FLOAT, [64]), helper.make_tensor_value_info("xi", TensorProto.INT32, [64]),
                           helper.make_tensor_value_info("xu", TensorProto.UINT8, [64])],
                          [helper.make_tensor_value_info(p + "_" + k, t, [64]) for p in "xc" for k, t in
                           [("f", TensorProto.FLOAT), ("i", TensorProto.INT32), ("u", TensorProto.UINT8), ("w", TensorProto.FLOAT)]], inits)
    model = os.path.join(d, "fold.onnx")
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), model)
    for a, n in [(xf, "xf"), (xi, "xi"), (xu, "xu")]:
        np.save(os.path.join(d, n + ".npy"), a)
    r = run([KILN, "dump", model, "--after", "infer"])
    assert r.returncode == 0 and r.stdout.count("= Mod") == 1 and r.stdout.count("= Selu") == 1, r.stdout  # c chain folded
    exe = os.path.join(d, "m")
    r = run([KILN, "compile", model, "-o", exe])
    assert r.returncode == 0, r.stderr
    r = run([exe] + [os.path.join(d, n + ".npy") for n in ["xf", "xi", "xu"]] + ["-o", d])
    assert r.returncode == 0, r.stderr
    got = [np.load(os.path.join(d, "output_%d.npy" % k)) for k in range(8)]
    for k in range(4):
        assert got[k].tobytes() == got[k + 4].tobytes(), "output %d: folded and computed values differ" % k
    sp = np.log1p(np.exp(np.sin(xf.astype(np.float64))))
    se = 1.0507009873554805 * np.where(sp > 0, sp, 1.6732632423543772 * (np.exp(sp) - 1))
    np.testing.assert_allclose(got[0], np.clip(0.3 * se + 0.5, 0, 1), rtol=1e-5, atol=1e-6)
    assert np.array_equal(got[1], np.sign(np.mod(xi, 7)).astype(np.int32))
    assert np.array_equal(got[2], (xu << 2).astype(np.uint8))
    np.testing.assert_allclose(got[3], np.where(xf < 0, xf, got[0]), rtol=1e-6)


def test_patterns_layernorm_and_matmul_bias():
    """The decomposed LayerNorm becomes one LayerNormalization and MatMul + bias a
    Gemm (at -O2, not at -O1); both give NumPy's result."""
    d = fresh("patterns")
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 6, 16)).astype(np.float32)
    w = rng.standard_normal((16, 16)).astype(np.float32)
    b = rng.standard_normal(16).astype(np.float32)
    gm, bt = rng.standard_normal(16).astype(np.float32), rng.standard_normal(16).astype(np.float32)
    c = lambda n, a: numpy_helper.from_array(np.asarray(a), n)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["mm"]), helper.make_node("Add", ["mm", "b"], ["h"]),
             helper.make_node("ReduceMean", ["h"], ["mu"], axes=[-1]), helper.make_node("Sub", ["h", "mu"], ["dl"]),
             helper.make_node("Pow", ["dl", "two"], ["sq"]), helper.make_node("ReduceMean", ["sq"], ["var"], axes=[-1]),
             helper.make_node("Add", ["var", "eps"], ["ve"]), helper.make_node("Sqrt", ["ve"], ["sd"]),
             helper.make_node("Div", ["dl", "sd"], ["nm"]), helper.make_node("Mul", ["nm", "g"], ["sc"]),
             helper.make_node("Add", ["sc", "bt"], ["y"])]
    g = helper.make_graph(nodes, "ln", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(x.shape))],
                          [c("w", w), c("b", b), c("two", np.float32(2)), c("eps", np.float32(1e-5)), c("g", gm), c("bt", bt)])
    model = os.path.join(d, "ln.onnx")
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), model)
    np.save(os.path.join(d, "x.npy"), x)
    hh = x.astype(np.float64) @ w + b
    mu = hh.mean(-1, keepdims=True)
    want = (hh - mu) / np.sqrt(((hh - mu) ** 2).mean(-1, keepdims=True) + 1e-5) * gm + bt
    for level, fused in (("-O2", True), ("-O1", False)):
        r = run([KILN, "dump", model, level, "--inline-weights"])
        assert r.returncode == 0, r.stderr
        assert ("LayerNormalization" in r.stdout and "Gemm" in r.stdout and "ReduceMean" not in r.stdout) == fused, r.stdout
        exe = os.path.join(d, "ln" + level)
        r = run([KILN, "compile", model, level, "-o", exe])
        assert r.returncode == 0, r.stderr
        r = run([exe, os.path.join(d, "x.npy"), "-o", os.path.join(d, "out" + level)])
        assert r.returncode == 0, r.stderr
        np.testing.assert_allclose(np.load(os.path.join(d, "out" + level, "output_0.npy")), want, rtol=1e-4, atol=1e-4)


def test_patterns_attention():
    """The attention blocks of bench/models.py's attention model become
    kiln.Attention at -O2 (not at -O1), each with the Transposes around it
    read through, except one whose output has another use; written as text IR
    and compiled back, the model gives the same outputs bit for bit."""
    d = fresh("attention")
    r = run([sys.executable, os.path.join(ROOT, "bench", "models.py"), d, "attention"])
    assert r.returncode == 0, r.stderr
    model = os.path.join(d, "attention.onnx")
    for level, count in (("-O2", 5), ("-O1", 0)):
        r = run([KILN, "dump", model, level])
        assert r.returncode == 0, r.stderr
        lines = r.stdout.splitlines()
        assert sum("= kiln.Attention" in l for l in lines) == count, r.stdout
        if count:
            assert [l.split("=")[1].split()[1] for l in lines if "= Transpose" in l] == ['"transpose_22"'], r.stdout
            assert not any("= Softmax" in l or "= MatMul" in l for l in lines), r.stdout
    ins = [os.path.join(d, "attention_in%d.npy" % i) for i in range(16)]
    kir = os.path.join(d, "attention.kir")
    r = run([KILN, "dump", model, "--inline-weights", "-o", kir])
    assert r.returncode == 0, r.stderr
    for src, exe in ((model, "from_onnx"), (kir, "from_kir")):
        r = run([KILN, "compile", src, "-o", os.path.join(d, exe)])
        assert r.returncode == 0, r.stderr
        r = run([os.path.join(d, exe)] + ins + ["-o", os.path.join(d, exe + "_out")])
        assert r.returncode == 0, r.stderr
    for i in range(6):
        a, b = (np.load(os.path.join(d, e + "_out", "output_%d.npy" % i)) for e in ("from_onnx", "from_kir"))
        assert np.array_equal(a, b), i
    # no keys at all: zeros, as MatMul over an empty axis gives
    kz = os.path.join(d, "nokeys.kir")
    open(kz, "w").write('kiln 1\ngraph "g" opset 13 {\n  input %q : f32[1,2,3]\n  input %k : f32[1,3,0]\n  input %v : f32[1,0,4]\n'
                        '  %y : f32[1,2,4] = kiln.Attention "a" (%q, %k, %v)\n  output %y\n}\n')
    for nm, shape in (("q", (1, 2, 3)), ("k", (1, 3, 0)), ("v", (1, 0, 4))):
        np.save(os.path.join(d, nm + ".npy"), np.ones(shape, np.float32))
    r = run([KILN, "compile", kz, "-o", os.path.join(d, "nokeys")])
    assert r.returncode == 0, r.stderr
    r = run([os.path.join(d, "nokeys")] + [os.path.join(d, nm + ".npy") for nm in "qkv"] + ["-o", os.path.join(d, "nokeys_out")])
    assert r.returncode == 0, r.stderr
    assert np.array_equal(np.load(os.path.join(d, "nokeys_out", "output_0.npy")), np.zeros((1, 2, 4), np.float32))


def test_weights_external():
    """--weights external: OUT.weights beside the binary, mapped at create; the
    same outputs as embedded weights; a missing, truncated or foreign weights
    file is refused with a message and nothing is written."""
    d = fresh("extw")
    model, x = mlp_model(d)
    emb, ext = os.path.join(d, "emb"), os.path.join(d, "ext")
    for out, extra in ((emb, []), (ext, ["--weights", "external"])):
        r = run([KILN, "compile", model, "-o", out] + extra)
        assert r.returncode == 0, r.stderr
    w = ext + ".weights"
    data = open(w, "rb").read()[64:]  # after the 64-byte header: the weights themselves
    assert len(data) > 0 and data in open(emb, "rb").read() and data not in open(ext, "rb").read()
    for exe, o in ((emb, "o1"), (ext, "o2")):
        r = run([exe, x, "-o", os.path.join(d, o)])
        assert r.returncode == 0, r.stderr
    a, b = np.load(os.path.join(d, "o1", "output_0.npy")), np.load(os.path.join(d, "o2", "output_0.npy"))
    assert np.array_equal(a, b)
    np.testing.assert_allclose(b, mlp_reference(model, np.load(x)), rtol=1e-4, atol=1e-5)
    good = open(w, "rb").read()
    cases = [(None, "cannot open weights file"), (good[:100], "truncated"), (b"garbage" * 20, "not a kiln weights file"),
             (good[:16] + bytes(8) + good[24:], "another build")]
    for data, needle in cases:
        if os.path.exists(w):
            os.remove(w)
        if data is not None:
            open(w, "wb").write(data)
        r = run([ext, x, "-o", os.path.join(d, "bad")])
        assert r.returncode == 1 and needle in r.stderr, (needle, r.stderr)
        assert not os.path.exists(os.path.join(d, "bad"))
    open(w, "wb").write(good)
    so = os.path.join(d, "libm.so")
    r = run([KILN, "compile", model, "--emit", "so", "-o", so, "--weights", "external", "--name", "m"])
    assert r.returncode == 0, r.stderr
    hdr = open(os.path.join(d, "m.h")).read()
    assert "m_create_with_weights" in hdr and '#define m_WEIGHTS_FILE "libm.so.weights"' in hdr
    assert os.path.exists(so + ".weights")


def test_kiln_run_caches_and_runs():
    d = fresh("krun")
    model, inp = mlp_model(d)
    env = dict(os.environ, KILN_CACHE_DIR=os.path.join(d, "cache"))
    for _ in range(2):
        r = run([KILN, "run", model, inp, "-o", os.path.join(d, "o")], env=env)
        assert r.returncode == 0, r.stderr
    assert len(os.listdir(os.path.join(d, "cache"))) == 1
    np.testing.assert_allclose(np.load(os.path.join(d, "o", "output_0.npy")), mlp_reference(model, np.load(inp)), rtol=1e-4, atol=1e-6)


def test_readme_op_list_is_the_op_table():
    r = run([KILN, "--list-ops"])
    assert r.returncode == 0
    readme = open(os.path.join(ROOT, "README.md")).read()
    assert "\n" + r.stdout.strip() + "\n" in readme, "README's op list differs from kiln --list-ops"


def test_help_and_version():
    r = run([KILN, "--help"])
    assert r.returncode == 0 and "kiln compile MODEL" in r.stdout
    r = run([KILN, "--version"])
    assert r.returncode == 0 and r.stdout.startswith("kiln ")
    r = run([KILN, "compile"])
    assert r.returncode == 2


if __name__ == "__main__":
    rc = main(globals(), "e2e")
    shutil.rmtree(TMP, ignore_errors=True)
    sys.exit(rc)
