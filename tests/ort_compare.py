"""Realistic models (bench/models.py: an MLP, a ResNet-18-style CNN, a
MobileNetV2-style depthwise CNN, a BERT-style encoder with decomposed LayerNorm,
GELU and attention, a detection-style net with Resize and Concat, an LSTM
sequence model: bidirectional, stacked, with sequence lengths; and kernel
edge cases: depthwise convolutions on odd, small and narrow planes, direct convolutions of few input channels, chunked
2-D and 3-D convolutions, 3x3 ones on the Winograd path; control flow: Scan, Loop, If, nested, with captured
values; TfIdfVectorizer in TFIDF and IDF modes; the sequence ops; NonMaxSuppression, NonZero and Unique,
whose outputs are sized at run time; a symbolic batch; a model whose shapes are known only at run time, which the executable
specializes when it runs) compiled by kiln and run by ONNX Runtime (npm onnxruntime-node, CPU) on the same inputs:
every output must agree within rtol 1e-3. Each model with the C backend and the
LLVM backend, cross-compiled for 64-bit ARM, run under qemu-aarch64, and on
x86-64 CPUs without AVX-512 (AVX2 + FMA, and plain SSE2) under qemu-x86_64."""
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import onnx

from harness import KILN, ROOT, SANITIZED, input_files, main, run

TMP = tempfile.mkdtemp(prefix="kiln-ort-")
ORT = [os.path.join(ROOT, "bench", "ort_run.js")]


QEMU = ["qemu-aarch64", "-L", "/usr/aarch64-linux-gnu"]
ARM = ["--target", "aarch64-linux-gnu"]


def symbolic_copy(model, path):
    """The model with every dimension of its tensor inputs symbolic; False when
    it has an input of another kind (a sequence)."""
    m = onnx.load(model)
    for v in m.graph.input:
        if not v.type.HasField("tensor_type"):
            return False
        for j, dim in enumerate(v.type.tensor_type.shape.dim):
            dim.dim_param = "%s_d%d" % (v.name, j)
    onnx.save(m, path)
    return True


def compare(name, flags=(), emulator=(), symbolic=False):
    """kiln (compiled with flags, run through emulator) against ONNX Runtime;
    symbolic: kiln compiles the model with every input dimension symbolic (an
    executable that specializes it when it runs), ORT runs the original."""
    d = os.path.join(TMP, name + "_".join(flags) + ("_sym" if symbolic else ""))
    os.makedirs(d, exist_ok=True)
    r = run([sys.executable, os.path.join(ROOT, "bench", "models.py"), d, name])
    assert r.returncode == 0, r.stderr
    model = os.path.join(d, name + ".onnx")
    ins = input_files(d, name)
    exe = os.path.join(d, name)
    src = model
    if symbolic:
        src = os.path.join(d, name + "_sym.onnx")
        if not symbolic_copy(model, src):
            return False
        flags = list(flags) + ["-v"]
    r = run([KILN, "compile", src, "-o", exe] + list(flags))
    assert r.returncode == 0, r.stderr
    assert not symbolic or "shapes known only at run time" in r.stderr, r.stderr
    r = run(list(emulator) + [exe] + ins + ["-o", os.path.join(d, "kiln")], timeout=600)
    assert r.returncode == 0, r.stderr
    r = run(["node"] + ORT + [model, "1", "1", os.path.join(d, "ort")] + ins)
    assert r.returncode == 0, r.stderr
    outs = sorted(f for f in os.listdir(os.path.join(d, "ort")) if f.startswith("output_"))
    assert outs and sorted(f for f in os.listdir(os.path.join(d, "kiln")) if f.startswith("output_")) == outs
    for f in outs:
        a = np.load(os.path.join(d, "kiln", f))
        b = np.load(os.path.join(d, "ort", f))
        assert a.shape == b.shape, (f, a.shape, b.shape)
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4, err_msg=f)
    shutil.rmtree(d, ignore_errors=True)
    return True


MODELS = ["mlp", "resnet18", "mobilenetv2", "bert4", "detect", "lstm", "depthwise", "convgeom", "smallc", "conv3d", "control", "tfidf", "sequence", "dynamic", "winograd", "batch", "attention", "bmm_const", "maxroipool"]


def test_mlp():
    compare("mlp")


def test_resnet18():
    compare("resnet18")


def test_mobilenetv2():
    compare("mobilenetv2")


def test_bert4():
    compare("bert4")


def test_attention_fused():
    compare("attention")


def test_depthwise_edge_geometries():
    compare("depthwise")


def test_conv_chunks_geometries_and_residual():
    compare("convgeom")
    compare("smallc")
    compare("conv3d")


def test_winograd_convolutions():
    compare("winograd")


def test_bmm_const_batched_matmul_by_constant_weights():
    compare("bmm_const")


def test_lp_normalization():
    compare("lpnorm")


def compare_everywhere(name):
    """name with both backends, the kernels inlined at -O3, on ARM, and on x86-64
    without AVX-512."""
    compare(name)
    compare(name, ["-O3"])
    compare(name, ["--backend", "llvm"])
    compare(name, ARM, QEMU)
    if not SANITIZED:
        compare(name, (), ["qemu-x86_64", "-cpu", "qemu64"])


def test_pooling_fast_paths():
    """runtime/pool.c's planes and x86/pool_avx512.c's blocked kernels."""
    compare_everywhere("pools")


def test_conv_transpose():
    """ConvTranspose as GEMMs and a scatter (runtime/conv.c), written once or
    accumulated, grouped, with both backends, -O3, on ARM and with shapes known
    only at run time."""
    compare("convtranspose")
    compare("convtranspose", ["-O3"])
    compare("convtranspose", ["--backend", "llvm"])
    compare("convtranspose", ARM, QEMU)
    compare("convtranspose", symbolic=True)


def test_resize_fast_paths():
    """runtime/resize.c's planar paths (and cubic's generic loop)."""
    compare_everywhere("resize")


def test_einsum_as_matmul():
    compare("einsum")


def test_concat_of_300_inputs():
    compare("concat_many")
    compare("concat_many", ["--backend", "llvm"])


def test_max_roi_pool():
    compare("maxroipool")


def test_detect_resize_concat():
    compare("detect")


def test_lstm_sequence_model():
    compare("lstm")


def test_gru_rnn_constant_weights():
    compare("gru")


def test_control_flow_scan_loop_if():
    compare("control")


def test_tfidf_vectorizer():
    compare("tfidf")


def test_sequence_ops():
    compare("sequence")


def test_outputs_sized_at_run_time():
    compare("dynamic")


def compare_sizes(name, runs, nout, check=None):
    """One compile of model `name` (bench/models.py) runs each of `runs` (lists of
    input arrays), every output matching ONNX Runtime's run of the same inputs
    (and check(sizes, output array) where given)."""
    d = os.path.join(TMP, name + "_sizes")
    os.makedirs(d, exist_ok=True)
    r = run([sys.executable, os.path.join(ROOT, "bench", "models.py"), d, name])
    assert r.returncode == 0, r.stderr
    model, exe = os.path.join(d, name + ".onnx"), os.path.join(d, "exe")
    r = run([KILN, "compile", model, "-o", exe])
    assert r.returncode == 0, r.stderr
    for arrays in runs:
        ins = []
        for i, a in enumerate(arrays):
            ins.append(os.path.join(d, "in%d.npy" % i))
            np.save(ins[-1], a)
        ko, oo = os.path.join(d, "k"), os.path.join(d, "o")
        for o in [ko, oo]:
            shutil.rmtree(o, ignore_errors=True)
        r = run([exe] + ins + ["-o", ko])
        assert r.returncode == 0, r.stderr
        r = run(["node"] + ORT + [model, "1", "1", oo] + ins)
        assert r.returncode == 0, r.stderr
        sizes = [a.shape for a in arrays]
        for k in range(nout):
            f = "output_%d.npy" % k
            a, b = np.load(os.path.join(ko, f)), np.load(os.path.join(oo, f))
            assert a.shape == b.shape, (sizes, f, a.shape, b.shape)
            if check:
                check(sizes, a)
            np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4, err_msg="%s %s" % (sizes, f))
    shutil.rmtree(d, ignore_errors=True)


def test_symbolic_batch_any_size():
    """One compile of a model with a symbolic batch runs batches of 3 (the
    model's input), 1 and 5, each matching ONNX Runtime's run of that batch."""
    compare("batch")
    rng = np.random.default_rng(5)
    runs = [[rng.standard_normal((n, 3, 16, 16)).astype(np.float32), rng.integers(0, 50, (n, 6)).astype(np.int64)] for n in [1, 5]]
    compare_sizes("batch", runs, 2, check_batch)


def check_batch(sizes, a):
    assert a.shape[0] == sizes[0][0], (sizes, a.shape)


def test_runtime_shapes_any_size():
    """One compile of a model whose shapes are known only when it runs
    (symbolic batch, image size and sequence length; NonZero rows gathered and
    projected; a Reshape to a shape input; TopK with K an input; a Range to a
    length computed from the data) runs at four sets of sizes, each matching
    ONNX Runtime's run of the same inputs."""
    compare("runtime")
    sys.path.insert(0, os.path.join(ROOT, "bench"))
    import models
    compare_sizes("runtime", [models.runtime_inputs(*s) for s in [(1, 20, 9, 16, 5), (2, 5, 5, 1, 1), (4, 33, 17, 40, 7)]], 6)


def test_every_model_with_symbolic_inputs():
    """Every model of the comparison with all its input dimensions made
    symbolic: the executables specialize them when they run, and agree with
    ONNX Runtime's runs of the original models (all but the sequence model,
    whose sequence input needs its shapes at compile time)."""
    done = [m for m in MODELS if compare(m, symbolic=True)]
    assert len(done) >= len(MODELS) - 1, done


def test_llvm_backend_every_model():
    for m in MODELS:
        compare(m, ["--backend", "llvm"])


def test_llvm_backend_O3_kernels_inlined_every_model():
    for m in MODELS:
        compare(m, ["--backend", "llvm", "-O3"])


def test_c_backend_O3_kernels_inlined_every_model():
    for m in MODELS:
        compare(m, ["-O3"])


# This machine has AVX-512; the AVX2 + FMA kernels (a Haswell) and the plain
# x86-64 ones (qemu64: SSE2, no AVX) run under qemu-x86_64, whose CPU model is
# what the kernels' cpuid checks and the clones' resolvers see. Not in the
# sanitizer pass (harness.SANITIZED).
X86_NO_AVX512 = ["mlp", "resnet18", "mobilenetv2", "bert4", "depthwise", "convgeom", "smallc", "conv3d", "winograd", "detect"]

if not SANITIZED:
    def test_x86_avx2_kernels_under_qemu_haswell():
        for m in X86_NO_AVX512:
            compare(m, (), ["qemu-x86_64", "-cpu", "Haswell"])

    def test_x86_plain_kernels_under_qemu_qemu64():
        for m in X86_NO_AVX512:
            compare(m, (), ["qemu-x86_64", "-cpu", "qemu64"])


def test_aarch64_c_backend_under_qemu():
    for m in ["mlp", "mobilenetv2", "detect", "lstm", "control", "dynamic", "winograd", "batch"]:
        compare(m, ARM, QEMU)


def test_aarch64_runtime_shapes_under_qemu():
    """The model of run-time shapes built for 64-bit ARM (the executable carries
    the ARM build of libkilnc) and run under qemu-aarch64, against ONNX Runtime."""
    compare("runtime", ARM, QEMU)


def test_aarch64_llvm_backend_under_qemu():
    for m in MODELS:
        compare(m, ARM + ["--backend", "llvm"], QEMU)


if __name__ == "__main__":
    rc = main(globals(), "onnxruntime")
    shutil.rmtree(TMP, ignore_errors=True)
    sys.exit(rc)
