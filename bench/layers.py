"""Per-layer times of kiln and ONNX Runtime on one model of models.py, side by side.

Usage: layers.py BUILD_DIR MODEL [--threads N] [--rounds R] [--repeat N]

Compiles MODEL (a name of bench/models.py, built into BUILD_DIR/bench if
missing), then R times, alternating, runs kiln's executable with KILN_PROFILE=1
(its step profiler: mean ms per run of each step) and ONNX Runtime with its own
profiler (median of each node's kernel time), and prints each side's steps in
execution order, the minimum over the rounds, next to each other. The two
lists pair up only where both ran the same layers in the same order (kiln and
ONNX Runtime fuse differently: a row pairs layer i of each); `<<` marks a kiln
step more than 15% and 0.02 ms slower than its partner. A tool for reading
where the time goes, not a benchmark: `make bench` gives the figures."""
import argparse
import collections
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

from npy_inputs import input_files

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    ap = argparse.ArgumentParser(description="kiln's and ONNX Runtime's per-layer times on a bench model, side by side")
    ap.add_argument("build")
    ap.add_argument("model")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=30)
    a = ap.parse_args()
    work = os.path.join(a.build, "bench")
    onnx_path = os.path.join(work, a.model + ".onnx")
    if not os.path.exists(onnx_path):
        subprocess.run([sys.executable, os.path.join(HERE, "models.py"), work, a.model], check=True)
    ins = input_files(work, a.model)
    tmp = tempfile.mkdtemp(prefix="kiln-layers-")
    try:
        report(a, onnx_path, ins, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def report(a, onnx_path, ins, tmp):
    """Runs both sides a.rounds times in tmp and prints the table."""
    exe = os.path.join(tmp, a.model)
    subprocess.run([os.path.join(a.build, "bin", "kiln"), "compile", onnx_path, "-o", exe], check=True)
    ksteps, osteps = collections.defaultdict(list), collections.defaultdict(list)
    kmed, omed = [], []
    for r in range(a.rounds):
        p = subprocess.run([exe] + ins + ["-o", os.path.join(tmp, "k"), "--threads", str(a.threads), "--repeat", str(a.repeat)],
                           env=dict(os.environ, KILN_PROFILE="1"), capture_output=True, text=True, check=True)
        out = p.stdout + p.stderr
        kmed.append(float(re.search(r"median=([\d.]+)", out).group(1)))
        order = []
        for line in out.splitlines():
            m = re.match(r"\s+([\d.]+)\s+[\d.]+\s+(\d+) (.*)$", line)
            if m:
                order.append((int(m.group(2)), float(m.group(1)), m.group(3)))
        for i, (_, ms, name) in enumerate(sorted(order)):
            ksteps[i].append((ms, name))
        prefix = os.path.join(tmp, "ort%d" % r)
        p = subprocess.run(["node", os.path.join(HERE, "ort_run.js"), onnx_path, str(a.threads), str(a.repeat), os.path.join(tmp, "o")] + ins,
                           env=dict(os.environ, KILN_ORT_PROFILE=prefix), capture_output=True, text=True, check=True)
        omed.append(json.loads(p.stdout.strip().splitlines()[-1])["median_ms"])
        events = json.load(open(glob.glob(prefix + "*.json")[0]))
        durs, names, ops = collections.defaultdict(list), [], {}
        for e in events:
            if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
                n = e["name"][:-len("_kernel_time")]
                if n not in durs:
                    names.append(n)
                    ops[n] = e.get("args", {}).get("op_name", "?")
                durs[n].append(e["dur"] / 1000.0)
        for i, n in enumerate(names):
            d = sorted(durs[n])
            osteps[i].append((d[len(d) // 2], "%s (%s)" % (n, ops[n])))
    print("kiln medians %s ms, ONNX Runtime medians %s ms (%d threads)" % (kmed, omed, a.threads))
    print("%-48s %8s   %-32s %8s" % ("kiln step", "ms", "ONNX Runtime node", "ms"))
    ksum = osum = 0.0
    for i in range(max(len(ksteps), len(osteps))):
        k = min(ksteps[i]) if ksteps.get(i) else None
        o = min(osteps[i]) if osteps.get(i) else None
        ksum += k[0] if k else 0
        osum += o[0] if o else 0
        flag = "<<" if k and o and k[0] > o[0] * 1.15 and k[0] - o[0] > 0.02 else ""
        print("%-48s %8s   %-32s %8s %s" % (k[1][:48] if k else "", "%.3f" % k[0] if k else "", o[1][:32] if o else "",
                                           "%.3f" % o[0] if o else "", flag))
    print("sum of steps: kiln %.3f ms, ONNX Runtime %.3f ms" % (ksum, osum))


if __name__ == "__main__":
    main()
