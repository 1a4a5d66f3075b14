/* kiln_rt.h: the interface of libkilnrt, the runtime that compiled models link.
 *
 * The runtime is a library, not a framework: generated code calls it, it never
 * interprets a graph. It holds the thread pool, the kernels of kernels.def, the
 * .npy / ONNX TensorProto readers and writers used by a compiled executable's
 * main, and timing.
 *
 * Ownership, stated once: a model context (created by the generated PREFIX_create)
 * owns one workspace allocated at create time and one thread pool; nothing is
 * allocated per run. Inputs and outputs belong to the caller. kiln_tensor objects
 * returned by the readers own their data; free them with kiln_tensor_free.
 * Every name here starts with kiln_ / KILN_ since it shares a namespace with
 * user code. */
#ifndef KILN_RT_H
#define KILN_RT_H

#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KILN_MAX_RANK 8

/* Element types use the ONNX TensorProto.DataType codes. */
enum {
    KILN_DT_UNDEF = 0, KILN_DT_F32 = 1, KILN_DT_U8 = 2, KILN_DT_I8 = 3,
    KILN_DT_U16 = 4, KILN_DT_I16 = 5, KILN_DT_I32 = 6, KILN_DT_I64 = 7,
    KILN_DT_STRING = 8, KILN_DT_BOOL = 9, KILN_DT_F16 = 10, KILN_DT_F64 = 11,
    KILN_DT_U32 = 12, KILN_DT_U64 = 13, KILN_DT_BF16 = 16
};

#ifndef KILN_STR_DEFINED
#define KILN_STR_DEFINED
/* An element of a string tensor: n bytes at p (not NUL-terminated). */
typedef struct kiln_str {
    const char *p;
    int64_t n;
} kiln_str;
#endif

/* Size in bytes of one element (a string: its kiln_str), 0 for types the
 * runtime cannot hold. */
int kiln_dtype_size(int dtype);
/* Short name ("f32", "i64", ...), "?" for unknown codes. */
const char *kiln_dtype_name(int dtype);

/* ---- model description (what the generated header exposes) ---- */

#ifndef KILN_TENSOR_INFO_DEFINED
#define KILN_TENSOR_INFO_DEFINED
typedef struct kiln_tensor_info {
    const char *name;
    int dtype;               /* KILN_DT_* */
    int rank;
    const int64_t *shape;
    int64_t nbytes;
    int batch;               /* 1: dim 0 is the batch; shape and nbytes are one sample's */
    int seq;                 /* on a group's first entry: how many tensors it holds (0: an empty sequence or an
                                absent optional, the entry a placeholder of no data); -1 on the others */
    int group;               /* 0 a tensor; 1 a sequence, 2 an optional tensor, 3 an optional sequence, 4 an
                                absent optional: the entries one input or output file holds */
} kiln_tensor_info;
#endif

#ifndef KILN_MOE_LAYER_DEFINED
#define KILN_MOE_LAYER_DEFINED
/* An MoE layer: its routing counts are int64 [experts] at byte `offset` of the
 * context's routing counts, summed over every run of the context. */
typedef struct kiln_moe_layer {
    const char *name;
    int64_t experts, top_k, tokens, offset;
} kiln_moe_layer;
#endif

/* What an executable's main needs to know about its model. */
struct kiln_tensor;
typedef struct kiln_model {
    const char *name;
    int num_inputs, num_outputs;
    const kiln_tensor_info *inputs, *outputs;
    void *(*create)(int threads);
    int (*run)(void *ctx, const void *const *inputs, void *const *outputs);
    void (*destroy)(void *ctx);
    int default_threads;     /* 0: all cores */
    int num_moe_layers;
    const kiln_moe_layer *moe_layers;
    const int64_t *(*routing_counts)(const void *ctx);
    /* external weights: the file's name (found beside the executable), its data
     * size and build id; NULL name when the weights are embedded */
    const char *weights_file;
    int64_t weights_size;
    uint64_t weights_id;
    /* output i's dims after a run (PREFIX_output_shape) */
    const int64_t *(*output_shape)(const void *ctx, int i);
    /* NULL, or a model whose input shapes have symbolic dims (-1 in
     * kiln_tensor_info.shape: any size): called with the input files' tensors
     * once they are read and checked, before outputs are sized and the context
     * created; it fills in the outputs (their count may change: a sequence
     * output is its tensors, as the group fields say) (driver/dyn.c).
     * 0 on success, else a message in err. */
    int (*prepare)(const struct kiln_model *m, const struct kiln_tensor *inputs, char *err, size_t errlen);
} kiln_model;

/* Writes the routing profile (JSON, see the README) of `runs` runs: every MoE
 * layer's per-expert token counts. Atomic (path.tmp, then rename); 0 on success. */
int kiln_write_routing_profile(const char *path, const kiln_model *m, const int64_t *counts, int64_t runs,
                               char *err, size_t errlen);

/* PREFIX_run_batch: runs n >= 1 samples through `run` (one sample's model),
 * each batched input and output (kiln_tensor_info.batch) advanced by one
 * sample's bytes; the others are passed as they are. A model with no batched
 * input takes only n = 1. 0 on success, else what run returned, or 2 for a bad n. */
int kiln_run_batch(int (*run)(void *, const void *const *, void *const *), void *ctx, const kiln_tensor_info *ins, int nin,
                   const kiln_tensor_info *outs, int nout, int64_t n, const void *const *inputs, void *const *outputs);

/* The whole main() of a compiled executable (SPEC: "The compiled executable"). */
int kiln_exe_main(const kiln_model *m, int argc, char **argv);

/* Whether this CPU runs AVX-512F (cpuid, once); 0 off x86-64. */
int kiln_have_avx512(void);

/* ---- thread pool ---- */

typedef struct kiln_pool kiln_pool;
/* threads <= 0: one per online core. Returns NULL when out of memory. */
kiln_pool *kiln_pool_create(int threads);
void kiln_pool_destroy(kiln_pool *pool);
int kiln_pool_threads(const kiln_pool *pool);
/* Calls fn(arg, begin, end) on disjoint chunks covering [0, n), in parallel;
 * returns when all are done. A NULL pool runs inline. */
typedef void (*kiln_range_fn)(void *arg, int64_t begin, int64_t end);
void kiln_parallel_for(kiln_pool *pool, int64_t n, kiln_range_fn fn, void *arg);

/* ---- workspace ---- */

/* 64-byte aligned, zeroed; NULL on failure. */
void *kiln_workspace_alloc(size_t nbytes);
void kiln_workspace_free(void *p);

/* ---- model contexts ---- */

/* What every compiled model's context holds (the generated PREFIX_ctx is this):
 * the thread pool, the workspace, the per-context state (routing counts, packed
 * weights) and the weights, embedded or mapped. */
typedef struct kiln_context {
    kiln_pool *pool;
    unsigned char *ws;
    unsigned char *state;
    const unsigned char *W;
    size_t W_len;            /* mapped bytes, with external weights; 0 when embedded */
    struct kiln_profile *prof; /* per-step times when KILN_PROFILE is set at creation, else NULL */
    /* the last run's failure (or create's): the status of the step that
     * failed and its name (the profiler's: node names and kernel); 0 and NULL
     * when it succeeded */
    int status;
    const char *failed_step;
    char error[320];           /* kiln_context_error's text */
} kiln_context;

/* Records that the step named `step` returned `status` (non-zero), for the
 * caller to report; returns status. The generated run and create call it. */
int kiln_step_failed(kiln_context *c, int status, const char *step);
/* Why the context's last failed run failed: "step NAME: what" (PREFIX_error). */
const char *kiln_context_error(const kiln_context *c);

/* The step profiler: with KILN_PROFILE set in the environment when a context
 * is created, the generated run calls this before each step (step -1: the run
 * ended), and destroying the context prints each step's time per run, slowest
 * first, and the totals by op to stderr. names: the steps' comments. */
void kiln_prof_mark(kiln_context *c, int step, int nsteps, const char *const *names);

/* Allocates a context and runs init (the model's create-time steps, may be NULL;
 * non-zero: a step failed). W: the embedded weights, or NULL to map
 * weights_path (checked against weights_size and weights_id). NULL on failure. */
kiln_context *kiln_context_create(int64_t ws_size, int64_t state_size, int threads, const unsigned char *W,
                                  const char *weights_path, int64_t weights_size, uint64_t weights_id,
                                  int (*init)(kiln_context *ctx));
/* The same with the weights file found beside the running executable. */
kiln_context *kiln_context_create_beside(int64_t ws_size, int64_t state_size, int threads, const char *weights_name,
                                         int64_t weights_size, uint64_t weights_id, int (*init)(kiln_context *ctx));
void kiln_context_destroy(kiln_context *ctx);
/* Frees the heap blocks string kernels keep in a context's state (runtime/strings.c). */
void kiln_free_heap_slots(void *state);
/* The state's first word heads that list: every model reserves it. */
#define KILN_STATE_RESERVED 64
/* A string kernel's heap block: a state slot of this many bytes. */
#define KILN_HEAP_SLOT_BYTES 32

/* ---- kernels (kernels.def, made by make from the KILN_KERNEL rows beside them; kiln_params.h) ---- */

/* A kernel returns KILN_OK, or why it could not compute its outputs; the
 * generated run stops at the first step that fails and returns its status,
 * naming the step in the context (kiln_step_failed). */
enum { KILN_OK = 0, KILN_E_LOOP = 1, KILN_E_NOMEM = 16, KILN_E_INDEX = 17, KILN_E_VALUE = 18 }; /* 2: run_batch's bad n */
/* What a status means, in words ("an index is out of range", ...). */
const char *kiln_status_text(int status);
typedef int (*kiln_kernel_fn)(kiln_pool *pool, void *const *bufs, const int64_t *p);
#define K(name, doc, ...) int kiln_k_##name(kiln_pool *pool, void *const *bufs, const int64_t *p);
#include "kernels.def"
#undef K
enum {
#define K(name, doc, ...) KILN_K_##name,
#include "kernels.def"
#undef K
    KILN_K_COUNT
};
extern const kiln_kernel_fn kiln_kernel_table[KILN_K_COUNT];
extern const char *const kiln_kernel_names[KILN_K_COUNT];

/* Per-thread scratch, sized when the context is created (runtime/scratch.c):
 * what one step needs in the slot of every thread that runs it, floats of
 * the strip or score buffer (3x3 depthwise strips, a block of attention
 * scores) and bytes of the GEMM's packing panels. A kernel that takes any
 * declares it beside itself, in its family's file, as kiln_need_NAME(p,
 * need), which raises need's fields to what its parameters p take (the
 * other kernels define none: their kiln_kernel_need entry is NULL). */
typedef struct kiln_scratch_need {
    int64_t floats, gemm_bytes;
} kiln_scratch_need;
typedef void (*kiln_need_fn)(const int64_t *p, kiln_scratch_need *need);
#define K(name, doc, ...) void kiln_need_##name(const int64_t *p, kiln_scratch_need *need);
#include "kernels.def"
#undef K
extern const kiln_need_fn kiln_kernel_need[KILN_K_COUNT];
/* One step's need: its kernel's kiln_need_NAME and its parameters. */
typedef struct kiln_step_need {
    kiln_need_fn fn;
    const int64_t *p;
} kiln_step_need;
/* Sizes every thread's slot of c's pool (the caller's slot 0 too) to the
 * largest need of the n steps, before the model's create-time steps (the
 * generated init calls it first); KILN_OK or KILN_E_NOMEM. A run allocates
 * nothing: a kernel whose need exceeds its slots returns KILN_E_NOMEM. */
int kiln_context_scratch(kiln_context *c, const kiln_step_need *steps, int n);

/* C (ldc) += alpha * op(A) op(B), op = transpose when ta / tb; M x N result.
 * The packed, blocked GEMM of gemm.c, parallel over the pool. */
void kiln_sgemm(kiln_pool *pool, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda, int ta,
                const float *B, int64_t ldb, int tb, float *C, int64_t ldc);

/* B packed once into the microkernel's layout (weights, at context creation):
 * kiln_sgemm_pack writes op(B) (K x N) into dst, which holds at least
 * kiln_sgemm_packed_floats(N, K) floats; kiln_sgemm_packed then computes
 * C += alpha * op(A) B from it. Packing and use must run on the same CPU kind. */
int64_t kiln_sgemm_packed_floats(int64_t N, int64_t K);
void kiln_sgemm_pack(int64_t N, int64_t K, const float *B, int64_t ldb, int tb, float *dst);
void kiln_sgemm_packed(kiln_pool *pool, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda, int ta,
                       const float *packed, float *C, int64_t ldc);
/* The same for A (convolution weights): op(A) (M x K) packed once. */
int64_t kiln_sgemm_packed_a_floats(int64_t M, int64_t K);
void kiln_sgemm_pack_a(int64_t M, int64_t K, const float *A, int64_t lda, int ta, float *dst);
void kiln_sgemm_packed_a(kiln_pool *pool, int64_t M, int64_t N, int64_t K, float alpha, const float *packed_a,
                         const float *B, int64_t ldb, int tb, float *C, int64_t ldc);

/* The GEMM's epilogue, applied to each output tile while it is in registers:
 * instead of accumulating into C, the first K block starts from row_bias[i],
 * col_bias[j] or 0 (C is then write-only), and after the last block the
 * residual is added and the result clamped to [lo, hi] (NaN stays NaN) when
 * clamp is set. */
typedef struct {
    const float *row_bias, *col_bias;
    int overwrite, clamp;
    float lo, hi;
    const float *residual; /* or NULL: added (same layout as C) after the last block, before the clamp */
} kiln_gemm_epi;

/* The general form: op(A) given as A (lda, ta) or packed_a, op(B) as B (ldb,
 * tb) or packed_b; epi NULL accumulates (C += alpha op(A) op(B)). */
/* 3x3 stride-1 convolutions by Winograd F(2x2, 3x3) (runtime/winograd.c): the
 * floats of the transformed, packed filters (kiln_k_wino_pack) and the tiles a
 * chunk holds (the scratch is 16 x (C + M) x that many floats). */
int64_t kiln_wino_packed_floats(int64_t M, int64_t C);
int kiln_wino_fits(int64_t OW); /* output rows no wider than the kernel's row buffers */
int64_t kiln_wino_chunk_tiles(int64_t C, int64_t M);

/* Stable merge sort of idx[0..n) by before(a, b, c) ("a goes first"); tmp
 * holds n (runtime/rt.c; TopK, Unique, NonMaxSuppression, the profiler). */
void kiln_sort_indices(int64_t *idx, int64_t *tmp, int64_t n, bool (*before)(int64_t a, int64_t b, const void *c), const void *c);

void kiln_sgemm_ex(kiln_pool *pool, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda, int ta,
                   const float *packed_a, const float *B, int64_t ldb, int tb, const float *packed_b, float *C, int64_t ldc,
                   const kiln_gemm_epi *epi);

/* Floats of scratch kiln_k_rnn needs (kind 0 RNN, 1 GRU, 2 LSTM). */
int64_t kiln_rnn_scratch_floats(int64_t kind, int64_t seq, int64_t batch, int64_t hidden);

/* Bytes of scratch kiln_k_moe needs for its parameters q (kiln_params.h). */
struct kiln_p_moe;
int64_t kiln_moe_scratch_bytes(const struct kiln_p_moe *q);

/* Whether kiln_k_conv computes directly (depthwise) and needs no im2col scratch. */
#include <stdbool.h>
bool kiln_conv_is_direct(int64_t C, int64_t M, int64_t group);
/* The floats of a convolution's weights packed for the small-channel path
 * (AVX-512: C <= 4 input channels, 2-D, one group), or 0 when that path can
 * never take it (k: the nd kernel sizes). */
int64_t kiln_conv_smallc_floats(int64_t nd, int64_t C, int64_t M, int64_t group, const int64_t *k);

/* Float kernel parameters travel as the bits of a double. */
static inline int64_t kiln_d2p(double d) { union { double d; int64_t i; } u; u.d = d; return u.i; }
static inline double kiln_p2d(int64_t i) { union { double d; int64_t i; } u; u.i = i; return u.d; }

/* ---- tensors and I/O ---- */

typedef struct kiln_tensor {
    int dtype;
    int rank;
    int64_t shape[KILN_MAX_RANK];
    int64_t nbytes;
    void *data;
} kiln_tensor;

/* Readers: return 0 and fill *out on success; otherwise write a message
 * (naming the file and what is wrong) into err and return -1. */
int kiln_read_npy(const char *path, kiln_tensor *out, char *err, size_t errlen);
int kiln_read_pb(const char *path, kiln_tensor *out, char *err, size_t errlen);
/* By extension: .npy or .pb. */
int kiln_read_tensor(const char *path, kiln_tensor *out, char *err, size_t errlen);
/* Writers: write to path.tmp, then rename; 0 on success. */
int kiln_write_npy(const char *path, const kiln_tensor *t, char *err, size_t errlen);
int kiln_write_pb(const char *path, const kiln_tensor *t, const char *name, char *err, size_t errlen);
/* An ONNX SequenceProto of tensors: *out (malloc'ed, each freed with
 * kiln_tensor_free) holds *count of them. */
int kiln_read_pb_sequence(const char *path, kiln_tensor **out, int *count, char *err, size_t errlen);
int kiln_write_pb_sequence(const char *path, const kiln_tensor *t, int count, char *err, size_t errlen);
/* An ONNX OptionalProto: *kind 0 absent, 1 a tensor (*count 1), 3 a sequence
 * (*count tensors, in *out as for kiln_read_pb_sequence). */
int kiln_read_pb_optional(const char *path, int *kind, kiln_tensor **out, int *count, char *err, size_t errlen);
int kiln_write_pb_optional(const char *path, int kind, const kiln_tensor *t, int count, char *err, size_t errlen);
void kiln_tensor_free(kiln_tensor *t);

/* External weights (--weights external): maps PATH read-only after checking
 * its header against the size and build id compiled into the model; NULL with
 * a message in err otherwise. kiln_weights_default_path gives NAME beside the
 * running executable. */
const unsigned char *kiln_weights_map(const char *path, int64_t size, uint64_t id, size_t *map_len, char *err, size_t errlen);
void kiln_weights_unmap(const unsigned char *data, size_t map_len);
int kiln_weights_default_path(const char *name, char *out, size_t n);

/* Writes s as a JSON string literal (quoted, escaped). */
#include <stdio.h>
void kiln_json_string(FILE *f, const char *s);

/* Monotonic clock in milliseconds. */
double kiln_now_ms(void);

#ifdef __cplusplus
}
#endif
#endif
