"""The bad-input suite: one model or input file per failure mode, each built
here with python3-onnx, with the diagnostic kiln must give. Each case checks the
exit code, that the message is in SPEC's form and says what is wrong, that
nothing crashed (no signal), and that no output file was left behind."""
import os
import shutil
import sys
import tempfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from harness import KILN, ROOT, main, run

ORT = os.path.join(ROOT, "bench", "ort_run.js")

TMP = tempfile.mkdtemp(prefix="kiln-bad-")


def path(name):
    return os.path.join(TMP, name)


def save(model, name):
    p = path(name)
    with open(p, "wb") as f:
        f.write(model.SerializeToString())
    return p


def save_text(name, text):
    p = path(name)
    with open(p, "w") as f:
        f.write(text)
    return p


def graph(nodes, inputs, outputs, inits=(), opset=13):
    g = helper.make_graph(nodes, "bad", inputs, outputs, list(inits))
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def vi(name, shape, t=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, t, shape)


def good_model():
    w = numpy_helper.from_array(np.ones((4, 4), np.float32), "w")
    return graph([helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], [vi("x", [2, 4])], [vi("y", [2, 4])], [w])


def check_compile(model_path, want, code=1, flags=()):
    out = path("out_exe")
    for p in [out, out + ".d", path("out_exe.h")]:
        if os.path.exists(p):
            os.remove(p)
    r = run([KILN, "compile", model_path, "-o", out, "-MD"] + list(flags))
    assert r.returncode == code, "exit %d, want %d: %s" % (r.returncode, code, r.stderr)
    assert model_path in r.stderr and "error:" in r.stderr, r.stderr
    assert want in r.stderr, "want %r in %r" % (want, r.stderr)
    left = [f for f in os.listdir(TMP) if f.startswith("out_exe")]
    assert not left, "output left behind: %s" % left


def test_truncated_onnx():
    data = good_model().SerializeToString()
    p = path("truncated.onnx")
    open(p, "wb").write(data[: len(data) // 2])
    check_compile(p, "truncated or corrupt")


def test_corrupt_onnx():
    p = path("corrupt.onnx")
    open(p, "wb").write(bytes(np.random.default_rng(1).integers(0, 256, 300, dtype=np.uint8)))
    check_compile(p, "not a valid ONNX model")


def test_missing_file():
    check_compile(path("does_not_exist.onnx"), "cannot open")


def test_cycle():
    m = graph([helper.make_node("Relu", ["b"], ["a"], name="r1"), helper.make_node("Relu", ["a"], ["b"], name="r2")],
              [vi("x", [2])], [vi("b", [2])])
    check_compile(save(m, "cycle.onnx"), "cycle")


def test_undefined_input():
    m = graph([helper.make_node("Relu", ["nowhere"], ["y"], name="r")], [vi("x", [2])], [vi("y", [2])])
    check_compile(save(m, "undefined.onnx"), "node 'r' (Relu): error: input 'nowhere' is not defined")


def test_unsupported_op():
    m = graph([helper.make_node("Frobnicate", ["x"], ["y"], name="f")], [vi("x", [2])], [vi("y", [2])])
    check_compile(save(m, "unsupported.onnx"), "node 'f' (Frobnicate): error: unsupported op")


def test_unsupported_opset():
    m = graph([helper.make_node("Relu", ["x"], ["y"], name="r")], [vi("x", [2])], [vi("y", [2])], opset=99)
    check_compile(save(m, "opset.onnx"), "opset 99 is not supported")


def test_shape_mismatch():
    w = numpy_helper.from_array(np.ones((3, 4), np.float32), "w")
    m = graph([helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], [vi("x", [2, 4])], [vi("y", [2, 4])], [w])
    check_compile(save(m, "matmul_shapes.onnx"), "node 'mm' (MatMul): error: inner dimensions differ")


def test_conv_fourth_input():
    """A Conv with a 4th input from a model (only the fuse pass's kiln.residual may add one)."""
    ws = [numpy_helper.from_array(np.ones(a, np.float32), n) for n, a in (("w", (2, 2, 1, 1)), ("b", (2,)), ("r", (1, 2, 3, 3)))]
    m = graph([helper.make_node("Conv", ["x", "w", "b", "r"], ["y"], name="c")], [vi("x", [1, 2, 3, 3])], [vi("y", [1, 2, 3, 3])], ws)
    check_compile(save(m, "conv4.onnx"), "node 'c' (Conv): error: takes at most 3 inputs")


def loop_model(trip, cond_body, body_out_shape=(1,), scan=True):
    """Loop(M=trip, cond=true, y): y <- y + 1, scanned when `scan`; the body's
    condition is cond_body (a node writing 'c_out' from 'i')."""
    f = TensorProto.FLOAT
    one = numpy_helper.from_array(np.ones(body_out_shape, np.float32), "one")
    nodes = [cond_body, helper.make_node("Add", ["y_in", "one"], ["y_out"])]
    outs = [vi("c_out", [], TensorProto.BOOL), vi("y_out", None)]
    if scan:
        nodes.append(helper.make_node("Identity", ["y_out"], ["s"]))
        outs.append(vi("s", None))
    body = helper.make_graph(nodes, "body", [vi("i", [], TensorProto.INT64), vi("c", [], TensorProto.BOOL), vi("y_in", [1])], outs, [one])
    inits = [numpy_helper.from_array(np.array(True), "t")]
    node_ins = ["M", "t", "y"]
    if trip is not None:
        inits.append(numpy_helper.from_array(np.array(trip, np.int64), "M"))
    ins = [vi("y", [1])] + ([] if trip is not None else [vi("M", [], TensorProto.INT64)])
    node_outs = ["yf", "ys"] if scan else ["yf"]
    return graph([helper.make_node("Loop", node_ins, node_outs, name="loop", body=body)], ins,
                 [vi(n, None) for n in node_outs], inits)


def library_refuses_exe_takes(p, want, ins, expect):
    """A model whose shapes depend on an input's contents: a library refuses it
    (the message want, and the way out), an executable reads that input when it
    runs, specializes the model to it, and writes expect ({file: array})."""
    lib = ["--emit", "lib"]
    check_compile(p, want, flags=lib)
    check_compile(p, "an executable (--emit exe) takes such shapes when it runs", flags=lib)
    exe, out = path("rt_exe"), path("rt_exe_out")
    r = run([KILN, "compile", p, "-o", exe])
    assert r.returncode == 0, r.stderr
    files = []
    for i, a in enumerate(ins):
        files.append(path("rt_in%d.npy" % i))
        np.save(files[-1], a)
    shutil.rmtree(out, ignore_errors=True)
    r = run([exe] + files + ["-o", out])
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(out)) == sorted(expect), (os.listdir(out), list(expect))
    for f, e in expect.items():
        got = np.load(os.path.join(out, f))
        assert got.shape == e.shape and got.dtype == e.dtype, (f, got.shape, got.dtype, e.shape, e.dtype)
        np.testing.assert_array_equal(got, e, err_msg=f)


def test_loop_scan_output_needs_constant_trip_count():
    m = loop_model(None, helper.make_node("Identity", ["c"], ["c_out"]))
    y0 = np.zeros(1, np.float32)
    library_refuses_exe_takes(save(m, "loop_m.onnx"), "node 'loop' (Loop): error: input 'M' must be a constant", [y0, np.array(3, np.int64)],
                              {"output_0.npy": np.array([3], np.float32), "output_1.npy": np.array([[1], [2], [3]], np.float32)})


def test_loop_state_changes_shape():
    # (with a constant trip count kiln unrolls such a loop instead: each copy has its own shapes)
    m = loop_model(None, helper.make_node("Identity", ["c"], ["c_out"]), body_out_shape=(2,), scan=False)
    library_refuses_exe_takes(save(m, "loop_shape.onnx"), "state 0 enters the body as f32[1] and leaves it as f32[2]",
                              [np.zeros(1, np.float32), np.array(3, np.int64)], {"output_0.npy": np.array([3, 3], np.float32)})


def test_loop_without_end():
    body = helper.make_graph([helper.make_node("Identity", ["c"], ["c_out"]), helper.make_node("Identity", ["y_in"], ["y_out"])], "body",
                             [vi("i", [], TensorProto.INT64), vi("c", [], TensorProto.BOOL), vi("y_in", [1])],
                             [vi("c_out", [], TensorProto.BOOL), vi("y_out", None)])
    m = graph([helper.make_node("Loop", ["", "", "y"], ["yf"], name="forever", body=body)], [vi("y", [1])], [vi("yf", None)])
    check_compile(save(m, "loop_forever.onnx"), "node 'forever' (Loop): error: a Loop with neither a trip count nor a condition never ends")


def test_subgraph_uses_undefined_value():
    body = helper.make_graph([helper.make_node("Identity", ["nowhere"], ["o"])], "then", [], [vi("o", [1])])
    other = helper.make_graph([helper.make_node("Identity", ["x"], ["o2"])], "else", [], [vi("o2", [1])])
    m = graph([helper.make_node("If", ["c"], ["y"], name="if", then_branch=body, else_branch=other)],
              [vi("c", [], TensorProto.BOOL), vi("x", [1])], [vi("y", [1])])
    check_compile(save(m, "if_undef.onnx"), "'nowhere' is not defined")


def test_if_branches_disagree():
    a = helper.make_graph([helper.make_node("Identity", ["x"], ["o"])], "then", [], [vi("o", None)])
    b = helper.make_graph([helper.make_node("Concat", ["x", "x"], ["o2"], axis=0)], "else", [], [vi("o2", None)])
    m = graph([helper.make_node("If", ["c"], ["y"], name="if", then_branch=a, else_branch=b)],
              [vi("c", [], TensorProto.BOOL), vi("x", [2])], [vi("y", None)])
    x = np.array([1.5, -2], np.float32)
    library_refuses_exe_takes(save(m, "if_types.onnx"), "node 'if' (If): error: the branches give output 0 as f32[2] and f32[4]",
                              [np.array(False), x], {"output_0.npy": np.concatenate([x, x])})


def test_loop_stopped_early_fails_at_run_time():
    """A Loop whose condition ends it before the constant trip count: its scan
    output would be shorter than its static shape, so the run fails (exit 1,
    no output written) instead of returning rows nobody computed."""
    stop = helper.make_node("Less", ["i", "two"], ["c_out"])
    m = loop_model(5, stop)
    m.graph.node[0].attribute[0].g.initializer.append(numpy_helper.from_array(np.array(1, np.int64), "two"))
    exe, out = path("loop_early"), path("loop_early_out")
    r = run([KILN, "compile", save(m, "loop_early.onnx"), "-o", exe])
    assert r.returncode == 0, r.stderr
    np.save(path("y.npy"), np.zeros(1, np.float32))
    r = run([exe, path("y.npy"), "-o", out])
    assert r.returncode == 1 and "run failed" in r.stderr, (r.returncode, r.stderr)
    assert not os.path.exists(os.path.join(out, "output_1.npy"))
    m = loop_model(5, helper.make_node("Identity", ["c"], ["c_out"]))  # the same loop, run in full
    r = run([KILN, "compile", save(m, "loop_full.onnx"), "-o", exe])
    assert r.returncode == 0, r.stderr
    r = run([exe, path("y.npy"), "-o", out])
    assert r.returncode == 0, r.stderr
    np.testing.assert_array_equal(np.load(os.path.join(out, "output_1.npy")), np.arange(1, 6, dtype=np.float32).reshape(5, 1))


def test_sequence_position_not_constant():
    m = graph([helper.make_node("SequenceConstruct", ["x", "x"], ["s"], name="mk"),
               helper.make_node("SequenceAt", ["s", "i"], ["y"], name="at")],
              [vi("x", [2]), vi("i", [], TensorProto.INT64)], [vi("y", [2])])
    x = np.array([1.5, -2], np.float32)
    library_refuses_exe_takes(save(m, "seq_pos.onnx"), "node 'at' (SequenceAt): error: input 'i' must be a constant", [x, np.array(1, np.int64)],
                              {"output_0.npy": x})


def test_sequence_graph_output_and_tensor_op():
    s_out = helper.make_value_info("s", helper.make_sequence_type_proto(helper.make_tensor_type_proto(TensorProto.FLOAT, [2])))
    s_in = helper.make_value_info("q", helper.make_sequence_type_proto(helper.make_tensor_type_proto(TensorProto.FLOAT, [2])))
    m = graph([helper.make_node("SequenceAt", ["q", "i"], ["y"], name="at")], [s_in, vi("i", [], TensorProto.INT64)], [vi("y", [2])])
    p = save(m, "seq_in.onnx")
    check_compile(p, "input 'q' is a sequence: give the shapes of its tensors with --shape q=[D0xD1,D0xD1,...]")
    r = run([KILN, "compile", p, "-o", path("out_exe"), "--shape", "q=[2,2]", "--shape", "i=[1]"])
    assert r.returncode == 1 and "--shape i=[...] gives a sequence, but input 'i' is a tensor" in r.stderr, r.stderr
    m = graph([helper.make_node("SequenceConstruct", ["x"], ["s"], name="mk"), helper.make_node("Relu", ["s"], ["y"], name="r")],
              [vi("x", [2])], [vi("y", [2])])
    check_compile(save(m, "seq_relu.onnx"), "node 'r' (Relu): error: input 's' is a sequence")
    m = graph([helper.make_node("SequenceAt", ["x", "i"], ["y"], name="at")], [vi("x", [2]), vi("i", [], TensorProto.INT64)], [vi("y", [2])])
    check_compile(save(m, "seq_tensor.onnx"), "node 'at' (SequenceAt): error: input 0 must be a sequence")


def test_if_making_sequences_needs_constant_condition():
    def branch(name):
        return helper.make_graph([helper.make_node("SequenceConstruct", ["x"], [name + "_s"])], name, [],
                                 [helper.make_value_info(name + "_s", helper.make_sequence_type_proto(helper.make_tensor_type_proto(TensorProto.FLOAT, [2])))])
    s_out = helper.make_value_info("s", helper.make_sequence_type_proto(helper.make_tensor_type_proto(TensorProto.FLOAT, [2])))
    m = graph([helper.make_node("If", ["c"], ["s"], name="if", then_branch=branch("t"), else_branch=branch("e"))],
              [vi("c", [], TensorProto.BOOL), vi("x", [2])], [s_out])
    x = np.array([1.5, -2], np.float32)
    library_refuses_exe_takes(save(m, "if_seq.onnx"), "node 'if' (If): error: input 'c' must be a constant: a branch makes a sequence or an optional",
                              [np.array(True), x], {"output_0_0.npy": x})


def test_optionals_kiln_cannot_take():
    o_in = helper.make_value_info("o", helper.make_optional_type_proto(helper.make_tensor_type_proto(TensorProto.FLOAT, [2])))
    m = graph([helper.make_node("OptionalGetElement", ["o"], ["y"], name="get")], [o_in], [vi("y", [2])], opset=15)
    p = save(m, "opt_get.onnx")
    check_compile(p, "input 'o' is an optional tensor: give whether it is present, and its shapes, with --shape o=D0xD1 or =none")
    r = run([KILN, "compile", p, "-o", path("out_exe"), "--shape", "o=none"])
    assert r.returncode == 1 and "node 'get' (OptionalGetElement): error: input 'o' is an absent optional" in r.stderr, r.stderr
    m = graph([helper.make_node("Relu", ["o"], ["y"], name="r")], [o_in], [vi("y", [2])], opset=15)
    r = run([KILN, "compile", save(m, "opt_relu.onnx"), "-o", path("out_exe"), "--shape", "o=2"])
    assert r.returncode == 1 and "node 'r' (Relu): error: input 'o' is an optional" in r.stderr, r.stderr
    assert not os.path.exists(path("out_exe"))


def test_run_time_sized_value_consumed():
    m = graph([helper.make_node("NonZero", ["x"], ["nz"], name="nz"), helper.make_node("Cast", ["nz"], ["y"], name="cast", to=1)],
              [vi("x", [4])], [vi("y", None)])
    p = save(m, "nonzero_used.onnx")
    check_compile(p, "node 'cast' (Cast): error: input 'nz' (from NonZero) has a size known only at run time", flags=["--emit", "lib"])
    check_compile(p, "an executable (--emit exe) takes such shapes when it runs", flags=["--emit", "lib"])


def test_dtype_not_accepted():
    m = graph([helper.make_node("Sqrt", ["x"], ["y"], name="s")], [vi("x", [2], TensorProto.INT32)], [vi("y", [2], TensorProto.INT32)])
    check_compile(save(m, "dtype.onnx"), "node 's' (Sqrt): error: dtype i32 is not accepted")


def test_shape_overflow():
    shape = numpy_helper.from_array(np.array([1 << 40, 1 << 40], np.int64), "s")
    m = graph([helper.make_node("ConstantOfShape", ["s"], ["y"], name="big")], [], [vi("y", None)], [shape])
    check_compile(save(m, "overflow.onnx"), "too large")


def test_resize_scale_out_of_range():
    # found by the text-IR fuzz harness: a scale of 6e23 made an output dimension
    # no int64 holds (undefined behaviour in the float-to-int conversion)
    sc = numpy_helper.from_array(np.array([1, 1, 6e23, 0.6], np.float32), "sc")
    m = graph([helper.make_node("Resize", ["x", "", "sc"], ["y"], name="rs", mode="linear")], [vi("x", [1, 1, 2, 4])],
              [vi("y", None)], [sc])
    check_compile(save(m, "resize_huge.onnx"), "node 'rs' (Resize): error: scales make output dimension 2")


def test_attribute_of_wrong_kind():
    # a list holding a float is a float list (the text-IR fuzz harness's -inf in
    # an integer list was converted to int64: undefined behaviour); a Conv's
    # strides must be integers, checked once when the attributes are parsed
    p = save_text("wrong_kind.kir", 'kiln 1\ngraph "g" opset 11 {\n  input %x : f32[1,1,7,5]\n  const %w : f32[1,1,3,3] = [0, 0, 0, 0, 0, 0, 0, 0, 0]\n'
                  '  %y : f32[1,1,5,3] = Conv "c" (%x, %w) {kernel_shape = [3, 3], strides = [-inf, 1]}\n  output %y\n}\n')
    check_compile(p, "node 'c' (Conv): error: attribute 'strides' must be a list of integers, not a list of floats")


def test_integer_constant_out_of_range():
    # the text-IR fuzz harness's inf in an i32 constant was converted to int32
    # (undefined behaviour): a number no element of the dtype holds is an error
    p = save_text("int_range.kir", 'kiln 1\ngraph "g" opset 13 {\n  input %x : f32[2]\n  const %k : i32[2] = [inf, 0]\n'
                  '  %y : f32[2] = Add "a" (%x, %x)\n  output %y\n}\n')
    check_compile(p, "inf does not fit i32")


def test_tensor_data_too_short():
    t = raw_tensor("w", [4, 4], b"\0" * 10)
    m = graph([helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], [vi("x", [2, 4])], [vi("y", [2, 4])], [t])
    check_compile(save(m, "short_raw.onnx"), "raw_data has 10 bytes")


def raw_tensor(name, dims, raw=None):
    t = TensorProto()
    t.name = name
    t.data_type = TensorProto.FLOAT
    t.dims.extend(dims)
    if raw is not None:
        t.raw_data = raw
    return t


def external_model(location, nbytes=64):
    t = raw_tensor("w", [4, 4])
    t.data_location = TensorProto.EXTERNAL
    for k, v in [("location", location), ("offset", "0"), ("length", str(nbytes))]:
        e = t.external_data.add()
        e.key, e.value = k, v
    return graph([helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], [vi("x", [2, 4])], [vi("y", [2, 4])], [t])


def test_external_data_leaves_folder():
    check_compile(save(external_model("../../etc/passwd"), "escape.onnx"), "leaves the model's folder")


def test_external_data_missing():
    check_compile(save(external_model("nothere.bin"), "ext_missing.onnx"), "is missing")


def test_external_data_too_short():
    open(path("short.bin"), "wb").write(b"\0" * 12)
    check_compile(save(external_model("short.bin"), "ext_short.onnx"), "too short")


def test_external_data_ok():
    np.ones((4, 4), np.float32).tofile(path("w.bin"))
    p = save(external_model("w.bin"), "ext_ok.onnx")
    r = run([KILN, "compile", p, "-o", path("ext_ok"), "-MD"])
    assert r.returncode == 0, r.stderr
    assert "w.bin" in open(path("ext_ok.d")).read()


def test_symbolic_input_library_needs_shape():
    """A library is compiled for fixed shapes: a symbolic dimension other than
    the batch is refused (with the way out); an executable takes it from its
    input files (and matches NumPy at two sizes)."""
    m = graph([helper.make_node("Relu", ["x"], ["y"], name="r")], [vi("x", [2, "S"])], [vi("y", [2, "S"])])
    p = save(m, "symbolic.onnx")
    lib = ["--emit", "lib"]
    check_compile(p, "symbolic dimension 1: a library is compiled for fixed shapes", flags=lib)
    check_compile(p, "give them with --shape x=", flags=lib)
    check_compile(p, "an executable (--emit exe) takes such shapes when it runs", flags=lib)
    r = run([KILN, "compile", p, "-o", path("sym.a"), "--shape", "x=2x4"] + lib)
    assert r.returncode == 0, r.stderr
    r = run([KILN, "compile", p, "-o", path("sym")])
    assert r.returncode == 0, r.stderr
    for s in [4, 9]:
        x = np.random.default_rng(s).standard_normal((2, s)).astype(np.float32)
        np.save(path("sym_x.npy"), x)
        r = run([path("sym"), path("sym_x.npy"), "-o", path("sym_out")])
        assert r.returncode == 0, r.stderr
        np.testing.assert_array_equal(np.load(path("sym_out/output_0.npy")), np.maximum(x, 0))


def test_run_time_shapes_bad_inputs():
    """An executable whose shapes are known when it runs: an input of the wrong
    rank or of a fixed dim of another size is refused before anything runs; a
    Reshape to a shape given as an input that does not fit the data fails with
    the node's message; nothing is written either way."""
    n = helper.make_node
    m = graph([n("Reshape", ["x", "s"], ["y"], name="rs")], [vi("x", ["N", 3]), vi("s", [2], TensorProto.INT64)], [vi("y", None)])
    p = save(m, "rt_reshape.onnx")
    exe = path("rt_reshape")
    r = run([KILN, "compile", p, "-o", exe])
    assert r.returncode == 0, r.stderr
    od = path("rt_out")
    for x, sh, want in [((2, 3, 1), [3, 2], "expected f32[?,3], found f32[2,3,1]"),
                        ((2, 4), [4, 2], "expected f32[?,3], found f32[2,4]"),
                        ((2, 3), [4, 2], "node 'rs' (Reshape)")]:
        np.save(path("rt_x.npy"), np.zeros(x, np.float32))
        np.save(path("rt_s.npy"), np.array(sh, np.int64))
        shutil.rmtree(od, ignore_errors=True)
        r = run([exe, path("rt_x.npy"), path("rt_s.npy"), "-o", od])
        assert r.returncode == 1, (x, sh, r.returncode, r.stderr)
        assert want in r.stderr and "error:" in r.stderr, (want, r.stderr)
        assert not os.path.exists(od) or not os.listdir(od)
    np.save(path("rt_x.npy"), np.arange(12, dtype=np.float32).reshape(4, 3))
    np.save(path("rt_s.npy"), np.array([2, 6], np.int64))
    r = run([exe, path("rt_x.npy"), path("rt_s.npy"), "-o", od])
    assert r.returncode == 0, r.stderr
    np.testing.assert_array_equal(np.load(os.path.join(od, "output_0.npy")), np.arange(12, dtype=np.float32).reshape(2, 6))



def batch_case(name, nodes, inits=(), out_type=TensorProto.FLOAT, opset=13):
    m = graph(nodes, [vi("x", ["N", 4])], [vi("y", None, out_type)], inits, opset)
    return save(m, name + ".onnx")


def i64(name, v):
    return numpy_helper.from_array(np.array(v, np.int64), name)


def test_symbolic_batch_that_mixes_samples():
    """A library with a symbolic batch runs once per sample: models where that
    would change the result are refused, naming the node and why (each compiles
    with --shape x=1x4). An executable of each takes the batch when it runs,
    the model specialized to it, and matches ONNX Runtime at a batch of 3."""
    n = helper.make_node
    shape_n = [n("Shape", ["x"], ["s"]), n("Gather", ["s", "z"], ["nn"], axis=0)]
    cases = [
        ("b_softmax", [n("Softmax", ["x"], ["y"], axis=0, name="sm")], [], "node 'sm' (Softmax) normalizes along axis 0, the batch"),
        ("b_cumsum", [n("CumSum", ["x", "z"], ["y"], name="cs")], [i64("z", 0)], "node 'cs' (CumSum) sums along axis 0"),
        ("b_reshape", [n("Reshape", ["x", "s1"], ["y"], name="rs")], [i64("s1", [1, -1])],
         "node 'rs' (Reshape) gives 'y' of f32[1,4] with a batch of 1 but f32[1,8] with a batch of 2"),
        ("b_reduce", [n("ReduceSum", ["x"], ["y"], name="rsum")], [], "node 'rsum' (ReduceSum) gives 'y' of f32[1,1]"),
        ("b_transpose", [n("Transpose", ["x"], ["y"], perm=[1, 0], name="tr")], [], "its dimension 0 is not the batch"),
        ("b_slice", [n("Slice", ["x", "st", "en"], ["y"], name="sl")], [i64("st", [-1]), i64("en", [-100])],
         "node 'sl' (Slice) slices along axis 0"),
        ("b_gather", [n("Gather", ["x", "z"], ["y"], name="ga")], [i64("z", [0])], "node 'ga' (Gather) gathers along axis 0"),
        ("b_range", shape_n + [n("Range", ["z", "nn", "one"], ["r"]), n("Cast", ["r"], ["rf"], to=TensorProto.FLOAT),
                               n("Unsqueeze", ["rf", "one1"], ["ru"]), n("Add", ["x", "ru"], ["y"], name="add")],
         [i64("z", 0), i64("one", 1), i64("one1", [1])], "node 'add' (Add) uses 'ru', computed from the batch size, as data"),
        ("b_shape_out", [n("Shape", ["x"], ["y"])], [], "output 'y' is computed from the batch size"),
        ("b_bcast", [n("Add", ["x", "w"], ["y"], name="ad")], [numpy_helper.from_array(np.ones((3, 4), np.float32), "w")],
         "with a batch of 2, node 'ad' (Add)"),
        # layout 0: the input's dimension 0 is the sequence the state recurs along
        ("b_rnn", [n("Unsqueeze", ["x", "one1"], ["x3"]), n("RNN", ["x3", "rw", "rr"], ["y4"], hidden_size=4, name="rnn"),
                   n("Squeeze", ["y4", "ax12"], ["y"])],
         [i64("one1", [1]), i64("ax12", [1, 2]),
          numpy_helper.from_array(np.random.default_rng(3).standard_normal((1, 4, 4)).astype(np.float32) * 0.5, "rw"),
          numpy_helper.from_array(np.random.default_rng(4).standard_normal((1, 4, 4)).astype(np.float32) * 0.5, "rr")],
         "node 'rnn' (RNN) recurs along axis 0 (the sequence with layout 0), across the batch"),
    ]
    x = np.random.default_rng(7).standard_normal((3, 4)).astype(np.float32)
    np.save(path("b_x.npy"), x)
    for name, nodes, inits, want in cases:
        p = batch_case(name, nodes, inits, TensorProto.INT64 if name == "b_shape_out" else TensorProto.FLOAT)
        check_compile(p, want, flags=["--emit", "lib"])
        check_compile(p, "once per sample, so give the batch with --shape", flags=["--emit", "lib"])
        r = run([KILN, "compile", p, "-o", path("b_ok.a"), "--shape", "x=1x4", "--emit", "lib"])
        assert r.returncode == 0, (name, r.stderr)
        r = run([KILN, "compile", p, "-o", path("b_exe")])
        assert r.returncode == 0, (name, r.stderr)
        for d in ["b_kiln", "b_ort"]:
            shutil.rmtree(path(d), ignore_errors=True)
        r = run([path("b_exe"), path("b_x.npy"), "-o", path("b_kiln")])
        assert r.returncode == 0, (name, r.stderr)
        r = run(["node", ORT, p, "1", "1", path("b_ort"), path("b_x.npy")])
        assert r.returncode == 0, (name, r.stderr)
        a, b = np.load(path("b_kiln/output_0.npy")), np.load(path("b_ort/output_0.npy"))
        assert a.shape == b.shape and a.dtype == b.dtype, (name, a.shape, b.shape, a.dtype, b.dtype)
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=name)


def test_strings_where_kiln_takes_none():
    m = graph([helper.make_node("Add", ["s", "s"], ["y"], name="add")], [vi("s", [3], TensorProto.STRING)], [vi("y", [3], TensorProto.STRING)])
    check_compile(save(m, "string_add.onnx"), "node 'add' (Add): error: input 's' is a string tensor")
    m = graph([helper.make_node("Cast", ["x"], ["y"], to=TensorProto.FLOAT)], [vi("x", [3])], [vi("y", [3])],
              [helper.make_tensor("x", TensorProto.STRING, [3], [b"a", b"b", b"c"])])
    check_compile(save(m, "string_const.onnx"), "string constants are not supported")
    with open(path("s.pb"), "wb") as f:
        f.write(numpy_helper.from_array(np.array(["1"], dtype=object), "n").SerializeToString())
    m = graph([helper.make_node("Cast", ["n"], ["y"], to=TensorProto.FLOAT)], [vi("n", [1], TensorProto.STRING)], [vi("y", [1])])
    p = save(m, "string_bind.onnx")
    r = run([KILN, "compile", p, "-o", path("out_exe"), "--bind", "n=" + path("s.pb")])
    assert r.returncode == 1 and "holds strings" in r.stderr, r.stderr
    assert not os.path.exists(path("out_exe"))


def test_exe_batch_sizes_disagree_or_empty():
    m = graph([helper.make_node("Add", ["x", "y0"], ["y"])], [vi("x", ["N", 4]), vi("y0", ["N", 4])], [vi("y", ["N", 4])])
    exe = path("twobatch")
    r = run([KILN, "compile", save(m, "twobatch.onnx"), "-o", exe])
    assert r.returncode == 0, r.stderr
    for a, b, want in [((2, 4), (3, 4), "input 1 'y0' (%s) has a batch of 3, but input 0 'x' has 2"),
                       ((0, 4), (0, 4), "expected f32[N,4] (N: the batch, 1 or more), found f32[0,4]"),
                       ((2, 5), (2, 4), "expected f32[N,4] (N: the batch, 1 or more), found f32[2,5]")]:
        np.save(path("ba.npy"), np.zeros(a, np.float32))
        np.save(path("bb.npy"), np.zeros(b, np.float32))
        od = path("exe_out")
        shutil.rmtree(od, ignore_errors=True)
        r = run([exe, path("ba.npy"), path("bb.npy"), "-o", od])
        assert r.returncode == 1, (r.returncode, r.stderr)
        assert want.replace("%s", path("bb.npy")) in r.stderr, (want, r.stderr)
        assert not os.path.exists(od) or not os.listdir(od)


def test_bad_kir_text():
    p = path("bad.kir")
    open(p, "w").write("kiln 1\ngraph \"g\" opset 13 {\n  input %x : f32[2]\n  %y : f32[2] = Relu \"r\" (%x\n}\n")
    check_compile(p, "line")


def test_kir_attention_malformed():
    """kiln.Attention written by hand: perms that are no permutation, a K whose
    shape does not fit, a scale_op out of range: a clear error, no output."""
    for kdims, attrs in [("7,4", "{k_perm = [0, 2, 2]}"), ("7,4", "{k_perm = [0, 2]}"), ("7,4", "{q_perm = [0, 2, 9]}"),
                         ("7,5", "{k_perm = [0, 2, 1]}"), ("4,7", "{scale_op = 7}"), ("4,7", "{out_perm = [0, 2, 1]}")]:
        p = path("attn.kir")
        open(p, "w").write('kiln 1\ngraph "g" opset 13 {\n  input %q : f32[2,5,4]\n  input %k : f32[2,' + kdims + ']\n'
                           '  input %v : f32[2,7,3]\n  %y : f32[2,5,3] = kiln.Attention "a" (%q, %k, %v) ' + attrs +
                           '\n  output %y\n}\n')
        check_compile(p, "kiln.Attention needs float q")


def test_kir_constant_larger_than_its_text():
    p = path("huge.kir")
    open(p, "w").write('kiln 1\ngraph "g" opset 13 {\n  input %x : f32[2]\n  const %w : f32[8000000000] = [1, 2]\n'
                       '  %y : f32[2] = Add "a" (%x, %x)\n  output %y\n}\n')
    check_compile(p, "the constant's shape holds more elements than the text gives")
    open(path("w.bin"), "wb").write(b"1234")
    p = path("huge_blob.kir")
    open(p, "w").write('kiln 1\ngraph "g" opset 13 {\n  input %x : f32[2]\n  const %w : f32[8000000000] = blob "w.bin" 0 32000000000\n'
                       '  %y : f32[2] = Add "a" (%x, %x)\n  output %y\n}\n')
    check_compile(p, "is too short for a blob")


def test_usage_errors():
    for args in [["compile", path("x.onnx"), "--emit", "nope"], ["compile", path("x.onnx"), "-O7"], ["frob"],
                 ["compile", path("x.onnx"), "--shape", "x=2y3"], ["compile", path("x.onnx"), "--shape", "x=2xN"]]:
        r = run([KILN] + args)
        assert r.returncode == 2, (args, r.returncode, r.stderr)
        assert "error" in r.stderr


def compiled_good():
    p = save(good_model(), "good.onnx")
    exe = path("good")
    r = run([KILN, "compile", p, "-o", exe])
    assert r.returncode == 0, r.stderr
    return exe


def check_exe(args, want):
    od = path("exe_out")
    shutil.rmtree(od, ignore_errors=True)
    r = run([compiled_good()] + args + ["-o", od])
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert want in r.stderr, "want %r in %r" % (want, r.stderr)
    assert not os.path.exists(od) or not os.listdir(od), "outputs written by a failed run"


def test_exe_wrong_shape():
    np.save(path("wrong.npy"), np.zeros((3, 4), np.float32))
    check_exe([path("wrong.npy")], "expected f32[2,4], found f32[3,4]")


def test_exe_wrong_dtype():
    np.save(path("wrongt.npy"), np.zeros((2, 4), np.float64))
    check_exe([path("wrongt.npy")], "expected f32[2,4], found f64[2,4]")


def test_exe_wrong_count():
    check_exe([], "expected 1 input file, got 0")


def test_exe_truncated_npy():
    np.save(path("t.npy"), np.zeros((2, 4), np.float32))
    data = open(path("t.npy"), "rb").read()
    open(path("t.npy"), "wb").write(data[:-5])
    check_exe([path("t.npy")], "truncated")


def test_exe_corrupt_pb():
    open(path("c.pb"), "wb").write(b"\x0a\xff\xff\xff")
    check_exe([path("c.pb")], "corrupt or truncated TensorProto")


def test_exe_pb_shape_larger_than_its_data():
    # dims [2^40] with 4 bytes of raw_data (found by tests/fuzz: the reader took
    # the shape's 4 TB before finding the data short)
    t = onnx.TensorProto()
    t.dims.extend([1 << 40])
    t.data_type = TensorProto.FLOAT
    t.raw_data = b"\0" * 4
    open(path("huge.pb"), "wb").write(t.SerializeToString())
    check_exe([path("huge.pb")], "raw_data has 4 bytes, shape needs 4398046511104")
    t.ClearField("raw_data")
    t.float_data.extend([1.0, 2.0])
    open(path("huge2.pb"), "wb").write(t.SerializeToString())
    check_exe([path("huge2.pb")], "tensor has 2 values, shape needs 1099511627776")


def test_exe_npy_string_width_overflow():
    # a width that overflowed when multiplied by 4 (found by tests/fuzz)
    hdr = "{'descr': '<U99999999999999999999', 'fortran_order': False, 'shape': (2, 4), }"
    hdr += " " * (63 - (10 + len(hdr)) % 64) + "\n"
    open(path("wide.npy"), "wb").write(b"\x93NUMPY\x01\x00" + len(hdr).to_bytes(2, "little") + hdr.encode())
    check_exe([path("wide.npy")], "unsupported .npy string width")


def test_kernel_failure_names_the_step():
    """A kernel that cannot compute its output (a Gather index out of range,
    an error in ONNX) fails the run: the executable exits 1 naming the step,
    writes nothing, with both backends, at -O3 (kernels inlined), and when the
    shapes are taken at run time; with constant indices the shape rule refuses it."""
    def model(name, ishape, xshape=(4, 3), const_idx=None):
        inits = [numpy_helper.from_array(np.array(const_idx, np.int64), "i")] if const_idx is not None else []
        ins = [vi("x", list(xshape))] + ([] if const_idx is not None else [vi("i", ishape, TensorProto.INT64)])
        m = graph([helper.make_node("Gather", ["x", "i"], ["y"], axis=0, name="gather_ids")], ins, [vi("y", None)], inits)
        return save(m, name + ".onnx")
    np.save(path("g_x.npy"), np.ones((4, 3), np.float32))
    np.save(path("g_bad.npy"), np.array([1, 7], np.int64))
    np.save(path("g_ok.npy"), np.array([1, -1], np.int64))
    want = "the run failed at step node 'gather_ids' (Gather) [gather]: an index is out of range"
    for name, shape, flags in [("g_static", [2], []), ("g_llvm", [2], ["--backend", "llvm"]), ("g_o3", [2], ["-O3"]),
                               ("g_llvm_o3", [2], ["--backend", "llvm", "-O3"]), ("g_dyn", ["n"], [])]:
        exe = path(name)
        r = run([KILN, "compile", model(name, shape), "-o", exe] + flags)
        assert r.returncode == 0, (name, r.stderr)
        od = path(name + "_out")
        r = run([exe, path("g_x.npy"), path("g_bad.npy"), "-o", od])
        assert r.returncode == 1 and want in r.stderr, (name, r.returncode, r.stderr)
        assert not os.path.exists(od) or not os.listdir(od), name
        r = run([exe, path("g_x.npy"), path("g_ok.npy"), "-o", od])
        assert r.returncode == 0, (name, r.stderr)
        np.testing.assert_array_equal(np.load(os.path.join(od, "output_0.npy")), np.ones((2, 3), np.float32))
    check_compile(model("g_const", None, const_idx=[0, 9]), "node 'gather_ids' (Gather): error: index 9 is out of range")


def test_exe_missing_input():
    check_exe([path("nope.npy")], "cannot open")


if __name__ == "__main__":
    rc = main(globals(), "bad-input")
    shutil.rmtree(TMP, ignore_errors=True)
    sys.exit(rc)
