"""`make bench-compile` (also run by `make bench`): kiln's compile time with each
backend on the bench models, end to end (`kiln compile MODEL -O2`, an
executable: reading, passes, code generation, and the C compiler or libLLVM,
and the link), the median of ROUNDS runs alternating the backends; then each
binary's median latency at 1 thread, to show what the code is worth.
Usage: compile_time.py BUILD_DIR [--rounds N] [--models a,b] [--target T]"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

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
    backends = ["c", "llvm"]
    print("compile time, kiln compile -O2 --target %s (end to end, median of %d), and the binary's latency at 1 thread"
          % (a.target, a.rounds))
    print("%-12s %10s %10s %9s %12s %12s" % ("model", "C (s)", "LLVM (s)", "LLVM/C", "C run (ms)", "LLVM run (ms)"))
    for name in a.models.split(","):
        d = os.path.join(work, name)
        os.makedirs(d, exist_ok=True)
        script = os.path.join(os.path.dirname(HERE), "examples", "moe", "make_model.py") if name == "moe" else os.path.join(HERE, "models.py")
        subprocess.run([sys.executable, script, d, name], check=True, capture_output=True)
        model = os.path.join(d, name + ".onnx")
        ins = sorted(os.path.join(d, f) for f in os.listdir(d) if f.startswith(name + "_in"))
        times = {b: [] for b in backends}
        for _ in range(a.rounds):
            for b in backends:
                t0 = time.perf_counter()
                subprocess.run([kiln, "compile", model, "-O2", "--backend", b, "--target", a.target,
                                "-o", os.path.join(d, "m_" + b)], check=True, capture_output=True)
                times[b].append(time.perf_counter() - t0)
        lat = {}
        if a.target == "host":
            for b in backends:
                p = subprocess.run([os.path.join(d, "m_" + b)] + ins + ["-o", os.path.join(d, "o"), "--threads", "1",
                                   "--repeat", "10"], check=True, capture_output=True, text=True)
                lat[b] = float(re.search(r"median=([0-9.]+)", p.stderr).group(1))
        tc, tl = statistics.median(times["c"]), statistics.median(times["llvm"])
        print("%-12s %10.3f %10.3f %8.2fx %12s %12s" % (name, tc, tl, tl / tc, "%.2f" % lat["c"] if lat else "-",
                                                     "%.2f" % lat["llvm"] if lat else "-"), flush=True)
    subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()
