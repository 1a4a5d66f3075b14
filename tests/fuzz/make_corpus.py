#!/usr/bin/python3
"""make_corpus.py: writes the seed corpora of the libFuzzer harnesses
(tests/fuzz/fuzz_*.c), one folder per harness under OUT, and the libFuzzer
dictionaries OUT/kir.dict and OUT/json.dict.

    make_corpus.py OUT [KILN]

  onnx/     models of Debian's libonnx-testdata (a deterministic sample of the
            node tests, the simple ones, a few small converted PyTorch models)
  pb/       TensorProto inputs and outputs of the same data (numbers, strings,
            every dtype the sample has), and every SequenceProto and OptionalProto
            input file of the node tests (found from the models' input types)
  npy/      .npy files written by NumPy: each dtype the runtime reads, strings
            (S and U), scalars, empty and rank-8 arrays, format versions 1, 2, 3,
            and a few it refuses (Fortran order, big-endian, object)
  kir/      `KILN dump` of a few conformance models, final and after infer, in
            the harness's layout: the text, a NUL byte, the weights file; plus
            a few texts written here (so the folder is never empty without KILN)
  target/   the shipped target files (targets/*.json)
  profile/  routing profiles in the format runtime/io.c writes
            (kiln_write_routing_profile) and frontend/target.c reads

Everything is small (files over 64 KiB are skipped) and the same on every run.
"""
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = "/usr/share/libonnx-testdata/data"
MAX_BYTES = 64 << 10


def small(path):
    return os.path.getsize(path) <= MAX_BYTES


def copy(src, dst_dir, name):
    shutil.copyfile(src, os.path.join(dst_dir, name))


def tag(path):
    """data/node/test_abs/test_data_set_0/input_0.pb -> node-test_abs-0-input_0.pb"""
    rel = os.path.relpath(path, DATA).split(os.sep)
    rel = [p.replace("test_data_set_", "") for p in rel if p != "model.onnx"]
    return "-".join(rel) + ("" if path.endswith(".pb") else ".onnx")


def onnx_seeds(out):
    node = sorted(glob.glob(f"{DATA}/node/*/model.onnx"))
    picked = node[::4]
    picked += sorted(glob.glob(f"{DATA}/simple/*/model.onnx"))
    picked += sorted(glob.glob(f"{DATA}/pytorch-converted/*/model.onnx"))[::6]
    picked += sorted(glob.glob(f"{DATA}/pytorch-operator/*/model.onnx"))[::6]
    # control flow, sequences, optionals, strings and MoE-free extras worth having
    extra = re.compile(r"test_(if|loop|scan|sequence|optional|split_to|concat_from|strnorm|lstm|gru|einsum|resize)")
    picked += [p for p in node if extra.search(p)][::2]
    n = 0
    for p in dict.fromkeys(picked):
        if small(p):
            copy(p, out, tag(p))
            n += 1
    return n


def seq_opt_inputs():
    """(path, kind) of every input file of the node tests that is a
    SequenceProto or an OptionalProto, from the models' graph input types."""
    import onnx
    found = []
    for m in sorted(glob.glob(f"{DATA}/node/*/model.onnx")):
        name = os.path.basename(os.path.dirname(m))
        if not re.search(r"seq|optional|loop|if|split|concat|identity", name):
            continue
        try:
            g = onnx.load(m, load_external_data=False).graph
        except Exception:
            continue
        for i, vi in enumerate(g.input):
            kind = vi.type.WhichOneof("value")
            if kind in ("sequence_type", "optional_type"):
                found += [(p, kind) for p in sorted(glob.glob(f"{os.path.dirname(m)}/test_data_set_*/input_{i}.pb"))]
        for i, vi in enumerate(g.output):
            kind = vi.type.WhichOneof("value")
            if kind in ("sequence_type", "optional_type"):
                found += [(p, kind) for p in sorted(glob.glob(f"{os.path.dirname(m)}/test_data_set_*/output_{i}.pb"))]
    return found


def pb_seeds(out):
    n = 0
    tensors = sorted(glob.glob(f"{DATA}/node/*/test_data_set_0/input_0.pb"))[::6]
    tensors += sorted(glob.glob(f"{DATA}/node/*/test_data_set_0/output_0.pb"))[3::12]
    tensors += sorted(glob.glob(f"{DATA}/simple/*/test_data_set_0/*.pb"))
    tensors += [p for p in sorted(glob.glob(f"{DATA}/node/*/test_data_set_0/*.pb")) if re.search(r"string|strnorm|cast", p)][::3]
    for p in dict.fromkeys(tensors):
        if small(p):
            copy(p, out, tag(p))
            n += 1
    try:
        so = seq_opt_inputs()
    except ImportError:
        so = []
    for p, kind in so[:120]:
        if small(p):
            copy(p, out, ("seq-" if kind == "sequence_type" else "opt-") + tag(p))
            n += 1
    return n


def npy_seeds(out):
    arrays = {}
    for dt in ["f4", "f8", "f2", "i1", "u1", "i2", "u2", "i4", "u4", "i8", "u8", "?"]:
        arrays[f"{dt.replace('?', 'b1')}-2x3"] = (np.arange(6) % 3).astype(dt).reshape(2, 3)
    arrays["f4-scalar"] = np.array(1.5, dtype=np.float32)
    arrays["f4-empty"] = np.zeros((0, 4), dtype=np.float32)
    arrays["f4-rank8"] = np.ones((1, 2, 1, 2, 1, 2, 1, 2), dtype=np.float32)
    arrays["f4-1x3x4x4"] = np.linspace(-1, 1, 48, dtype=np.float32).reshape(1, 3, 4, 4)
    arrays["i64-vec"] = np.array([0, -1, 2**62, -2**63], dtype=np.int64)
    arrays["S-bytes"] = np.array([b"a", b"hello", b""], dtype="S5")
    arrays["U-text"] = np.array([["x", "\u00e9t\u00e9"], ["\U0001f600", ""]], dtype="U3")
    arrays["U-scalar"] = np.array("kiln", dtype="U4")
    for name, a in arrays.items():
        np.save(os.path.join(out, name + ".npy"), a, allow_pickle=False)
    for ver in [(2, 0), (3, 0)]:
        with open(os.path.join(out, f"f4-v{ver[0]}.npy"), "wb") as f:
            np.lib.format.write_array(f, np.arange(5, dtype=np.float32), version=ver)
    # refused by the reader: Fortran order, big-endian, object arrays
    np.save(os.path.join(out, "refused-fortran.npy"), np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3)))
    np.save(os.path.join(out, "refused-bigendian.npy"), np.arange(3, dtype=">i4"))
    with open(os.path.join(out, "refused-object.npy"), "wb") as f:
        np.lib.format.write_array(f, np.array([1, "a"], dtype=object), allow_pickle=True)
    return len(arrays) + 5


KIR_MODELS = [
    "node/test_conv_with_strides_padding", "node/test_gemm_default_single_elem_vector_bias", "node/test_if",
    "node/test_loop11", "node/test_scan9_sum", "node/test_lstm_defaults", "node/test_gru_defaults",
    "node/test_resize_downsample_scales_linear", "node/test_einsum_batch_matmul", "node/test_slice",
    "node/test_reshape_reordered_all_dims", "node/test_sequence_insert_at_back", "node/test_split_to_sequence_1", "node/test_loop13_seq",
    "node/test_optional_has_element", "node/test_strnormalizer_export_monday_casesensintive_lower", "node/test_top_k",
    "node/test_layer_normalization_2d_axis0", "node/test_softmax_axis_1", "node/test_maxpool_2d_pads",
    "node/test_cast_FLOAT_to_FLOAT16", "node/test_gather_elements_1", "node/test_argmax_keepdims_example",
    "pytorch-converted/test_Conv2d", "pytorch-converted/test_Linear", "pytorch-converted/test_BatchNorm2d_eval",
    "pytorch-operator/test_operator_add_broadcast", "simple/test_sign_model", "node/test_matmulinteger",
]

KIR_TEXTS = {
    "add.kir": 'kiln 1\ngraph "g" opset 13 {\n  input %x : f32[2,3]\n  const %c : f32[3] = [1.0, -2.5, inf]\n'
               '  %y : f32[2,3] = Add "y" (%x, %c)\n  output %y\n}\n',
    "blob.kir": 'kiln 1\ngraph "g" opset 13 {\n  input %x : f32[1,4]\n  const %w : f32[4,2] = blob "m.weights" 0 32\n'
                '  %y : f32[1,2] = MatMul "mm" (%x, %w)\n  output %y\n}\n',
    "if.kir": 'kiln 1\ngraph "g" opset 13 {\n  input %c : bool[]\n  %r : f32[2] = If "r" (%c) {else_branch = graph "e" opset 13 {\n'
              '      const %a : f32[2] = [1.0, 2.0]\n      output %a\n    }, then_branch = graph "t" opset 13 {\n'
              '      const %b : f32[2] = [3.0, 4.0]\n      output %b\n    }}\n  output %r\n}\n',
    "names.kir": 'kiln 1\ngraph "quoted \\"name\\"" opset 17 {\n  input %"a b" : i64[N,4]\n'
                 '  %"o:1" : i64[N,4] = Neg "n\\x01" (%"a b")\n  output %"o:1"\n}\n',
}


def binds(model):
    """--bind NAME=FILE for every graph input but the first, from the test's first data set."""
    try:
        import onnx
        g = onnx.load(model, load_external_data=False).graph
    except Exception:
        return []
    inits = {t.name for t in g.initializer}
    names = [vi.name for vi in g.input if vi.name not in inits]
    args = []
    for i, name in enumerate(names[1:], 1):
        f = os.path.join(os.path.dirname(model), "test_data_set_0", f"input_{i}.pb")
        if os.path.exists(f):
            args += ["--bind", f"{name}={f}"]
    return args


def kir_seeds(out, kiln):
    n = 0
    for name, text in KIR_TEXTS.items():
        data = text.encode()
        if "blob" in name:
            data += b"\0" + np.arange(8, dtype=np.float32).tobytes()
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
        n += 1
    if not kiln or not os.access(kiln, os.X_OK):
        print(f"make_corpus: no kiln at {kiln!r}: the kir corpus holds only its own {n} texts", file=sys.stderr)
        return n
    with tempfile.TemporaryDirectory() as tmp:
        for i, m in enumerate(KIR_MODELS):
            model = f"{DATA}/{m}/model.onnx"
            if not os.path.exists(model):
                continue
            for after in ([], ["--after", "infer"]) if i % 2 == 0 else ([],):
                kir = os.path.join(tmp, "m.kir")
                for stale in (kir, kir + ".weights"):
                    if os.path.exists(stale):
                        os.unlink(stale)
                r = None
                for extra in ([], binds(model)):  # inputs that decide shapes: bound to the test's data
                    r = subprocess.run([kiln, "dump", model, "-o", kir] + after + extra, stdin=subprocess.DEVNULL,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
                    if r.returncode == 0:
                        break
                if r.returncode != 0 or not os.path.exists(kir):
                    continue
                data = open(kir, "rb").read()
                if os.path.exists(kir + ".weights"):
                    data += b"\0" + open(kir + ".weights", "rb").read()
                if len(data) > MAX_BYTES:
                    continue
                name = m.replace("/", "-") + ("-infer" if after else "") + ".kir"
                with open(os.path.join(out, name), "wb") as f:
                    f.write(data)
                n += 1
    return n


def target_seeds(out):
    n = 0
    for p in sorted(glob.glob(f"{ROOT}/targets/*.json")):
        copy(p, out, os.path.basename(p))
        n += 1
    return n


def profile_seeds(out):
    def layer(name, counts, top_k=2):
        return {"name": name, "experts": len(counts), "top_k": top_k, "tokens": sum(counts) // top_k, "counts": counts}

    profiles = {
        "one-layer.json": {"format": "kiln-routing-profile", "version": 1, "model": "moe", "runs": 3,
                           "layers": [layer("moe1", [5, 7, 6, 6])]},
        "two-layers.json": {"format": "kiln-routing-profile", "version": 1, "model": "m\"x", "runs": 1,
                            "layers": [layer("blk0/moe", [0, 12, 1, 3, 0, 0, 9, 7]), layer("blk1/moe", [16, 16], 1)]},
        "empty.json": {"format": "kiln-routing-profile", "version": 1, "model": "none", "runs": 0, "layers": []},
        "repeat.json": {"format": "kiln-routing-profile", "version": 1, "model": "moe", "runs": 2,
                        "layers": [layer("moe1", [1.5, 2.5]), layer("moe1", [3, 1])]},
    }
    for name, p in profiles.items():
        with open(os.path.join(out, name), "w") as f:
            json.dump(p, f, indent=2)
            f.write("\n")
    return len(profiles)


def dict_entry(s):
    return '"' + "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "\\x%02x" % ord(c) for c in s) + '"'


def write_dicts(out):
    ops = re.findall(r'^OP\(\s*\w+,\s*"([^"]+)"', open(f"{ROOT}/ir/ops.def").read(), re.M)
    words = ["kiln 1", "graph", "opset", "input", "const", "output", "blob", "%", "%\"", "=", "{", "}", "[", "]", "(", ")",
             ",", ":", "inf", "-inf", "nan", "N", "true", "false", "graph \"g\" opset 13 {"]
    words += ["f32", "f64", "f16", "bf16", "i8", "i16", "i32", "i64", "u8", "u16", "u32", "u64", "bool", "str"]
    with open(os.path.join(out, "kir.dict"), "w") as f:
        for w in dict.fromkeys(words + ops):
            f.write(dict_entry(w) + "\n")
    keys = ["format", "kiln-routing-profile", "version", "model", "runs", "layers", "name", "experts", "top_k", "tokens",
            "counts", "device", "tflops", "f32", "f16", "memory_GiB", "memory_bandwidth_GBps", "nodes", "devices_per_node",
            "gemm_efficiency", "shared_memory", "intra_node_link", "inter_node_link", "bandwidth_GBps", "latency_us", "detect"]
    with open(os.path.join(out, "json.dict"), "w") as f:
        for k in keys:
            f.write(dict_entry('"' + k + '"') + "\n")
        for w in ["{", "}", "[", "]", ":", ",", "true", "false", "null", "1e308", "-1", "0.5", "1e15", "\\u0000"]:
            f.write(dict_entry(w) + "\n")


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: make_corpus.py OUT [KILN]")
    out, kiln = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None
    makers = {"onnx": onnx_seeds, "pb": pb_seeds, "npy": npy_seeds, "target": target_seeds, "profile": profile_seeds,
              "kir": lambda d: kir_seeds(d, kiln)}
    for name, make in makers.items():
        d = os.path.join(out, name)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        n = make(d)
        size = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
        print(f"make_corpus: {name}: {n} files, {size // 1024} KiB")
    write_dicts(out)


if __name__ == "__main__":
    main()
