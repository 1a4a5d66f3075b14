"""The zoo: real exported architectures (zoo/export.py) compiled by kiln with no
--shape or --bind and checked against ONNX Runtime (npm onnxruntime-node, CPU)
on the same inputs, at 1 and 2 threads: every output of the same shape and
within rtol 1e-3, atol 1e-3 (a detection model's boxes, labels and scores
likewise, so the same detections). With --bench, also the median latency of
each side (REPEAT runs after a warm-up, timed inside each process; the median
of ROUNDS processes, kiln's and ORT's alternating), their ratio (the median of
the rounds' ratios), the peak resident memory of each process, and the
geomean of the ratios. Exports are cached in BUILD/zoo.

Usage: zoo.py BUILD [--models a,b | --quick] [--threads 1,2] [--bench] [--repeat N] [--rounds N]
The exit status is 1 when a model that torch exports fails to compile, to run
or to match; a model torch cannot export is listed with the reason."""
import argparse
import json
import math
import os
import re
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "bench"))
from npy_inputs import input_files  # noqa: E402
from run import run_rss  # noqa: E402

# the part make test runs (a few minutes): CNNs, depthwise CNNs, a
# segmentation net, two detectors (a Concat of 90 inputs; boxes of a
# NonMaxSuppression inside an If, read by a Gather) and the recurrent ones
QUICK = ["resnet18", "mobilenet_v3_small", "squeezenet1_0", "efficientnet_b0", "lraspp_mobilenet_v3_large",
         "ssdlite320_mobilenet_v3_large", "fasterrcnn_mobilenet_v3_large_320_fpn", "lstm_bidir2", "gru_speech", "lstm_if"]


def all_models():
    return subprocess.run([sys.executable, os.path.join(HERE, "export.py"), "-", "list"], capture_output=True, text=True,
                          check=True).stdout.split()


def compare(kdir, odir):
    """None when kiln's outputs (kdir) match ORT's (odir), else why not."""
    outs = sorted(f for f in os.listdir(odir) if f.startswith("output_"))
    if not outs or sorted(f for f in os.listdir(kdir) if f.startswith("output_")) != outs:
        return "outputs %s, ORT's %s" % (sorted(os.listdir(kdir)), outs)
    for f in outs:
        a, b = np.load(os.path.join(kdir, f)), np.load(os.path.join(odir, f))
        if a.shape != b.shape:
            return "%s: shape %s, ORT's %s" % (f, a.shape, b.shape)
        if a.dtype != b.dtype:
            return "%s: dtype %s, ORT's %s" % (f, a.dtype, b.dtype)
        if a.dtype.kind == "f":
            bad = ~np.isclose(a, b, rtol=1e-3, atol=1e-3, equal_nan=True)
            if bad.any():
                i = np.unravel_index(np.argmax(bad), a.shape)
                return "%s: %d of %d elements differ (at %s: %g, ORT %g)" % (f, bad.sum(), a.size, i, a[i], b[i])
        elif not np.array_equal(a, b):
            return "%s: %d of %d elements differ" % (f, (a != b).sum(), a.size)
    return None


def median(v):
    return sorted(v)[len(v) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--models")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--bench", action="store_true")
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    kiln = os.path.join(a.build, "bin", "kiln")
    work = os.path.join(a.build, "zoo")
    names = a.models.split(",") if a.models else QUICK if a.quick else all_models()
    threads = [int(t) for t in a.threads.split(",")]
    subprocess.run([sys.executable, os.path.join(HERE, "export.py"), work] + names, check=True)
    node = ["node", os.path.join(ROOT, "bench", "ort_run.js")]
    rows, passed, failed = [], 0, 0
    for m in names:
        fail = os.path.join(work, m + ".fail")
        if os.path.exists(fail):
            rows.append((m, "torch cannot export it: " + open(fail).readline().strip()))
            continue
        model, exe = os.path.join(work, m + ".onnx"), os.path.join(work, m + ".exe")
        ins = input_files(work, m)
        t0 = time.time()
        r = subprocess.run([kiln, "compile", model, "-o", exe], capture_output=True, text=True)
        compile_s = time.time() - t0
        if r.returncode != 0:
            rows.append((m, "FAIL compile: " + r.stderr.strip()[-300:]))
            failed += 1
            print("FAIL zoo.%s: compile: %s" % (m, r.stderr.strip()[-300:]), flush=True)
            continue
        res, why = {}, None
        for t in threads:
            kout, oout = os.path.join(work, m + ".kiln%d" % t), os.path.join(work, m + ".ort%d" % t)
            kl, ol, krss, orss = [], [], 0, 0
            rounds = a.rounds if a.bench else 1
            try:
                for _ in range(rounds):
                    _, err, r1 = run_rss([exe] + ins + ["-o", kout, "--threads", str(t)] + (["--repeat", str(a.repeat)] if a.bench else []))
                    out, _, r2 = run_rss(node + [model, str(t), str(a.repeat if a.bench else 0), oout] + ins)
                    if a.bench:
                        kl.append(float(re.search(r"median=([\d.]+)", err).group(1)))
                        ol.append(json.loads(out.strip().splitlines()[-1])["median_ms"])
                    krss, orss = max(krss, r1), max(orss, r2)
            except RuntimeError as e:
                why = "%d thread(s): %s" % (t, str(e)[-300:])
                break
            why = compare(kout, oout)
            if why:
                why = "%d thread(s): %s" % (t, why)
                break
            if a.bench:
                res[t] = (median(kl), median(ol), median([k / o for k, o in zip(kl, ol)]), krss, orss)
        if why:
            rows.append((m, "FAIL " + why))
            failed += 1
            print("FAIL zoo.%s: %s" % (m, why), flush=True)
            continue
        passed += 1
        rows.append((m, "ok", res, compile_s))
        print("ok zoo.%s%s" % (m, "".join(" | %d thread(s): kiln %.2f ms, ORT %.2f ms, %.2fx, RSS %.0f / %.0f MiB" % ((t,) + v)
                                              for t, v in res.items())), flush=True)
    print()
    if a.bench:
        print("| model | correct | " + " | ".join("kiln ms %dt | ORT ms %dt | kiln/ORT %dt" % (t, t, t) for t in threads) +
              " | kiln peak MiB | ORT peak MiB |")
        print("| --- | --- | " + " | ".join("--- | --- | ---" for _ in threads) + " | --- | --- |")
        logs = {t: [] for t in threads}
        for r in rows:
            if r[1] != "ok":
                print("| %s | %s |" % (r[0], r[1].replace("|", "/")))
                continue
            cells = []
            for t in threads:
                k, o, q, _, _ = r[2][t]
                logs[t].append(math.log(q))
                cells.append("%.2f | %.2f | %.2fx" % (k, o, q))
            print("| %s | yes | %s | %.0f | %.0f |" % (r[0], " | ".join(cells), max(v[3] for v in r[2].values()), max(v[4] for v in r[2].values())))
        for t in threads:
            if logs[t]:
                print("geomean kiln/ORT at %d thread(s): %.2fx over %d models" % (t, math.exp(sum(logs[t]) / len(logs[t])), len(logs[t])))
    else:
        for r in rows:
            if r[1] != "ok":
                print("%s: %s" % (r[0], r[1]))
    print("zoo: %d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
