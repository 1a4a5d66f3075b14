/* rnn.c: the recurrent kernel behind RNN, GRU and LSTM (ONNX definitions).
 *
 * For each direction (forward, reverse, or both), the input projection of every
 * time step is one GEMM up front (X [seq*batch, input] times W^T); then per step
 * the recurrent projection H_{t-1} R^T is one GEMM over the batch, and the gates
 * are computed elementwise: RNN  H = f(XW + HR + b);  GRU (gates z, r, h)
 * with linear_before_reset either way;  LSTM (gates i, o, f, c) with optional
 * peepholes, input_forget and clip. A batch entry whose sequence_lens is
 * shorter stops there: later steps output zeros and its state is held. Layout 1
 * puts batch first in X, Y and the states. Scratch holds the projections and
 * the running state (the caller sizes it with kiln_rnn_scratch_floats). */
#include "kiln_internal.h" /* kiln_scratch_check, kiln_sgemm_need */

#include <math.h>
#include <string.h>

enum { RNN_KIND, GRU_KIND, LSTM_KIND };
/* activation kinds, in the order of kiln's table (codegen/rnn.c names them) */
enum { A_SIGMOID, A_TANH, A_RELU, A_AFFINE, A_LEAKY, A_THRESH, A_SCALED_TANH, A_HARD_SIGMOID, A_ELU, A_SOFTSIGN, A_SOFTPLUS };

typedef struct { int kind; float a, b; } act_fn;

static inline float act(const act_fn *f, float x) {
    switch (f->kind) {
    case A_SIGMOID: return 1.0f / (1.0f + expf(-x));
    case A_TANH: return tanhf(x);
    case A_RELU: return x > 0 ? x : 0;
    case A_AFFINE: return f->a * x + f->b;
    case A_LEAKY: return x >= 0 ? x : f->a * x;
    case A_THRESH: return x > f->a ? x : 0;
    case A_SCALED_TANH: return f->a * tanhf(f->b * x);
    case A_HARD_SIGMOID: { float v = f->a * x + f->b; return v < 0 ? 0 : v > 1 ? 1 : v; }
    case A_ELU: return x >= 0 ? x : f->a * (expf(x) - 1);
    case A_SOFTSIGN: return x / (1 + fabsf(x));
    default: return logf(1 + expf(x));
    }
}

static int gates_of(int64_t kind) { return kind == LSTM_KIND ? 4 : kind == GRU_KIND ? 3 : 1; }

int64_t kiln_rnn_scratch_floats(int64_t kind, int64_t seq, int64_t batch, int64_t hidden) {
    int64_t G = gates_of(kind);
    return seq * batch * G * hidden + batch * G * hidden + 3 * batch * hidden;
}

/* Offsets of element (t, b) of X / Y and of state b, by layout. */
typedef struct { int64_t seq, batch, input, hidden, dirs, layout; } dims_t;
static int64_t x_at(const dims_t *d, int64_t t, int64_t b) { return (d->layout ? b * d->seq + t : t * d->batch + b) * d->input; }
static int64_t y_at(const dims_t *d, int64_t t, int64_t dir, int64_t b) {
    return (d->layout ? ((b * d->seq + t) * d->dirs + dir) : ((t * d->dirs + dir) * d->batch + b)) * d->hidden;
}
static int64_t s_at(const dims_t *d, int64_t dir, int64_t b) { return (d->layout ? b * d->dirs + dir : dir * d->batch + b) * d->hidden; }

static float clipv(const kiln_p_rnn *q, float v) {
    if (!q->has_clip) return v;
    float c = (float)kiln_p2d(q->clip);
    return v < -c ? -c : v > c ? c : v;
}

void kiln_need_rnn(const int64_t *p, kiln_scratch_need *need) { (void)p; kiln_sgemm_need(need); } /* the input and recurrent GEMMs */

KILN_KERNEL(rnn, "Y, Y_h, Y_c <- X, W, R, B?, sequence_lens? (i32), initial_h?, initial_c?, P?, scratch, W_packed?, R_packed? (f32; scratch of kiln_rnn_scratch_floats; when packed, W and R packed by pack_b_many at create, per direction: W's [gates*hidden, input], R's first [hidden*(GRU ? 2 : gates), hidden])",
    F(kind /* 0 RNN, 1 GRU, 2 LSTM */) F(seq) F(batch) F(input) F(hidden) F(dirs) F(direction /* 0 forward, 1 reverse, 2 bidirectional */)
    F(layout) F(has_B) F(has_lens) F(has_h0) F(has_c0) F(has_P) F(has_clip) D(clip) F(linear_before_reset) F(input_forget)
    F(n_act) A(acts, 3 * 6 /* n_act x (kind, alpha bits, beta bits) */) F(packed))
int kiln_k_rnn(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    int rc = kiln_scratch_check(pool, kiln_need_rnn, p);
    if (rc) return rc;
    const kiln_p_rnn *q = KILN_P(rnn, p);
    int64_t kind = q->kind, G = gates_of(kind);
    dims_t d = {q->seq, q->batch, q->input, q->hidden, q->dirs, q->layout};
    int64_t S = d.seq, Bn = d.batch, I = d.input, H = d.hidden, GH = G * H;
    float *Y = bufs[0], *Yh = bufs[1], *Yc = bufs[2];
    const float *X = bufs[3], *W = bufs[4], *R = bufs[5], *Bias = q->has_B ? bufs[6] : NULL;
    const int32_t *lens = q->has_lens ? bufs[7] : NULL;
    const float *h0 = q->has_h0 ? bufs[8] : NULL, *c0 = q->has_c0 ? bufs[9] : NULL, *P = q->has_P ? bufs[10] : NULL;
    float *xw = bufs[11], *hr = xw + S * Bn * GH, *h = hr + Bn * GH, *c = h + Bn * H, *hn = c + Bn * H;
    int nact = (int)q->n_act, per = kind == LSTM_KIND ? 3 : kind == GRU_KIND ? 2 : 1;
    memset(Y, 0, (size_t)(S * d.dirs * Bn * H) * sizeof(float));
    for (int64_t dir = 0; dir < d.dirs; dir++) {
        bool reverse = q->direction == 1 || (q->direction == 2 && dir == 1);
        act_fn f[3];
        for (int k = 0; k < per; k++) {
            int at = (int)(dir * per + k) < nact ? (int)(dir * per + k) : k;
            f[k] = (act_fn){(int)q->acts[3 * at], (float)kiln_p2d(q->acts[3 * at + 1]), (float)kiln_p2d(q->acts[3 * at + 2])};
        }
        const float *Wd = W + dir * GH * I, *Rd = R + dir * GH * H;
        /* W and R packed at create (constant weights), else read as they are */
        int64_t RN = kind == GRU_KIND ? 2 * H : GH;
        const float *Wp = q->packed ? (const float *)bufs[12] + dir * kiln_sgemm_packed_floats(GH, I) : NULL;
        const float *Rp = q->packed ? (const float *)bufs[13] + dir * kiln_sgemm_packed_floats(RN, H) : NULL;
        const float *wb = Bias ? Bias + dir * 2 * GH : NULL, *rb = wb ? wb + GH : NULL;
        const float *Pd = P ? P + dir * 3 * H : NULL;
        /* input projections of every step: row (t, b) = X[t, b] W^T + Wb (+ Rb except GRU's h gate) */
        for (int64_t r = 0; r < S * Bn; r++)
            for (int64_t g = 0; g < GH; g++) {
                float v = wb ? wb[g] : 0.0f;
                if (rb && !(kind == GRU_KIND && g >= 2 * H)) v += rb[g];
                xw[r * GH + g] = v;
            }
        if (!d.layout) kiln_sgemm_ex(pool, S * Bn, GH, I, 1.0f, X, I, 0, NULL, Wd, I, 1, Wp, xw, GH, NULL);
        else
            for (int64_t b = 0; b < Bn; b++)
                kiln_sgemm_ex(pool, S, GH, I, 1.0f, X + x_at(&d, 0, b), I, 0, NULL, Wd, I, 1, Wp, xw + b * GH, Bn * GH, NULL);
        for (int64_t b = 0; b < Bn; b++)
            for (int64_t j = 0; j < H; j++) {
                h[b * H + j] = h0 ? h0[s_at(&d, dir, b) + j] : 0.0f;
                c[b * H + j] = c0 ? c0[s_at(&d, dir, b) + j] : 0.0f;
            }
        for (int64_t step = 0; step < S; step++) {
            memset(hr, 0, (size_t)(Bn * GH) * sizeof(float));
            /* GRU: the z and r gates from H; the h gate below */
            kiln_sgemm_ex(pool, Bn, RN, H, 1.0f, h, H, 0, NULL, Rd, H, 1, Rp, hr, GH, NULL);
            for (int64_t b = 0; b < Bn; b++) {
                int64_t len = lens ? lens[b] : S;
                int64_t t = reverse ? len - 1 - step : step;
                if (step >= len) continue; /* finished: state held, output stays zero */
                const float *xr = xw + (t * Bn + b) * GH;
                float *hh = hr + b * GH, *hb = h + b * H, *cb = c + b * H, *out = hn + b * H;
                if (kind == RNN_KIND) {
                    for (int64_t j = 0; j < H; j++) out[j] = act(&f[0], clipv(q, xr[j] + hh[j]));
                } else if (kind == GRU_KIND) {
                    float *z = hh, *r = hh + H;
                    for (int64_t j = 0; j < H; j++) {
                        z[j] = act(&f[0], clipv(q, xr[j] + z[j]));
                        r[j] = act(&f[0], clipv(q, xr[H + j] + r[j]));
                    }
                    float *hg = hh + 2 * H; /* the h gate's recurrent part */
                    const float *Rh = Rd + 2 * H * H, *rbh = rb ? rb + 2 * H : NULL;
                    for (int64_t j = 0; j < H; j++) {
                        float s = 0;
                        if (q->linear_before_reset) {
                            for (int64_t k = 0; k < H; k++) s += hb[k] * Rh[j * H + k];
                            s = r[j] * (s + (rbh ? rbh[j] : 0.0f));
                        } else {
                            for (int64_t k = 0; k < H; k++) s += r[k] * hb[k] * Rh[j * H + k];
                            s += rbh ? rbh[j] : 0.0f;
                        }
                        hg[j] = act(&f[1], clipv(q, xr[2 * H + j] + s));
                    }
                    for (int64_t j = 0; j < H; j++) out[j] = (1 - z[j]) * hg[j] + z[j] * hb[j];
                } else {
                    for (int64_t j = 0; j < H; j++) {
                        float gi = xr[j] + hh[j], go = xr[H + j] + hh[H + j], gf = xr[2 * H + j] + hh[2 * H + j], gc = xr[3 * H + j] + hh[3 * H + j];
                        if (Pd) { gi += Pd[j] * cb[j]; gf += Pd[2 * H + j] * cb[j]; }
                        float i = act(&f[0], clipv(q, gi)), fg = act(&f[0], clipv(q, gf)), cc = act(&f[1], clipv(q, gc));
                        if (q->input_forget) fg = 1 - i;
                        float cn = fg * cb[j] + i * cc;
                        if (Pd) go += Pd[H + j] * cn;
                        float o = act(&f[0], clipv(q, go));
                        cb[j] = cn;
                        out[j] = o * act(&f[2], cn);
                    }
                }
                memcpy(hb, out, (size_t)H * sizeof(float));
                memcpy(Y + y_at(&d, t, dir, b), out, (size_t)H * sizeof(float));
            }
        }
        for (int64_t b = 0; b < Bn; b++) {
            memcpy(Yh + s_at(&d, dir, b), h + b * H, (size_t)H * sizeof(float));
            memcpy(Yc + s_at(&d, dir, b), c + b * H, (size_t)H * sizeof(float));
        }
    }
    return 0;
}
