"""Builds the benchmark models with python3-onnx (fixed random weights) and one
input each: MLP, ResNet-18-style CNN (224x224), MobileNetV2-style CNN (224x224),
BERT-base-style encoder (4 layers, sequence 128), a detection-style net, an LSTM
sequence model, and small models of convolution edge cases for the ONNX Runtime
comparison (depthwise, convgeom, smallc, conv3d, winograd), of control flow (control), TfIdfVectorizer (tfidf), the sequence ops
(sequence), outputs sized at run time (dynamic), a symbolic batch (batch), shapes known only at run time (runtime), and
BERT-4 with a symbolic batch and sequence length (bert4dyn), batched MatMuls by constant weights (bmm_const). Usage: models.py OUTDIR [NAMES]"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

rng = np.random.default_rng(11)


class B:
    def __init__(self, name):
        self.name, self.nodes, self.inits, self.n = name, [], [], 0

    def w(self, shape, scale=None):
        self.n += 1
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else shape[0]
        a = rng.standard_normal(shape).astype(np.float32) * (scale if scale is not None else np.sqrt(2.0 / max(fan_in, 1)))
        nm = "w%d" % self.n
        self.inits.append(numpy_helper.from_array(a, nm))
        return nm

    def c(self, arr):
        self.n += 1
        nm = "c%d" % self.n
        self.inits.append(numpy_helper.from_array(np.asarray(arr), nm))
        return nm

    def op(self, op, ins, **attrs):
        self.n += 1
        out = "t%d" % self.n
        self.nodes.append(helper.make_node(op, ins, [out], name="%s_%d" % (op.lower(), self.n), **attrs))
        return out

    def save(self, path, inputs, out, out_shape=None):
        g = helper.make_graph(self.nodes, self.name, inputs, [helper.make_tensor_value_info(out, TensorProto.FLOAT, out_shape)], self.inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
        onnx.save(m, path)


def conv_bn(b, x, cin, cout, k, s, relu=True, group=1, relu6=False):
    y = b.op("Conv", [x, b.w((cout, cin // group, k, k))], kernel_shape=[k, k], strides=[s, s], pads=[k // 2] * 4, group=group)
    y = b.op("BatchNormalization", [y, b.c(np.ones(cout, np.float32)), b.c(rng.standard_normal(cout).astype(np.float32) * 0.1),
                                    b.c(rng.standard_normal(cout).astype(np.float32) * 0.1), b.c(np.ones(cout, np.float32))])
    if relu6:
        return b.op("Clip", [y, b.c(np.float32(0)), b.c(np.float32(6))])
    return b.op("Relu", [y]) if relu else y


def mlp(d):
    b = B("mlp")
    h = b.op("Relu", [b.op("Gemm", ["x", b.w((784, 1024)), b.c(np.zeros(1024, np.float32))])])
    h = b.op("Relu", [b.op("Gemm", [h, b.w((1024, 1024)), b.c(np.zeros(1024, np.float32))])])
    y = b.op("Gemm", [h, b.w((1024, 10)), b.c(np.zeros(10, np.float32))])
    b.save(os.path.join(d, "mlp.onnx"), [helper.make_tensor_value_info("x", TensorProto.FLOAT, [64, 784])], y)
    return [rng.standard_normal((64, 784)).astype(np.float32)]


def resnet18(d):
    b = B("resnet18")
    x = conv_bn(b, "x", 3, 64, 7, 2)
    x = b.op("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    cin = 64
    for cout, s in [(64, 1), (128, 2), (256, 2), (512, 2)]:
        for i in range(2):
            st = s if i == 0 else 1
            y = conv_bn(b, x, cin, cout, 3, st)
            y = conv_bn(b, y, cout, cout, 3, 1, relu=False)
            sc = x if (st == 1 and cin == cout) else conv_bn(b, x, cin, cout, 1, st, relu=False)
            x = b.op("Relu", [b.op("Add", [y, sc])])
            cin = cout
    x = b.op("Flatten", [b.op("GlobalAveragePool", [x])])
    y = b.op("Gemm", [x, b.w((512, 1000)), b.c(np.zeros(1000, np.float32))])
    b.save(os.path.join(d, "resnet18.onnx"), [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 224, 224])], y)
    return [rng.standard_normal((1, 3, 224, 224)).astype(np.float32)]


def mobilenetv2(d):
    b = B("mobilenetv2")
    x = conv_bn(b, "x", 3, 32, 3, 2, relu6=True)
    cin = 32
    for t, c, n, s in [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]:
        for i in range(n):
            st = s if i == 0 else 1
            hid = cin * t
            y = x if t == 1 else conv_bn(b, x, cin, hid, 1, 1, relu6=True)
            y = conv_bn(b, y, hid, hid, 3, st, group=hid, relu6=True)
            y = conv_bn(b, y, hid, c, 1, 1, relu=False)
            x = b.op("Add", [x, y]) if (st == 1 and cin == c) else y
            cin = c
    x = conv_bn(b, x, cin, 1280, 1, 1, relu6=True)
    x = b.op("Flatten", [b.op("GlobalAveragePool", [x])])
    y = b.op("Gemm", [x, b.w((1280, 1000)), b.c(np.zeros(1000, np.float32))])
    b.save(os.path.join(d, "mobilenetv2.onnx"), [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 224, 224])], y)
    return [rng.standard_normal((1, 3, 224, 224)).astype(np.float32)]


def layernorm(b, x, h):
    mu = b.op("ReduceMean", [x], axes=[-1])
    dlt = b.op("Sub", [x, mu])
    var = b.op("ReduceMean", [b.op("Pow", [dlt, b.c(np.float32(2))])], axes=[-1])
    y = b.op("Div", [dlt, b.op("Sqrt", [b.op("Add", [var, b.c(np.float32(1e-12))])])])
    return b.op("Add", [b.op("Mul", [y, b.c(np.ones(h, np.float32))]), b.c(np.zeros(h, np.float32))])


def bert(d, layers=4, seq=128, h=768, heads=12, ffn=3072, symbolic=False):
    """symbolic: the batch and the sequence length are symbolic in the inputs
    and the reshapes keep them (0) or infer them (-1): bert4dyn."""
    b = B("bert")
    x = "x"
    dh = h // heads
    for _ in range(layers):
        def proj(inp):
            return b.op("Add", [b.op("MatMul", [inp, b.w((h, h), 0.02)]), b.c(np.zeros(h, np.float32))])

        def split_heads(t):
            return b.op("Transpose", [b.op("Reshape", [t, b.c(np.array([0, -1, heads, dh] if symbolic else [1, seq, heads, dh], np.int64))])],
                        perm=[0, 2, 1, 3])
        q, k, v = split_heads(proj(x)), split_heads(proj(x)), split_heads(proj(x))
        s = b.op("Div", [b.op("MatMul", [q, b.op("Transpose", [k], perm=[0, 1, 3, 2])]), b.c(np.float32(np.sqrt(dh)))])
        p = b.op("Softmax", [b.op("Add", [s, "mask"])], axis=-1)
        ctx = b.op("Reshape", [b.op("Transpose", [b.op("MatMul", [p, v])], perm=[0, 2, 1, 3]),
                               b.c(np.array([0, -1, h] if symbolic else [1, seq, h], np.int64))])
        x = layernorm(b, b.op("Add", [proj(ctx), x]), h)
        f = b.op("Add", [b.op("MatMul", [x, b.w((h, ffn), 0.02)]), b.c(np.zeros(ffn, np.float32))])
        f = b.op("Mul", [b.op("Mul", [f, b.c(np.float32(0.5))]),
                         b.op("Add", [b.op("Erf", [b.op("Div", [f, b.c(np.float32(np.sqrt(2)))])]), b.c(np.float32(1))])])
        f = b.op("Add", [b.op("MatMul", [f, b.w((ffn, h), 0.02)]), b.c(np.zeros(h, np.float32))])
        x = layernorm(b, b.op("Add", [f, x]), h)
    n, s = ("batch", "seq") if symbolic else (1, seq)
    b.save(os.path.join(d, "bert4dyn.onnx" if symbolic else "bert4.onnx"), [helper.make_tensor_value_info("x", TensorProto.FLOAT, [n, s, h]),
                                                                           helper.make_tensor_value_info("mask", TensorProto.FLOAT, [n, 1, 1, s])], x)
    return [rng.standard_normal((1, seq, h)).astype(np.float32), np.zeros((1, 1, 1, seq), np.float32)]


def detect(d):
    """A small detection-style network: a strided backbone, a top-down path that
    upsamples with Resize and joins the skip with Concat (an FPN), and a head."""
    b = B("detect")
    c1 = conv_bn(b, "x", 3, 16, 3, 2)
    c2 = conv_bn(b, c1, 16, 32, 3, 2)
    c3 = conv_bn(b, c2, 32, 64, 3, 2)
    up = b.op("Resize", [c3, "", b.c(np.array([1, 1, 2, 2], np.float32))], mode="nearest")
    p2 = conv_bn(b, b.op("Concat", [up, c2], axis=1), 96, 32, 3, 1)
    up2 = b.op("Resize", [p2, "", b.c(np.array([1, 1, 2, 2], np.float32))], mode="linear", coordinate_transformation_mode="half_pixel")
    p1 = conv_bn(b, b.op("Concat", [up2, c1], axis=1), 48, 16, 3, 1)
    y = b.op("Sigmoid", [b.op("Conv", [p1, b.w((6, 16, 1, 1))], kernel_shape=[1, 1])])
    b.save(os.path.join(d, "detect.onnx"), [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 64, 64])], y)
    return [rng.standard_normal((1, 3, 64, 64)).astype(np.float32)]


def lstm(d):
    """An LSTM sequence model: a bidirectional LSTM over 32 steps of 64 features
    (batch 4, hidden 96, with sequence lengths), a second forward LSTM on its
    output, and a linear head on the final hidden state."""
    b = B("lstm")
    S, N, I, H = 32, 4, 64, 96
    lens = b.c(np.array([32, 20, 32, 7], np.int32))
    b.nodes.append(helper.make_node("LSTM", ["x", b.w((2, 4 * H, I), 0.1), b.w((2, 4 * H, H), 0.1), b.w((2, 8 * H), 0.1), lens],
                                    ["y1", "", ""], name="lstm1", hidden_size=H, direction="bidirectional"))
    y1 = b.op("Reshape", [b.op("Transpose", ["y1"], perm=[0, 2, 1, 3]), b.c(np.array([S, N, 2 * H], np.int64))])
    b.nodes.append(helper.make_node("LSTM", [y1, b.w((1, 4 * H, 2 * H), 0.1), b.w((1, 4 * H, H), 0.1), b.w((1, 8 * H), 0.1), lens],
                                    ["", "h2", ""], name="lstm2", hidden_size=H))
    h = b.op("Reshape", ["h2", b.c(np.array([N, H], np.int64))])
    y = b.op("Gemm", [h, b.w((H, 10)), b.c(np.zeros(10, np.float32))])
    b.save(os.path.join(d, "lstm.onnx"), [helper.make_tensor_value_info("x", TensorProto.FLOAT, [S, N, I])], y)
    return [rng.standard_normal((S, N, I)).astype(np.float32)]


def gru(d):
    """Recurrent layers with constant weights (packed for the GEMM when the
    context is created): a bidirectional GRU (linear_before_reset 0) over 24
    steps of 48 features (batch 3, hidden 40, with sequence lengths and an
    initial state), a forward GRU with linear_before_reset 1 on its output, and
    a reverse RNN on that."""
    b = B("gru")
    S, N, I, H = 24, 3, 48, 40
    lens = b.c(np.array([24, 11, 19], np.int32))
    b.nodes.append(helper.make_node("GRU", ["x", b.w((2, 3 * H, I), 0.1), b.w((2, 3 * H, H), 0.1), b.w((2, 6 * H), 0.1), lens,
                                            b.w((2, N, H), 0.5)], ["y1", ""], name="gru1", hidden_size=H, direction="bidirectional"))
    y1 = b.op("Reshape", [b.op("Transpose", ["y1"], perm=[0, 2, 1, 3]), b.c(np.array([S, N, 2 * H], np.int64))])
    b.nodes.append(helper.make_node("GRU", [y1, b.w((1, 3 * H, 2 * H), 0.1), b.w((1, 3 * H, H), 0.1), b.w((1, 6 * H), 0.1)],
                                    ["y2", ""], name="gru2", hidden_size=H, linear_before_reset=1))
    y2 = b.op("Reshape", ["y2", b.c(np.array([S, N, H], np.int64))])
    b.nodes.append(helper.make_node("RNN", [y2, b.w((1, H, H), 0.1), b.w((1, H, H), 0.1), b.w((1, 2 * H), 0.1)],
                                    ["y3", "h3"], name="rnn3", hidden_size=H, direction="reverse"))
    y = b.op("Add", [b.op("ReduceMean", ["y3"], axes=[0], keepdims=0), "h3"])
    b.save(os.path.join(d, "gru.onnx"), [helper.make_tensor_value_info("x", TensorProto.FLOAT, [S, N, I])], y)
    return [rng.standard_normal((S, N, I)).astype(np.float32)]


def depthwise(d):
    """Depthwise 3x3 convolutions on odd, small, narrow and wider planes: stride
    1 and 2, symmetric, asymmetric and no padding, with bias and fused
    activations; a 5x5 and a dilated one take the general path."""
    b = B("depthwise")
    C = 8

    def dw(x, k, s, pads, dil=1, act=None):
        y = b.op("Conv", [x, b.w((C, 1, k, k)), b.c(rng.standard_normal(C).astype(np.float32))], kernel_shape=[k, k],
                 strides=[s, s], pads=pads, group=C, dilations=[dil, dil])
        if act == "relu":
            return b.op("Relu", [y])
        return b.op("Clip", [y, b.c(np.float32(0)), b.c(np.float32(6))]) if act == "relu6" else y
    x = dw("x", 3, 1, [1, 1, 1, 1], act="relu")         # 15 x 9
    x = dw(x, 5, 1, [2, 2, 2, 2])                          # 15 x 9, general path
    x = dw(x, 3, 1, [2, 2, 2, 2], dil=2)                   # 15 x 9, dilated
    x = dw(x, 3, 2, [1, 1, 1, 1], act="relu6")           # 8 x 5
    x = dw(x, 3, 1, [0, 0, 0, 0])                          # 6 x 3
    x = dw(x, 3, 2, [0, 1, 1, 0], act="relu")             # 3 x 1, asymmetric
    x = dw(x, 3, 1, [1, 1, 1, 1])                          # 3 x 1
    # wider planes: several 16-column vectors per row with a ragged last one,
    # and a row count that is not a multiple of the row blocks
    v = dw("v", 3, 1, [1, 1, 1, 1], act="relu6")         # 23 x 75
    v = dw(v, 3, 2, [1, 1, 1, 1])                          # 12 x 38: rows split into even and odd columns
    v = dw(v, 3, 1, [0, 1, 1, 0], act="relu")             # 11 x 37, asymmetric
    v = dw(v, 3, 2, [0, 0, 0, 0])                          # 5 x 18
    y = b.op("Concat", [b.op("Flatten", [x]), b.op("Flatten", [v])], axis=1)
    b.save(os.path.join(d, "depthwise.onnx"), [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, C, 15, 9]),
                                               helper.make_tensor_value_info("v", TensorProto.FLOAT, [2, C, 23, 75])], y)
    return [rng.standard_normal((2, C, 15, 9)).astype(np.float32), rng.standard_normal((2, C, 23, 75)).astype(np.float32)]


def convgeom(d):
    """GEMM convolutions large enough to go in chunks of output positions:
    stride (1, 2), dilation (2, 1), asymmetric padding, then a 3x3 whose output
    takes a residual Add and a Relu in its epilogue."""
    b = B("convgeom")
    y1 = b.op("Conv", ["x", b.w((6, 8, 3, 3)), b.c(rng.standard_normal(6).astype(np.float32))], kernel_shape=[3, 3],
              strides=[1, 2], dilations=[2, 1], pads=[2, 1, 1, 0])               # 6 x 80 x 94
    y2 = b.op("Conv", [y1, b.w((6, 6, 3, 3)), b.c(rng.standard_normal(6).astype(np.float32))], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    y = b.op("Relu", [b.op("Add", [y2, y1])])
    b.save(os.path.join(d, "convgeom.onnx"), [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 81, 189])], y)
    return [rng.standard_normal((1, 8, 81, 189)).astype(np.float32)]


def smallc(d):
    """Convolutions of few input channels (an image's first layer), on the
    direct path: 4 channels 3x3 stride 2 with Clip, 1 channel 5x5 stride 1 with
    asymmetric padding, 3 channels 7x7 stride 2 whose output takes a residual
    Add and a Relu; output channel counts that are not multiples of 16 and
    rows of several vectors with a ragged last one."""
    b = B("smallc")

    def conv(x, cin, cout, k, s, pads):
        return b.op("Conv", [x, b.w((cout, cin, k, k)), b.c(rng.standard_normal(cout).astype(np.float32))], kernel_shape=[k, k],
                    strides=[s, s], pads=pads)
    y1 = b.op("Clip", [conv("x", 4, 20, 3, 2, [1, 1, 1, 1]), b.c(np.float32(0)), b.c(np.float32(6))])   # 20 x 19 x 23
    y2 = conv("u", 1, 5, 5, 1, [2, 1, 0, 2])                                                                # 5 x 17 x 36
    y3 = b.op("Relu", [b.op("Add", [conv("v", 3, 17, 7, 2, [3, 3, 3, 3]), conv("v", 3, 17, 1, 2, [0, 0, 0, 0])])])  # 17 x 9 x 35
    y = b.op("Concat", [b.op("Flatten", [t]) for t in (y1, y2, y3)], axis=1)
    shapes = {"x": (2, 4, 37, 45), "u": (2, 1, 19, 36), "v": (2, 3, 17, 70)}
    b.save(os.path.join(d, "smallc.onnx"), [helper.make_tensor_value_info(k, TensorProto.FLOAT, v) for k, v in shapes.items()], y)
    return [rng.standard_normal(v).astype(np.float32) for v in shapes.values()]


def conv3d(d):
    """A 3-D convolution whose output goes in chunks spanning depth slices."""
    b = B("conv3d")
    y = b.op("Conv", ["x", b.w((4, 2, 3, 3, 3)), b.c(rng.standard_normal(4).astype(np.float32))], kernel_shape=[3, 3, 3],
             pads=[1, 0, 1, 1, 1, 0])
    b.save(os.path.join(d, "conv3d.onnx"), [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 10, 31, 30])], y)
    return [rng.standard_normal((1, 2, 10, 31, 30)).astype(np.float32)]


def control(d):
    """Control flow as exporters write it: a Scan (a recurrent state through a
    captured weight, a second scan input read backwards, a scan output written
    backwards along axis 1), a Loop whose second state takes the first's old value, whose condition is
    computed and whose body holds an If on the iteration's parity (its branches
    use values captured across two levels), and an If on a condition computed
    from the input."""
    b = B("control")
    T, R, C = 6, 4, 5
    W = b.w((C, C), 0.3)
    h0 = b.op("ReduceMean", ["x"], axes=[0], keepdims=0)
    v = helper.make_tensor_value_info
    f = TensorProto.FLOAT
    scan_body = helper.make_graph([
        helper.make_node("MatMul", ["s", W], ["sw"]),
        helper.make_node("Add", ["sw", "xt"], ["pre"]),
        helper.make_node("Add", ["pre", "xr"], ["pre2"]),
        helper.make_node("Tanh", ["pre2"], ["s_new"]),
        helper.make_node("Sub", ["xt", h0], ["dz"]),
        helper.make_node("Relu", ["dz"], ["z"]),
        helper.make_node("Identity", ["s_new"], ["y"]),
    ], "scan_body", [v("s", f, [R, C]), v("xt", f, [R, C]), v("xr", f, [R, C])], [v("s_new", f, None), v("y", f, None), v("z", f, None)])
    b.nodes.append(helper.make_node("Scan", [h0, "x", "x"], ["s_last", "ys", "zs"], name="scan", body=scan_body, num_scan_inputs=2,
                                    scan_input_directions=[0, 1], scan_output_axes=[0, 1], scan_output_directions=[0, 1]))
    two = b.c(np.int64(2))
    zero = b.c(np.int64(0))
    half = b.c(np.float32(0.5))
    big = b.c(np.float32(1e30))
    then_g = helper.make_graph([helper.make_node("MatMul", ["a", W], ["p"])], "even", [], [v("p", f, None)])
    else_g = helper.make_graph([helper.make_node("Neg", ["bb"], ["q"])], "odd", [], [v("q", f, None)])
    loop_body = helper.make_graph([
        helper.make_node("Mod", ["i", two], ["par"]),
        helper.make_node("Equal", ["par", zero], ["even"]),
        helper.make_node("If", ["even"], ["pick"], then_branch=then_g, else_branch=else_g),
        helper.make_node("Mul", ["bb", half], ["bh"]),
        helper.make_node("Add", ["a", "bh"], ["a_new"]),
        helper.make_node("Identity", ["a"], ["b_new"]),
        helper.make_node("Abs", ["a_new"], ["ab"]),
        helper.make_node("ReduceMax", ["ab"], ["m"], keepdims=0),
        helper.make_node("Less", ["m", big], ["c_out"]),
    ], "loop_body", [v("i", TensorProto.INT64, []), v("c", TensorProto.BOOL, []), v("a", f, [R, C]), v("bb", f, [R, C])],
        [v("c_out", TensorProto.BOOL, []), v("a_new", f, None), v("b_new", f, None), v("pick", f, None)])
    cond0 = b.op("Greater", [b.op("ReduceSum", ["x"], keepdims=0), b.c(np.float32(-1e30))])
    b.nodes.append(helper.make_node("Loop", [b.c(np.int64(5)), cond0, h0, "s_last"], ["a_fin", "b_fin", "picks"], name="loop", body=loop_body))
    pos = b.op("Greater", [b.op("ReduceSum", ["x"], keepdims=0), b.c(np.float32(0))])
    up = helper.make_graph([helper.make_node("Mul", ["a_fin", half], ["r1"])], "up", [], [v("r1", f, None)])
    down = helper.make_graph([helper.make_node("Sub", ["b_fin", "a_fin"], ["r2"])], "down", [], [v("r2", f, None)])
    b.nodes.append(helper.make_node("If", [pos], ["sel"], name="if", then_branch=up, else_branch=down))
    # a heavier body: a convolution with constant weights (packed when the
    # context is created) and an elementwise chain big enough to run on the
    # thread pool, three iterations
    cw = b.w((8, 8, 3, 3), 0.2)
    heavy = helper.make_graph([
        helper.make_node("Conv", ["h", cw], ["hc"], pads=[1, 1, 1, 1]),
        helper.make_node("Tanh", ["hc"], ["ht"]),
        helper.make_node("Mul", ["ht", half], ["hm"]),
        helper.make_node("Add", ["hm", "h"], ["h_new"]),
        helper.make_node("Identity", ["c2"], ["c2_out"]),
    ], "heavy", [v("j", TensorProto.INT64, []), v("c2", TensorProto.BOOL, []), v("h", f, [1, 8, 64, 80])],
        [v("c2_out", TensorProto.BOOL, []), v("h_new", f, None)])
    b.nodes.append(helper.make_node("Loop", [b.c(np.int64(3)), "", "img"], ["img_out"], name="heavy_loop", body=heavy))
    outs = [("ys", [T, R, C]), ("zs", [R, T, C]), ("a_fin", [R, C]), ("b_fin", [R, C]), ("picks", [5, R, C]), ("sel", [R, C]),
            ("img_out", [1, 8, 64, 80])]
    g = helper.make_graph(b.nodes, "control", [v("x", f, [T, R, C]), v("img", f, [1, 8, 64, 80])], [v(n, f, s) for n, s in outs], b.inits)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), os.path.join(d, "control.onnx"))
    return [rng.standard_normal((T, R, C)).astype(np.float32), rng.standard_normal((1, 8, 64, 80)).astype(np.float32)]


def tfidf(d):
    """TfIdfVectorizer on int64 token rows: 1- to 3-grams with skips up to 2,
    TFIDF with weights, and a second vectorizer in IDF mode on bigrams only."""
    b = B("tfidf")
    pool = [1, 3, 4, 0, 2,  2, 3, 1, 0, 4, 4, 1, 2,  3, 0, 1]  # five 1-grams, four 2-grams, one 3-gram
    counts = [0, 5, 13]
    grams = 5 + 4 + 1
    idx = list(rng.permutation(grams).astype(np.int64))
    w = [float(v) for v in rng.uniform(0.5, 2.0, grams).astype(np.float32)]
    b.nodes.append(helper.make_node("TfIdfVectorizer", ["x"], ["tf"], name="tfidf1", mode="TFIDF", min_gram_length=1, max_gram_length=3,
                                    max_skip_count=2, ngram_counts=counts, ngram_indexes=idx, pool_int64s=pool, weights=w))
    b.nodes.append(helper.make_node("TfIdfVectorizer", ["x"], ["idf"], name="tfidf2", mode="IDF", min_gram_length=2, max_gram_length=2,
                                    max_skip_count=1, ngram_counts=counts, ngram_indexes=idx, pool_int64s=pool, weights=w))
    y = b.op("Concat", ["tf", "idf"], axis=1)
    b.save(os.path.join(d, "tfidf.onnx"), [helper.make_tensor_value_info("x", TensorProto.INT64, [3, 20])], y)
    return [rng.integers(0, 5, (3, 20)).astype(np.int64)]


def sequence(d):
    """Sequence ops as PyTorch's list handling exports them: SplitToSequence
    (chunks, and size-1 slices squeezed), SequenceInsert / SequenceErase with
    negative positions, SequenceAt, SequenceLength feeding arithmetic, and
    ConcatFromSequence with and without a new axis; SequenceMap with a captured
    weight; a Loop that carries a sequence (SequenceInsert of a row sliced by
    the counter, and a scan output) and one that slices by its counter: kiln
    unrolls both."""
    b = B("sequence")
    v = helper.make_tensor_value_info
    n = helper.make_node
    b.nodes += [
        n("SplitToSequence", ["x", b.c(np.int64(3))], ["chunks"], axis=1),                 # [4,3,5] x 2, [4,1,5]
        n("SplitToSequence", ["x"], ["rows"], axis=0, keepdims=0),                          # [7,5] x 4
        n("SequenceAt", ["chunks", b.c(np.int64(-1))], ["last"]),                           # [4,1,5]
        n("Tile", ["last", b.c(np.array([1, 3, 1], np.int64))], ["last3"]),
        n("SequenceErase", ["chunks", b.c(np.int64(-1))], ["two"]),
        n("SequenceInsert", ["two", "last3", b.c(np.int64(0))], ["three"]),
        n("ConcatFromSequence", ["three"], ["cat"], axis=1),                                 # [4,9,5]
        n("SequenceConstruct", ["cat", "cat"], ["pair"]),
        n("SequenceLength", ["rows"], ["nrows"]),
        n("Cast", ["nrows"], ["nf"], to=TensorProto.FLOAT),
        n("SequenceAt", ["rows", b.c(np.int64(2))], ["r2"]),                                 # [7,5]
        n("Mul", ["r2", "nf"], ["r2n"]),
        n("SequenceInsert", ["rows", "r2n"], ["rows5"]),
        n("ConcatFromSequence", ["rows5"], ["stack"], axis=-1, new_axis=1),                 # [7,5,5]
        n("ConcatFromSequence", ["pair"], ["cat2"], axis=0),                                 # [8,9,5]
        n("ReduceSum", ["stack", b.c(np.array([1], np.int64))], ["s1"], keepdims=0),       # [7,5]
        n("ReduceSum", ["cat2", b.c(np.array([0, 1], np.int64))], ["s2"], keepdims=0),     # [5]
        n("Add", ["s1", "s2"], ["y"]),
    ]
    # SequenceMap with a captured weight; Loops kiln unrolls: one carrying a sequence, one slicing by its counter
    w = b.c(rng.standard_normal(5).astype(np.float32))
    body = helper.make_graph([n("Relu", ["e"], ["er"]), n("Mul", ["er", w], ["em"])], "map_body",
                             [v("e", TensorProto.FLOAT, None)], [v("em", TensorProto.FLOAT, None)])
    table = b.c(rng.standard_normal((6, 5)).astype(np.float32))
    one = b.c(np.array([1], np.int64))
    def counter_slice(prefix):
        return [n("Unsqueeze", [prefix + "i", b.c(np.array([0], np.int64))], [prefix + "st"]),
                n("Add", [prefix + "st", one], [prefix + "en"]),
                n("Slice", [table, prefix + "st", prefix + "en"], [prefix + "row"]),
                n("Cast", [prefix + "i"], [prefix + "if"], to=TensorProto.FLOAT),
                n("Mul", [prefix + "row", prefix + "if"], [prefix + "rowi"]),
                n("Identity", [prefix + "c"], [prefix + "co"])]
    seq_body = helper.make_graph(counter_slice("a_") + [n("SequenceInsert", ["a_s", "a_rowi"], ["a_so"]), n("Identity", ["a_row"], ["a_scan"])],
                                 "seq_loop", [v("a_i", TensorProto.INT64, []), v("a_c", TensorProto.BOOL, []),
                                              helper.make_tensor_sequence_value_info("a_s", TensorProto.FLOAT, None)],
                                 [v("a_co", TensorProto.BOOL, []), helper.make_tensor_sequence_value_info("a_so", TensorProto.FLOAT, None),
                                  v("a_scan", TensorProto.FLOAT, None)])
    acc_body = helper.make_graph(counter_slice("b_") + [n("Add", ["b_acc", "b_rowi"], ["b_acco"])], "acc_loop",
                                 [v("b_i", TensorProto.INT64, []), v("b_c", TensorProto.BOOL, []), v("b_acc", TensorProto.FLOAT, [1, 5])],
                                 [v("b_co", TensorProto.BOOL, []), v("b_acco", TensorProto.FLOAT, [1, 5])])
    b.nodes += [
        n("SequenceMap", ["rows"], ["mapped"], body=body),
        n("ConcatFromSequence", ["mapped"], ["mcat"], axis=0),                               # [28,5]
        n("SequenceEmpty", [], ["empty"], dtype=TensorProto.FLOAT),
        n("Loop", [b.c(np.int64(4)), b.c(np.array(True)), "empty"], ["slices", "scan"], body=seq_body),
        n("ConcatFromSequence", ["slices"], ["scat"], axis=0),                               # [4,5]
        n("Loop", [b.c(np.int64(5)), "", b.c(np.zeros((1, 5), np.float32))], ["acc"], body=acc_body),  # [1,5]
    ]
    g = helper.make_graph(b.nodes, "sequence", [v("x", TensorProto.FLOAT, [4, 7, 5])],
                          [v("y", TensorProto.FLOAT, [7, 5]), v("cat", TensorProto.FLOAT, [4, 9, 5]), v("mcat", TensorProto.FLOAT, None),
                           v("scat", TensorProto.FLOAT, None), v("scan", TensorProto.FLOAT, None), v("acc", TensorProto.FLOAT, None)], b.inits)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), os.path.join(d, "sequence.onnx"))
    return [rng.standard_normal((4, 7, 5)).astype(np.float32)]


def dynamic(d):
    """Outputs whose size depends on the data: NonMaxSuppression over two
    images and three classes of overlapping random boxes (score threshold and
    IoU threshold given), NonZero of a computed mask, Unique (sorted, along an
    axis) of small integers; a NonZero of a constant, which folds into a
    static shape and feeds a Gather; TopK over 1,000 values (smallest first)
    and over small integers (ties: the lower index first); and a TopK whose K
    is an input, read at run time."""
    b = B("dynamic")
    v = helper.make_tensor_value_info
    n = helper.make_node
    mask = b.c((rng.uniform(0, 1, (3, 5)) > 0.5))
    b.nodes += [
        n("NonMaxSuppression", ["boxes", "scores", b.c(np.array([6], np.int64)), b.c(np.array([0.3], np.float32)),
                                b.c(np.array([0.2], np.float32))], ["sel"], center_point_box=0),
        n("Greater", ["scores", b.c(np.float32(0.7))], ["hi"]),
        n("NonZero", ["hi"], ["where"]),
        n("Unique", ["tok"], ["uy", "ui", "uinv", "uc"], axis=1, sorted=1),
        n("NonZero", [mask], ["nz"]),
        n("Gather", ["tok", "nz"], ["g"], axis=1),
        n("TopK", ["big", b.c(np.array([100], np.int64))], ["tv", "ti"], axis=0, largest=0),
        n("Cast", ["tok"], ["tokf"], to=TensorProto.FLOAT),
        n("TopK", ["tokf", b.c(np.array([4], np.int64))], ["qv", "qi"], axis=1),
        n("TopK", ["big", "kk"], ["rv", "ri"], axis=0),
    ]
    ys = [v("sel", TensorProto.INT64, None), v("where", TensorProto.INT64, None), v("uy", TensorProto.INT64, None),
          v("ui", TensorProto.INT64, None), v("uinv", TensorProto.INT64, None), v("uc", TensorProto.INT64, None), v("g", TensorProto.INT64, None),
          v("tv", TensorProto.FLOAT, None), v("ti", TensorProto.INT64, None), v("qv", TensorProto.FLOAT, None), v("qi", TensorProto.INT64, None),
          v("rv", TensorProto.FLOAT, None), v("ri", TensorProto.INT64, None)]
    g = helper.make_graph(b.nodes, "dynamic", [v("boxes", TensorProto.FLOAT, [2, 12, 4]), v("scores", TensorProto.FLOAT, [2, 3, 12]),
                                                v("tok", TensorProto.INT64, [3, 9]), v("big", TensorProto.FLOAT, [1000, 3]), v("kk", TensorProto.INT64, [1])], ys, b.inits)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), os.path.join(d, "dynamic.onnx"))
    corner = rng.uniform(0, 2, (2, 12, 2)).astype(np.float32)
    size = rng.uniform(0.5, 2.5, (2, 12, 2)).astype(np.float32)
    boxes = np.concatenate([corner, corner + size], axis=2)
    return [boxes, rng.uniform(0, 1, (2, 3, 12)).astype(np.float32), rng.integers(0, 3, (3, 9)).astype(np.int64),
            rng.standard_normal((1000, 3)).astype(np.float32), np.array([7], np.int64)]


def attention(d):
    """Attention as exporters write it, for kiln.Attention: (a) BERT-style heads
    split by Transpose, K^T by a second Transpose, Div by sqrt(Dh), a padding
    mask [B, 1, 1, S] added, the heads joined by Transpose and Reshape; (b)
    cross-attention (10 queries, 37 keys, Dv 5 != Dk 8), Mul scale, no mask,
    nothing transposed; (c) rank 3, 150 queries (two row blocks), a causal
    constant mask [S, S] on the left of the Add; (d) a query Transpose that
    also feeds another output (it must stay); (e) 1.1 million keys, past the
    rows the kernel keeps scratch for."""
    b = B("attention")
    v = helper.make_tensor_value_info
    F = TensorProto.FLOAT
    n = helper.make_node
    a_k = b.op("Transpose", [b.op("Transpose", ["ka"], perm=[0, 2, 1, 3])], perm=[0, 1, 3, 2])
    a_s = b.op("Div", [b.op("MatMul", [b.op("Transpose", ["qa"], perm=[0, 2, 1, 3]), a_k]), b.c(np.float32(np.sqrt(8)))])
    a_p = b.op("Softmax", [b.op("Add", [a_s, "maska"])], axis=-1)
    a_o = b.op("Transpose", [b.op("MatMul", [a_p, b.op("Transpose", ["va"], perm=[0, 2, 1, 3])])], perm=[0, 2, 1, 3])
    b.nodes.append(n("Reshape", [a_o, b.c(np.array([2, 20, 24], np.int64))], ["ya"]))
    b_p = b.op("Softmax", [b.op("Mul", [b.op("MatMul", ["qb", "ktb"]), b.c(np.float32(0.3))])], axis=-1)
    b.nodes.append(n("MatMul", [b_p, "vb"], ["yb"]))
    causal = np.triu(np.full((150, 150), -1e9, np.float32), 1)
    c_p = b.op("Softmax", [b.op("Add", [b.c(causal), b.op("MatMul", ["qc", b.op("Transpose", ["kc"], perm=[0, 2, 1])])])], axis=-1)
    b.nodes.append(n("MatMul", [c_p, "vc"], ["yc"]))
    d_q = b.op("Transpose", ["qd"], perm=[0, 2, 1, 3])
    d_p = b.op("Softmax", [b.op("MatMul", [d_q, b.op("Transpose", ["kd"], perm=[0, 1, 3, 2])])], axis=-1)
    b.nodes += [n("MatMul", [d_p, "vd"], ["yd"]), n("Mul", [d_q, b.c(np.float32(2))], ["yd2"])]
    b.nodes.append(n("MatMul", [b.op("Softmax", [b.op("MatMul", ["qe", "kte"])], axis=-1), "ve"], ["ye"]))
    ins = [("qa", [2, 20, 3, 8]), ("ka", [2, 20, 3, 8]), ("va", [2, 20, 3, 8]), ("maska", [2, 1, 1, 20]),
           ("qb", [2, 3, 10, 8]), ("ktb", [2, 3, 8, 37]), ("vb", [2, 3, 37, 5]),
           ("qc", [4, 150, 16]), ("kc", [4, 150, 16]), ("vc", [4, 150, 16]),
           ("qd", [1, 6, 2, 4]), ("kd", [1, 2, 6, 4]), ("vd", [1, 2, 6, 4]),
           ("qe", [1, 2, 3]), ("kte", [1, 3, 1100000]), ("ve", [1, 1100000, 2])]
    outs = [v(o, F, None) for o in ["ya", "yb", "yc", "yd", "yd2", "ye"]]
    g = helper.make_graph(b.nodes, "attention", [v(nm, F, sh) for nm, sh in ins], outs, b.inits)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), os.path.join(d, "attention.onnx"))
    arrays = [rng.standard_normal(sh).astype(np.float32) for _, sh in ins]
    arrays[3] = np.where(rng.uniform(0, 1, (2, 1, 1, 20)) < 0.3, -10000.0, 0.0).astype(np.float32)
    arrays[13] *= 4  # peaked scores over the 1.1 million keys: a few dominate, the output is O(1)
    return arrays


def winograd(d):
    """3x3 stride-1 convolutions on the Winograd path: odd sizes (tiles cut at
    the bottom and right edges), symmetric, asymmetric and no padding, with and
    without bias, a fused Relu, a residual Add with Clip, a batch of two, and a
    wide map whose tile chunks span several tile rows."""
    b = B("winograd")

    def conv(x, cin, cout, pads, bias=True):
        ins = [x, b.w((cout, cin, 3, 3))] + ([b.c(rng.standard_normal(cout).astype(np.float32))] if bias else [])
        return b.op("Conv", ins, kernel_shape=[3, 3], pads=pads)
    y1 = b.op("Relu", [conv("x", 16, 24, [1, 1, 1, 1])])                   # 23 x 37
    y2 = conv(y1, 24, 20, [0, 2, 1, 0], bias=False)                        # 22 x 37
    y3 = conv(y2, 20, 20, [1, 1, 1, 1])
    y4 = b.op("Clip", [b.op("Add", [y3, y2]), b.c(np.float32(0)), b.c(np.float32(6))])
    y5 = conv(y4, 20, 32, [0, 0, 0, 0])                                     # 20 x 35
    w1 = conv("wide", 64, 16, [1, 1, 1, 1])                                # 5 x 301
    s1 = b.op("ReduceMean", [y5], axes=[2, 3], keepdims=0)
    s2 = b.op("ReduceMean", [w1], axes=[0, 2, 3], keepdims=0)
    y = b.op("Add", [b.op("Flatten", [s1], axis=0), b.op("Flatten", [b.op("Tile", [s2, b.c(np.array([4], np.int64))])], axis=0)])
    g = helper.make_graph(b.nodes, "winograd", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 16, 23, 37]),
                                                helper.make_tensor_value_info("wide", TensorProto.FLOAT, [1, 64, 5, 301])],
                          [helper.make_tensor_value_info(y, TensorProto.FLOAT, None), helper.make_tensor_value_info(y4, TensorProto.FLOAT, None),
                           helper.make_tensor_value_info(w1, TensorProto.FLOAT, None)], b.inits)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), os.path.join(d, "winograd.onnx"))
    return [rng.standard_normal((2, 16, 23, 37)).astype(np.float32), rng.standard_normal((1, 64, 5, 301)).astype(np.float32)]


def save_f32(b, d, ins, outs, opset=13):
    """Saves b's graph as d/NAME.onnx with float32 inputs ins ([(name, shape)])
    and outputs outs; returns standard normal inputs of those shapes."""
    v = helper.make_tensor_value_info
    g = helper.make_graph(b.nodes, b.name, [v(n, TensorProto.FLOAT, sh) for n, sh in ins], [v(o, TensorProto.FLOAT, None) for o in outs], b.inits)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)]), os.path.join(d, b.name + ".onnx"))
    return [rng.standard_normal(sh).astype(np.float32) for _, sh in ins]


def lpnorm(d):
    """LpNormalization (L2 over the last axis, its default; L1 over axis 1, after
    a Relu) on an input with rows and columns of zeros (a zero norm gives zeros)."""
    b = B("lpnorm")
    y1 = b.op("LpNormalization", ["x"])
    y2 = b.op("LpNormalization", [b.op("Relu", ["x"])], axis=1, p=1)
    g = helper.make_graph(b.nodes, "lpnorm", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 5, 7, 3])],
                          [helper.make_tensor_value_info(y1, TensorProto.FLOAT, None), helper.make_tensor_value_info(y2, TensorProto.FLOAT, None)],
                          b.inits)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), os.path.join(d, "lpnorm.onnx"))
    x = rng.standard_normal((2, 5, 7, 3)).astype(np.float32)
    x[0, 1, 2, :] = 0
    x[1, :, 4, 1] = -1
    return [x]


def resize(d):
    """Resize on the planar fast paths (runtime/resize.c): bilinear half_pixel
    33 x 33 -> 256 x 256 by sizes (a non-integer factor, 1 channel), linear
    align_corners 20 x 20 -> 47 x 35, nearest 2x asymmetric floor and 2x
    half_pixel round_prefer_floor, linear pytorch_half_pixel downscaling to
    9 x 13, nearest round_prefer_floor downscaling 33 -> 20, a 1 x 1 plane
    (a global pool) to 16 x 16 as the DeepLab heads do (64 channels); and cubic,
    which stays on the generic loop. No output coordinate falls on a nearest
    tie, where ONNX Runtime's float arithmetic may round the other way."""
    b = B("resize")
    sz = lambda *s: b.c(np.array(s, np.int64))
    sc = lambda *s: b.c(np.array(s, np.float32))
    outs = [b.op("Resize", ["x1", "", "", sz(1, 1, 256, 256)], mode="linear", coordinate_transformation_mode="half_pixel"),
            b.op("Resize", ["x", "", "", sz(1, 64, 47, 35)], mode="linear", coordinate_transformation_mode="align_corners"),
            b.op("Resize", ["x", "", sc(1, 1, 2, 2)], mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor"),
            b.op("Resize", ["x", "", sc(1, 1, 2, 2)], mode="nearest", coordinate_transformation_mode="half_pixel", nearest_mode="round_prefer_floor"),
            b.op("Resize", ["x", "", "", sz(1, 64, 9, 13)], mode="linear", coordinate_transformation_mode="pytorch_half_pixel"),
            b.op("Resize", ["x1", "", "", sz(1, 1, 20, 20)], mode="nearest", coordinate_transformation_mode="half_pixel"),
            b.op("Resize", [b.op("GlobalAveragePool", ["x"]), "", "", sz(1, 64, 16, 16)], mode="linear", coordinate_transformation_mode="half_pixel"),
            b.op("Resize", ["x", "", "", sz(1, 64, 30, 30)], mode="cubic")]
    return save_f32(b, d, [("x", [1, 64, 20, 20]), ("x1", [1, 1, 33, 33])], outs)


def maxroipool(d):
    """MaxRoiPool at two scales over regions inside, across and outside the
    image's borders, reversed ones (pooled as 1 x 1) and ones whose bins are
    empty (zeros). The data is positive: on a bin of negative values only, ONNX
    Runtime 1.30 returns FLT_MIN (its maximum starts there), kiln the maximum."""
    b = B("maxroipool")
    y1 = b.op("MaxRoiPool", ["x", "rois"], pooled_shape=[3, 2], spatial_scale=0.5)
    y2 = b.op("MaxRoiPool", ["x", "rois"], pooled_shape=[2, 4])
    v = helper.make_tensor_value_info
    g = helper.make_graph(b.nodes, "maxroipool", [v("x", TensorProto.FLOAT, [2, 3, 12, 10]), v("rois", TensorProto.FLOAT, [7, 5])],
                          [v(y1, TensorProto.FLOAT, None), v(y2, TensorProto.FLOAT, None)], b.inits)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), os.path.join(d, "maxroipool.onnx"))
    x = rng.uniform(0.1, 1.0, (2, 3, 12, 10)).astype(np.float32)
    rois = np.array([[0, 0, 0, 9, 11], [1, 2.4, 3.6, 7.5, 8.5], [1, -4, -3, 5, 6], [0, 6, 8, 30, 40],
                     [1, 8, 9, 2, 1], [0, 12, 14, 20, 22], [1, 3, 3, 3, 3]], np.float32)
    return [x, rois]


def concat_many(d):
    """A Concat of 300 inputs (ssdlite320's head has one of 90), of x, Relu(x)
    and a constant of a different length along the axis, then dumped to text IR
    and compiled again by tests/e2e.py."""
    b = B("concat_many")
    r = b.op("Relu", ["x"])
    c = b.w((2, 5, 3), 1.0)
    ins = [["x", r, c][i % 3] for i in range(300)]
    y = b.op("Concat", ins, axis=1)
    g = helper.make_graph(b.nodes, "concat_many", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4, 3])],
                          [helper.make_tensor_value_info(y, TensorProto.FLOAT, None)], b.inits)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), os.path.join(d, "concat_many.onnx"))
    return [rng.standard_normal((2, 4, 3)).astype(np.float32)]


def bmm_const(d):
    """Batched MatMul by constant weights of rank >= 3 (every batch slice packed
    when the context is created): A [2, 3, 5, 7] by B [3, 7, 11] (broadcast over
    A's first axis), by B [2, 3, 7, 11], by B [1, 7, 11] and by B [2, 1, 7, 11]
    (broadcast over the heads); A [2, 8, 64, 256] by B [8, 256, 256] (the timed
    part); rank-3 A [6, 12, 40] by B [6, 40, 33] (a ragged last panel)."""
    b = B("bmm_const")
    v = helper.make_tensor_value_info
    F = TensorProto.FLOAT
    n = helper.make_node
    ys = [b.op("MatMul", ["x", b.w(sh, 0.3)]) for sh in [(3, 7, 11), (2, 3, 7, 11), (1, 7, 11), (2, 1, 7, 11)]]
    b.nodes.append(n("Sum", ys, ["y"]))
    b.nodes.append(n("MatMul", ["x2", b.w((8, 256, 256), 0.06)], ["y2"]))
    b.nodes.append(n("MatMul", ["x3", b.w((6, 40, 33), 0.15)], ["y3"]))
    ins = [("x", [2, 3, 5, 7]), ("x2", [2, 8, 64, 256]), ("x3", [6, 12, 40])]
    g = helper.make_graph(b.nodes, "bmm_const", [v(nm, F, sh) for nm, sh in ins], [v(o, F, None) for o in ["y", "y2", "y3"]], b.inits)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), os.path.join(d, "bmm_const.onnx"))
    return [rng.standard_normal(sh).astype(np.float32) for _, sh in ins]


def shape_dim(b, t, i):
    """Shape(t)[i] as a [1] tensor, the way exporters compute sizes."""
    return b.op("Gather", [b.op("Shape", [t]), b.c(np.array([i], np.int64))], axis=0)


def text_branch(b, feat, positions):
    """Of batch() and runtime(): embeddings of the int64 input ids plus position
    embeddings (a table of `positions` rows) gathered by Range(0, Shape(ids)[1]),
    LayerNormalization, 4-head attention whose heads are split and joined by
    Reshapes computed from Shape; the attention's mean over the sequence joins
    feat [N, 32] in a softmax classifier. Returns (the classifier's output, the
    attention output [N, S, 32])."""
    i64 = lambda a: b.c(np.array(a, np.int64))
    dim = lambda t, i: shape_dim(b, t, i)
    pos = b.op("Range", [b.c(np.int64(0)), b.op("Squeeze", [dim("ids", 1), i64([0])]), b.c(np.int64(1))])
    t = b.op("Add", [b.op("Gather", [b.w((50, 32), 1.0), "ids"], axis=0), b.op("Gather", [b.w((positions, 32), 1.0), pos], axis=0)])
    t = b.op("LayerNormalization", [t, b.c(np.ones(32, np.float32)), b.c(np.zeros(32, np.float32))], axis=-1)
    heads = b.op("Concat", [dim(t, 0), dim(t, 1), i64([4, 8])], axis=0)
    def split(m):
        return b.op("Transpose", [b.op("Reshape", [b.op("MatMul", [t, b.w((32, 32), 0.2)]), heads])], perm=[0, 2, 1, 3])
    q, k, vv = split(t), split(t), split(t)
    p = b.op("Softmax", [b.op("Div", [b.op("MatMul", [q, b.op("Transpose", [k], perm=[0, 1, 3, 2])]), b.c(np.float32(np.sqrt(8)))])], axis=-1)
    ctx = b.op("Transpose", [b.op("MatMul", [p, vv])], perm=[0, 2, 1, 3])
    ctx = b.op("Reshape", [ctx, b.op("Concat", [dim(ctx, 0), dim(ctx, 1), i64([32])], axis=0)])
    both = b.op("Concat", [feat, b.op("ReduceMean", [ctx], axes=[1], keepdims=0)], axis=1)
    y = b.op("Softmax", [b.op("Gemm", [both, b.w((64, 10)), b.c(np.zeros(10, np.float32))])], axis=1)
    return y, ctx


def batch(d):
    """A model whose batch is symbolic ("batch" in every input and output), the
    way exporters write one: a CNN flattened with Reshape(x, [Shape(x)[0], -1]),
    a text branch (embeddings of int64 ids plus position embeddings gathered by
    Range(0, Shape(ids)[1]), LayerNormalization, attention whose heads are split
    and joined by Reshapes computed from Shape), zeros of ConstantOfShape([N, 32])
    and an Expand to [N, 32]; two outputs. kiln compiles it once and runs any
    batch; the input here has a batch of 3."""
    b = B("batch")
    v = helper.make_tensor_value_info
    i64 = lambda a: b.c(np.array(a, np.int64))
    dim = lambda t, i: shape_dim(b, t, i)
    x = conv_bn(b, "x", 3, 8, 3, 1)
    x = b.op("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2])
    n = dim(x, 0)
    feat = b.op("Gemm", [b.op("Reshape", [x, b.op("Concat", [n, i64([-1])], axis=0)]), b.w((8 * 8 * 8, 32)), b.c(np.zeros(32, np.float32))])
    zeros = b.op("ConstantOfShape", [b.op("Concat", [n, i64([32])], axis=0)], value=numpy_helper.from_array(np.array([0.25], np.float32)))
    bias = b.op("Expand", [b.c(rng.standard_normal((1, 32)).astype(np.float32)), b.op("Concat", [dim("ids", 0), i64([32])], axis=0)])
    feat = b.op("Add", [b.op("Add", [feat, zeros]), bias])
    y, ctx = text_branch(b, feat, 16)
    g = helper.make_graph(b.nodes, "batch", [v("x", TensorProto.FLOAT, ["batch", 3, 16, 16]), v("ids", TensorProto.INT64, ["batch", 6])],
                          [v(y, TensorProto.FLOAT, ["batch", 10]), v(ctx, TensorProto.FLOAT, ["batch", 6, 32])], b.inits)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), os.path.join(d, "batch.onnx"))
    return [rng.standard_normal((3, 3, 16, 16)).astype(np.float32), rng.integers(0, 50, (3, 6)).astype(np.int64)]


def runtime(d):
    """A model whose shapes are known only when it runs: the batch, the image
    size and the sequence length are symbolic ("batch", "h", "w", "seq"); a CNN
    branch pooled to a vector; a text branch as in batch() (positions by
    Range(0, Shape(ids)[1]), heads split and joined by Reshapes computed from
    Shape); the rows of the attention output whose mean is positive picked by
    NonZero -> Transpose -> GatherND and projected (as many rows as the data
    gives); a Reshape to a shape given as an input; a TopK whose K is an input,
    its values scaled; position embeddings gathered by Range(0, max(ids)), a
    length computed from the data, and summed."""
    b = B("runtime")
    v = helper.make_tensor_value_info
    i64 = lambda a: b.c(np.array(a, np.int64))
    x = conv_bn(b, "x", 3, 8, 3, 1)
    x = b.op("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2])
    feat = b.op("Gemm", [b.op("Flatten", [b.op("GlobalAveragePool", [x])]), b.w((8, 32)), b.c(np.zeros(32, np.float32))])
    y, ctx = text_branch(b, feat, 64)
    m = b.op("ReduceMean", [ctx], axes=[2], keepdims=0)
    rows = b.op("GatherND", [ctx, b.op("Transpose", [b.op("NonZero", [b.op("Greater", [m, b.c(np.float32(0))])])], perm=[1, 0])])
    picked = b.op("MatMul", [rows, b.w((32, 4))])
    shaped = b.op("Softmax", [b.op("Reshape", [feat, "shape"])], axis=-1)
    b.nodes.append(helper.make_node("TopK", [m, "k"], ["topv", "topi"], axis=1))
    top = b.op("Mul", ["topv", b.c(np.float32(2))])
    lim = b.op("ReduceMax", ["ids"], keepdims=0)
    emb = b.op("ReduceSum", [b.op("Gather", [b.w((64, 8), 1.0), b.op("Range", [b.c(np.int64(0)), lim, b.c(np.int64(1))])], axis=0), i64([0])], keepdims=0)
    f = TensorProto.FLOAT
    g = helper.make_graph(b.nodes, "runtime", [v("x", f, ["batch", 3, "h", "w"]), v("ids", TensorProto.INT64, ["batch", "seq"]),
                                               v("shape", TensorProto.INT64, [3]), v("k", TensorProto.INT64, [1])],
                          [v(y, f, ["batch", 10]), v(ctx, f, ["batch", "seq", 32]), v(picked, f, None), v(shaped, f, None), v(top, f, None),
                           v(emb, f, [8])], b.inits)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), os.path.join(d, "runtime.onnx"))
    return runtime_inputs(3, 12, 10, 7, 3)


def einsum(d):
    """Einsum as matrix products (the canonicalize pass makes them Transpose,
    Reshape, MatMul): maxvit_t's window attention (q.k^T with spaces and
    uppercase labels, a bias, Softmax, times v), 'bij,bjk->bik', 'ij,jk->ik'
    by constant weights, 'bhqd,bhkd->bhqk' alone, multi-axis i and k labels
    'abcd,cde->abe', operands swapped and the output transposed
    'bij,bjk->kbi', an implicit output 'ij,jk', a full contraction
    'ij,ij->'; and ones that keep the Einsum kernel: 'bij,bjk->b' (labels
    summed in one operand), 'ii->i', a batch of 1 broadcast to 4."""
    b = B("einsum")
    v = helper.make_tensor_value_info
    F = TensorProto.FLOAT
    n = helper.make_node
    e = lambda eq, ins, out: b.nodes.append(n("Einsum", ins, [out], equation=eq))
    kscaled = b.op("Mul", ["k", b.c(np.float32(0.35))])
    s = b.op("Einsum", ["q", kscaled], equation="B G H I D, B G H J D -> B G H I J")
    p = b.op("Softmax", [b.op("Add", [s, b.w((3, 16, 16), 1.0)])], axis=-1)
    e("B G H I J, B G H J D -> B G H I D", [p, "v"], "y_attn")
    e("B G H I D, B G H J D -> B G H I J", ["q", "k"], "y_qk")
    e("bij,bjk->bik", ["x3", "w3"], "y_bmm")
    e("ij,jk->ik", ["x4", b.w((6, 7), 0.5)], "y_mm")
    e("bhqd,bhkd->bhqk", ["qb", "kb"], "y_qkt")
    e("abcd,cde->abe", ["x6", "w6"], "y_multi")
    e("bij,bjk->kbi", ["x3", "w3"], "y_swap")
    e("ij,jk", ["x4", "w8"], "y_implicit")
    e("ij,ij->", ["x4", "x9"], "y_dot")
    e("bij,bjk->b", ["x3", "w3"], "y_sum")
    e("ii->i", ["sq"], "y_diag")
    e("bij,bjk->bik", ["x11", "w3"], "y_bcast")
    ins = [("q", [1, 2, 3, 16, 8]), ("k", [1, 2, 3, 16, 8]), ("v", [1, 2, 3, 16, 8]), ("x3", [4, 5, 6]), ("w3", [4, 6, 7]),
           ("x4", [5, 6]), ("qb", [2, 3, 10, 8]), ("kb", [2, 3, 12, 8]), ("x6", [2, 3, 4, 5]), ("w6", [4, 5, 6]),
           ("w8", [6, 9]), ("x9", [5, 6]), ("sq", [7, 7]), ("x11", [1, 5, 6])]
    outs = ["y_attn", "y_qk", "y_bmm", "y_mm", "y_qkt", "y_multi", "y_swap", "y_implicit", "y_dot", "y_sum", "y_diag", "y_bcast"]
    g = helper.make_graph(b.nodes, "einsum", [v(nm, F, sh) for nm, sh in ins], [v(o, F, None) for o in outs], b.inits)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), os.path.join(d, "einsum.onnx"))
    return [rng.standard_normal(sh).astype(np.float32) for _, sh in ins]


def pools(d):
    """The pooling kernels' paths (runtime/pool.c, x86/pool_avx512.c) on odd
    sizes, 1 and 48 channels: AveragePool 3x3 stride 1 pad 1 with and without
    count_include_pad, stride 2, ceil_mode, 5x3 at stride (1, 2); MaxPool 3x3
    stride 2 pad 1, stride 1 pad 1, ceil_mode, stride 2 without padding
    (Inception's) and dilated; rows wider than one vector of 16."""
    b = B("pools")
    k3 = dict(kernel_shape=[3, 3])
    outs = []
    for x in ("x1", "x48"):
        outs += [b.op("AveragePool", [x], pads=[1, 1, 1, 1], **k3),
                 b.op("AveragePool", [x], pads=[1, 1, 1, 1], count_include_pad=1, **k3),
                 b.op("AveragePool", [x], strides=[2, 2], pads=[1, 1, 1, 1], **k3),
                 b.op("AveragePool", [x], strides=[2, 2], ceil_mode=1, count_include_pad=1, pads=[0, 1, 1, 0], **k3),
                 b.op("AveragePool", [x], kernel_shape=[5, 3], strides=[1, 2], pads=[2, 0, 1, 1]),
                 b.op("MaxPool", [x], strides=[2, 2], pads=[1, 1, 1, 1], **k3),
                 b.op("MaxPool", [x], pads=[1, 1, 1, 1], **k3),
                 b.op("MaxPool", [x], strides=[2, 2], ceil_mode=1, **k3),
                 b.op("MaxPool", [x], strides=[2, 2], **k3),
                 b.op("MaxPool", [x], dilations=[2, 2], pads=[1, 2, 1, 2], **k3)]
    return save_f32(b, d, [("x1", [1, 1, 37, 29]), ("x48", [2, 48, 17, 35])], outs)


def convtranspose(d):
    """ConvTranspose as GEMMs and a scatter (runtime/conv.c): 2x2 stride 2, 24
    channels to 24 with bias (each output written once); 3x3 stride 2 with
    output_padding, 24 to 16; 4x4 stride 2 pad 1 in 4 groups, 24 to 12, with
    bias (overlapping windows); on 40 x 40."""
    b = B("convtranspose")
    y1 = b.op("ConvTranspose", ["x", b.w((24, 24, 2, 2)), b.c(rng.standard_normal(24).astype(np.float32))], kernel_shape=[2, 2], strides=[2, 2])
    y2 = b.op("ConvTranspose", ["x", b.w((24, 16, 3, 3))], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], output_padding=[1, 1])
    y3 = b.op("ConvTranspose", ["x", b.w((24, 3, 4, 4)), b.c(rng.standard_normal(12).astype(np.float32))], kernel_shape=[4, 4], strides=[2, 2],
              pads=[1, 1, 1, 1], group=4)
    v = helper.make_tensor_value_info
    g = helper.make_graph(b.nodes, "convtranspose", [v("x", TensorProto.FLOAT, [1, 24, 40, 40])], [v(y, TensorProto.FLOAT, None) for y in (y1, y2, y3)],
                          b.inits)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), os.path.join(d, "convtranspose.onnx"))
    return [rng.standard_normal((1, 24, 40, 40)).astype(np.float32)]


def runtime_inputs(n, h, w, seq, k):
    """Inputs of the runtime model: n images of h x w, n sequences of seq ids, the
    Reshape's shape [n, 4, 8], K."""
    return [rng.standard_normal((n, 3, h, w)).astype(np.float32), rng.integers(0, 50, (n, seq)).astype(np.int64),
            np.array([n, 4, 8], np.int64), np.array([k], np.int64)]


MODELS = {"mlp": mlp, "resnet18": resnet18, "mobilenetv2": mobilenetv2, "bert4": bert, "detect": detect, "lstm": lstm, "gru": gru, "depthwise": depthwise, "convgeom": convgeom, "smallc": smallc,
          "conv3d": conv3d, "control": control,
          "tfidf": tfidf, "sequence": sequence, "dynamic": dynamic, "winograd": winograd, "batch": batch, "attention": attention, "runtime": runtime, "lpnorm": lpnorm, "resize": resize,
          "bert4dyn": lambda d: bert(d, symbolic=True), "bmm_const": bmm_const, "maxroipool": maxroipool, "concat_many": concat_many, "einsum": einsum,
          "pools": pools, "convtranspose": convtranspose}

if __name__ == "__main__":
    out = sys.argv[1]
    only = sys.argv[2].split(",") if len(sys.argv) > 2 else list(MODELS)
    os.makedirs(out, exist_ok=True)
    for name, fn in MODELS.items():
        if name not in only:
            continue
        for i, a in enumerate(fn(out)):
            np.save(os.path.join(out, "%s_in%d.npy" % (name, i)), a)
