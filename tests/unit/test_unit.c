/* Unit tests of the IR, the passes, the text IR and the runtime I/O.
 * Usage: unit DATA_DIR, where tests/unit_data.py wrote reference files made with
 * NumPy and python3-onnx. Prints one line per failed check and a closing
 * "unit: N passed, N failed" line. */
#include "../../codegen/kir.h"
#include "../../frontend/frontend.h"
#include "../../passes/passes.h"
#include "../../runtime/kiln_scalar.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int passed, failed;
static const char *data_dir;

#define CHECK(cond, ...) do { \
    if (cond) passed++; \
    else { failed++; printf("FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); printf(__VA_ARGS__); printf("\n"); } \
} while (0)

static const char *data(const char *name) {
    static char buf[4096];
    snprintf(buf, sizeof buf, "%s/%s", data_dir, name);
    return buf;
}

static void test_f16_against_numpy(void) {
    kiln_tensor bits, vals;
    char err[512];
    int a = kiln_read_npy(data("f16_bits.npy"), &bits, err, sizeof err);
    int b = kiln_read_npy(data("f16_as_f32.npy"), &vals, err, sizeof err);
    CHECK(a == 0 && b == 0, "%s", err);
    if (a || b) return;
    int bad = 0;
    for (int i = 0; i < 65536; i++) {
        float f = kiln_f16_to_f32(((uint16_t *)bits.data)[i]), want = ((float *)vals.data)[i];
        if (!(f == want || (f != f && want != want))) bad++;
    }
    CHECK(bad == 0, "%d of 65536 float16 values decode differently from NumPy", bad);
    kiln_tensor src, want16;
    a = kiln_read_npy(data("f32_samples.npy"), &src, err, sizeof err);
    b = kiln_read_npy(data("f32_samples_as_f16.npy"), &want16, err, sizeof err);
    CHECK(a == 0 && b == 0, "%s", err);
    bad = 0;
    int64_t n = src.nbytes / 4;
    for (int64_t i = 0; i < n; i++) {
        uint16_t h = kiln_f32_to_f16(((float *)src.data)[i]), w = ((uint16_t *)want16.data)[i];
        if (h != w && !((h & 0x7c00) == 0x7c00 && (h & 0x3ff) && (w & 0x7c00) == 0x7c00 && (w & 0x3ff))) bad++;
    }
    CHECK(bad == 0, "%d of %lld float32 values round to float16 differently from NumPy", bad, (long long)n);
    kiln_tensor_free(&bits); kiln_tensor_free(&vals); kiln_tensor_free(&src); kiln_tensor_free(&want16);
}

static void test_pb_matches_npy(void) {
    static const char *names[] = {"t_f32", "t_i64", "t_u8", "t_f64", "t_i32_typed", "t_f32_typed", "t_scalar"};
    for (size_t k = 0; k < sizeof names / sizeof *names; k++) {
        char pb[256], npy[256], err[512];
        snprintf(pb, sizeof pb, "%s.pb", names[k]);
        snprintf(npy, sizeof npy, "%s.npy", names[k]);
        kiln_tensor a, b;
        int ra = kiln_read_pb(data(pb), &a, err, sizeof err);
        CHECK(ra == 0, "%s: %s", pb, err);
        int rb = kiln_read_npy(data(npy), &b, err, sizeof err);
        CHECK(rb == 0, "%s: %s", npy, err);
        if (ra || rb) continue;
        CHECK(a.dtype == b.dtype && a.rank == b.rank && a.nbytes == b.nbytes, "%s: type differs", names[k]);
        CHECK(memcmp(a.shape, b.shape, sizeof a.shape) == 0 && memcmp(a.data, b.data, (size_t)a.nbytes) == 0, "%s: data differs", names[k]);
        kiln_tensor_free(&a);
        kiln_tensor_free(&b);
    }
}

static void test_npy_write_read(void) {
    float v[6] = {1, 2, 3, 4, 5, 6};
    kiln_tensor t = {KILN_DT_F32, 2, {2, 3}, 24, v}, r;
    char err[256], path[4200];
    snprintf(path, sizeof path, "%s/written.npy", data_dir);
    CHECK(kiln_write_npy(path, &t, err, sizeof err) == 0, "%s", err);
    CHECK(kiln_read_npy(path, &r, err, sizeof err) == 0 && r.rank == 2 && r.shape[1] == 3 && memcmp(r.data, v, 24) == 0, "%s", err);
    kiln_tensor_free(&r);
}

static void test_shapes(void) {
    Value a = {0}, b = {0};
    a.rank = 3; a.dims[0] = 2; a.dims[1] = 1; a.dims[2] = 3;
    b.rank = 2; b.dims[0] = 4; b.dims[1] = 1;
    Value *in[2] = {&a, &b};
    int r;
    int64_t d[MAX_RANK];
    CHECK(shape_broadcast(in, 2, &r, d) && r == 3 && d[0] == 2 && d[1] == 4 && d[2] == 3, "broadcast");
    b.dims[1] = 2;
    CHECK(!shape_broadcast(in, 2, &r, d), "3 and 2 must not broadcast");
    int64_t big[2] = {(int64_t)1 << 40, (int64_t)1 << 40};
    CHECK(dims_numel(2, big) == -1, "overflow not detected");
    int ax;
    CHECK(axis_norm(-1, 3, &ax) && ax == 2 && !axis_norm(3, 3, &ax) && !axis_norm(-4, 3, &ax), "axis_norm");
}

static void test_scope(void) {
    Arena *a = arena_new();
    Scope s, child;
    scope_init(&s, a, NULL);
    char name[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(name, sizeof name, "v%d", i);
        scope_put(&s, arena_strdup(a, name), (Value *)(intptr_t)(i + 1));
    }
    int bad = 0;
    for (int i = 0; i < 5000; i++) {
        snprintf(name, sizeof name, "v%d", i);
        if (scope_get(&s, name) != (Value *)(intptr_t)(i + 1)) bad++;
    }
    scope_init(&child, a, &s);
    CHECK(bad == 0 && scope_get(&s, "nope") == NULL && scope_get(&child, "v7") == (Value *)(intptr_t)8, "scope lookups");
    arena_free(a);
}

static const char *chain_kir =
    "kiln 1\n"
    "graph \"chain\" opset 13 {\n"
    "  input %x : f32[4,8]\n"
    "  const %w : f32[8,8] = blob \"chain.weights\" 0 256\n"
    "  const %two : f32[] = [2.0]\n"
    "  %a : f32[4,8] = MatMul \"m1\" (%x, %w)\n"
    "  %b : f32[4,8] = Relu \"r1\" (%a)\n"
    "  %c : f32[4,8] = MatMul \"m2\" (%b, %w)\n"
    "  %d : f32[4,8] = Mul \"s\" (%c, %two)\n"
    "  %e : f32[4,8] = Sigmoid \"g\" (%d)\n"
    "  %f : f32[4,8] = MatMul \"m3\" (%e, %w)\n"
    "  %g : f32[32] = Reshape \"flat\" (%f, %shape)\n"
    "  %h : f32[32] = Tanh \"t\" (%g)\n"
    "  output %h\n"
    "}\n";

static Graph *load_chain(Arena *a, Diags *d) {
    char path[4200], wpath[4200], text[2048];
    snprintf(path, sizeof path, "%s/chain.kir", data_dir);
    snprintf(wpath, sizeof wpath, "%s/chain.weights", data_dir);
    FILE *f = fopen(wpath, "wb");
    float w[64];
    for (int i = 0; i < 64; i++) w[i] = (float)(i % 7) * 0.1f;
    fwrite(w, 4, 64, f);
    fclose(f);
    snprintf(text, sizeof text, "%s", chain_kir);
    char *at = strstr(text, "  %a");
    memmove(at + 38, at, strlen(at) + 1);
    memcpy(at, "  const %shape : i64[1] = [32]       \n", 38);
    f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    PtrVec deps = {0};
    Graph *g = kir_load(a, path, NULL, d, &deps);
    if (g) g->services = &kir_services;
    return g;
}

static void test_kir_roundtrip_and_plan(void) {
    Arena *a = arena_new();
    Diags d = {.arena = a};
    Graph *g = load_chain(a, &d);
    CHECK(g != NULL, "chain.kir did not parse: %s", d.first ? d.first->msg : "");
    if (!g) { arena_free(a); return; }
    PassOpts po = {2, NULL, NULL, false, NULL, NULL};
    CHECK(pipeline_run(g, &po, &d), "pipeline failed: %s", d.first ? d.first->msg : "");
    /* the fuse pass made one loop of Mul+Sigmoid */
    int fused = 0;
    for (int i = 0; i < g->nodes.n; i++) fused += ((Node *)g->nodes.items[i])->op == OP_FUSED;
    CHECK(fused == 1, "expected one fused node, found %d", fused);
    /* planner: buffers whose lifetimes overlap never share bytes */
    int overlaps = 0;
    int64_t sum = 0;
    for (int i = 0; i < g->values.n; i++) {
        Value *v = g->values.items[i];
        if (v->mem_offset < 0) continue;
        sum += value_nbytes(v);
        for (int j = 0; j < i; j++) {
            Value *u = g->values.items[j];
            if (u->mem_offset < 0) continue;
            bool live = v->first_use <= u->last_use && u->first_use <= v->last_use;
            bool bytes = v->mem_offset < u->mem_offset + value_nbytes(u) && u->mem_offset < v->mem_offset + value_nbytes(v);
            if (live && bytes) overlaps++;
        }
    }
    CHECK(overlaps == 0, "%d live buffers overlap", overlaps);
    CHECK(g->workspace_size < sum, "workspace %lld is not below the sum of buffers %lld", (long long)g->workspace_size, (long long)sum);
    /* print, parse, print: the same text */
    char p1[4200], p2[4200];
    snprintf(p1, sizeof p1, "%s/rt1.kir", data_dir);
    snprintf(p2, sizeof p2, "%s/rt2.kir", data_dir);
    FILE *f = fopen(p1, "w");
    ir_print_text(g, f, NULL, &d);
    fclose(f);
    PtrVec deps = {0};
    Graph *g2 = kir_load(a, p1, NULL, &d, &deps);
    CHECK(g2 != NULL, "printed IR did not parse back: %s", d.first ? d.first->msg : "");
    if (g2) {
        g2->services = &kir_services;
        CHECK(pass_infer(g2, &d), "re-parsed IR does not infer");
        f = fopen(p2, "w");
        ir_print_text(g2, f, NULL, &d);
        fclose(f);
        size_t n1, n2;
        unsigned char *t1 = read_file(a, p1, &n1, &d), *t2 = read_file(a, p2, &n2, &d);
        CHECK(t1 && t2 && n1 == n2 && memcmp(t1, t2, n1) == 0, "print -> parse -> print differs");
    }
    arena_free(a);
}

static void test_kernels_against_numpy(void) {
    /* softmax and transpose of a tensor NumPy wrote, compared with NumPy's results */
    kiln_tensor x, sm, tr;
    char err[512];
    if (kiln_read_npy(data("k_x.npy"), &x, err, sizeof err) || kiln_read_npy(data("k_softmax.npy"), &sm, err, sizeof err) ||
        kiln_read_npy(data("k_transpose.npy"), &tr, err, sizeof err)) {
        CHECK(0, "%s", err);
        return;
    }
    float *y = malloc((size_t)x.nbytes);
    kiln_p_softmax p = {.outer = x.shape[0] * x.shape[1], .axis_len = x.shape[2], .inner = 1, .log = 0};
    void *b[2] = {y, x.data};
    kiln_k_softmax(NULL, b, (const int64_t *)&p);
    double maxerr = 0;
    for (int64_t i = 0; i < x.nbytes / 4; i++) maxerr = fmax(maxerr, fabs(y[i] - ((float *)sm.data)[i]));
    CHECK(maxerr < 1e-6, "softmax differs from NumPy by %g", maxerr);
    kiln_p_transpose q = {.esize = 4, .rank = 3, .in_dims = {x.shape[0], x.shape[1], x.shape[2]}, .perm = {2, 0, 1}};
    kiln_k_transpose(NULL, b, (const int64_t *)&q);
    CHECK(memcmp(y, tr.data, (size_t)x.nbytes) == 0, "transpose differs from NumPy");
    free(y);
    kiln_tensor_free(&x); kiln_tensor_free(&sm); kiln_tensor_free(&tr);
}

static void test_sgemm_against_numpy(void) {
    kiln_tensor a, b, at, bt, c;
    char err[512];
    if (kiln_read_npy(data("g_a.npy"), &a, err, sizeof err) || kiln_read_npy(data("g_b.npy"), &b, err, sizeof err) ||
        kiln_read_npy(data("g_at.npy"), &at, err, sizeof err) || kiln_read_npy(data("g_bt.npy"), &bt, err, sizeof err) ||
        kiln_read_npy(data("g_c.npy"), &c, err, sizeof err)) {
        CHECK(0, "%s", err);
        return;
    }
    int64_t M = 37, N = 45, K = 300;
    kiln_pool *pool = kiln_pool_create(2);
    float *y = calloc((size_t)(M * N), sizeof(float));
    float *packed = malloc((size_t)kiln_sgemm_packed_floats(N, K) * sizeof(float));
    float *packed_a = malloc((size_t)kiln_sgemm_packed_a_floats(M, K) * sizeof(float));
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++)
            for (int threads = 0; threads < 2; threads++)
                for (int pre = 0; pre < 3; pre++) { /* per call, B packed ahead, A packed ahead */
                    memset(y, 0, (size_t)(M * N) * sizeof(float));
                    const float *B = tb ? bt.data : b.data, *A = ta ? at.data : a.data;
                    kiln_pool *tp = threads ? pool : NULL;
                    if (pre == 1) {
                        kiln_sgemm_pack(N, K, B, tb ? K : N, tb, packed);
                        kiln_sgemm_packed(tp, M, N, K, 1.0f, A, ta ? M : K, ta, packed, y, N);
                    } else if (pre == 2) {
                        kiln_sgemm_pack_a(M, K, A, ta ? M : K, ta, packed_a);
                        kiln_sgemm_packed_a(tp, M, N, K, 1.0f, packed_a, B, tb ? K : N, tb, y, N);
                    } else kiln_sgemm(tp, M, N, K, 1.0f, A, ta ? M : K, ta, B, tb ? K : N, tb, y, N);
                    double maxerr = 0;
                    for (int64_t i = 0; i < M * N; i++) maxerr = fmax(maxerr, fabs(y[i] - ((float *)c.data)[i]));
                    CHECK(maxerr < 1e-3, "sgemm ta=%d tb=%d threads=%d packed=%d differs from NumPy by %g", ta, tb, threads ? 2 : 1, pre, maxerr);
                }
    /* the epilogue: C starts from a row bias, a column bias or nothing (C holds
     * NaN before: it must not be read), then is clamped; NumPy's product is
     * the reference (K = 300 spans two K blocks; 37 x 45 leaves partial tiles) */
    float rb[37], cb[45];
    for (int i = 0; i < 37; i++) rb[i] = 0.05f * (float)i - 1.0f;
    for (int j = 0; j < 45; j++) cb[j] = 0.5f - 0.03f * (float)j;
    static float res[37 * 45]; /* kind 3: row bias, then a residual, then the clamp */
    for (int i = 0; i < 37 * 45; i++) res[i] = 0.01f * (float)(i % 300) - 1.5f;
    for (int kind = 0; kind < 4; kind++)
        for (int threads = 0; threads < 2; threads++)
            for (int pre = 0; pre < 3; pre++) {
                for (int64_t i = 0; i < M * N; i++) y[i] = NAN;
                kiln_gemm_epi e = {kind == 0 || kind == 3 ? rb : NULL, kind == 1 ? cb : NULL, 1, kind != 2, -2.0f, 3.0f,
                                   kind == 3 ? res : NULL};
                if (pre == 1) kiln_sgemm_pack(N, K, b.data, N, 0, packed);
                if (pre == 2) kiln_sgemm_pack_a(M, K, a.data, K, 0, packed_a);
                kiln_sgemm_ex(threads ? pool : NULL, M, N, K, 1.0f, a.data, K, 0, pre == 2 ? packed_a : NULL, b.data, N, 0,
                              pre == 1 ? packed : NULL, y, N, &e);
                double maxerr = 0;
                for (int64_t i = 0; i < M; i++)
                    for (int64_t j = 0; j < N; j++) {
                        double want = ((float *)c.data)[i * N + j] + (kind == 0 || kind == 3 ? rb[i] : kind == 1 ? cb[j] : 0) +
                                      (kind == 3 ? res[i * N + j] : 0);
                        if (kind != 2) want = want < -2 ? -2 : want > 3 ? 3 : want;
                        double d = fabs(y[i * N + j] - want);
                        maxerr = d == d ? fmax(maxerr, d) : INFINITY;
                    }
                CHECK(maxerr < 1e-3, "sgemm epilogue %d threads=%d packed=%d differs from NumPy by %g", kind, threads ? 2 : 1, pre, maxerr);
            }
    kiln_tensor b49, c49;
    if (kiln_read_npy(data("g_b49.npy"), &b49, err, sizeof err) || kiln_read_npy(data("g_c49.npy"), &c49, err, sizeof err)) {
        CHECK(0, "%s", err);
    } else {
        float *y49 = malloc(37 * 49 * sizeof(float)), *p49 = malloc((size_t)kiln_sgemm_packed_floats(49, K) * sizeof(float));
        for (int pre = 0; pre < 2; pre++) {
            for (int i = 0; i < 37 * 49; i++) y49[i] = NAN;
            kiln_gemm_epi e = {rb, NULL, 1, 1, -2.0f, 3.0f, NULL};
            if (pre) kiln_sgemm_pack(49, K, b49.data, 49, 0, p49);
            kiln_sgemm_ex(pool, M, 49, K, 1.0f, a.data, K, 0, NULL, pre ? NULL : b49.data, 49, 0, pre ? p49 : NULL, y49, 49, &e);
            double maxerr = 0;
            for (int64_t i = 0; i < M; i++)
                for (int64_t j = 0; j < 49; j++) {
                    double want = ((float *)c49.data)[i * 49 + j] + rb[i];
                    want = want < -2 ? -2 : want > 3 ? 3 : want;
                    double dd = fabs(y49[i * 49 + j] - want);
                    maxerr = dd == dd ? fmax(maxerr, dd) : INFINITY;
                }
            CHECK(maxerr < 1e-3, "sgemm N=49 packed=%d differs from NumPy by %g", pre, maxerr);
        }
        free(y49);
        free(p49);
        kiln_tensor_free(&b49);
        kiln_tensor_free(&c49);
    }
    /* 130 x 100: rows short enough that B is read in place with more rows than
     * one packing block; A per call or packed ahead, one thread or two */
    kiln_tensor a130, b100, c130;
    if (kiln_read_npy(data("g_a130.npy"), &a130, err, sizeof err) || kiln_read_npy(data("g_b100.npy"), &b100, err, sizeof err) ||
        kiln_read_npy(data("g_c130.npy"), &c130, err, sizeof err)) {
        CHECK(0, "%s", err);
    } else {
        float *y130 = malloc(130 * 100 * sizeof(float)), *pa130 = malloc((size_t)kiln_sgemm_packed_a_floats(130, K) * sizeof(float));
        kiln_sgemm_pack_a(130, K, a130.data, K, 0, pa130);
        for (int threads = 0; threads < 2; threads++)
            for (int pre = 0; pre < 2; pre++) {
                for (int i = 0; i < 130 * 100; i++) y130[i] = NAN;
                kiln_gemm_epi e = {NULL, NULL, 1, 0, 0, 0, NULL};
                kiln_sgemm_ex(threads ? pool : NULL, 130, 100, K, 1.0f, pre ? NULL : a130.data, K, 0, pre ? pa130 : NULL, b100.data,
                              100, 0, NULL, y130, 100, &e);
                double maxerr = 0;
                for (int64_t i = 0; i < 130 * 100; i++) {
                    double dd = fabs(y130[i] - ((float *)c130.data)[i]);
                    maxerr = dd == dd ? fmax(maxerr, dd) : INFINITY;
                }
                CHECK(maxerr < 1e-3, "sgemm 130x100 threads=%d packed A=%d differs from NumPy by %g", threads ? 2 : 1, pre, maxerr);
            }
        free(y130);
        free(pa130);
        kiln_tensor_free(&a130);
        kiln_tensor_free(&b100);
        kiln_tensor_free(&c130);
    }
    /* at most 16 columns (B's first 10, row stride 45): the narrow path reads A
     * in place; each epilogue, plus alpha 0.5 accumulating into C (kind 4) */
    {
        enum { NN = 10 };
        static float y10[37 * NN], res10[37 * NN];
        for (int i = 0; i < 37 * NN; i++) res10[i] = 0.02f * (float)(i % 97) - 0.9f;
        float *p10 = malloc((size_t)kiln_sgemm_packed_floats(NN, K) * sizeof(float));
        kiln_sgemm_pack(NN, K, b.data, 45, 0, p10);
        for (int kind = 0; kind < 5; kind++)
            for (int threads = 0; threads < 2; threads++)
                for (int pre = 0; pre < 2; pre++) {
                    for (int i = 0; i < 37 * NN; i++) y10[i] = kind == 4 ? 0.25f * (float)(i % 7) : NAN;
                    kiln_gemm_epi e = {kind == 0 || kind == 3 ? rb : NULL, kind == 1 ? cb : NULL, kind != 4, kind != 2 && kind != 4,
                                       -2.0f, 3.0f, kind == 3 ? res10 : NULL};
                    float alpha = kind == 4 ? 0.5f : 1.0f;
                    kiln_sgemm_ex(threads ? pool : NULL, M, NN, K, alpha, a.data, K, 0, NULL, pre ? NULL : b.data, 45, 0,
                                  pre ? p10 : NULL, y10, NN, &e);
                    double maxerr = 0;
                    for (int64_t i = 0; i < M; i++)
                        for (int64_t j = 0; j < NN; j++) {
                            double want = alpha * ((float *)c.data)[i * N + j] + (kind == 0 || kind == 3 ? rb[i] : kind == 1 ? cb[j] : 0) +
                                          (kind == 3 ? res10[i * NN + j] : 0) + (kind == 4 ? 0.25 * ((i * NN + j) % 7) : 0);
                            if (kind != 2 && kind != 4) want = want < -2 ? -2 : want > 3 ? 3 : want;
                            double d = fabs(y10[i * NN + j] - want);
                            maxerr = d == d ? fmax(maxerr, d) : INFINITY;
                        }
                    CHECK(maxerr < 1e-3, "sgemm N=10 epilogue %d threads=%d packed=%d differs from NumPy by %g", kind,
                          threads ? 2 : 1, pre, maxerr);
                }
        free(p10);
    }
    /* one row (M = 1: gemm_row), A plain or transposed, B plain or packed,
     * 45 columns (a full 32 and a ragged 13), a column bias and the clamp, or
     * alpha 0.5 accumulating into C */
    for (int ta = 0; ta < 2; ta++)
        for (int pre = 0; pre < 2; pre++)
            for (int acc = 0; acc < 2; acc++) {
                float y1[45];
                for (int j = 0; j < 45; j++) y1[j] = acc ? 0.1f * (float)j : NAN;
                kiln_gemm_epi e = {NULL, acc ? NULL : cb, !acc, !acc, -2.0f, 3.0f, NULL};
                if (pre) kiln_sgemm_pack(N, K, b.data, N, 0, packed);
                float alpha = acc ? 0.5f : 1.0f;
                kiln_sgemm_ex(pool, 1, N, K, alpha, ta ? at.data : a.data, ta ? M : K, ta, NULL, pre ? NULL : b.data, N, 0,
                              pre ? packed : NULL, y1, N, &e);
                double maxerr = 0;
                for (int64_t j = 0; j < N; j++) {
                    double want = alpha * ((float *)c.data)[j] + (acc ? 0.1 * j : cb[j]);
                    if (!acc) want = want < -2 ? -2 : want > 3 ? 3 : want;
                    double d = fabs(y1[j] - want);
                    maxerr = d == d ? fmax(maxerr, d) : INFINITY;
                }
                CHECK(maxerr < 1e-3, "sgemm M=1 ta=%d packed=%d accumulate=%d differs from NumPy by %g", ta, pre, acc, maxerr);
            }
    free(packed);
    free(packed_a);
    free(y);
    kiln_pool_destroy(pool);
    kiln_tensor_free(&a); kiln_tensor_free(&b); kiln_tensor_free(&at); kiln_tensor_free(&bt); kiln_tensor_free(&c);
}

/* kiln_expf and kiln_erff (kiln_scalar.h) against libm's double exp and erf,
 * rounded: within 2 ulp over every 251st float bit pattern; the edges exact. */
static double ulp_of(float r) { float a = fabsf(r); return (double)nextafterf(a, INFINITY) - a; }
static void test_exp_erf_against_libm(void) {
    double worst_exp = 0, worst_erf = 0;
    float at_exp = 0, at_erf = 0;
    for (uint64_t u = 0; u <= 0xffffffffull; u += 251) {
        float x = kiln_bits2f((uint32_t)u);
        if (x != x) continue;
        double ref = exp((double)x);
        float r = (float)ref, v = kiln_expf(x);
        double e = isinf(r) || r == 0 ? (v == r ? 0 : fabs(v - ref) / 1.4e-45) : fabs(v - ref) / ulp_of(r);
        if (e > worst_exp) { worst_exp = e; at_exp = x; }
        ref = erf((double)x);
        r = (float)ref;
        v = kiln_erff(x);
        e = r == 0 ? (v == 0 ? 0 : 1e9) : fabs(v - ref) / ulp_of(r);
        if (e > worst_erf) { worst_erf = e; at_erf = x; }
    }
    CHECK(worst_exp <= 2, "kiln_expf is %.2f ulp off at %a", worst_exp, at_exp);
    CHECK(worst_erf <= 2, "kiln_erff is %.2f ulp off at %a", worst_erf, at_erf);
    CHECK(isnan(kiln_expf(NAN)) && kiln_expf(INFINITY) == INFINITY && kiln_expf(-INFINITY) == 0 && kiln_expf(0) == 1, "exp edges");
    CHECK(isnan(kiln_erff(NAN)) && kiln_erff(INFINITY) == 1 && kiln_erff(-INFINITY) == -1 && signbit(kiln_erff(-0.0f)), "erf edges");
}

/* The thread pool runs every index of a parallel_for exactly once, whoever
 * takes which range: four threads on a machine of two cores are often late,
 * so the caller and the others take their ranges; a job's ranges are one call
 * each (no index twice, none missed), over many jobs of every small size. */
static atomic_int pool_hits[64];
static atomic_int pool_calls;
static void pool_mark(void *arg, int64_t b, int64_t e) {
    (void)arg;
    atomic_fetch_add(&pool_calls, 1);
    for (int64_t i = b; i < e; i++) atomic_fetch_add(&pool_hits[i], 1);
}
static void test_pool_ranges(void) {
    kiln_pool *pool = kiln_pool_create(4);
    int bad = 0, badcalls = 0;
    for (int job = 0; job < 20000 && !bad; job++) {
        int64_t n = 1 + job % 64;
        for (int i = 0; i < 64; i++) atomic_store(&pool_hits[i], 0);
        atomic_store(&pool_calls, 0);
        kiln_parallel_for(pool, n, pool_mark, NULL);
        for (int64_t i = 0; i < 64; i++)
            if (atomic_load(&pool_hits[i]) != (i < n)) bad = job + 1;
        if (atomic_load(&pool_calls) > (n < 4 ? n : 4)) badcalls = job + 1;
    }
    CHECK(!bad, "parallel_for job %d ran an index other than once", bad - 1);
    CHECK(!badcalls, "parallel_for job %d made more calls than ranges", badcalls - 1);
    kiln_pool_destroy(pool);
}

/* A context's per-thread scratch is sized at create (kiln_context_scratch,
 * from each step's kiln_need_NAME), never by a run: before it is sized, the
 * GEMM and a 3x3 depthwise convolution refuse (KILN_E_NOMEM) instead of
 * allocating; after, they compute. */
static void test_scratch_sized_at_create(void) {
    static const unsigned char W[64];
    kiln_context *c = kiln_context_create(64, KILN_STATE_RESERVED, 2, W, NULL, 0, 0, NULL);
    CHECK(c != NULL, "no context");
    if (!c) return;
    CHECK(kiln_kernel_need[KILN_K_conv] == kiln_need_conv && kiln_kernel_need[KILN_K_matmul] == kiln_need_matmul &&
          kiln_kernel_need[KILN_K_copy] == NULL, "kiln_kernel_need does not map the kernels' needs");
    float a[16], bm[16], y[16], x[128], wk[18], dy[128];
    for (int i = 0; i < 16; i++) a[i] = (float)(i % 5) - 2, bm[i] = (float)(i % 3) * 0.5f;
    for (int i = 0; i < 128; i++) x[i] = (float)((i * 7) % 11) - 5;
    for (int i = 0; i < 18; i++) wk[i] = (float)(i % 4) * 0.25f - 0.5f;
    kiln_p_matmul pm = {.M = 4, .N = 4, .K = 4, .nb = 0};
    kiln_p_conv pc = {.nd = 2, .N = 1, .C = 2, .M = 2, .group = 2,
                      .w = {.in = {8, 8}, .out = {8, 8}, .k = {3, 3}, .stride = {1, 1}, .dil = {1, 1}, .pad_begin = {1, 1}, .pad_end = {1, 1}}};
    void *mb[3] = {y, a, bm}, *cb[8] = {dy, x, wk, NULL, NULL, NULL, NULL, NULL};
    CHECK(kiln_k_matmul(c->pool, mb, (const int64_t *)&pm) == KILN_E_NOMEM, "MatMul ran without its packing panels");
    CHECK(kiln_k_conv(c->pool, cb, (const int64_t *)&pc) == KILN_E_NOMEM, "a depthwise convolution ran without its strip");
    kiln_step_need steps[2] = {{kiln_need_matmul, (const int64_t *)&pm}, {kiln_need_conv, (const int64_t *)&pc}};
    CHECK(kiln_context_scratch(c, steps, 2) == KILN_OK, "sizing failed");
    CHECK(kiln_k_matmul(c->pool, mb, (const int64_t *)&pm) == KILN_OK, "MatMul failed with its panels");
    CHECK(kiln_k_conv(c->pool, cb, (const int64_t *)&pc) == KILN_OK, "the convolution failed with its strip");
    double err = 0;
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) {
            float s = 0;
            for (int k = 0; k < 4; k++) s += a[i * 4 + k] * bm[k * 4 + j];
            err = fmax(err, fabs(s - y[i * 4 + j]));
        }
    for (int ch = 0; ch < 2; ch++)
        for (int oh = 0; oh < 8; oh++)
            for (int ow = 0; ow < 8; ow++) {
                float s = 0;
                for (int t = 0; t < 9; t++) {
                    int ih = oh + t / 3 - 1, iw = ow + t % 3 - 1;
                    if (ih >= 0 && ih < 8 && iw >= 0 && iw < 8) s += x[ch * 64 + ih * 8 + iw] * wk[ch * 9 + t];
                }
                err = fmax(err, fabs(s - dy[ch * 64 + oh * 8 + ow]));
            }
    CHECK(err < 1e-5, "MatMul or the depthwise convolution differs from the reference by %g", err);
    kiln_context_destroy(c);
}

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: unit DATA_DIR\n"); return 2; }
    data_dir = argv[1];
    test_f16_against_numpy();
    test_exp_erf_against_libm();
    test_pb_matches_npy();
    test_npy_write_read();
    test_shapes();
    test_scope();
    test_kir_roundtrip_and_plan();
    test_kernels_against_numpy();
    test_sgemm_against_numpy();
    test_pool_ranges();
    test_scratch_sized_at_create();
    printf("unit: %d passed, %d failed\n", passed, failed);
    return failed != 0;
}
