"""ONNX conformance runner: compiles every model of Debian's libonnx-testdata
suites with kiln, runs it on each test_data_set, and compares the outputs with the
expected ones (rtol 1e-3, atol 1e-4 for floats; exact for integers and bool).

  conformance.py [--jobs N] [--expected FILE] [--update] [--only SUBSTR] [--flags F]
                 [--sample K] [--emulator CMD]

Prints one line per suite (passed / total) and, with --expected, fails when a
test named in that list no longer passes. --update rewrites the list.
--flags adds kiln compile flags (`--backend llvm`, `--target aarch64-linux-gnu`);
--sample K runs every K-th test of the expected list only; --emulator runs each
binary through CMD (qemu-aarch64 for cross-compiled ones)."""
import argparse
import concurrent.futures as cf
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import numpy_helper

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = "/usr/share/libonnx-testdata/data"
SUITES = ["node", "pytorch-converted", "pytorch-operator", "simple"]
KILN = os.path.join(ROOT, os.environ.get("KILN_BUILD", "build"), "bin", "kiln")


def load_pb(path):
    t = onnx.TensorProto()
    with open(path, "rb") as f:
        t.ParseFromString(f.read())
    if t.data_type == onnx.TensorProto.BFLOAT16:
        if t.raw_data:
            bits = np.frombuffer(t.raw_data, dtype=np.uint16)
        else:
            bits = np.array(t.int32_data, dtype=np.uint16)
        return (bits.astype(np.uint32) << 16).view(np.float32).reshape(tuple(t.dims))
    return numpy_helper.to_array(t)


def bf16_bits(path):
    t = onnx.TensorProto()
    with open(path, "rb") as f:
        t.ParseFromString(f.read())
    if t.data_type != onnx.TensorProto.BFLOAT16:
        return None
    return np.frombuffer(t.raw_data, dtype=np.uint16).reshape(tuple(t.dims))


def compare(got, want, got_bf16_bits=None):
    if want.dtype == np.uint16 and got_bf16_bits is not None:
        got = got_bf16_bits  # the suite stores bfloat16 tensors as their uint16 bits
    if got.shape != want.shape:
        return "shape %s, expected %s" % (got.shape, want.shape)
    if want.dtype.kind in "fc":
        g = got.astype(np.float64)
        w = want.astype(np.float64)
        if not np.allclose(g, w, rtol=1e-3, atol=1e-4, equal_nan=True):
            err = np.nanmax(np.abs(g - w)) if g.size else 0
            return "values differ (max abs error %g)" % err
        return None
    if got.dtype != want.dtype and not (want.dtype == np.bool_ and got.dtype == np.bool_):
        return "dtype %s, expected %s" % (got.dtype, want.dtype)
    if not np.array_equal(got, want):
        return "values differ"
    return None


def load_sequence(path):
    s = onnx.SequenceProto()
    with open(path, "rb") as f:
        s.ParseFromString(f.read())
    return [numpy_helper.to_array(t) for t in s.tensor_values]


def dims_text(t):
    """A tensor's shape as --shape writes it inside a sequence's list (a scalar: "()")."""
    return "x".join(str(d) for d in t.shape) if t.shape else "()"


def load_optional(path):
    """(0, None) absent, (1, tensor), or (3, [tensors])."""
    o = onnx.OptionalProto()
    with open(path, "rb") as f:
        o.ParseFromString(f.read())
    if o.elem_type == 1:
        return 1, numpy_helper.to_array(o.tensor_value)
    if o.elem_type == 3:
        return 3, [numpy_helper.to_array(t) for t in o.sequence_value.tensor_values]
    return 0, None


def optional_names(model_path):
    m = onnx.load(model_path, load_external_data=False)
    return {v.name for v in list(m.graph.input) + list(m.graph.output) if v.type.HasField("optional_type")}


def sequence_names(model_path):
    """The model's graph inputs and outputs of sequence type."""
    m = onnx.load(model_path, load_external_data=False)
    return {v.name for v in list(m.graph.input) + list(m.graph.output) if v.type.HasField("sequence_type")}


def graph_inputs(model_path):
    m = onnx.load(model_path, load_external_data=False)
    inits = {t.name for t in m.graph.initializer}
    return [i.name for i in m.graph.input if i.name not in inits]


def compile_for(tdir, ds, exe, extra_flags):
    """Compiles with input shapes taken from data set ds (as symbolic dims are).
    Inputs whose contents decide shapes (a Reshape's shape, Range's limit, a
    Loop's trip count) are read by the executable when it runs, which then
    specializes the model to them; only where kiln cannot do that (a model
    with sequence inputs) and the compile fails for want of a constant, those
    inputs are bound to ds's values (--bind), as a user would. Returns (error
    or None, names of the bound inputs)."""
    model = os.path.join(tdir, "model.onnx")
    names = graph_inputs(model)
    files = {n: os.path.join(ds, "input_%d.pb" % i) for i, n in enumerate(names)}
    flags = []
    seqs, opts = sequence_names(model), optional_names(model)
    for n, f in files.items():
        if os.path.exists(f) and n in seqs:  # a sequence: the shapes of its tensors
            flags += ["--shape", "%s=[%s]" % (n, ",".join(dims_text(t) for t in load_sequence(f)))]
        elif os.path.exists(f) and n in opts:  # an optional: absent, a tensor's shape, or a sequence's
            kind, v = load_optional(f)
            spec = "none" if kind == 0 else "x".join(str(d) for d in v.shape) if kind == 1 else "[%s]" % ",".join(dims_text(t) for t in v)
            flags += ["--shape", "%s=%s" % (n, spec)]
        elif os.path.exists(f):
            flags += ["--shape", "%s=%s" % (n, "x".join(str(d) for d in load_pb(f).shape))]
    bound = []
    for _ in range(8):
        cmd = [KILN, "compile", model, "-o", exe] + flags + extra_flags
        p = subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=300)
        if p.returncode == 0:
            return None, bound
        msg = (p.stderr.strip().splitlines() or ["?"])[0]
        m = re.search(r"input '([^']+)' must be a constant", msg)
        if not m or m.group(1) in bound:
            return msg, bound
        want = [m.group(1)] if m.group(1) in files else []
        if not want:  # computed from graph inputs: bind the small integer ones (sizes, counts), as a user would
            want = [n for n, f in files.items() if n not in bound and os.path.exists(f)
                    and load_pb(f).dtype.kind in "iu" and load_pb(f).size <= 16]
        if not want:  # then scalars of any kind (a trip count computed from float bounds, a loop condition)
            want = [n for n, f in files.items() if n not in bound and os.path.exists(f)
                    and load_pb(f).dtype.kind in "iufb" and load_pb(f).size == 1]
        if not want:
            return msg, bound
        for n in want:
            bound.append(n)
            flags += ["--bind", "%s=%s" % (n, files[n])]
    return msg, bound


EMULATOR = []


def run_test(test, workdir, extra_flags):
    try:
        return run_test1(test, workdir, extra_flags)
    except Exception as e:  # unreadable test data (sequences, ...), timeouts
        return test, False, "runner: %r" % e


def run_test1(test, workdir, extra_flags):
    suite, name = test.split("/")
    tdir = os.path.join(DATA, suite, name)
    exe = os.path.join(workdir, suite + "__" + name)
    sets = sorted(glob.glob(os.path.join(tdir, "test_data_set_*")))
    names = graph_inputs(os.path.join(tdir, "model.onnx"))
    for ds in sets:
        err, bound = compile_for(tdir, ds, exe, extra_flags)
        if err:
            return test, False, "compile: " + err
        ins = sorted(glob.glob(os.path.join(ds, "input_*.pb")), key=lambda s: int(s.rsplit("_", 1)[1][:-3]))
        ins = [f for i, f in enumerate(ins) if i >= len(names) or names[i] not in bound]
        outs = sorted(glob.glob(os.path.join(ds, "output_*.pb")), key=lambda s: int(s.rsplit("_", 1)[1][:-3]))
        odir = exe + "_out"
        shutil.rmtree(odir, ignore_errors=True)
        p = subprocess.run(EMULATOR + [exe] + ins + ["-o", odir, "--format", "pb", "--threads", "1"], capture_output=True, text=True, errors="replace", timeout=300)
        if p.returncode != 0:
            return test, False, "run: " + (p.stderr.strip().splitlines() or ["?"])[0]
        m = onnx.load(os.path.join(tdir, "model.onnx"), load_external_data=False)
        out_seq = [v.type.HasField("sequence_type") for v in m.graph.output]
        out_opt = [v.type.HasField("optional_type") for v in m.graph.output]
        for k, o in enumerate(outs):
            got_path = os.path.join(odir, "output_%d.pb" % k)
            if not os.path.exists(got_path):
                return test, False, "output %d missing" % k
            if k < len(out_opt) and out_opt[k]:  # an OptionalProto: presence, then the element
                (gk, gv), (wk, wv) = load_optional(got_path), load_optional(o)
                why = "optional kind %d, expected %d" % (gk, wk) if gk != wk else None
                if not why and wk == 1:
                    why = compare(gv, wv)
                if not why and wk == 3:
                    why = "%d tensors, expected %d" % (len(gv), len(wv)) if len(gv) != len(wv) else None
                    for a, b in zip(gv, wv):
                        why = why or compare(a, b)
            elif k < len(out_seq) and out_seq[k]:  # a SequenceProto: tensor by tensor
                got, want = load_sequence(got_path), load_sequence(o)
                why = "%d tensors, expected %d" % (len(got), len(want)) if len(got) != len(want) else None
                for a, b in zip(got, want):
                    why = why or compare(a, b)
            else:
                why = compare(load_pb(got_path), load_pb(o), bf16_bits(got_path))
            if why:
                return test, False, "%s output %d: %s" % (os.path.basename(ds), k, why)
        shutil.rmtree(odir, ignore_errors=True)
    os.remove(exe)
    return test, True, ""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--expected")
    ap.add_argument("--update", action="store_true")
    ap.add_argument("--only")
    ap.add_argument("--flags", default="", help="extra kiln compile flags")
    ap.add_argument("--sample", type=int, default=0, help="every K-th test of the expected list")
    ap.add_argument("--emulator", default="", help="command that runs the compiled binaries")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args()
    EMULATOR[:] = a.emulator.split()
    tests = []
    for s in SUITES:
        for t in sorted(os.listdir(os.path.join(DATA, s))):
            if os.path.exists(os.path.join(DATA, s, t, "model.onnx")):
                tests.append(s + "/" + t)
    if a.only:
        tests = [t for t in tests if a.only in t]
    expected = []
    if a.expected and os.path.exists(a.expected):
        with open(a.expected) as f:
            expected = [l.strip() for l in f if l.strip() and not l.startswith("#")]
    if a.sample:
        tests = [t for t in expected[::a.sample] if t in tests]
    work = tempfile.mkdtemp(prefix="kiln-conf-")
    results = {}
    with cf.ThreadPoolExecutor(a.jobs) as ex:
        futs = [ex.submit(run_test, t, work, a.flags.split()) for t in tests]
        for f in cf.as_completed(futs):
            try:
                t, ok, why = f.result()
            except Exception as e:  # a timeout or a crash of the runner itself
                t, ok, why = "?", False, repr(e)
            results[t] = (ok, why)
            if a.verbose and not ok:
                print("FAIL %s: %s" % (t, why))
    shutil.rmtree(work, ignore_errors=True)
    for s in SUITES:
        st = [t for t in tests if t.startswith(s + "/")]
        if st:
            print("conformance %-18s %4d / %4d passed" % (s, sum(results.get(t, (False,))[0] for t in st), len(st)))
    failed = 0
    if a.expected and not a.update:
        for t in expected:
            if t in results and not results[t][0]:
                print("REGRESSION %s: %s" % (t, results[t][1]))
                failed += 1
        newly = [t for t in tests if results[t][0] and t not in expected] if not a.sample else []
        for t in newly:
            print("newly passing (add to %s): %s" % (os.path.basename(a.expected), t))
        checked = [t for t in expected if t in results]
        print("conformance expected-pass list: %d passed, %d failed" % (len(checked) - failed, failed))
    if a.update and a.expected:
        with open(a.expected, "w") as f:
            f.write("# Conformance tests kiln must pass (tests/conformance.py --update rewrites this).\n")
            for t in tests:
                if results[t][0]:
                    f.write(t + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
