"""`make bench`: kiln against ONNX Runtime (onnxruntime-node, CPU) on the models
of models.py, at 1 and 2 threads, on the same inputs. For each model it first
checks that both give the same outputs (rtol 1e-3), then reports the median
latency of each (from REPEAT runs after a warm-up, timed inside each process;
the median of ROUNDS such processes, kiln's and ORT's alternating), the ratio
kiln/ORT (the median of the rounds' ratios, each a kiln run over the ORT run
next to it, so that a slow minute of the machine hits both sides of a ratio;
the lowest and highest of them beside it), the peak resident memory of each process, kiln's binary size,
compile time and the wall time of a process that runs the model once (start-up included: weights packed, and
for bert4dyn, whose batch and sequence length are symbolic, the model specialized to its inputs). Then the GEMM kernel's fraction of the single-core FMA peak.
Usage: run.py BUILD_DIR [--repeat N] [--rounds N] [--models a,b]"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np

from npy_inputs import input_files

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def run_rss(cmd):
    """Runs cmd; returns (stdout, stderr, peak resident memory of that process in MiB)."""
    with tempfile.TemporaryFile() as fo, tempfile.TemporaryFile() as fe:
        p = subprocess.Popen(cmd, stdout=fo, stderr=fe)
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        fo.seek(0)
        fe.seek(0)
        out, err = fo.read().decode(errors="replace"), fe.read().decode(errors="replace")
    if p.returncode != 0:
        raise RuntimeError("%s failed: %s" % (" ".join(cmd[:2]), err.strip()[-500:]))
    return out, err, ru.ru_maxrss / 1024.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--models", default="mlp,resnet18,mobilenetv2,bert4,bert4dyn,moe")
    a = ap.parse_args()
    kiln = os.path.join(a.build, "bin", "kiln")
    work = os.path.join(a.build, "bench")
    os.makedirs(work, exist_ok=True)
    subprocess.run([sys.executable, os.path.join(HERE, "models.py"), work], check=True)
    # the MoE block: com.microsoft.MoE, built by the MoE example's script
    subprocess.run([sys.executable, os.path.join(os.path.dirname(HERE), "examples", "moe", "make_model.py"), work, "moe"], check=True)
    node = ["node", os.path.join(HERE, "ort_run.js")]
    rows = []
    print("machine: %s, %d cores" % (re.sub(r"\s+", " ", open("/proc/cpuinfo").read().split("model name")[1].split("\n")[0].strip(": ")), os.cpu_count()))
    for m in a.models.split(","):
        model = os.path.join(work, m + ".onnx")
        ins = input_files(work, m)
        exe = os.path.join(work, m)
        t0 = time.time()
        subprocess.run([kiln, "compile", model, "-o", exe], check=True)
        compile_s = time.time() - t0
        size_mb = os.path.getsize(exe) / 2**20
        t0 = time.time()  # one run in a fresh process: start-up (weights packed; a model of run-time shapes specialized) included
        subprocess.run([exe] + ins + ["-o", os.path.join(work, "kiln_out"), "--threads", "1"], check=True)
        once_s = time.time() - t0
        for t in [1, 2]:
            kout, ko = os.path.join(work, "kiln_out"), os.path.join(work, "ort_out")
            kl, ol, krss, orss = [], [], 0, 0
            for _ in range(a.rounds):  # kiln and ORT alternate: a disturbance hits both, or one round only
                _, err, r1 = run_rss([exe] + ins + ["-o", kout, "--threads", str(t), "--repeat", str(a.repeat)])
                kl.append(float(re.search(r"median=([\d.]+)", err).group(1)))
                out, _, r2 = run_rss(node + [model, str(t), str(a.repeat), ko] + ins)
                ol.append(json.loads(out.strip().splitlines()[-1])["median_ms"])
                krss, orss = max(krss, r1), max(orss, r2)
            kms, oms = sorted(kl)[len(kl) // 2], sorted(ol)[len(ol) // 2]
            ratios = sorted(k / o for k, o in zip(kl, ol))
            x, y = np.load(os.path.join(kout, "output_0.npy")), np.load(os.path.join(ko, "output_0.npy"))
            same = x.shape == y.shape and np.allclose(x, y, rtol=1e-3, atol=1e-4)
            if not same:
                print("OUTPUTS DIFFER for %s: max abs diff %g" % (m, np.abs(x - y).max()))
            rows.append((m, t, kms, oms, ratios[len(ratios) // 2], krss, orss, size_mb, compile_s, same, ratios[0], ratios[-1], once_s))
    print()
    print("| model | threads | kiln median ms | ORT median ms | kiln/ORT | rounds' kiln/ORT | kiln peak MiB | ORT peak MiB | kiln binary MiB | compile s | kiln process of one run s | same outputs |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print("| %s | %d | %.2f | %.2f | %.2fx | %.2f-%.2f | %.0f | %.0f | %.1f | %.2f | %.2f | %s |" % (r[0], r[1], r[2], r[3], r[4], r[10], r[11], r[5], r[6], r[7], r[8], r[12], "yes" if r[9] else "NO"))
    peak = os.path.join(work, "gemm_peak")
    subprocess.run(["cc", "-O2", "-I", os.path.join(a.build, "include"), os.path.join(HERE, "gemm_peak.c"),
                    os.path.join(a.build, "lib", "libkilnrt.a"), "-lm", "-lpthread", "-o", peak], check=True)
    print()
    print(subprocess.run([peak], capture_output=True, text=True, check=True).stdout.strip())
    return 0 if all(r[9] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
