"""ThreadSanitizer over the runtime: two contexts of one compiled model, two
threads each, run at once on two threads (tests/unit/two_contexts.c), with the
runtime built with -fsanitize=thread (build/lib/tsan/libkilnrt.a) and the
model's generated C compiled with it. Any report of ThreadSanitizer fails the
test, as does a disagreement between the two contexts. Models: MobileNetV2
(convolutions: GEMM, depthwise, Winograd-free 1x1; parallel fused loops) and
the attention model (MatMul, Softmax, kiln.Attention), from bench/models.py."""
import os
import shutil
import subprocess
import tempfile

from harness import KILN, PYTHON, ROOT, main, run

BUILD = os.path.join(ROOT, os.environ.get("KILN_BUILD", "build"))
TMP = tempfile.mkdtemp(prefix="kiln-tsan-")
subprocess.run([PYTHON, os.path.join(ROOT, "bench", "models.py"), TMP, "mobilenetv2,attention"], check=True,
               stdout=subprocess.DEVNULL)


def two_contexts(model):
    d = os.path.join(TMP, model + "_tsan")
    os.makedirs(d, exist_ok=True)
    src = os.path.join(TMP, model + ".onnx")
    for emit, out in [("c", "m.c"), ("header", "m.h")]:
        r = run([KILN, "compile", src, "--emit", emit, "--weights", "external", "--name", "m", "-o", os.path.join(d, out)])
        assert r.returncode == 0, r.stderr
    exe = os.path.join(d, "two")
    shutil.copy(os.path.join(d, "m.c.weights"), exe + ".weights")  # mapped beside the executable
    r = run(["cc", "-std=gnu11", "-O1", "-g", "-fsanitize=thread", "-I", os.path.join(BUILD, "include"), "-I", d,
             os.path.join(d, "m.c"), os.path.join(ROOT, "tests", "unit", "two_contexts.c"),
             os.path.join(BUILD, "lib", "tsan", "libkilnrt.a"), "-lm", "-lpthread", "-o", exe])
    assert r.returncode == 0, r.stderr[-3000:]
    env = dict(os.environ, TSAN_OPTIONS="halt_on_error=1:exitcode=66:second_deadlock_stack=1")
    r = run([exe], env=env, timeout=900)
    assert r.returncode == 0 and "ThreadSanitizer" not in r.stderr, (r.returncode, r.stdout, r.stderr[-6000:])
    assert "outputs agree over 3 runs" in r.stdout, r.stdout


def test_mobilenetv2_two_contexts():
    two_contexts("mobilenetv2")


def test_attention_two_contexts():
    two_contexts("attention")


if __name__ == "__main__":
    rc = main(globals(), "tsan")
    shutil.rmtree(TMP, ignore_errors=True)
    raise SystemExit(rc)
