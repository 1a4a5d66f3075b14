/* emit_llvm.c: Kir -> an LLVM module, built in-process with the LLVM-C API.
 *
 * The module has what the C emitter's translation unit has, with the same
 * symbols and the same ABI, so the header, the runtime and the executable's
 * main are shared: PREFIX_inputs/_outputs/_moe_layers, PREFIX_create (a
 * kiln_context from the runtime, then the create-time steps), _run, _destroy,
 * _routing_counts, and main with the kiln_model descriptor.
 *
 * Steps become IR directly: a kernel call passes a constant parameter array
 * and a stack array of buffer pointers; a fused loop becomes a loop nest (one
 * block per level, phi counters) whose body calls the scalar functions
 * kiln_<op>_<class> of runtime/kiln_scalar.h. Those come from bitcode compiled
 * by clang when kiln is built, linked into the module first and made internal,
 * so the optimizer inlines them: the values computed are those of the C
 * backend and of constant folding. Temporaries live in their class's type
 * (float, double, i64) and are kept normalized to their dtype, as C's
 * conversions into the temporaries' narrower types do: narrow integers
 * truncated and sign- or zero-extended, bools 0/1, float16/bfloat16 rounded.
 *
 * Then: verify, the new pass manager's default<On> pipeline for the target
 * machine (this CPU's features with --target host), and textual IR or an
 * object file. Nothing here prints: failures are diagnostics. */
#include "kir.h"
#include "../runtime/kiln_rt.h"
#include "../runtime/kiln_scalar.h"

#include <llvm-c/Analysis.h>
#include <llvm-c/BitReader.h>
#include <llvm-c/Core.h>
#include <llvm-c/Linker.h>
#include <llvm-c/Target.h>
#include <llvm-c/TargetMachine.h>
#include <llvm-c/Transforms/PassBuilder.h>

#include <string.h>

typedef struct LL {
    LLVMContextRef cx;
    LLVMModuleRef m;
    LLVMBuilderRef b;
    const Kir *k;
    const LlvmOpts *o;
    Diags *d;
    LLVMTypeRef i8, i16, i32, i64, f32, f64, vd, p8, pp8;
    LLVMTypeRef ctx_ty;   /* kiln_context: pool, ws, state, W, W_len, prof */
    LLVMTypeRef env_ty;   /* a parallel loop's environment: ws, W, inputs */
    LLVMValueRef weights; /* i8* to the embedded weights, or NULL */
    LLVMValueRef *hoisted; /* the current loop's invariant loads, read before the nest */
    LLVMValueRef *out_shapes; /* i8* to each output's static shape */
    LLVMValueRef names;   /* i8** to the steps' names (the profiler's, and a failure's) */
} LL;

/* What a function body reads buffers through. */
typedef struct Frame {
    LLVMValueRef ws, W, state, inputs, pool;
} Frame;

/* fmt with the symbol prefix in its %s ("%s_run" -> "mlp_run"). */
static char *ll_name(LL *L, const char *fmt) {
    return arena_printf(L->k->arena, fmt, L->o->prefix);
}

static LLVMValueRef ll_fn(LL *L, const char *name, LLVMTypeRef ret, LLVMTypeRef *params, int n) {
    LLVMValueRef f = LLVMGetNamedFunction(L->m, name);
    if (f) return f;
    return LLVMAddFunction(L->m, name, LLVMFunctionType(ret, params, (unsigned)n, 0));
}

static LLVMValueRef ll_call(LL *L, LLVMValueRef fn, LLVMValueRef *args, int n) {
    return LLVMBuildCall2(L->b, LLVMGlobalGetValueType(fn), fn, args, (unsigned)n, "");
}

static LLVMValueRef ll_i64(LL *L, int64_t v) { return LLVMConstInt(L->i64, (unsigned long long)v, 1); }

static LLVMValueRef ll_global(LL *L, LLVMValueRef init, const char *name, bool private_) {
    LLVMValueRef g = LLVMAddGlobal(L->m, LLVMTypeOf(init), name);
    LLVMSetInitializer(g, init);
    LLVMSetGlobalConstant(g, 1);
    if (private_) {
        LLVMSetLinkage(g, LLVMPrivateLinkage);
        LLVMSetUnnamedAddress(g, LLVMGlobalUnnamedAddr);
    }
    return g;
}

static LLVMValueRef ll_p8(LL *L, LLVMValueRef g) { return LLVMConstBitCast(g, L->p8); }

static LLVMValueRef ll_string(LL *L, const char *s) {
    if (!s) return LLVMConstNull(L->p8);
    return ll_p8(L, ll_global(L, LLVMConstStringInContext(L->cx, s, (unsigned)strlen(s), 0), ".str", true));
}

/* A function with its first block; the builder is left in that block. */
static LLVMValueRef ll_define(LL *L, const char *name, LLVMTypeRef ret, LLVMTypeRef *params, int n, bool internal) {
    LLVMValueRef f = ll_fn(L, name, ret, params, n);
    if (internal) LLVMSetLinkage(f, LLVMInternalLinkage);
    LLVMAddAttributeAtIndex(f, LLVMAttributeFunctionIndex,
                            LLVMCreateEnumAttribute(L->cx, LLVMGetEnumAttributeKindForName("nounwind", 8), 0));
    LLVMPositionBuilderAtEnd(L->b, LLVMAppendBasicBlockInContext(L->cx, f, "entry"));
    return f;
}

/* An alloca at the start of the current function's entry block (where the
 * optimizer turns allocas into registers or fixed stack slots). */
static LLVMValueRef ll_alloca(LL *L, LLVMTypeRef ty, const char *name) {
    LLVMBasicBlockRef entry = LLVMGetEntryBasicBlock(LLVMGetBasicBlockParent(LLVMGetInsertBlock(L->b)));
    LLVMBuilderRef eb = LLVMCreateBuilderInContext(L->cx);
    LLVMValueRef first = LLVMGetFirstInstruction(entry);
    if (first) LLVMPositionBuilderBefore(eb, first);
    else LLVMPositionBuilderAtEnd(eb, entry);
    LLVMValueRef a = LLVMBuildAlloca(eb, ty, name);
    LLVMDisposeBuilder(eb);
    return a;
}

static LLVMValueRef ll_field(LL *L, LLVMValueRef ctx, int i) {
    LLVMValueRef p = LLVMBuildBitCast(L->b, ctx, LLVMPointerType(L->ctx_ty, 0), "");
    return LLVMBuildLoad2(L->b, L->p8, LLVMBuildStructGEP2(L->b, L->ctx_ty, p, (unsigned)i, ""), "");
}

/* The frame of a function whose argument `ctx` is a kiln_context. */
static Frame ll_ctx_frame(LL *L, LLVMValueRef ctx, LLVMValueRef inputs) {
    Frame fr = {ll_field(L, ctx, 1), ll_field(L, ctx, 3), ll_field(L, ctx, 2), inputs, ll_field(L, ctx, 0)};
    return fr;
}

static LLVMValueRef ll_offset(LL *L, LLVMValueRef base, int64_t off) {
    if (!off) return base;
    LLVMValueRef i = ll_i64(L, off);
    return LLVMBuildInBoundsGEP2(L->b, L->i8, base, &i, 1, "");
}

static LLVMValueRef ll_buf(LL *L, const Frame *fr, int b) {
    const KBuf *kb = &L->k->bufs[b];
    switch (kb->kind) {
    case KB_INPUT: {
        LLVMValueRef i = ll_i64(L, kb->index);
        return LLVMBuildLoad2(L->b, L->p8, LLVMBuildInBoundsGEP2(L->b, L->p8, fr->inputs, &i, 1, ""), kb->name ? kb->name : "");
    }
    case KB_CONST: return ll_offset(L, fr->W, kb->offset);
    case KB_STATE: return ll_offset(L, fr->state, kb->offset);
    default: return ll_offset(L, fr->ws, kb->offset);
    }
}

/* ---- fused loops ---- */

static LLVMTypeRef storage_ty(LL *L, DType t) {
    switch (t) {
    case DT_F32: return L->f32;
    case DT_F64: return L->f64;
    case DT_F16: case DT_BF16: case DT_I16: case DT_U16: return L->i16;
    case DT_I32: case DT_U32: return L->i32;
    case DT_I64: case DT_U64: return L->i64;
    default: return L->i8;
    }
}

static LLVMTypeRef class_ty(LL *L, const char *c) {
    return c[0] == 'f' ? (c[1] == '3' ? L->f32 : L->f64) : L->i64;
}

static bool is_signed(DType t) { return t == DT_I8 || t == DT_I16 || t == DT_I32 || t == DT_I64; }

/* A scalar function of the linked bitcode. */
static LLVMValueRef scalar_fn(LL *L, const char *name) {
    LLVMValueRef f = LLVMGetNamedFunction(L->m, name);
    if (!f) diag_error(L->d, NULL, "the LLVM backend's scalar bitcode has no function %s (rebuild kiln)", name);
    return f;
}

static LLVMValueRef scalar_call(LL *L, const char *name, LLVMValueRef *args, int n) {
    LLVMValueRef f = scalar_fn(L, name);
    return f ? ll_call(L, f, args, n) : LLVMGetUndef(L->i64);
}

/* A narrow integer (its storage type) as its class's i64: sign- or zero-extended. */
static LLVMValueRef widen(LL *L, LLVMValueRef v, DType t) {
    return is_signed(t) ? LLVMBuildSExt(L->b, v, L->i64, "") : LLVMBuildZExt(L->b, v, L->i64, "");
}

/* v (of its class's type) as a value of dtype t: what assigning to a C
 * temporary of t's type does. */
static LLVMValueRef normalize(LL *L, LLVMValueRef v, DType t) {
    if (t == DT_F16 || t == DT_BF16) return scalar_call(L, t == DT_F16 ? "kiln_round_f16" : "kiln_round_bf16", &v, 1);
    if (t == DT_BOOL) {
        LLVMValueRef nz = LLVMGetTypeKind(LLVMTypeOf(v)) == LLVMIntegerTypeKind
                              ? LLVMBuildICmp(L->b, LLVMIntNE, v, LLVMConstNull(LLVMTypeOf(v)), "")
                              : LLVMBuildFCmp(L->b, LLVMRealUNE, v, LLVMConstNull(LLVMTypeOf(v)), "");
        return LLVMBuildZExt(L->b, nz, L->i64, "");
    }
    int size = dtype_size(t);
    if (kir_class(t)[0] == 'f' || size == 8) return v;
    return widen(L, LLVMBuildTrunc(L->b, v, storage_ty(L, t), ""), t);
}

static LLVMValueRef ll_fconst(LL *L, const char *c, double v) {
    return LLVMConstReal(class_ty(L, c), c[1] == '3' ? (double)(float)v : v);
}

static LLVMValueRef ll_const(LL *L, const KInstr *in) {
    const char *c = kir_class(in->dt);
    if (c[0] == 'f') return LLVMConstReal(class_ty(L, c), kir_float_const(in));
    uint64_t u = c[0] == 'i' ? (uint64_t)kiln_f2i(in->f) : kiln_f2u(in->f);
    int bits = dtype_size(in->dt) * 8;
    if (in->dt == DT_BOOL) u = u != 0;
    else if (bits < 64) {
        u &= (1ull << bits) - 1;
        if (is_signed(in->dt) && (u >> (bits - 1))) u |= ~0ull << bits;
    }
    return LLVMConstInt(L->i64, u, 0);
}

static LLVMValueRef ll_cast(LL *L, LLVMValueRef v, DType from, DType to) {
    const char *a = kir_class(from), *b = kir_class(to);
    if (to == DT_BOOL) return normalize(L, v, DT_BOOL);
    LLVMValueRef r;
    if (b[0] == 'f') {
        LLVMTypeRef ty = class_ty(L, b);
        if (a[0] == 'f') r = a[1] == b[1] ? v : (b[1] == '6' ? LLVMBuildFPExt(L->b, v, ty, "") : LLVMBuildFPTrunc(L->b, v, ty, ""));
        else r = a[0] == 'i' ? LLVMBuildSIToFP(L->b, v, ty, "") : LLVMBuildUIToFP(L->b, v, ty, "");
    } else if (a[0] == 'f') {
        LLVMValueRef dv = a[1] == '3' ? LLVMBuildFPExt(L->b, v, L->f64, "") : v;
        r = scalar_call(L, b[0] == 'i' ? "kiln_f2i" : "kiln_f2u", &dv, 1);
    } else r = v;
    return normalize(L, r, to);
}

static LLVMValueRef ll_instr(LL *L, const KLoop *lp, const KInstr *in, LLVMValueRef *t, LLVMValueRef *ptr,
                             LLVMValueRef *idx) {
    switch (in->op) {
    case KI_LOAD: {
        DType dt = L->k->bufs[lp->in[in->a]].dtype;
        LLVMValueRef off = ll_i64(L, 0);
        for (int d = 0; d < lp->rank; d++)
            if (lp->strides[in->a][d])
                off = LLVMBuildAdd(L->b, off, LLVMBuildMul(L->b, idx[d], ll_i64(L, lp->strides[in->a][d]), ""), "");
        LLVMTypeRef sty = storage_ty(L, dt);
        LLVMValueRef v = LLVMBuildLoad2(L->b, sty, LLVMBuildInBoundsGEP2(L->b, sty, ptr[in->a], &off, 1, ""), "");
        LLVMSetAlignment(v, (unsigned)dtype_size(dt));
        if (dt == DT_F16 || dt == DT_BF16) return scalar_call(L, dt == DT_F16 ? "kiln_f16_to_f32" : "kiln_bf16_to_f32", &v, 1);
        return kir_class(dt)[0] == 'f' || dtype_size(dt) == 8 ? v : widen(L, v, dt);
    }
    case KI_CONST: return ll_const(L, in);
    case KI_CAST: return ll_cast(L, t[in->a], lp->code[in->a].dt, in->dt);
    case KI_WHERE: {
        LLVMValueRef c = LLVMBuildICmp(L->b, LLVMIntNE, t[in->c], LLVMConstNull(L->i64), "");
        return LLVMBuildSelect(L->b, c, t[in->a], t[in->b], "");
    }
    default: {
        KInstrKind kk = kinstr_kind[in->op];
        const char *c = kir_instr_class(lp, in);
        LLVMValueRef args[3];
        int n = 0;
        args[n++] = t[in->a];
        if (kk == KK_ANY2 || kk == KK_CMP2 || kk == KK_BOOL2) args[n++] = t[in->b];
        if (kk == KK_FLT1P1 || kk == KK_FLT1P2 || kk == KK_FCMP1P2) args[n++] = ll_fconst(L, c, in->f);
        if (kk == KK_FLT1P2 || kk == KK_FCMP1P2) args[n++] = ll_fconst(L, c, in->g);
        char name[64];
        snprintf(name, sizeof name, "kiln_%s_%s", kinstr_fn[in->op], c);
        return normalize(L, scalar_call(L, name, args, n), in->dt);
    }
    }
}

/* The innermost body: every instruction, then the store into the output. */
static void ll_body(LL *L, const KLoop *lp, LLVMValueRef out, LLVMValueRef *ptr, LLVMValueRef *idx) {
    LLVMValueRef *t = arena_alloc(L->k->arena, sizeof *t * (size_t)lp->ncode);
    for (int c = 0; c < lp->ncode; c++) {
        t[c] = L->hoisted[c] ? L->hoisted[c] : ll_instr(L, lp, &lp->code[c], t, ptr, idx);
        if (L->d->errors) return;
    }
    DType odt = L->k->bufs[lp->out].dtype;
    LLVMValueRef v = t[lp->ncode - 1];
    if (odt == DT_F16 || odt == DT_BF16) v = scalar_call(L, odt == DT_F16 ? "kiln_f32_to_f16" : "kiln_f32_to_bf16", &v, 1);
    else if (kir_class(odt)[0] != 'f' && dtype_size(odt) < 8) v = LLVMBuildTrunc(L->b, v, storage_ty(L, odt), "");
    LLVMValueRef n = ll_i64(L, 0);
    for (int d = 0; d < lp->rank; d++)
        n = LLVMBuildAdd(L->b, n, LLVMBuildMul(L->b, idx[d], ll_i64(L, dims_numel(lp->rank - d - 1, lp->dims + d + 1)), ""), "");
    LLVMTypeRef sty = storage_ty(L, odt);
    LLVMValueRef st = LLVMBuildStore(L->b, v, LLVMBuildInBoundsGEP2(L->b, sty, out, &n, 1, ""));
    LLVMSetAlignment(st, (unsigned)dtype_size(odt));
}

/* Loop level d of the nest; level 0 runs over [lo, hi) when lo is given. */
static void ll_nest(LL *L, LLVMValueRef fn, const KLoop *lp, int d, LLVMValueRef lo, LLVMValueRef hi, LLVMValueRef out,
                    LLVMValueRef *ptr, LLVMValueRef *idx) {
    if (d == lp->rank) { ll_body(L, lp, out, ptr, idx); return; }
    LLVMValueRef start = d == 0 && lo ? lo : ll_i64(L, 0), end = d == 0 && hi ? hi : ll_i64(L, lp->dims[d]);
    LLVMBasicBlockRef pre = LLVMGetInsertBlock(L->b);
    LLVMBasicBlockRef head = LLVMAppendBasicBlockInContext(L->cx, fn, "loop");
    LLVMBasicBlockRef body = LLVMAppendBasicBlockInContext(L->cx, fn, "body");
    LLVMBasicBlockRef exit = LLVMAppendBasicBlockInContext(L->cx, fn, "done");
    LLVMBuildBr(L->b, head);
    LLVMPositionBuilderAtEnd(L->b, head);
    LLVMValueRef i = LLVMBuildPhi(L->b, L->i64, "");
    LLVMBuildCondBr(L->b, LLVMBuildICmp(L->b, LLVMIntSLT, i, end, ""), body, exit);
    LLVMPositionBuilderAtEnd(L->b, body);
    idx[d] = i;
    ll_nest(L, fn, lp, d + 1, lo, hi, out, ptr, idx);
    LLVMValueRef next = LLVMBuildNSWAdd(L->b, i, ll_i64(L, 1), "");
    LLVMBasicBlockRef latch = LLVMGetInsertBlock(L->b);
    LLVMBuildBr(L->b, head);
    LLVMValueRef inc[2] = {start, next};
    LLVMBasicBlockRef from[2] = {pre, latch};
    LLVMAddIncoming(i, inc, from, 2);
    LLVMPositionBuilderAtEnd(L->b, exit);
}

static void ll_loop(LL *L, LLVMValueRef fn, const Frame *fr, const KLoop *lp, LLVMValueRef lo, LLVMValueRef hi) {
    LLVMValueRef ptr[64], idx[MAX_RANK];
    DType odt = L->k->bufs[lp->out].dtype;
    LLVMValueRef out = LLVMBuildBitCast(L->b, ll_buf(L, fr, lp->out), LLVMPointerType(storage_ty(L, odt), 0), "o");
    for (int i = 0; i < lp->nin; i++)
        ptr[i] = LLVMBuildBitCast(L->b, ll_buf(L, fr, lp->in[i]), LLVMPointerType(storage_ty(L, L->k->bufs[lp->in[i]].dtype), 0), "");
    L->hoisted = arena_alloc(L->k->arena, sizeof *L->hoisted * (size_t)lp->ncode);
    for (int c = 0; c < lp->ncode; c++) /* broadcast scalars, read once */
        L->hoisted[c] = kir_load_invariant(lp, &lp->code[c]) ? ll_instr(L, lp, &lp->code[c], NULL, ptr, idx) : NULL;
    ll_nest(L, fn, lp, 0, lo, hi, out, ptr, idx);
}

/* ---- kernel calls and functions ---- */

/* kiln_step_failed(ctx, status, names[s]) returned from fn (whose parameter
 * 0 is the context). */
static void ll_fail(LL *L, LLVMValueRef fn, LLVMValueRef status, int s) {
    LLVMValueRef si = ll_i64(L, s);
    LLVMValueRef name = LLVMBuildLoad2(L->b, L->p8, LLVMBuildInBoundsGEP2(L->b, L->p8, L->names, &si, 1, ""), "step");
    LLVMTypeRef pt[3] = {L->p8, L->i32, L->p8};
    LLVMValueRef args[3] = {LLVMGetParam(fn, 0), status, name};
    LLVMBuildRet(L->b, ll_call(L, ll_fn(L, "kiln_step_failed", L->i32, pt, 3), args, 3));
}

/* Step s's kernel call; a non-zero status ends fn (run or init), naming the step. */
static void ll_kernel(LL *L, LLVMValueRef fn, const Frame *fr, int s) {
    const KStep *st = &L->k->steps[s];
    const char *kname = arena_printf(L->k->arena, "kiln_k_%s", kiln_kernel_names[st->kernel]);
    LLVMTypeRef kp[3] = {L->p8, L->pp8, LLVMPointerType(L->i64, 0)};
    LLVMValueRef kfn = ll_fn(L, kname, L->i32, kp, 3);
    LLVMValueRef *pv = arena_alloc(L->k->arena, sizeof *pv * (size_t)(st->nparams + 1));
    for (int i = 0; i < st->nparams; i++) pv[i] = ll_i64(L, st->params[i]);
    if (!st->nparams) pv[0] = ll_i64(L, 0);
    int np = st->nparams ? st->nparams : 1;
    LLVMValueRef params = ll_global(L, LLVMConstArray(L->i64, pv, (unsigned)np), ".p", true);
    LLVMTypeRef bty = LLVMArrayType(L->p8, (unsigned)(st->nbufs ? st->nbufs : 1));
    LLVMValueRef bufs = ll_alloca(L, bty, "b");
    for (int i = 0; i < st->nbufs; i++)
        LLVMBuildStore(L->b, ll_buf(L, fr, st->bufs[i]), LLVMBuildStructGEP2(L->b, bty, bufs, (unsigned)i, ""));
    LLVMValueRef args[3] = {fr->pool, LLVMBuildBitCast(L->b, bufs, L->pp8, ""),
                            LLVMConstBitCast(params, LLVMPointerType(L->i64, 0))};
    LLVMValueRef rc = ll_call(L, kfn, args, 3);
    LLVMBasicBlockRef fail = LLVMAppendBasicBlockInContext(L->cx, fn, "fail"), ok = LLVMAppendBasicBlockInContext(L->cx, fn, "ok");
    LLVMBuildCondBr(L->b, LLVMBuildICmp(L->b, LLVMIntNE, rc, LLVMConstInt(L->i32, 0, 0), ""), fail, ok);
    LLVMPositionBuilderAtEnd(L->b, fail);
    ll_fail(L, fn, rc, s);
    LLVMPositionBuilderAtEnd(L->b, ok);
}

/* loopN(env, b, e): a parallel loop's body over dimension 0's [b, e); env
 * holds {ws, W, inputs}. */
static LLVMValueRef ll_loop_fn(LL *L, int s) {
    LLVMTypeRef pt[3] = {L->p8, L->i64, L->i64};
    char name[32];
    snprintf(name, sizeof name, "loop%d", s);
    LLVMValueRef fn = ll_define(L, name, L->vd, pt, 3, true);
    LLVMTypeRef env_ty = L->env_ty;
    LLVMValueRef env = LLVMBuildBitCast(L->b, LLVMGetParam(fn, 0), LLVMPointerType(env_ty, 0), "");
    Frame fr = {0};
    fr.ws = LLVMBuildLoad2(L->b, L->p8, LLVMBuildStructGEP2(L->b, env_ty, env, 0, ""), "ws");
    fr.W = LLVMBuildLoad2(L->b, L->p8, LLVMBuildStructGEP2(L->b, env_ty, env, 1, ""), "W");
    fr.inputs = LLVMBuildLoad2(L->b, L->pp8, LLVMBuildStructGEP2(L->b, env_ty, env, 2, ""), "inputs");
    ll_loop(L, fn, &fr, L->k->steps[s].loop, LLVMGetParam(fn, 1), LLVMGetParam(fn, 2));
    LLVMBuildRetVoid(L->b);
    return fn;
}

static void ll_parallel(LL *L, const Frame *fr, int s, LLVMValueRef loopfn) {
    LLVMTypeRef env_ty = L->env_ty;
    LLVMValueRef env = ll_alloca(L, env_ty, "env");
    LLVMBuildStore(L->b, fr->ws, LLVMBuildStructGEP2(L->b, env_ty, env, 0, ""));
    LLVMBuildStore(L->b, fr->W, LLVMBuildStructGEP2(L->b, env_ty, env, 1, ""));
    LLVMBuildStore(L->b, fr->inputs, LLVMBuildStructGEP2(L->b, env_ty, env, 2, ""));
    LLVMTypeRef pt[4] = {L->p8, L->i64, L->p8, L->p8};
    LLVMValueRef pf = ll_fn(L, "kiln_parallel_for", L->vd, pt, 4);
    LLVMValueRef args[4] = {fr->pool, ll_i64(L, L->k->steps[s].loop->dims[0]), LLVMConstBitCast(loopfn, L->p8),
                            LLVMBuildBitCast(L->b, env, L->p8, "")};
    ll_call(L, pf, args, 4);
}

/* kiln_context_scratch(ctx, needs, n) first in init (fn): the steps whose
 * kernels take per-thread scratch, each {kiln_need_NAME, its parameters}, as
 * the C emitter's PREFIX_needs; a failure ends init. */
static void ll_needs(LL *L, LLVMValueRef fn) {
    const Kir *k = L->k;
    LLVMTypeRef np[2] = {L->p8, L->p8}; /* kiln_need_NAME's parameters, and a kiln_step_need's fields */
    LLVMTypeRef ety = LLVMStructTypeInContext(L->cx, np, 2, 0);
    LLVMValueRef *items = arena_alloc(k->arena, sizeof *items * (size_t)(k->nsteps + 1));
    int n = 0;
    for (int s = 0; s < k->nsteps; s++) {
        const KStep *st = &k->steps[s];
        if (st->kind != KS_CALL || !kiln_kernel_need[st->kernel]) continue;
        LLVMValueRef *pv = arena_alloc(k->arena, sizeof *pv * (size_t)(st->nparams + 1));
        for (int i = 0; i < st->nparams; i++) pv[i] = ll_i64(L, st->params[i]);
        if (!st->nparams) pv[0] = ll_i64(L, 0);
        LLVMValueRef params = ll_global(L, LLVMConstArray(L->i64, pv, (unsigned)(st->nparams ? st->nparams : 1)), ".need", true);
        LLVMValueRef need = ll_fn(L, arena_printf(k->arena, "kiln_need_%s", kiln_kernel_names[st->kernel]), L->vd, np, 2);
        LLVMValueRef e[2] = {ll_p8(L, need), ll_p8(L, params)};
        items[n++] = LLVMConstStructInContext(L->cx, e, 2, 0);
    }
    if (!n) return;
    LLVMValueRef table = ll_global(L, LLVMConstArray(ety, items, (unsigned)n), ".needs", true);
    LLVMTypeRef pt[3] = {L->p8, L->p8, L->i32};
    LLVMValueRef args[3] = {LLVMGetParam(fn, 0), ll_p8(L, table), LLVMConstInt(L->i32, (unsigned)n, 0)};
    LLVMValueRef rc = ll_call(L, ll_fn(L, "kiln_context_scratch", L->i32, pt, 3), args, 3);
    LLVMBasicBlockRef fail = LLVMAppendBasicBlockInContext(L->cx, fn, "fail"), ok = LLVMAppendBasicBlockInContext(L->cx, fn, "ok");
    LLVMBuildCondBr(L->b, LLVMBuildICmp(L->b, LLVMIntNE, rc, LLVMConstInt(L->i32, 0, 0), ""), fail, ok);
    LLVMPositionBuilderAtEnd(L->b, fail);
    LLVMTypeRef ft[3] = {L->p8, L->i32, L->p8};
    LLVMValueRef fargs[3] = {LLVMGetParam(fn, 0), LLVMConstInt(L->i32, KILN_E_NOMEM, 0), ll_string(L, "per-thread scratch")};
    LLVMBuildRet(L->b, ll_call(L, ll_fn(L, "kiln_step_failed", L->i32, ft, 3), fargs, 3));
    LLVMPositionBuilderAtEnd(L->b, ok);
}

/* PREFIX_init(ctx): the per-thread scratch, then the create-time steps. */
static LLVMValueRef ll_init(LL *L) {
    LLVMValueRef fn = ll_define(L, ll_name(L, "%s_init"), L->i32, &L->p8, 1, true);
    Frame fr = ll_ctx_frame(L, LLVMGetParam(fn, 0), LLVMConstNull(L->pp8));
    ll_needs(L, fn);
    for (int s = 0; s < L->k->nsteps; s++)
        if (L->k->steps[s].at_create) ll_kernel(L, fn, &fr, s);
    LLVMBuildRet(L->b, LLVMConstInt(L->i32, 0, 0));
    return fn;
}

/* The steps' names, one global array for the profiler and the failures. */
static void ll_step_names(LL *L) {
    const Kir *k = L->k;
    LLVMValueRef *nm = arena_alloc(k->arena, sizeof *nm * (size_t)(k->nsteps + 1));
    for (int s = 0; s < k->nsteps; s++) nm[s] = ll_string(L, kir_step_name(k, s));
    if (!k->nsteps) nm[0] = LLVMConstNull(L->p8);
    L->names = LLVMConstBitCast(ll_global(L, LLVMConstArray(L->p8, nm, (unsigned)(k->nsteps ? k->nsteps : 1)), ".step_names", true), L->pp8);
}

/* With the step profiler on (the context's prof field set: KILN_PROFILE),
 * kiln_prof_mark(ctx, s, nsteps, names) before step s (-1: the end). */
static void ll_prof_mark(LL *L, LLVMValueRef fn, LLVMValueRef names, int s) {
    LLVMValueRef ctx = LLVMGetParam(fn, 0);
    LLVMValueRef on = LLVMBuildICmp(L->b, LLVMIntNE, ll_field(L, ctx, 5), LLVMConstNull(L->p8), "prof");
    LLVMBasicBlockRef mark = LLVMAppendBasicBlockInContext(L->cx, fn, "prof"), next = LLVMAppendBasicBlockInContext(L->cx, fn, "step");
    LLVMBuildCondBr(L->b, on, mark, next);
    LLVMPositionBuilderAtEnd(L->b, mark);
    LLVMTypeRef pt[4] = {L->p8, L->i32, L->i32, L->pp8};
    LLVMValueRef args[4] = {ctx, LLVMConstInt(L->i32, (unsigned long long)(int64_t)s, 1), LLVMConstInt(L->i32, (unsigned)L->k->nsteps, 0), names};
    ll_call(L, ll_fn(L, "kiln_prof_mark", L->vd, pt, 4), args, 4);
    LLVMBuildBr(L->b, next);
    LLVMPositionBuilderAtEnd(L->b, next);
}

static void ll_run(LL *L, LLVMValueRef *loopfns) {
    const Kir *k = L->k;
    LLVMTypeRef pt[3] = {L->p8, L->pp8, L->pp8};
    LLVMValueRef fn = ll_define(L, ll_name(L, "%s_run"), L->i32, pt, 3, false);
    Frame fr = ll_ctx_frame(L, LLVMGetParam(fn, 0), LLVMGetParam(fn, 1));
    LLVMValueRef names = L->names;
    /* control flow: a block at each jump target; a jump or branch ends its block */
    bool *target = kir_jump_targets(k);
    LLVMBasicBlockRef *blocks = arena_alloc(k->arena, sizeof *blocks * (size_t)(k->nsteps + 1));
    for (int s = 0; s <= k->nsteps; s++)
        if (target[s]) blocks[s] = LLVMAppendBasicBlockInContext(L->cx, fn, "target");
    for (int s = 0; s <= k->nsteps; s++) {
        if (target[s]) {
            LLVMBuildBr(L->b, blocks[s]);
            LLVMPositionBuilderAtEnd(L->b, blocks[s]);
        }
        if (s == k->nsteps) {
            ll_prof_mark(L, fn, names, -1);
            break;
        }
        const KStep *st = &k->steps[s];
        if (st->at_create) continue;
        if (st->kind == KS_JUMP || st->kind == KS_BRANCH || st->kind == KS_FAIL) {
            LLVMBasicBlockRef next = LLVMAppendBasicBlockInContext(L->cx, fn, "next");
            if (st->kind == KS_JUMP) LLVMBuildBr(L->b, blocks[st->target]);
            else if (st->kind == KS_FAIL) ll_fail(L, fn, LLVMConstInt(L->i32, KILN_E_LOOP, 0), s);
            else {
                LLVMValueRef flag = LLVMBuildLoad2(L->b, L->i8, ll_buf(L, &fr, st->bufs[0]), "flag");
                LLVMValueRef set = LLVMBuildICmp(L->b, LLVMIntNE, flag, LLVMConstInt(L->i8, 0, 0), "");
                LLVMBuildCondBr(L->b, set, st->if_true ? blocks[st->target] : next, st->if_true ? next : blocks[st->target]);
            }
            LLVMPositionBuilderAtEnd(L->b, next);
            continue;
        }
        ll_prof_mark(L, fn, names, s);
        if (st->kind == KS_LOOP && loopfns[s]) ll_parallel(L, &fr, s, loopfns[s]);
        else if (st->kind == KS_LOOP) ll_loop(L, fn, &fr, st->loop, NULL, NULL);
        else ll_kernel(L, fn, &fr, s);
        if (L->d->errors) return;
    }
    for (int i = 0; i < k->noutputs; i++) {
        const KIo *o = &k->outputs[i];
        LLVMValueRef oi = ll_i64(L, i);
        LLVMValueRef dst = LLVMBuildLoad2(L->b, L->p8, LLVMBuildInBoundsGEP2(L->b, L->p8, LLVMGetParam(fn, 2), &oi, 1, ""), "");
        LLVMValueRef nb = ll_i64(L, value_nbytes(o->v));
        if (o->shape_buf >= 0) { /* sized at run time: as many bytes as the dims the kernel wrote */
            LLVMValueRef s = LLVMBuildBitCast(L->b, ll_buf(L, &fr, o->shape_buf), LLVMPointerType(L->i64, 0), "");
            nb = ll_i64(L, dtype_size(o->v->dtype));
            for (int d = 0; d < o->v->rank; d++) {
                LLVMValueRef di = ll_i64(L, d);
                nb = LLVMBuildMul(L->b, nb, LLVMBuildLoad2(L->b, L->i64, LLVMBuildInBoundsGEP2(L->b, L->i64, s, &di, 1, ""), ""), "");
            }
        }
        LLVMBuildMemCpy(L->b, dst, 1, ll_buf(L, &fr, o->buf), 1, nb);
    }
    LLVMBuildRet(L->b, LLVMConstInt(L->i32, 0, 0));
}

/* create / create_with_weights, destroy, routing_counts. */
static void ll_lifecycle(LL *L, LLVMValueRef init) {
    const Kir *k = L->k;
    LLVMTypeRef init_ptr = LLVMTypeOf(init);
    LLVMTypeRef cp[8] = {L->i64, L->i64, L->i32, L->p8, L->p8, L->i64, L->i64, init_ptr};
    LLVMValueRef create = ll_fn(L, "kiln_context_create", L->p8, cp, 8);
    LLVMValueRef ws = ll_i64(L, k->workspace_size), state = ll_i64(L, k->state_size);
    LLVMValueRef wsize = ll_i64(L, k->weights_size), wid = LLVMConstInt(L->i64, L->o->weights_id, 0);
    if (L->o->external) {
        LLVMTypeRef pt[2] = {L->p8, L->i32};
        LLVMValueRef fn = ll_define(L, ll_name(L, "%s_create_with_weights"), L->p8, pt, 2, false);
        LLVMValueRef args[8] = {ws, state, LLVMGetParam(fn, 1), LLVMConstNull(L->p8), LLVMGetParam(fn, 0), wsize, wid, init};
        LLVMBuildRet(L->b, ll_call(L, create, args, 8));
        LLVMTypeRef bp[7] = {L->i64, L->i64, L->i32, L->p8, L->i64, L->i64, init_ptr};
        LLVMValueRef beside = ll_fn(L, "kiln_context_create_beside", L->p8, bp, 7);
        fn = ll_define(L, ll_name(L, "%s_create"), L->p8, &L->i32, 1, false);
        LLVMValueRef bargs[7] = {ws, state, LLVMGetParam(fn, 0), ll_string(L, L->o->external), wsize, wid, init};
        LLVMBuildRet(L->b, ll_call(L, beside, bargs, 7));
    } else {
        LLVMValueRef fn = ll_define(L, ll_name(L, "%s_create"), L->p8, &L->i32, 1, false);
        LLVMValueRef args[8] = {ws, state, LLVMGetParam(fn, 0), L->weights, LLVMConstNull(L->p8), ll_i64(L, 0), ll_i64(L, 0), init};
        LLVMBuildRet(L->b, ll_call(L, create, args, 8));
    }
    LLVMValueRef destroy = ll_fn(L, "kiln_context_destroy", L->vd, &L->p8, 1);
    LLVMValueRef fn = ll_define(L, ll_name(L, "%s_destroy"), L->vd, &L->p8, 1, false);
    LLVMValueRef arg = LLVMGetParam(fn, 0);
    ll_call(L, destroy, &arg, 1);
    LLVMBuildRetVoid(L->b);
    fn = ll_define(L, ll_name(L, "%s_routing_counts"), L->p8, &L->p8, 1, false);
    LLVMBuildRet(L->b, ll_field(L, LLVMGetParam(fn, 0), 2));
    fn = ll_define(L, ll_name(L, "%s_error"), L->p8, &L->p8, 1, false);
    arg = LLVMGetParam(fn, 0);
    LLVMBuildRet(L->b, ll_call(L, ll_fn(L, "kiln_context_error", L->p8, &L->p8, 1), &arg, 1));
}

/* PREFIX_output_shape(ctx, i): the static shape, or the run's dims (workspace)
 * for outputs sized at run time. */
static void ll_output_shape(LL *L) {
    const Kir *k = L->k;
    LLVMTypeRef pt[2] = {L->p8, L->i32};
    LLVMValueRef fn = ll_define(L, ll_name(L, "%s_output_shape"), L->p8, pt, 2, false);
    LLVMBasicBlockRef none = LLVMAppendBasicBlockInContext(L->cx, fn, "none");
    LLVMValueRef sw = LLVMBuildSwitch(L->b, LLVMGetParam(fn, 1), none, (unsigned)k->noutputs);
    for (int i = 0; i < k->noutputs; i++) {
        LLVMBasicBlockRef bb = LLVMAppendBasicBlockInContext(L->cx, fn, "out");
        LLVMAddCase(sw, LLVMConstInt(L->i32, (unsigned)i, 0), bb);
        LLVMPositionBuilderAtEnd(L->b, bb);
        const KIo *o = &k->outputs[i];
        if (o->shape_buf >= 0) LLVMBuildRet(L->b, ll_offset(L, ll_field(L, LLVMGetParam(fn, 0), 1), k->bufs[o->shape_buf].offset));
        else LLVMBuildRet(L->b, L->out_shapes[i]);
    }
    LLVMPositionBuilderAtEnd(L->b, none);
    LLVMBuildRet(L->b, LLVMConstNull(L->p8));
}

/* ---- data: weights, tensor infos, MoE layers, main's model descriptor ---- */

/* The weights: an object of their own that link.c writes (codegen/elf.c), or
 * pulled in by the integrated assembler's .incbin from a file (--emit obj:
 * one object), either way no copy through LLVM's constants; or a constant
 * array (--emit ll, readable on its own). */
static void ll_weights(LL *L) {
    const Kir *k = L->k;
    if (L->o->external) return;
    const char *name = ll_name(L, "%s_weights");
    if (L->o->incbin || L->o->weights_elsewhere) {
        if (!L->o->weights_elsewhere) {
            for (const char *p = L->o->incbin; *p; p++)
                if (*p == '"' || *p == '\\' || *p == '\n') {
                    diag_error(L->d, NULL, "the temporary folder's path %s cannot be given to the assembler", L->o->incbin);
                    return;
                }
            char *as = arena_printf(k->arena, ".section .rodata\n.balign 64\n.globl %s\n.hidden %s\n%s:\n.incbin \"%s\"\n.byte 0\n.previous\n",
                                    name, name, name, L->o->incbin);
            LLVMSetModuleInlineAsm2(L->m, as, strlen(as));
        }
        LLVMValueRef g = LLVMAddGlobal(L->m, LLVMArrayType(L->i8, 0), name);
        LLVMSetVisibility(g, LLVMHiddenVisibility);
        LLVMSetGlobalConstant(g, 1);
        L->weights = ll_p8(L, g);
        return;
    }
    int64_t n = k->weights_size ? k->weights_size : 1;
    static const unsigned char zero[1] = {0};
    LLVMValueRef init = LLVMConstStringInContext(L->cx, k->weights_size ? (const char *)k->weights : (const char *)zero, (unsigned)n, 1);
    LLVMValueRef g = ll_global(L, init, name, false);
    LLVMSetLinkage(g, LLVMInternalLinkage);
    LLVMSetAlignment(g, 64);
    L->weights = ll_p8(L, g);
}

static LLVMValueRef ll_infos(LL *L, int w) {
    const Kir *k = L->k;
    const KIo *io = w ? k->outputs : k->inputs;
    int n = w ? k->noutputs : k->ninputs;
    LLVMTypeRef ity = LLVMStructTypeInContext(L->cx, (LLVMTypeRef[]){L->p8, L->i32, L->i32, LLVMPointerType(L->i64, 0), L->i64, L->i32, L->i32, L->i32},
                                              8, 0);
    const int *seq = w ? k->out_seq : k->in_seq, *grp = w ? k->out_group : k->in_group;
    LLVMValueRef *items = arena_alloc(k->arena, sizeof *items * (size_t)(n ? n : 1));
    for (int i = 0; i < n; i++) {
        const Value *v = io[i].v;
        LLVMValueRef dims[MAX_RANK + 1];
        for (int d = 0; d < v->rank; d++) dims[d] = ll_i64(L, v->dims[d]);
        if (!v->rank) dims[0] = ll_i64(L, 0);
        LLVMValueRef shape = ll_global(L, LLVMConstArray(L->i64, dims, (unsigned)(v->rank ? v->rank : 1)), ".shape", true);
        if (w) L->out_shapes[i] = ll_p8(L, shape);
        LLVMValueRef f[8] = {ll_string(L, v->name), LLVMConstInt(L->i32, (unsigned long long)v->dtype, 0),
                             LLVMConstInt(L->i32, (unsigned long long)v->rank, 0),
                             LLVMConstBitCast(shape, LLVMPointerType(L->i64, 0)), ll_i64(L, value_nbytes(v)),
                             LLVMConstInt(L->i32, v->batch, 0), LLVMConstInt(L->i32, (unsigned long long)(seq ? seq[i] : 0), 1),
                             LLVMConstInt(L->i32, (unsigned long long)(grp ? grp[i] : 0), 0)};
        items[i] = LLVMConstNamedStruct(ity, f, 8);
    }
    if (!n) items[0] = LLVMConstNull(ity);
    LLVMValueRef g = ll_global(L, LLVMConstArray(ity, items, (unsigned)(n ? n : 1)), ll_name(L, w ? "%s_outputs" : "%s_inputs"), false);
    return ll_p8(L, g);
}

static LLVMValueRef ll_moe_layers(LL *L) {
    const Kir *k = L->k;
    LLVMTypeRef mty = LLVMStructTypeInContext(L->cx, (LLVMTypeRef[]){L->p8, L->i64, L->i64, L->i64, L->i64}, 5, 0);
    LLVMValueRef *items = arena_alloc(k->arena, sizeof *items * (size_t)(k->nmoe ? k->nmoe : 1));
    for (int i = 0; i < k->nmoe; i++) {
        const KMoeLayer *ml = &k->moe[i];
        LLVMValueRef f[5] = {ll_string(L, ml->name), ll_i64(L, ml->experts), ll_i64(L, ml->top_k), ll_i64(L, ml->tokens), ll_i64(L, ml->offset)};
        items[i] = LLVMConstNamedStruct(mty, f, 5);
    }
    if (!k->nmoe) items[0] = LLVMConstNull(mty);
    return ll_p8(L, ll_global(L, LLVMConstArray(mty, items, (unsigned)(k->nmoe ? k->nmoe : 1)), ll_name(L, "%s_moe_layers"), false));
}

/* PREFIX_run_batch(ctx, n, inputs, outputs): kiln_run_batch over PREFIX_run. */
static void ll_run_batch(LL *L, LLVMValueRef inputs, LLVMValueRef outputs) {
    const Kir *k = L->k;
    LLVMTypeRef p = L->p8, i32 = L->i32, i64 = L->i64;
    LLVMTypeRef rp[9] = {p, p, p, i32, p, i32, i64, L->pp8, L->pp8};
    LLVMValueRef rb = ll_fn(L, "kiln_run_batch", i32, rp, 9);
    LLVMValueRef fn = ll_define(L, ll_name(L, "%s_run_batch"), i32, (LLVMTypeRef[]){p, i64, L->pp8, L->pp8}, 4, false);
    LLVMValueRef run = LLVMConstBitCast(LLVMGetNamedFunction(L->m, ll_name(L, "%s_run")), p);
    LLVMValueRef args[9] = {run, LLVMGetParam(fn, 0), inputs, LLVMConstInt(i32, (unsigned)k->ninputs, 0), outputs,
                            LLVMConstInt(i32, (unsigned)k->noutputs, 0), LLVMGetParam(fn, 1), LLVMGetParam(fn, 2), LLVMGetParam(fn, 3)};
    LLVMBuildRet(L->b, ll_call(L, rb, args, 9));
}

/* main(argc, argv): kiln_exe_main with the model's kiln_model descriptor. */
static void ll_main(LL *L, LLVMValueRef inputs, LLVMValueRef outputs, LLVMValueRef moe) {
    const Kir *k = L->k;
    LLVMTypeRef p = L->p8, i32 = L->i32, i64 = L->i64;
    LLVMTypeRef mty = LLVMStructTypeInContext(L->cx, (LLVMTypeRef[]){p, i32, i32, p, p, p, p, p, i32, i32, p, p, p, i64, i64, p, p}, 17, 0);
    const char *fns[5] = {"%s_create", "%s_run", "%s_destroy", "%s_routing_counts", "%s_output_shape"};
    LLVMValueRef fp[5];
    for (int i = 0; i < 5; i++) fp[i] = LLVMConstBitCast(LLVMGetNamedFunction(L->m, ll_name(L, fns[i])), p);
    LLVMValueRef f[17] = {ll_string(L, L->o->prefix), LLVMConstInt(i32, (unsigned)k->ninputs, 0), LLVMConstInt(i32, (unsigned)k->noutputs, 0),
                          inputs, outputs, fp[0], fp[1], fp[2], LLVMConstInt(i32, (unsigned long long)L->o->default_threads, 1),
                          LLVMConstInt(i32, (unsigned)k->nmoe, 0), moe, fp[3], ll_string(L, L->o->external),
                          ll_i64(L, L->o->external ? k->weights_size : 0), LLVMConstInt(i64, L->o->external ? L->o->weights_id : 0, 0), fp[4],
                          LLVMConstNull(p)}; /* prepare: none, the shapes are static */
    LLVMValueRef model = ll_global(L, LLVMConstNamedStruct(mty, f, 17), "kiln_model_desc", true);
    LLVMTypeRef mp[3] = {p, i32, L->pp8};
    LLVMValueRef exe_main = ll_fn(L, "kiln_exe_main", i32, mp, 3);
    LLVMValueRef fn = ll_define(L, "main", i32, (LLVMTypeRef[]){i32, L->pp8}, 2, false);
    LLVMValueRef args[3] = {ll_p8(L, model), LLVMGetParam(fn, 0), LLVMGetParam(fn, 1)};
    LLVMBuildRet(L->b, ll_call(L, exe_main, args, 3));
}

/* ---- the module ---- */

/* Links the bitcode file `path` into the module and makes what it defines
 * internal (the model's object then carries its own copies, which the
 * optimizer inlines, specializes or drops), without the bitcode's baseline CPU
 * attributes: those functions take the target machine's. Functions built for
 * an ISA of their own (the runtime's target("avx2,fma") microkernels) keep it.
 * With always_inline, the linked kernels kiln_k_* are inlined into their call
 * sites, each specialized to its constant parameters. */
static bool ll_link_bitcode(LL *L, const char *path, bool always_inline) {
    LLVMMemoryBufferRef mb;
    char *msg = NULL;
    if (LLVMCreateMemoryBufferWithContentsOfFile(path, &mb, &msg)) {
        diag_error(L->d, NULL, "cannot read the LLVM backend's bitcode %s: %s (rebuild kiln)", path, msg ? msg : "?");
        LLVMDisposeMessage(msg);
        return false;
    }
    LLVMModuleRef sm;
    bool bad = LLVMParseBitcodeInContext2(L->cx, mb, &sm);
    LLVMDisposeMemoryBuffer(mb);
    PtrVec names = {0};
    if (!bad) { /* the same target as the model (clang spells the triple its own way) */
        LLVMSetTarget(sm, LLVMGetTarget(L->m));
        LLVMSetDataLayout(sm, LLVMGetDataLayoutStr(L->m));
        for (LLVMValueRef f = LLVMGetFirstFunction(sm); f; f = LLVMGetNextFunction(f))
            if (!LLVMIsDeclaration(f) && LLVMGetLinkage(f) == LLVMExternalLinkage)
                vec_push(L->k->arena, &names, arena_strdup(L->k->arena, LLVMGetValueName(f)));
        for (LLVMValueRef g = LLVMGetFirstGlobal(sm); g; g = LLVMGetNextGlobal(g))
            if (!LLVMIsDeclaration(g) && LLVMGetLinkage(g) == LLVMExternalLinkage)
                vec_push(L->k->arena, &names, arena_strdup(L->k->arena, LLVMGetValueName(g)));
    }
    if (bad || LLVMLinkModules2(L->m, sm)) {
        diag_error(L->d, NULL, "cannot link the bitcode %s (rebuild kiln)", path);
        return false;
    }
    unsigned inl = LLVMGetEnumAttributeKindForName("alwaysinline", 12), noinl = LLVMGetEnumAttributeKindForName("noinline", 8);
    for (int i = 0; i < names.n; i++) {
        const char *name = names.items[i];
        LLVMValueRef f = LLVMGetNamedFunction(L->m, name);
        if (!f) {
            LLVMValueRef g = LLVMGetNamedGlobal(L->m, name);
            if (g) LLVMSetLinkage(g, LLVMInternalLinkage);
            continue;
        }
        LLVMSetLinkage(f, LLVMInternalLinkage);
        if (always_inline && strncmp(name, "kiln_k_", 7) == 0 && !LLVMGetEnumAttributeAtIndex(f, LLVMAttributeFunctionIndex, noinl))
            LLVMAddAttributeAtIndex(f, LLVMAttributeFunctionIndex, LLVMCreateEnumAttribute(L->cx, inl, 0));
    }
    for (LLVMValueRef f = LLVMGetFirstFunction(L->m); f; f = LLVMGetNextFunction(f)) {
        if (LLVMIsDeclaration(f) || LLVMGetLinkage(f) != LLVMInternalLinkage) continue;
        LLVMAttributeRef feat = LLVMGetStringAttributeAtIndex(f, LLVMAttributeFunctionIndex, "target-features", 15);
        unsigned len = 0;
        const char *fs = feat ? LLVMGetStringAttributeValue(feat, &len) : "";
        if (feat && memmem(fs, len, "+avx", 4)) continue;
        LLVMRemoveStringAttributeAtIndex(f, LLVMAttributeFunctionIndex, "target-cpu", 10);
        LLVMRemoveStringAttributeAtIndex(f, LLVMAttributeFunctionIndex, "target-features", 15);
        LLVMRemoveStringAttributeAtIndex(f, LLVMAttributeFunctionIndex, "tune-cpu", 8);
    }
    return true;
}

static LLVMTargetMachineRef ll_target_machine(LL *L) {
    static bool inited;
    if (!inited) {
        LLVMInitializeAllTargetInfos();
        LLVMInitializeAllTargets();
        LLVMInitializeAllTargetMCs();
        LLVMInitializeAllAsmPrinters();
        LLVMInitializeAllAsmParsers(); /* the .incbin of the weights */
        inited = true;
    }
    LLVMTargetRef t;
    char *msg = NULL;
    if (LLVMGetTargetFromTriple(L->o->triple, &t, &msg)) {
        diag_error(L->d, NULL, "LLVM has no target %s: %s", L->o->triple, msg ? msg : "?");
        LLVMDisposeMessage(msg);
        return NULL;
    }
    /* This machine's CPU: on x86-64 as the microarchitecture level its features
     * reach (x86-64-v4 with AVX-512, v3 with AVX2 + FMA), with 256-bit vectors
     * preferred as clang does for AVX-512 CPUs. Its own model (znver3 here)
     * doubles code generation time for no measurable gain in kiln's loops. */
    char *cpu = L->o->host_cpu ? LLVMGetHostCPUName() : NULL, *feat = L->o->host_cpu ? LLVMGetHostCPUFeatures() : NULL;
    const char *use_cpu = cpu ? cpu : "generic", *use_feat = feat ? feat : "";
    if (cpu && feat && strncmp(L->o->triple, "x86_64", 6) == 0) {
        bool v4 = strstr(feat, "+avx512f") && strstr(feat, "+avx512bw") && strstr(feat, "+avx512vl") && strstr(feat, "+avx512dq");
        bool v3 = strstr(feat, "+avx2") && strstr(feat, "+fma") && strstr(feat, "+bmi2");
        use_cpu = v4 ? "x86-64-v4" : v3 ? "x86-64-v3" : "x86-64";
        use_feat = v4 ? "+prefer-256-bit" : "";
    }
    LLVMCodeGenOptLevel lvl = L->o->opt_level == 0 ? LLVMCodeGenLevelNone : L->o->opt_level >= 3 ? LLVMCodeGenLevelAggressive : LLVMCodeGenLevelDefault;
    LLVMTargetMachineRef tm = LLVMCreateTargetMachine(t, L->o->triple, use_cpu, use_feat, lvl, LLVMRelocPIC, LLVMCodeModelDefault);
    LLVMDisposeMessage(cpu);
    LLVMDisposeMessage(feat);
    return tm;
}

static bool ll_build(LL *L) {
    const Kir *k = L->k;
    if (!ll_link_bitcode(L, L->o->scalar_bc, false)) return false;
    L->i8 = LLVMInt8TypeInContext(L->cx);
    L->i16 = LLVMInt16TypeInContext(L->cx);
    L->i32 = LLVMInt32TypeInContext(L->cx);
    L->i64 = LLVMInt64TypeInContext(L->cx);
    L->f32 = LLVMFloatTypeInContext(L->cx);
    L->f64 = LLVMDoubleTypeInContext(L->cx);
    L->vd = LLVMVoidTypeInContext(L->cx);
    L->p8 = LLVMPointerType(L->i8, 0);
    L->pp8 = LLVMPointerType(L->p8, 0);
    L->ctx_ty = LLVMStructTypeInContext(L->cx, (LLVMTypeRef[]){L->p8, L->p8, L->p8, L->p8, L->i64, L->p8}, 6, 0);
    L->env_ty = LLVMStructTypeInContext(L->cx, (LLVMTypeRef[]){L->p8, L->p8, L->pp8}, 3, 0);
    ll_weights(L);
    L->out_shapes = arena_alloc(k->arena, sizeof *L->out_shapes * (size_t)(k->noutputs + 1));
    LLVMValueRef in = ll_infos(L, 0), out = ll_infos(L, 1), moe = ll_moe_layers(L);
    ll_step_names(L);
    LLVMValueRef init = ll_init(L);
    ll_lifecycle(L, init);
    ll_output_shape(L);
    LLVMValueRef *loopfns = arena_alloc(k->arena, sizeof *loopfns * (size_t)(k->nsteps ? k->nsteps : 1));
    for (int s = 0; s < k->nsteps && !L->d->errors; s++) {
        const KStep *st = &k->steps[s];
        loopfns[s] = !st->at_create && st->kind == KS_LOOP && kir_loop_parallel(st->loop) ? ll_loop_fn(L, s) : NULL;
    }
    if (!L->d->errors) ll_run(L, loopfns);
    if (!L->d->errors) ll_run_batch(L, in, out);
    if (!L->d->errors && L->o->with_main) ll_main(L, in, out, moe);
    if (L->d->errors) return false;
    /* -O3: the runtime's kernels too, inlined into the model and specialized */
    if (L->o->runtime_bc && !ll_link_bitcode(L, L->o->runtime_bc, true)) return false;
    char *msg = NULL;
    if (LLVMVerifyModule(L->m, LLVMReturnStatusAction, &msg)) {
        diag_error(L->d, NULL, "internal error: the LLVM module does not verify: %s", msg ? msg : "?");
        LLVMDisposeMessage(msg);
        return false;
    }
    LLVMDisposeMessage(msg);
    return true;
}

bool emit_llvm(const Kir *k, const Graph *g, const LlvmOpts *o, const char *ll_path, const char *obj_path, Diags *d) {
    LL L = {0};
    L.k = k;
    L.o = o;
    L.d = d;
    L.cx = LLVMContextCreate();
    L.m = LLVMModuleCreateWithNameInContext(g->source ? g->source : (g->name ? g->name : o->prefix), L.cx);
    L.b = LLVMCreateBuilderInContext(L.cx);
    double t0 = kiln_now_ms(), t1 = t0, t2 = t0;
    LLVMTargetMachineRef tm = ll_target_machine(&L);
    bool ok = tm != NULL;
    if (ok) {
        LLVMSetTarget(L.m, o->triple);
        LLVMTargetDataRef dl = LLVMCreateTargetDataLayout(tm);
        LLVMSetModuleDataLayout(L.m, dl);
        LLVMDisposeTargetData(dl);
        ok = ll_build(&L);
    }
    t1 = kiln_now_ms();
    if (ok) {
        LLVMPassBuilderOptionsRef po = LLVMCreatePassBuilderOptions();
        LLVMPassBuilderOptionsSetLoopVectorization(po, o->opt_level >= 2);
        LLVMPassBuilderOptionsSetSLPVectorization(po, o->opt_level >= 2);
        LLVMPassBuilderOptionsSetLoopUnrolling(po, o->opt_level >= 2);
        char pipeline[32];
        snprintf(pipeline, sizeof pipeline, "default<O%d>", o->opt_level < 0 ? 0 : o->opt_level > 3 ? 3 : o->opt_level);
        LLVMErrorRef err = LLVMRunPasses(L.m, pipeline, tm, po);
        if (err) {
            char *m = LLVMGetErrorMessage(err);
            diag_error(d, NULL, "internal error: LLVM passes failed: %s", m);
            LLVMDisposeErrorMessage(m);
            ok = false;
        }
        LLVMDisposePassBuilderOptions(po);
    }
    t2 = kiln_now_ms();
    char *msg = NULL;
    if (ok && ll_path && LLVMPrintModuleToFile(L.m, ll_path, &msg)) {
        diag_error(d, NULL, "cannot write %s: %s", ll_path, msg ? msg : "?");
        ok = false;
    }
    if (ok && obj_path && LLVMTargetMachineEmitToFile(tm, L.m, (char *)obj_path, LLVMObjectFile, &msg)) {
        diag_error(d, NULL, "LLVM cannot write the object file %s: %s", obj_path, msg ? msg : "?");
        ok = false;
    }
    LLVMDisposeMessage(msg);
    if (o->times_ms) {
        o->times_ms[0] = t1 - t0;
        o->times_ms[1] = t2 - t1;
        o->times_ms[2] = kiln_now_ms() - t2;
    }
    if (tm) LLVMDisposeTargetMachine(tm);
    LLVMDisposeBuilder(L.b);
    LLVMDisposeModule(L.m);
    LLVMContextDispose(L.cx);
    return ok;
}
