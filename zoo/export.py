"""The zoo's exporter: real architectures from Debian's python3-torchvision (and
a few built from torch.nn), with random weights (torch.manual_seed(0)),
exported by python3-torch's torch.onnx.export at opset 17, and their inputs.

Usage: export.py OUTDIR NAME... (or `all`, or `list` to print the names)
For each NAME it writes OUTDIR/NAME.onnx and OUTDIR/NAME_in0.npy, ... (a fixed
seed per model), or OUTDIR/NAME.fail holding why torch could not export it.
An export is kept while its stamp file matches (EXPORT_VERSION below), so
`make zoo` exports each model once."""
import hashlib
import os
import subprocess
import sys
import traceback
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
# An export is redone when its stamp changes: raise EXPORT_VERSION when build()
# changes what a model exports (a model's entry in MODELS is part of its stamp).
EXPORT_VERSION = 1


def stamp(name):
    return hashlib.sha256(repr((EXPORT_VERSION, name, MODELS[name])).encode()).hexdigest()[:16]


# name: (family, input shape); family picks the builder below
IMG = (1, 3, 224, 224)
MODELS = {
    # classification (torchvision.models)
    "alexnet": ("cls", IMG), "convnext_tiny": ("cls", IMG), "densenet121": ("cls", IMG),
    "efficientnet_b0": ("cls", IMG), "efficientnet_v2_s": ("cls", (1, 3, 384, 384)), "googlenet": ("cls", IMG),
    "inception_v3": ("cls", (1, 3, 299, 299)), "maxvit_t": ("cls", IMG), "mnasnet0_5": ("cls", IMG),
    "mobilenet_v2": ("cls", IMG), "mobilenet_v3_small": ("cls", IMG), "mobilenet_v3_large": ("cls", IMG),
    "regnet_x_400mf": ("cls", IMG), "regnet_y_400mf": ("cls", IMG), "resnet18": ("cls", IMG), "resnet50": ("cls", IMG),
    "resnext50_32x4d": ("cls", IMG), "shufflenet_v2_x1_0": ("cls", IMG), "squeezenet1_0": ("cls", IMG),
    "swin_t": ("cls", IMG), "swin_v2_t": ("cls", (1, 3, 256, 256)), "vgg11": ("cls", IMG), "vit_b_16": ("cls", IMG),
    "wide_resnet50_2": ("cls", IMG),
    # segmentation (torchvision.models.segmentation), 256 x 256
    "deeplabv3_mobilenet_v3_large": ("seg", (1, 3, 256, 256)), "deeplabv3_resnet50": ("seg", (1, 3, 256, 256)),
    "fcn_resnet50": ("seg", (1, 3, 256, 256)), "lraspp_mobilenet_v3_large": ("seg", (1, 3, 256, 256)),
    # detection (torchvision.models.detection): one image
    "fasterrcnn_mobilenet_v3_large_320_fpn": ("det", (3, 320, 320)), "fcos_resnet50_fpn": ("det", (3, 320, 320)),
    "retinanet_resnet50_fpn": ("det", (3, 320, 320)), "ssd300_vgg16": ("det", (3, 300, 300)),
    "ssdlite320_mobilenet_v3_large": ("det", (3, 320, 320)), "maskrcnn_resnet50_fpn": ("det", (3, 320, 320)),
    "keypointrcnn_resnet50_fpn": ("det", (3, 320, 320)),
    # video (torchvision.models.video): [N, C, T, H, W]
    "r3d_18": ("video", (1, 3, 8, 112, 112)), "mc3_18": ("video", (1, 3, 8, 112, 112)),
    "r2plus1d_18": ("video", (1, 3, 8, 112, 112)), "s3d": ("video", (1, 3, 16, 224, 224)),
    "mvit_v2_s": ("skip", "torch 1.13's exporter used all 24 GB of memory and was killed (tried with and without gradients, 2026-12-08)"),
    # optical flow: two frames
    "raft_small": ("flow", (1, 3, 128, 128)),
    # built from torch.nn
    "bert_base_encoder": ("nn", (1, 128, 768)), "gpt2_small_decoder": ("nn", (1, 128, 768)),
    "lstm_bidir2": ("nn", (300, 1, 80)), "gru_speech": ("nn", (1, 300, 80)), "lstm_if": ("nn", (300, 1, 80)),
}


def build(torch, tv, name, family, shape):
    """(module, example inputs as a tuple of tensors, input names, output names)."""
    x = torch.randn(*shape)
    if family == "cls":
        # torch's default initialization: inception_v3's own (init_weights) grows its logits to 3e8
        kw = {"aux_logits": False, "init_weights": False} if name in ("inception_v3", "googlenet") else {}
        return getattr(tv.models, name)(weights=None, **kw), (x,), ["input"], ["logits"]
    if family == "seg":
        kw = {"aux_loss": False} if not name.startswith("lraspp") else {}
        return getattr(tv.models.segmentation, name)(weights=None, weights_backbone=None, **kw), (x,), ["input"], ["out"]
    if family == "video":
        return getattr(tv.models.video, name)(weights=None), (x,), ["input"], ["logits"]
    if family == "flow":
        return getattr(tv.models.optical_flow, name)(weights=None), (x, torch.randn(*shape)), ["frame1", "frame2"], ["flow"]
    if family == "det":
        m = getattr(tv.models.detection, name)(weights=None, weights_backbone=None)
        return DetWrap(torch, m), (torch.rand(*shape),), ["image"], None
    return nn_model(torch, name, x)


def DetWrap(torch, m):
    """A detection model taking one image tensor instead of a list."""
    class W(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.m = m

        def forward(self, img):
            out = self.m([img])[0]
            return tuple(out[k] for k in sorted(out))
    return W()


def nn_model(torch, name, x):
    nn = torch.nn
    if name in ("bert_base_encoder", "gpt2_small_decoder"):
        causal = name.startswith("gpt2")

        class Enc(nn.Module):
            def __init__(self):
                super().__init__()
                def layer():
                    return nn.TransformerEncoderLayer(768, 12, 3072, dropout=0.0, activation="gelu", batch_first=True, norm_first=causal)
                self.enc = nn.TransformerEncoder(layer(), 12, enable_nested_tensor=False)
                self.enc.layers = nn.ModuleList([layer() for _ in range(12)])  # its clones would share the weights
                self.register_buffer("mask", torch.triu(torch.full((128, 128), float("-inf")), 1) if causal else torch.zeros(0))

            def forward(self, h):
                return self.enc(h, mask=self.mask if causal else None)
        return Enc(), (x,), ["hidden"], ["out"]
    if name == "lstm_bidir2":
        class L(nn.Module):
            def __init__(self):
                super().__init__()
                self.rnn = nn.LSTM(80, 256, num_layers=2, bidirectional=True)
                self.fc = nn.Linear(512, 32)

            def forward(self, f):
                return self.fc(self.rnn(f)[0])
        return L(), (x,), ["frames"], ["out"]
    if name == "gru_speech":
        class G(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv1d(80, 128, 5, padding=2)
                self.rnn = nn.GRU(128, 256, num_layers=2, batch_first=True)
                self.fc = nn.Linear(256, 40)

            def forward(self, f):
                h = torch.relu(self.conv(f.transpose(1, 2))).transpose(1, 2)
                return torch.log_softmax(self.fc(self.rnn(h)[0]), -1)
        return G(), (x,), ["frames"], ["logp"]
    if name == "lstm_if":
        class Branches(nn.Module):
            def __init__(self):
                super().__init__()
                self.a = nn.LSTM(80, 128)
                self.b = nn.LSTM(80, 128)

            def forward(self, f, flag):
                if bool(flag[0]):
                    y = self.a(f)[0]
                else:
                    y = self.b(f)[0]
                return y
        return torch.jit.script(Branches()), (x, torch.tensor([True])), ["frames", "flag"], ["out"]
    raise KeyError(name)


def export(torch, tv, out, name):
    family, shape = MODELS[name]
    if family == "skip":
        raise RuntimeError(shape)
    path = os.path.join(out, name + ".onnx")
    torch.manual_seed(0)
    m, args, in_names, out_names = build(torch, tv, name, family, shape)
    m.eval()
    # without gradients, tracing mvit_v2_s takes a few GB instead of over 20;
    # not for the transformers, whose fused fast path (which ONNX cannot
    # express) torch 1.13 takes only then
    grad = torch.no_grad() if family == "video" else torch.enable_grad()
    with warnings.catch_warnings(), grad:
        warnings.simplefilter("ignore")
        torch.onnx.export(m, args, path + ".tmp", opset_version=17, input_names=in_names, output_names=out_names,
                          do_constant_folding=True)
    os.replace(path + ".tmp", path)
    for i, a in enumerate(args):
        np.save(os.path.join(out, "%s_in%d.npy" % (name, i)), a.numpy())


def export_one(out, n):
    """Exports n in this process; on failure writes n.fail with the reason."""
    import torch
    import torchvision as tv
    torch.set_num_threads(os.cpu_count() or 1)
    try:
        export(torch, tv, out, n)
    except Exception as e:
        why = "%s: %s" % (type(e).__name__, str(e).strip().splitlines()[0] if str(e).strip() else "")
        with open(os.path.join(out, n + ".fail"), "w") as f:
            f.write(why + "\n\n" + traceback.format_exc())
        print("export.py: %s cannot be exported: %s" % (n, why), flush=True)


def main():
    out, names = sys.argv[1], sys.argv[2:]
    if names[:1] == ["--one"]:
        export_one(out, names[1])
        return 0
    if names == ["list"]:
        print(" ".join(MODELS))
        return 0
    if names == ["all"] or not names:
        names = list(MODELS)
    for n in names:
        if n not in MODELS:
            sys.exit("export.py: no model named %s (export.py OUT list)" % n)
    os.makedirs(out, exist_ok=True)
    for n in names:
        f = os.path.join(out, n + ".stamp")
        if os.path.exists(f) and open(f).read() == stamp(n):
            continue
        for ext in (".onnx", ".fail", ".onnx.tmp"):
            if os.path.exists(os.path.join(out, n + ext)):
                os.remove(os.path.join(out, n + ext))
        print("export.py: exporting %s" % n, flush=True)
        # each in a process of its own: torch's tracer may run out of memory
        r = subprocess.run([sys.executable, os.path.abspath(__file__), out, "--one", n])
        if r.returncode != 0 and not os.path.exists(os.path.join(out, n + ".fail")):
            with open(os.path.join(out, n + ".fail"), "w") as f:
                f.write("the exporting process ended with status %d (killed by the system: out of memory?)\n" % r.returncode)
            print("export.py: %s cannot be exported: status %d" % (n, r.returncode), flush=True)
        with open(os.path.join(out, n + ".stamp"), "w") as f:
            f.write(stamp(n))
    return 0


if __name__ == "__main__":
    sys.exit(main())
