"""Runs every test of `make test`: the C unit tests, the end-to-end tests, the
bad-input suite, the comparison of realistic models with ONNX Runtime, a quick
part of the zoo of exported architectures, the MoE
tests, the backend tests, and the ONNX conformance suite (against
tests/conformance_expected.txt) with the C and LLVM backends and for 64-bit ARM
under qemu. Each part prints its own summary; the last line is the total,
'N passed, N failed', and the exit status is non-zero when anything failed."""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

from harness import SANITIZED

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = sys.executable
QEMU = "qemu-aarch64 -L /usr/aarch64-linux-gnu"


def part(label, cmd):
    t0 = time.time()
    print("== %s: %s" % (label, " ".join(cmd)), flush=True)
    p = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
    # qemu-x86_64 warns about each CPU feature of its model that TCG lacks (none the kernels use)
    out = "".join(l for l in p.stdout.splitlines(True) if not l.startswith("qemu-x86_64: warning: TCG doesn't support"))
    sys.stdout.write(out)
    m = None
    for m in re.finditer(r"(\d+) passed, (\d+) failed", out):
        pass
    if not m:
        print("%s: no summary line (exit %d): counted as 1 failure" % (label, p.returncode))
        return 0, 1
    passed, failed = int(m.group(1)), int(m.group(2))
    if p.returncode != 0 and failed == 0:
        failed = 1
        print("%s: exit status %d without a failure count: counted as 1 failure" % (label, p.returncode))
    print("== %s done in %.0f s" % (label, time.time() - t0), flush=True)
    return passed, failed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=2)
    a = ap.parse_args()
    data = tempfile.mkdtemp(prefix="kiln-unit-")
    subprocess.run([PY, "tests/unit_data.py", data], cwd=ROOT, check=True)
    unit = os.path.join(os.environ.get("KILN_BUILD", "build"), "tests", "unit")
    parts = [
        ("unit", [unit, data]),
        ("layers", [PY, "tests/layers.py"]),
        ("e2e", [PY, "tests/e2e.py"]),
        ("bad-input", [PY, "tests/bad_inputs.py"]),
        ("onnxruntime", [PY, "tests/ort_compare.py"]),
        # real architectures exported by torch (zoo/zoo.py; `make zoo` runs them all)
        ("zoo", [PY, "zoo/zoo.py", os.environ.get("KILN_BUILD", "build"), "--quick"]),
        ("moe", [PY, "tests/moe_test.py"]),
        ("backends", [PY, "tests/backends_test.py"]),
        ("conformance", [PY, "tests/conformance.py", "--jobs", str(a.jobs), "--expected", "tests/conformance_expected.txt"]),
        ("conformance-llvm", [PY, "tests/conformance.py", "--jobs", str(a.jobs), "--expected", "tests/conformance_expected.txt",
                              "--flags", "--backend llvm"]),
        ("conformance-llvm-O3", [PY, "tests/conformance.py", "--jobs", str(a.jobs), "--expected", "tests/conformance_expected.txt",
                                 "--sample", "4", "--flags", "--backend llvm -O3"]),
        ("conformance-c-O3", [PY, "tests/conformance.py", "--jobs", str(a.jobs), "--expected", "tests/conformance_expected.txt",
                              "--sample", "8", "--flags=-O3"]),
        # 64-bit ARM under qemu: the whole suite with LLVM, every 4th test with the cross gcc
        ("conformance-aarch64-llvm", [PY, "tests/conformance.py", "--jobs", str(a.jobs), "--expected", "tests/conformance_expected.txt",
                                      "--flags", "--backend llvm --target aarch64-linux-gnu", "--emulator", QEMU]),
        ("conformance-aarch64-c", [PY, "tests/conformance.py", "--jobs", str(a.jobs), "--expected", "tests/conformance_expected.txt",
                                   "--sample", "4", "--flags", "--target aarch64-linux-gnu", "--emulator", QEMU]),
    ]
    if not SANITIZED:
        # the AVX2 + FMA and the plain C kernels, which an AVX-512 machine does not pick
        parts[1:1] = [("unit-avx2", ["qemu-x86_64", "-cpu", "Haswell", unit, data]),
                      ("unit-plain", ["qemu-x86_64", "-cpu", "qemu64", unit, data])]
        # ThreadSanitizer (its own runtime build; not beside AddressSanitizer)
        parts.insert(4, ("tsan", [PY, "tests/tsan_test.py"]))
    total_p = total_f = 0
    for label, cmd in parts:
        p, f = part(label, cmd)
        total_p += p
        total_f += f
    subprocess.run(["rm", "-rf", data])
    print("%d passed, %d failed" % (total_p, total_f))
    return 1 if total_f else 0


if __name__ == "__main__":
    sys.exit(main())
