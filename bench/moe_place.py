"""The expert-placement benchmark (part of `make bench`, or alone:
`python3 bench/moe_place.py [--quick]`).

1. Balance: one DeepSeek-V3-sized MoE layer (256 experts, top-8, 8 groups / 4
   chosen) with a Zipf-skewed routing profile (exponent 1.0, hot experts at
   random indices) on 32 H800 GPUs (4 nodes of 8) with 32 redundant slots:
   imbalance (max/mean load) and distance to the lower bound of `balanced`
   against `contiguous` and `round-robin`.
2. Scale: a description of DeepSeek-V3's 58 MoE layers (.kir text IR, weights
   not materialized: they are graph inputs) placed on the 1,024-NPU Ascend 910C
   cluster with a 58-layer Zipf profile: wall time of `kiln place`.
3. Cost model against reality: examples/moe's bench layer (512 tokens, 16
   experts, hidden 512, inter 1024, top-2) compiled for the host; predicted time
   (`kiln place --threads N`) against the measured median at 1 and 2 threads.
Prints a table and writes bench/out/moe_place.json."""
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("KILN_BUILD", os.path.join(ROOT, "build"))
KILN = os.path.join(BUILD, "bin", "kiln")
H, I, E, K, NG, TG = 7168, 2048, 256, 8, 8, 4


def sh(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        sys.exit("moe_place.py: %s failed:\n%s" % (" ".join(cmd), r.stderr))
    return r


def deepseek_kir(path, layers, tokens):
    """DeepSeek-V3's MoE layers as .kir: bf16 expert weights as graph inputs
    (shapes only), sigmoid scoring with a selection bias, group-limited top-8."""
    lines = ["kiln 1", 'graph "deepseek_v3_moe" opset 17 {', "  input %%x : bf16[%d,%d]" % (tokens, H)]
    for l in range(layers):
        lines += ["  input %%r%d : f32[%d,%d]" % (l, tokens, E),
                  "  input %%w1_%d : bf16[%d,%d,%d]" % (l, E, I, H),
                  "  input %%w2_%d : bf16[%d,%d,%d]" % (l, E, H, I),
                  "  input %%w3_%d : bf16[%d,%d,%d]" % (l, E, I, H),
                  "  input %%bias%d : f32[%d]" % (l, E)]
    prev = "%x"
    for l in range(layers):
        out = "%%y%d" % l
        lines.append('  %s : bf16[%d,%d] = kiln.MoE "layer%d.moe" (%s, %%r%d, %%w1_%d, _, %%w2_%d, _, %%w3_%d, _, %%bias%d) '
                     '{k = %d, activation_type = "swiglu", scoring_func = "sigmoid", normalize_routing_weights = 1, '
                     'routed_scaling_factor = 2.5, n_group = %d, topk_group = %d}'
                     % (out, tokens, H, l + 3, prev, l, l, l, l, l, K, NG, TG))
        prev = out
    lines += ["  output %s" % prev, "}"]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def zipf_profile(path, names, tokens, seed=1):
    rng = np.random.default_rng(seed)
    layers = []
    for name in names:
        w = 1.0 / np.arange(1, E + 1) ** 1.0
        w = w[rng.permutation(E)]
        counts = np.floor(w / w.sum() * tokens * K + 0.5).astype(int)
        layers.append({"name": name, "experts": E, "top_k": K, "tokens": tokens, "counts": counts.tolist()})
    with open(path, "w") as f:
        json.dump({"format": "kiln-routing-profile", "version": 1, "model": "zipf-1.0", "runs": 1, "layers": layers}, f)


def balance(tmp):
    model, prof = os.path.join(tmp, "one_layer.kir"), os.path.join(tmp, "zipf1.json")
    deepseek_kir(model, 1, 4096)
    zipf_profile(prof, ["layer3.moe"], 4096)
    tgt = json.load(open(os.path.join(ROOT, "targets", "h800-cluster-2048.json")))
    tgt.update(name="h800-32", nodes=4, description="4 nodes of the H800 cluster: 32 GPUs")
    tpath = os.path.join(tmp, "h800-32.json")
    json.dump(tgt, open(tpath, "w"))
    rows = {}
    for strat, extra in (("contiguous", []), ("round-robin", []), ("balanced", ["--redundant", "32"])):
        r = sh([KILN, "place", model, "--target", tpath, "--routing-profile", prof, "--placement", strat, "--format", "json"] + extra)
        L = json.loads(r.stdout)["layers"][0]
        rows[strat] = {k: L[k] for k in ("imbalance", "bound_ratio", "lower_bound", "mean_load", "cross_node_bytes_per_token", "predicted_us", "slots")}
    return rows


def scale(tmp):
    model, prof = os.path.join(tmp, "deepseek_v3.kir"), os.path.join(tmp, "zipf58.json")
    deepseek_kir(model, 58, 32768)
    zipf_profile(prof, ["layer%d.moe" % (l + 3) for l in range(58)], 32768)
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        r = sh([KILN, "place", model, "--target", "ascend910c-cluster-1024", "--routing-profile", prof, "--format", "json", "-o", os.path.join(tmp, "plan.json")])
        times.append(time.perf_counter() - t0)
    plan = json.load(open(os.path.join(tmp, "plan.json")))
    imb = [L["imbalance"] for L in plan["layers"]]
    return {"layers": len(plan["layers"]), "devices": plan["target"]["devices"], "seconds_median": sorted(times)[1],
            "max_imbalance": max(imb), "predicted_us_per_step": plan["total"]["predicted_us"]}


def cost_model(tmp, repeat):
    sh([sys.executable, os.path.join(ROOT, "examples", "moe", "make_model.py"), tmp, "moe"])
    exe = os.path.join(tmp, "moe_bench")
    sh([KILN, "compile", os.path.join(tmp, "moe.onnx"), "-o", exe])
    ins = [os.path.join(tmp, "moe_in0.npy"), os.path.join(tmp, "moe_in1.npy")]
    out = {}
    for t in (1, 2):
        pred, meas = [], []
        for _ in range(3):  # interleaved, medians: the machine is noisy
            r = sh([KILN, "place", os.path.join(tmp, "moe.onnx"), "--threads", str(t), "--format", "json"])
            pred.append(json.loads(r.stdout)["total"]["predicted_us"] / 1e3)
            r = sh([exe] + ins + ["-o", os.path.join(tmp, "o"), "--threads", str(t), "--repeat", str(repeat)])
            meas.append(float(r.stderr.split("median=")[1].split()[0]))
        p, m = sorted(pred)[1], sorted(meas)[1]
        out[t] = {"predicted_ms": p, "measured_ms": m, "ratio": p / m}
    return out


def main():
    quick = "--quick" in sys.argv
    tmp = tempfile.mkdtemp(prefix="kiln-place-")
    res = {"balance": balance(tmp), "scale": scale(tmp), "cost_model": cost_model(tmp, 5 if quick else 20)}
    print("\nExpert placement: 256 experts, top-8, Zipf 1.0 profile, 32 H800 (4 nodes x 8), 32 redundant slots")
    print("%-12s %10s %12s %14s %14s" % ("placement", "imbalance", "max/bound", "xnode B/token", "predicted us"))
    for s, r in res["balance"].items():
        print("%-12s %10.4f %12.4f %14.0f %14.1f" % (s, r["imbalance"], r["bound_ratio"], r["cross_node_bytes_per_token"], r["predicted_us"]))
    sc = res["scale"]
    print("\nScale: DeepSeek-V3 (%d MoE layers) on %d Ascend 910C: kiln place %.3f s (median of 3), worst layer imbalance %.4f"
          % (sc["layers"], sc["devices"], sc["seconds_median"], sc["max_imbalance"]))
    print("\nCost model on the host (bench MoE layer), median of 3 interleaved runs:")
    for t, r in res["cost_model"].items():
        print("  %d thread%s: predicted %.2f ms, measured %.2f ms, predicted/measured %.2f" % (t, "" if t == 1 else "s", r["predicted_ms"], r["measured_ms"], r["ratio"]))
    os.makedirs(os.path.join(ROOT, "bench", "out"), exist_ok=True)
    with open(os.path.join(ROOT, "bench", "out", "moe_place.json"), "w") as f:
        json.dump(res, f, indent=1)
    subprocess.run(["rm", "-rf", tmp])


if __name__ == "__main__":
    main()
