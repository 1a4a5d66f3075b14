/* kir_interp.c: runs a Kir program in the compiler (constant folding).
 *
 * Kernel calls go through kiln_kernel_table to the runtime's own functions;
 * with a context (driver/dyn.c), the create-time pass (which 1) first sizes
 * its per-thread scratch from kiln_kernel_need, as the generated init does.
 * Fused loops are evaluated element by element with the inline functions of
 * kiln_scalar.h, in the same classes (f32, f64, i64, u64) and with the same
 * rounding to each instruction's dtype as the C that emit_c.c writes, so a
 * folded value equals the one the compiled code would compute. */
#include "kir.h"
#include "../runtime/kiln_scalar.h"
#include "../runtime/kiln_simd.h"

#include <stdlib.h>
#include <string.h>

const KInstrKind kinstr_kind[KI_COUNT] = {
#define KI(id, fn, kind) [KI_##id] = KK_##kind,
#include "kinstr.def"
#undef KI
};
const char *const kinstr_fn[KI_COUNT] = {
#define KI(id, fn, kind) [KI_##id] = #fn,
#include "kinstr.def"
#undef KI
};

typedef union { float f; double d; int64_t i; uint64_t u; } Scalar;

typedef enum { CL_F32, CL_F64, CL_I64, CL_U64 } Class;

static Class class_of(DType t) {
    switch (t) {
    case DT_F32: case DT_F16: case DT_BF16: return CL_F32;
    case DT_F64: return CL_F64;
    case DT_I8: case DT_I16: case DT_I32: case DT_I64: return CL_I64;
    default: return CL_U64;
    }
}

static Scalar load(const void *p, DType t) {
    Scalar s;
    switch (t) {
    case DT_F32: s.f = *(const float *)p; break;
    case DT_F16: s.f = kiln_f16_to_f32(*(const uint16_t *)p); break;
    case DT_BF16: s.f = kiln_bf16_to_f32(*(const uint16_t *)p); break;
    case DT_F64: s.d = *(const double *)p; break;
    case DT_I8: s.i = *(const int8_t *)p; break;
    case DT_I16: s.i = *(const int16_t *)p; break;
    case DT_I32: s.i = *(const int32_t *)p; break;
    case DT_I64: s.i = *(const int64_t *)p; break;
    case DT_U8: case DT_BOOL: s.u = *(const uint8_t *)p; break;
    case DT_U16: s.u = *(const uint16_t *)p; break;
    case DT_U32: s.u = *(const uint32_t *)p; break;
    default: s.u = *(const uint64_t *)p; break;
    }
    return s;
}

static void store(void *p, DType t, Scalar s) {
    switch (t) {
    case DT_F32: *(float *)p = s.f; break;
    case DT_F16: *(uint16_t *)p = kiln_f32_to_f16(s.f); break;
    case DT_BF16: *(uint16_t *)p = kiln_f32_to_bf16(s.f); break;
    case DT_F64: *(double *)p = s.d; break;
    case DT_I8: *(int8_t *)p = (int8_t)s.i; break;
    case DT_I16: *(int16_t *)p = (int16_t)s.i; break;
    case DT_I32: *(int32_t *)p = (int32_t)s.i; break;
    case DT_I64: *(int64_t *)p = s.i; break;
    case DT_U8: case DT_BOOL: *(uint8_t *)p = (uint8_t)s.u; break;
    case DT_U16: *(uint16_t *)p = (uint16_t)s.u; break;
    case DT_U32: *(uint32_t *)p = (uint32_t)s.u; break;
    default: *(uint64_t *)p = s.u; break;
    }
}

/* Rounds a result to what its dtype can hold (the C code declares it so). */
static Scalar narrow(Scalar s, DType t) {
    switch (t) {
    case DT_F16: s.f = kiln_round_f16(s.f); break;
    case DT_BF16: s.f = kiln_round_bf16(s.f); break;
    case DT_I8: s.i = (int8_t)s.i; break;
    case DT_I16: s.i = (int16_t)s.i; break;
    case DT_I32: s.i = (int32_t)s.i; break;
    case DT_U8: case DT_BOOL: s.u = (uint8_t)s.u; break;
    case DT_U16: s.u = (uint16_t)s.u; break;
    case DT_U32: s.u = (uint32_t)s.u; break;
    default: break;
    }
    return s;
}

static Scalar cast(Scalar x, DType from, DType to) {
    Class a = class_of(from), b = class_of(to);
    Scalar r;
    if (to == DT_BOOL) {
        r.u = a == CL_F32 ? x.f != 0 : a == CL_F64 ? x.d != 0 : x.u != 0;
        return r;
    }
    double dv = a == CL_F32 ? x.f : a == CL_F64 ? x.d : a == CL_I64 ? (double)x.i : (double)x.u;
    switch (b) {
    case CL_F32: r.f = a == CL_F64 ? (float)x.d : a == CL_F32 ? x.f : a == CL_I64 ? (float)x.i : (float)x.u; break;
    case CL_F64: r.d = dv; break;
    case CL_I64: r.i = a == CL_I64 ? x.i : a == CL_U64 ? (int64_t)x.u : kiln_f2i(dv); break;
    default: r.u = a == CL_U64 ? x.u : a == CL_I64 ? (uint64_t)x.i : kiln_f2u(dv); break;
    }
    return narrow(r, to);
}

static Scalar constant(double f, DType t) {
    Scalar r;
    switch (class_of(t)) {
    case CL_F32: r.f = (float)f; break;
    case CL_F64: r.d = f; break;
    case CL_I64: r.i = kiln_f2i(f); break;
    default: r.u = kiln_f2u(f); break;
    }
    return narrow(r, t);
}

#define ARITH(OP, x, y, cl) \
    (cl == CL_F32 ? (Scalar){.f = kiln_##OP##_f32(x.f, y.f)} : cl == CL_F64 ? (Scalar){.d = kiln_##OP##_f64(x.d, y.d)} \
     : cl == CL_I64 ? (Scalar){.i = kiln_##OP##_i64(x.i, y.i)} : (Scalar){.u = kiln_##OP##_u64(x.u, y.u)})
#define UNARY(OP, x, cl) \
    (cl == CL_F32 ? (Scalar){.f = kiln_##OP##_f32(x.f)} : cl == CL_F64 ? (Scalar){.d = kiln_##OP##_f64(x.d)} \
     : cl == CL_I64 ? (Scalar){.i = kiln_##OP##_i64(x.i)} : (Scalar){.u = kiln_##OP##_u64(x.u)})
#define EV_ANY1(fn) UNARY(fn, x, cl)
#define EV_ANY2(fn) ARITH(fn, x, y, cl)
#define EV_FLT1(fn) (cl == CL_F32 ? (Scalar){.f = kiln_##fn##_f32(x.f)} : (Scalar){.d = kiln_##fn##_f64(x.d)})
#define EV_FLT1P1(fn) \
    (cl == CL_F32 ? (Scalar){.f = kiln_##fn##_f32(x.f, (float)c->f)} : (Scalar){.d = kiln_##fn##_f64(x.d, c->f)})
#define EV_FLT1P2(fn) \
    (cl == CL_F32 ? (Scalar){.f = kiln_##fn##_f32(x.f, (float)c->f, (float)c->g)} : (Scalar){.d = kiln_##fn##_f64(x.d, c->f, c->g)})
#define EV_CMP2(fn) \
    (Scalar){.u = acl == CL_F32 ? kiln_##fn##_f32(x.f, y.f) : acl == CL_F64 ? kiln_##fn##_f64(x.d, y.d) \
                  : acl == CL_I64 ? kiln_##fn##_i64(x.i, y.i) : kiln_##fn##_u64(x.u, y.u)}
#define EV_FCMP1(fn) (Scalar){.u = acl == CL_F32 ? kiln_##fn##_f32(x.f) : kiln_##fn##_f64(x.d)}
#define EV_FCMP1P2(fn) \
    (Scalar){.u = acl == CL_F32 ? kiln_##fn##_f32(x.f, (float)c->f, (float)c->g) : kiln_##fn##_f64(x.d, c->f, c->g)}
#define EV_BOOL1(fn) (Scalar){.u = kiln_##fn##_u64(x.u)}
#define EV_BOOL2(fn) (Scalar){.u = kiln_##fn##_u64(x.u, y.u)}

/* Where a program's buffers are: its inputs, workspace and state (NULL while
 * folding, where every buffer is host memory or a constant). */
typedef struct {
    const Kir *k;
    const void *const *inputs;
    unsigned char *ws, *state;
    const KLoop *lp;
} Env;

void *kir_buf_ptr(const Kir *k, int b, const void *const *inputs, unsigned char *ws, unsigned char *state) {
    const KBuf *kb = &k->bufs[b];
    switch (kb->kind) {
    case KB_HOST: return kb->host;
    case KB_INPUT: return (void *)inputs[kb->index];
    case KB_CONST: return k->weights ? k->weights + kb->offset : kb->host;
    case KB_STATE: return state + kb->offset;
    default: return ws + kb->offset;
    }
}

static void *buf_ptr(const Env *e, int b) { return kir_buf_ptr(e->k, b, e->inputs, e->ws, e->state); }

/* The start of the loop's row at idx (its dims but the last): each input's
 * element offset into off, the output's returned; first: the row's first element. */
static int64_t row_start(const KLoop *lp, const int64_t *idx, int64_t first, int64_t *off) {
    int r = lp->rank;
    int64_t obase = 0;
    for (int i = 0; i < lp->nin; i++) {
        off[i] = 0;
        for (int d = 0; d < r - 1; d++) off[i] += idx[d] * lp->strides[i][d];
    }
    for (int d = 0; d < r - 1; d++) obase = obase * lp->dims[d] + idx[d];
    return obase * (r ? lp->dims[r - 1] : 1) + first;
}

/* idx to the next row. */
static void row_next(const KLoop *lp, int64_t *idx) {
    for (int d = lp->rank - 2; d >= 0; d--) {
        if (++idx[d] < lp->dims[d]) break;
        idx[d] = 0;
    }
}

/* Scalar operations of one instruction over n elements: the switch once per block. */
#define BLOCK 64
static void eval_block(const KInstr *c, Scalar *z, const Scalar *ra, const Scalar *rb, DType adt, int n) {
    Class cl = class_of(c->dt), acl = class_of(adt);
    (void)acl;
    switch (c->op) {
#define KI(id, fn, kind) \
    case KI_##id: \
        for (int j = 0; j < n; j++) { \
            Scalar x = ra[j], y = rb[j]; \
            (void)y; \
            z[j] = narrow(EV_##kind(fn), c->dt); \
        } \
        break;
#include "kinstr.def"
#undef KI
    default: for (int j = 0; j < n; j++) z[j].u = 0;
    }
}

/* A loop all in float32 (its loads, results and operations): evaluated on
 * plain float arrays, which the compiler vectorizes. */
static bool loop_all_f32(const Kir *k, const KLoop *lp) {
    for (int c = 0; c < lp->ncode; c++) {
        const KInstr *ins = &lp->code[c];
        if (ins->dt != DT_F32) return false;
        if (ins->op == KI_LOAD) {
            if (k->bufs[lp->in[ins->a]].dtype != DT_F32) return false;
        } else if (ins->op == KI_CAST || ins->op == KI_WHERE) return false;
        else if (ins->op != KI_CONST) {
            KInstrKind kk = kinstr_kind[ins->op];
            if (kk != KK_ANY1 && kk != KK_ANY2 && kk != KK_FLT1 && kk != KK_FLT1P1 && kk != KK_FLT1P2) return false;
        }
    }
    return lp->ncode > 0;
}

#define F32_ANY1(fn) for (int j = 0; j < n; j++) z[j] = kiln_##fn##_f32(x[j])
#define F32_FLT1(fn) F32_ANY1(fn)
#define F32_ANY2(fn) for (int j = 0; j < n; j++) z[j] = kiln_##fn##_f32(x[j], y[j])
#define F32_FLT1P1(fn) for (int j = 0; j < n; j++) z[j] = kiln_##fn##_f32(x[j], (float)c->f)
#define F32_FLT1P2(fn) for (int j = 0; j < n; j++) z[j] = kiln_##fn##_f32(x[j], (float)c->f, (float)c->g)
#define F32_CMP2(fn)
#define F32_FCMP1(fn)
#define F32_FCMP1P2(fn)
#define F32_BOOL1(fn)
#define F32_BOOL2(fn)

KILN_CLONES static void eval_f32(const KInstr *c, float *restrict z, const float *x, const float *y, int n) {
    switch (c->op) {
#define KI(id, fn, kind) \
    case KI_##id: F32_##kind(fn); break;
#include "kinstr.def"
#undef KI
    default: break;
    }
}

/* The float32 loop's rows (see run_loop_range). */
static void run_loop_f32(const Env *e, const KLoop *lp, int64_t rows, int64_t inner, int64_t first, int64_t *idx) {
    int r = lp->rank;
    const float *in[64];
    for (int i = 0; i < lp->nin; i++) in[i] = buf_ptr(e, lp->in[i]);
    float *out = buf_ptr(e, lp->out);
    float (*regs)[BLOCK] = malloc(sizeof *regs * (size_t)lp->ncode);
    if (!regs) return;
    for (int64_t row = 0; row < rows; row++, row_next(lp, idx)) {
        int64_t off[64], obase = row_start(lp, idx, first, off);
        for (int64_t c0 = 0; c0 < inner; c0 += BLOCK) {
            int n = inner - c0 < BLOCK ? (int)(inner - c0) : BLOCK;
            for (int c = 0; c < lp->ncode; c++) {
                const KInstr *ins = &lp->code[c];
                float *z = regs[c];
                if (ins->op == KI_LOAD) {
                    int64_t st = r ? lp->strides[ins->a][r - 1] : 0;
                    const float *p = in[ins->a] + off[ins->a] + (first + c0) * st;
                    if (st == 1) memcpy(z, p, sizeof(float) * (size_t)n);
                    else for (int j = 0; j < n; j++) z[j] = p[j * st];
                } else if (ins->op == KI_CONST) {
                    float v = (float)ins->f;
                    for (int j = 0; j < n; j++) z[j] = v;
                } else eval_f32(ins, z, regs[ins->a], regs[ins->b < lp->ncode ? ins->b : ins->a], n);
            }
            memcpy(out + obase + c0, regs[lp->ncode - 1], sizeof(float) * (size_t)n);
        }
    }
    free(regs);
}

/* Elements [begin, end) of dims[0] of a fused loop, a row of the innermost
 * dimension at a time, each instruction over up to BLOCK elements of it. */
static void run_loop_range(const Env *e, const KLoop *lp, int64_t begin, int64_t end) {
    const Kir *k = e->k;
    const unsigned char *in[64];
    int es[64];
    for (int i = 0; i < lp->nin; i++) {
        in[i] = buf_ptr(e, lp->in[i]);
        es[i] = dtype_size(k->bufs[lp->in[i]].dtype);
    }
    unsigned char *out = buf_ptr(e, lp->out);
    DType odt = k->bufs[lp->out].dtype;
    int oes = dtype_size(odt), r = lp->rank;
    int64_t inner = r ? lp->dims[r - 1] : 1, rows = 1, idx[MAX_RANK] = {0};
    for (int d = 0; d < r - 1; d++) rows *= lp->dims[d];
    if (r > 1) { /* rows of dims[0] in [begin, end) */
        int64_t per = rows / lp->dims[0];
        idx[0] = begin;
        rows = (end - begin) * per;
    } else if (r == 1) inner = end - begin;
    int64_t first = r == 1 ? begin : 0;
    if (loop_all_f32(k, lp)) {
        run_loop_f32(e, lp, rows, inner, first, idx);
        return;
    }
    Scalar (*regs)[BLOCK] = malloc(sizeof *regs * (size_t)(lp->ncode ? lp->ncode : 1));
    if (!regs) return;
    for (int64_t row = 0; row < rows; row++, row_next(lp, idx)) {
        int64_t off[64], obase = row_start(lp, idx, first, off);
        for (int64_t c0 = 0; c0 < inner; c0 += BLOCK) {
            int n = inner - c0 < BLOCK ? (int)(inner - c0) : BLOCK;
            for (int c = 0; c < lp->ncode; c++) {
                const KInstr *ins = &lp->code[c];
                Scalar *z = regs[c];
                if (ins->op == KI_LOAD) {
                    int64_t st = r ? lp->strides[ins->a][r - 1] : 0, o = off[ins->a] + (first + c0) * st;
                    for (int j = 0; j < n; j++) z[j] = load(in[ins->a] + (o + j * st) * es[ins->a], ins->dt);
                } else if (ins->op == KI_CONST) {
                    Scalar v = constant(ins->f, ins->dt);
                    for (int j = 0; j < n; j++) z[j] = v;
                } else if (ins->op == KI_CAST) {
                    for (int j = 0; j < n; j++) z[j] = cast(regs[ins->a][j], lp->code[ins->a].dt, ins->dt);
                } else if (ins->op == KI_WHERE) {
                    for (int j = 0; j < n; j++) z[j] = regs[ins->c][j].u ? regs[ins->a][j] : regs[ins->b][j];
                } else eval_block(ins, z, regs[ins->a], regs[ins->b < lp->ncode ? ins->b : ins->a], lp->code[ins->a].dt, n);
            }
            const Scalar *res = regs[lp->ncode - 1];
            for (int j = 0; j < n; j++) store(out + (obase + c0 + j) * oes, odt, res[j]);
        }
    }
    free(regs);
}

static void loop_chunk(void *arg, int64_t b, int64_t e) {
    const Env *env = arg;
    run_loop_range(env, env->lp, b, e);
}

/* Sizes ctx's per-thread scratch for the steps of k, as the generated init
 * does first (kiln_context_scratch). */
static int size_scratch(const Kir *k, kiln_context *ctx) {
    kiln_step_need *need = malloc(sizeof *need * (size_t)(k->nsteps + 1));
    if (!need) return KILN_E_NOMEM;
    int n = 0;
    for (int s = 0; s < k->nsteps; s++)
        if (k->steps[s].kind == KS_CALL && kiln_kernel_need[k->steps[s].kernel])
            need[n++] = (kiln_step_need){kiln_kernel_need[k->steps[s].kernel], k->steps[s].params};
    int rc = kiln_context_scratch(ctx, need, n);
    free(need);
    return rc;
}

int kir_exec(const Kir *k, kiln_context *ctx, const char *const *names, const void *const *inputs, unsigned char *ws, int which) {
    Env env = {k, inputs, ws, ctx ? ctx->state : NULL, NULL};
    kiln_pool *pool = ctx ? ctx->pool : NULL;
    bool prof = ctx && ctx->prof && names && which == 0;
    int rc = 0, at = 0; /* the status, and the step that failed */
    if (ctx && which == 1 && (rc = size_scratch(k, ctx)) != 0) return kiln_step_failed(ctx, rc, "per-thread scratch");
    for (int s = 0; s < k->nsteps; s++) {
        const KStep *st = &k->steps[s];
        if (which >= 0 && st->at_create != (which == 1)) continue;
        if (prof && (st->kind == KS_LOOP || st->kind == KS_CALL)) kiln_prof_mark(ctx, s, k->nsteps, names);
        if (st->kind == KS_LOOP) {
            const KLoop *lp = st->loop;
            if (lp->rank == 0 || lp->dims[0] == 0) {
                if (lp->rank == 0) run_loop_range(&env, lp, 0, 1);
            } else if (pool && kir_loop_parallel(lp)) {
                Env le = env;
                le.lp = lp;
                kiln_parallel_for(pool, lp->dims[0], loop_chunk, &le);
            } else run_loop_range(&env, lp, 0, lp->dims[0]);
            continue;
        }
        if (st->kind == KS_FAIL) {
            rc = KILN_E_LOOP, at = s;
            break;
        }
        if (st->kind == KS_JUMP || (st->kind == KS_BRANCH && (*(const uint8_t *)buf_ptr(&env, st->bufs[0]) != 0) == st->if_true)) {
            s = st->target - 1;
            continue;
        }
        if (st->kind == KS_BRANCH) continue;
        void *bufs[130];
        for (int i = 0; i < st->nbufs; i++) bufs[i] = buf_ptr(&env, st->bufs[i]);
        if ((rc = kiln_kernel_table[st->kernel](pool, bufs, st->params)) != 0) {
            at = s;
            break;
        }
    }
    if (rc && ctx) kiln_step_failed(ctx, rc, names ? names[at] : kir_step_name(k, at));
    if (prof) kiln_prof_mark(ctx, -1, k->nsteps, names);
    return rc;
}

int kir_run(const Kir *k, const void *const *inputs, unsigned char *ws) { return kir_exec(k, NULL, NULL, inputs, ws, -1); }
