"""Two builds of kiln side by side: each model of models.py (and the MoE
block) compiled by both, checked to give the same bits, then timed in
alternating rounds (A, B, A, B, ...: a slow minute of the machine hits both),
at 1 and 2 threads. Prints per model and thread count each build's median of
the rounds' medians, the ratio B/A (the median of the rounds' ratios) and its
range. For changes meant to leave speed alone (a refactor) or to move it.
Usage: ab.py BUILD_A BUILD_B [--repeat N] [--rounds N] [--models a,b] [--flags "-O3 ..."]"""
import argparse
import os
import re
import shlex
import subprocess
import sys
import tempfile

from npy_inputs import input_files

HERE = os.path.dirname(os.path.abspath(__file__))


def latency(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return float(re.search(r"median=([\d.]+)", r.stderr).group(1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--models", default="mlp,resnet18,mobilenetv2,bert4,moe")
    ap.add_argument("--flags", default="")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="kiln-ab-")
    subprocess.run([sys.executable, os.path.join(HERE, "models.py"), work], check=True, stdout=subprocess.DEVNULL)
    subprocess.run([sys.executable, os.path.join(os.path.dirname(HERE), "examples", "moe", "make_model.py"), work, "moe"], check=True,
                   stdout=subprocess.DEVNULL)
    print("machine: %s, %d cores; A = %s, B = %s" % (
        re.sub(r"\s+", " ", open("/proc/cpuinfo").read().split("model name")[1].split("\n")[0].strip(": ")), os.cpu_count(), a.a, a.b))
    print()
    print("| model | threads | A median ms | B median ms | B/A | rounds' B/A | same bits |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    ok = True
    for m in a.models.split(","):
        model, ins = os.path.join(work, m + ".onnx"), input_files(work, m)
        exes = {}
        for side, build in (("a", a.a), ("b", a.b)):
            exes[side] = os.path.join(work, "%s_%s" % (m, side))
            subprocess.run([os.path.join(build, "bin", "kiln"), "compile", model, "-o", exes[side]] + shlex.split(a.flags), check=True)
            subprocess.run([exes[side]] + ins + ["-o", os.path.join(work, "out_" + side)], check=True)
        outs = sorted(f for f in os.listdir(os.path.join(work, "out_a")) if f.startswith("output_"))
        same = all(open(os.path.join(work, "out_a", f), "rb").read() == open(os.path.join(work, "out_b", f), "rb").read() for f in outs)
        ok &= same
        for t in (1, 2):
            ta, tb = [], []
            for _ in range(a.rounds):
                ta.append(latency([exes["a"]] + ins + ["-o", os.path.join(work, "out_a"), "--threads", str(t), "--repeat", str(a.repeat)]))
                tb.append(latency([exes["b"]] + ins + ["-o", os.path.join(work, "out_b"), "--threads", str(t), "--repeat", str(a.repeat)]))
            r = sorted(y / x for x, y in zip(ta, tb))
            print("| %s | %d | %.3f | %.3f | %.3f | %.3f-%.3f | %s |" % (m, t, sorted(ta)[len(ta) // 2], sorted(tb)[len(tb) // 2],
                                                                     r[len(r) // 2], r[0], r[-1], "yes" if same else "NO"))
    subprocess.run(["rm", "-rf", work])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
