"""`make fuzz`: mutation fuzzing of kiln's two model readers under AddressSanitizer
and UBSan. Mutates conformance models (byte flips, deletions, insertions) and
text IR dumps (token insertions and deletions), compiles each with the
sanitizer build (to C, or with --llvm to LLVM IR through the in-process LLVM
backend), and reports any run that crashes, trips a sanitizer, or exits
other than 0 or 1. Usage: fuzz.py [--runs N] [--seed S] [--only a,b] [--moe] [--llvm];
crashing inputs are kept in build-san/fuzz/."""
import argparse
import glob
import os
import random
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAN = os.path.join(ROOT, os.environ.get("KILN_BUILD", "build-san"))
DATA = "/usr/share/libonnx-testdata/data"
ENV = dict(os.environ, ASAN_OPTIONS="detect_leaks=0", UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1")
TOKENS = ["%", '"', "[", "]", "{", "}", "(", ")", ",", "=", "inf", "-1", "99999999999999999999", "f32", "graph",
          "kiln.Fused", "@", "_", "\n", "0.5e", 'blob "../x" 0 4']


def mutate_bytes(rng, data):
    data = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        i = rng.randrange(len(data))
        op = rng.random()
        if op < 0.6:
            data[i] = rng.randrange(256)
        elif op < 0.8:
            del data[i:i + rng.randint(1, 16)]
        else:
            data[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
    return bytes(data)


NUMBERS = ["0", "1", "-1", "2", "3", "7", "64", "65536", "2147483648", "-9223372036854775808", "1e30", "nan"]


def mutate_numbers(rng, text):
    """Replaces a few numbers (dims, attributes) with boundary values."""
    import re
    spans = [m.span() for m in re.finditer(r"-?\d+(\.\d+)?", text)]
    for _ in range(rng.randint(1, 3)):
        if not spans:
            break
        a, b = rng.choice(spans)
        text = text[:a] + rng.choice(NUMBERS) + text[b:]
        spans = [m.span() for m in re.finditer(r"-?\d+(\.\d+)?", text)]
    return text


def mutate_text(rng, text):
    if rng.random() < 0.5:
        return mutate_numbers(rng, text).encode()
    t = list(text)
    for _ in range(rng.randint(1, 5)):
        i = rng.randrange(len(t))
        if rng.random() < 0.4:
            del t[i:i + rng.randint(1, 10)]
        else:
            t[i:i] = list(rng.choice(TOKENS))
    return "".join(t).encode()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=500)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--only", default="", help="comma-separated substrings: fuzz only the matching conformance models")
    ap.add_argument("--moe", action="store_true", help="add the MoE example models (examples/moe)")
    ap.add_argument("--llvm", action="store_true", help="compile with the LLVM backend (--emit ll) instead of to C")
    a = ap.parse_args()
    rng = random.Random(a.seed)
    kiln = os.path.join(SAN, "bin", "kiln")
    work = os.path.join(SAN, "fuzz")
    os.makedirs(work, exist_ok=True)
    models = sorted(glob.glob(os.path.join(DATA, "*", "*", "model.onnx")))
    if a.only:
        models = [m for m in models if any(k in m for k in a.only.split(","))]
    if a.moe:
        subprocess.run([sys.executable, os.path.join(ROOT, "examples", "moe", "make_model.py"), work], check=True)
        models += sorted(glob.glob(os.path.join(work, "*.onnx")))
    texts = []
    for m in (models if a.only or a.moe else models[::25]):
        r = subprocess.run([kiln, "dump", m, "--inline-weights", "--after", "fuse"], capture_output=True, env=ENV)
        if r.returncode == 0:
            texts.append(r.stdout.decode())
    bad = 0
    for i in range(a.runs):
        if i % 2 and texts:
            data, ext = mutate_text(rng, rng.choice(texts)), ".kir"
        else:
            data, ext = mutate_bytes(rng, open(rng.choice(models), "rb").read()), ".onnx"
        path = os.path.join(work, "input" + ext)
        open(path, "wb").write(data)
        emit = ["-o", os.path.join(work, "out.ll"), "--emit", "ll"] if a.llvm else ["-o", os.path.join(work, "out.c"), "--emit", "c"]
        r = subprocess.run([kiln, "compile", path] + emit,
                           capture_output=True, text=True, errors="replace", env=ENV, timeout=120)
        if r.returncode not in (0, 1) or "runtime error" in r.stderr or "Sanitizer" in r.stderr:
            bad += 1
            keep = os.path.join(work, "crash%d%s" % (bad, ext))
            open(keep, "wb").write(data)
            print("CRASH (exit %d), input kept in %s:\n%s" % (r.returncode, keep, r.stderr[-1500:]))
    print("fuzz: %d passed, %d failed" % (a.runs - bad, bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
