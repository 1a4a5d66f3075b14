"""`make bench-compile` (also run by `make bench`): kiln's compile time with each
backend on the bench models, end to end (`kiln compile MODEL -O2`, an
executable: reading, passes, code generation, and the C compiler or libLLVM,
and the link), the median of ROUNDS runs alternating the backends; the same
for both backends at -O3 (the runtime's kernels compiled into the model and
inlined into each call); then each binary's latency at 1 thread (median of ROUNDS processes,
alternating, each the median of 10 runs), to show what the code is worth.
Usage: compile_time.py BUILD_DIR [--rounds N] [--models a,b] [--target T]"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

from npy_inputs import input_files

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = ["mlp", "resnet18", "mobilenetv2", "bert4", "moe"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--target", default="host")
    a = ap.parse_args()
    kiln = os.path.join(a.build, "bin", "kiln")
    work = tempfile.mkdtemp(prefix="kiln-ctime-")
    backends = ["c", "llvm", "c3", "llvm3"]
    flags = {"c": ["-O2", "--backend", "c"], "llvm": ["-O2", "--backend", "llvm"],
             "c3": ["-O3", "--backend", "c"], "llvm3": ["-O3", "--backend", "llvm"]}
    print("compile time, kiln compile -O2 --target %s (end to end, median of %d), and the binary's latency at 1 thread"
          % (a.target, a.rounds))
    print("%-12s %8s %9s %7s %9s %12s | %9s %11s %12s %14s" % ("model", "C (s)", "LLVM (s)", "LLVM/C", "C -O3 (s)", "LLVM -O3 (s)",
                                                              "C run ms", "LLVM run ms", "C -O3 run ms", "LLVM -O3 run ms"))
    for name in a.models.split(","):
        d = os.path.join(work, name)
        os.makedirs(d, exist_ok=True)
        script = os.path.join(os.path.dirname(HERE), "examples", "moe", "make_model.py") if name == "moe" else os.path.join(HERE, "models.py")
        subprocess.run([sys.executable, script, d, name], check=True, capture_output=True)
        model = os.path.join(d, name + ".onnx")
        ins = input_files(d, name)
        times = {b: [] for b in backends}
        for _ in range(a.rounds):
            for b in backends:
                t0 = time.perf_counter()
                subprocess.run([kiln, "compile", model] + flags[b] + ["--target", a.target,
                                "-o", os.path.join(d, "m_" + b)], check=True, capture_output=True)
                times[b].append(time.perf_counter() - t0)
        lat = {b: [] for b in backends}
        for _ in range(a.rounds if a.target == "host" else 0):
            for b in backends:
                p = subprocess.run([os.path.join(d, "m_" + b)] + ins + ["-o", os.path.join(d, "o"), "--threads", "1",
                                   "--repeat", "10"], check=True, capture_output=True, text=True)
                lat[b].append(float(re.search(r"median=([0-9.]+)", p.stderr).group(1)))
        t = {b: statistics.median(times[b]) for b in backends}
        ms = {b: "%.2f" % statistics.median(lat[b]) if lat[b] else "-" for b in backends}
        print("%-12s %8.3f %9.3f %6.2fx %9.3f %12.3f | %9s %11s %12s %14s" % (
            name, t["c"], t["llvm"], t["llvm"] / t["c"], t["c3"], t["llvm3"], ms["c"], ms["llvm"], ms["c3"], ms["llvm3"]), flush=True)
    subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()
