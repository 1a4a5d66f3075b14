"""The LLVM backend and cross-compilation for 64-bit ARM: every output kind of
`--backend llvm` (exe, obj, so, lib linked into a C program by make, ll), its
outputs against NumPy, external weights, -O0, usage errors, and binaries for
aarch64-linux-gnu (both backends) run under qemu-aarch64 and checked against
NumPy. (The whole conformance suite runs under both backends and on ARM in
tests/conformance.py; the realistic models in tests/ort_compare.py.)"""
import os
import shutil
import struct
import sys
import tempfile

import numpy as np

from harness import KILN, ROOT, main, run
import e2e
from e2e import mlp_model, mlp_reference

TMP = tempfile.mkdtemp(prefix="kiln-backends-")
QEMU = ["qemu-aarch64", "-L", "/usr/aarch64-linux-gnu"]
ARM = ["--target", "aarch64-linux-gnu"]
LLVM = ["--backend", "llvm"]


def fresh(name):
    d = os.path.join(TMP, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d


def elf_machine(path):
    with open(path, "rb") as f:
        head = f.read(20)
    assert head[:4] == b"\x7fELF", path
    return struct.unpack("<H", head[18:20])[0]  # 62 x86-64, 183 AArch64


def compile_run(model, inp, d, flags, emulator=()):
    exe = os.path.join(d, "m")
    r = run([KILN, "compile", model, "-o", exe] + flags)
    assert r.returncode == 0, r.stderr
    r = run(list(emulator) + [exe, inp, "-o", os.path.join(d, "out")])
    assert r.returncode == 0, r.stderr
    return exe, np.load(os.path.join(d, "out", "output_0.npy"))


def test_llvm_exe_matches_numpy_at_each_level():
    d = fresh("llvm_exe")
    model, inp = mlp_model(d)
    for lvl in ["-O0", "-O2", "-O3"]:
        exe, got = compile_run(model, inp, d, LLVM + [lvl])
        np.testing.assert_allclose(got, mlp_reference(model, np.load(inp)), rtol=1e-4, atol=1e-6)
        assert elf_machine(exe) == 62


def test_llvm_emit_ll_obj_so():
    d = fresh("llvm_emit")
    model, _ = mlp_model(d)
    for kind, out in [("obj", "m.o"), ("so", "libm.so"), ("ll", "m1.ll"), ("ll", "m2.ll")]:
        r = run([KILN, "compile", model, "--emit", kind, "-o", os.path.join(d, out), "--name", "m"] + LLVM)
        assert r.returncode == 0, (kind, r.stderr)
    assert os.path.exists(os.path.join(d, "m.h"))
    ll = open(os.path.join(d, "m1.ll")).read()
    assert "define i32 @m_run(" in ll and "target triple" in ll
    assert ll == open(os.path.join(d, "m2.ll")).read(), "--emit ll is not deterministic"
    r = run(["nm", os.path.join(d, "m.o")])
    for sym in [" T m_run", " T m_create", " T m_destroy", " D m_inputs"]:
        assert sym in r.stdout, (sym, r.stdout)
    r = run(["nm", "-D", os.path.join(d, "libm.so")])
    assert " T m_run" in r.stdout
    # --emit ll without -o is MODEL.ll here; --backend llvm is implied
    r = run([KILN, "compile", model, "--emit", "ll"], cwd=d)
    assert r.returncode == 0 and os.path.exists(os.path.join(d, "mlp.ll")), r.stderr


def embed_demo(d, kflags, cc, emulator=()):
    shutil.copytree(os.path.join(ROOT, "examples", "embed"), os.path.join(d, "embed"))
    model, inp = mlp_model(d)
    mk = ["make", "-C", os.path.join(d, "embed"), "KILN=" + KILN, "MODEL=" + model, "KFLAGS=" + " ".join(kflags), "CC=" + cc]
    r = run(mk)
    assert r.returncode == 0, r.stdout + r.stderr
    x = np.load(inp)
    x.tofile(os.path.join(d, "in.f32"))
    r = run(list(emulator) + [os.path.join(d, "embed", "demo"), os.path.join(d, "in.f32"), os.path.join(d, "out.f32")])
    assert r.returncode == 0, r.stderr
    got = np.fromfile(os.path.join(d, "out.f32"), dtype=np.float32).reshape(2, 4)
    np.testing.assert_allclose(got, mlp_reference(model, x), rtol=1e-4, atol=1e-6)


def test_llvm_lib_links_into_c_program():
    embed_demo(fresh("llvm_lib"), LLVM, os.environ.get("CC", "cc"))  # the sanitizer build links with its CC


def test_llvm_external_weights():
    d = fresh("llvm_extw")
    model, inp = mlp_model(d)
    exe, got = compile_run(model, inp, d, LLVM + ["--weights", "external"])
    assert os.path.getsize(exe + ".weights") > 64
    np.testing.assert_allclose(got, mlp_reference(model, np.load(inp)), rtol=1e-4, atol=1e-6)
    os.remove(exe + ".weights")
    r = run([exe, inp, "-o", os.path.join(d, "bad")])
    assert r.returncode == 1 and "cannot open weights file" in r.stderr, r.stderr


def test_backends_compute_the_same_bits():
    """Both backends call the same kernels and the same scalar functions
    (inlined from bitcode by LLVM): the outputs agree bit for bit, and with NumPy."""
    d = fresh("same_bits")
    model, inp = mlp_model(d)
    outs = []
    for flags in ([], LLVM):
        _, got = compile_run(model, inp, d, flags)
        outs.append(got)
    np.testing.assert_allclose(outs[0], mlp_reference(model, np.load(inp)), rtol=1e-4, atol=1e-6)
    assert np.array_equal(outs[0], outs[1])


def test_x86_64_triple_named():
    """--target x86_64-linux-gnu (this machine's own triple, named) builds with
    the runtime of lib/ for any x86-64, with both backends: the same bits as
    the host build, and NumPy's result."""
    d = fresh("x86_triple")
    model, inp = mlp_model(d)
    _, host = compile_run(model, inp, d, [])
    for flags in (["--target", "x86_64-linux-gnu"], ["--target", "x86_64-linux-gnu"] + LLVM):
        exe, got = compile_run(model, inp, d, flags)
        assert elf_machine(exe) == 62, flags
        np.testing.assert_allclose(got, mlp_reference(model, np.load(inp)), rtol=1e-4, atol=1e-6)
        assert np.array_equal(got, host), flags


def test_aarch64_exe_under_qemu_both_backends():
    d = fresh("arm_exe")
    model, inp = mlp_model(d)
    for flags in (ARM, ARM + LLVM):
        exe, got = compile_run(model, inp, d, flags, QEMU)
        assert elf_machine(exe) == 183, flags
        np.testing.assert_allclose(got, mlp_reference(model, np.load(inp)), rtol=1e-4, atol=1e-6)


def test_aarch64_O3_kernels_inlined_both_backends():
    d = fresh("arm_o3")
    model, inp = mlp_model(d)
    for flags in (ARM + ["-O3"], ARM + LLVM + ["-O3"]):
        exe, got = compile_run(model, inp, d, flags, QEMU)
        assert elf_machine(exe) == 183
        np.testing.assert_allclose(got, mlp_reference(model, np.load(inp)), rtol=1e-4, atol=1e-6)


def test_c_backend_O3_compiles_the_kernels_in():
    """-O3 with the C backend: the kernels' sources are compiled into the model's
    file as one whole program, every kernel call inlined (no call to a kiln_k_*
    function is left in the executable), and the results are -O2's."""
    d = fresh("c_o3")
    model, inp = mlp_model(d)
    outs = {}
    for lvl in ("-O2", "-O3"):
        exe, outs[lvl] = compile_run(model, inp, d, [lvl])
        dis = run(["objdump", "-d", "--no-show-raw-insn", exe]).stdout
        calls = [l for l in dis.splitlines() if "call" in l and "<kiln_k_" in l]
        assert bool(calls) == (lvl == "-O2"), (lvl, calls[:3])
    np.testing.assert_allclose(outs["-O3"], mlp_reference(model, np.load(inp)), rtol=1e-4, atol=1e-6)
    assert np.array_equal(outs["-O2"], outs["-O3"])


def test_O3_links_the_kernels_into_the_model():
    """-O3: the runtime kernels' bitcode is linked into the model's object and
    inlined (no kiln_k_* left to call in libkilnrt.a); -O2 calls the library's."""
    d = fresh("o3_kernels")
    model, _ = mlp_model(d)
    for lvl, want in (("-O2", True), ("-O3", False)):
        obj = os.path.join(d, "m%s.o" % lvl)
        r = run([KILN, "compile", model, "--emit", "obj", "-o", obj, "--name", "m"] + LLVM + [lvl])
        assert r.returncode == 0, r.stderr
        undefined = [l.split()[-1] for l in run(["nm", "-u", obj]).stdout.splitlines()]
        assert ("kiln_k_gemm" in undefined) == want, (lvl, undefined)


def test_aarch64_lib_links_with_cross_gcc():
    embed_demo(fresh("arm_lib"), ARM + LLVM, "aarch64-linux-gnu-gcc", QEMU)


def test_usage_errors():
    d = fresh("usage")
    model, _ = mlp_model(d)
    cases = [(["--emit", "c", "--backend", "llvm"], "--emit c is the C backend's output"),
             (["--emit", "ll", "--backend", "c"], "--emit ll is the LLVM backend's output"),
             (["--backend", "gcc"], "--backend takes c or llvm"),
             (["--target", "riscv64-linux-gnu"], "unknown triple")]
    for flags, needle in cases:
        out = os.path.join(d, "x")
        r = run([KILN, "compile", model, "-o", out] + flags)
        assert r.returncode == 2 and needle in r.stderr, (flags, r.stderr)
        assert not os.path.exists(out)


def test_missing_bitcode_is_an_error():
    """A kiln whose runtime folder lacks the bitcode says so (no crash, no output)."""
    d = fresh("nobc")
    model, _ = mlp_model(d)
    home = os.path.join(d, "home")
    build = os.path.dirname(os.path.dirname(KILN))
    shutil.copytree(os.path.join(build, "include"), os.path.join(home, "include"))
    os.makedirs(os.path.join(home, "lib"))
    out = os.path.join(d, "m")
    r = run([KILN, "compile", model, "-o", out] + LLVM, env=dict(os.environ, KILN_HOME=home))
    assert r.returncode == 1 and "kiln_scalar.bc" in r.stderr, r.stderr
    assert not os.path.exists(out)


if __name__ == "__main__":
    rc = main(globals(), "backends")
    shutil.rmtree(TMP, ignore_errors=True)
    shutil.rmtree(e2e.TMP, ignore_errors=True)
    sys.exit(rc)
