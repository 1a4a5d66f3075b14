/* kir.h: Kir, the kernel IR that both emitters read (and nothing above it).
 *
 * A Kir program is a list of buffers and a list of steps. A buffer is a region of
 * the workspace (offset from the memory planner), a graph input, a constant in the
 * weights blob, or (while constant folding) host memory. A step is either a call
 * of a runtime kernel from runtime/kernels.def with constant parameters, or a
 * fused elementwise loop: an N-d loop nest over the output, each input read
 * through its own strides (0 where it broadcasts), and a short straight-line
 * program of scalar operations whose semantics live in runtime/kiln_scalar.h.
 * The C emitter prints steps as C; the interpreter (kir_interp.c) runs them. */
#ifndef KILN_KIR_H
#define KILN_KIR_H

#include <stdio.h>

#include "../ir/ir.h"
#include "../runtime/kiln_rt.h"
#include "../runtime/kiln_params.h"

/* KB_STATE: per-context memory that persists across runs (the routing counters). */
typedef enum { KB_ARENA, KB_INPUT, KB_CONST, KB_HOST, KB_STATE } KBufKind;

typedef struct KBuf {
    KBufKind kind;
    int64_t offset;     /* KB_ARENA: workspace offset; KB_CONST: weights offset; KB_STATE: state offset */
    int index;          /* KB_INPUT: graph input index */
    void *host;         /* KB_HOST */
    int64_t nbytes;
    DType dtype;
    const char *name;
} KBuf;

/* Scalar operations of a fused loop. */
typedef enum {
    KI_LOAD, KI_CONST, KI_CAST, KI_WHERE,
#define KI(id, fn, kind) KI_##id,
#include "kinstr.def"
#undef KI
    KI_COUNT
} KInstrOp;

typedef enum { KK_SPECIAL, KK_ANY1, KK_ANY2, KK_FLT1, KK_FLT1P1, KK_FLT1P2, KK_CMP2, KK_FCMP1, KK_FCMP1P2, KK_BOOL1, KK_BOOL2 } KInstrKind;
extern const KInstrKind kinstr_kind[KI_COUNT];
extern const char *const kinstr_fn[KI_COUNT];

typedef struct KInstr {
    KInstrOp op;
    DType dt;           /* dtype of the result */
    int a, b, c;        /* operand instruction indices; KI_LOAD: a = input slot; KI_WHERE: c ? a : b */
    double f, g;        /* KI_CONST value; the parameters of the P1/P2 kinds */
} KInstr;

typedef struct KLoop {
    int out;            /* buffer */
    int rank;
    int64_t dims[MAX_RANK];
    int nin;
    int in[64];
    int64_t strides[64][MAX_RANK]; /* elements; 0 where broadcast */
    KInstr *code;
    int ncode;          /* result: the last instruction */
} KLoop;

/* KS_JUMP goes to step `target` (nsteps: the end), KS_BRANCH does when the
 * byte in bufs[0] is nonzero (if_true) or zero (!if_true), KS_FAIL ends the run
 * with an error (a Loop stopped before its scan outputs were full). Control
 * flow (If, Loop, Scan) is built from these and the ctl_* kernels. */
typedef enum { KS_CALL, KS_LOOP, KS_JUMP, KS_BRANCH, KS_FAIL } KStepKind;

typedef struct KStep {
    KStepKind kind;
    bool at_create;       /* run once when the context is created (packing weights), not per run */
    const char *comment;  /* which model nodes this step computes */
    int kernel;           /* KS_CALL: KILN_K_* */
    int nbufs;
    int *bufs;
    int nparams;
    int64_t *params;
    KLoop *loop;          /* KS_LOOP */
    int target;           /* KS_JUMP, KS_BRANCH */
    bool if_true;         /* KS_BRANCH */
} KStep;

typedef struct KIo {
    int buf;
    const Value *v;
    int shape_buf;      /* outputs whose size is known at run time: int64 dims there; else -1 */
} KIo;

/* An MoE layer whose routing the context counts: int64 counts[experts] at
 * `offset` bytes into the context's state. */
typedef struct KMoeLayer {
    const char *name;
    int64_t experts, top_k, tokens, offset;
} KMoeLayer;

typedef struct Kir {
    Arena *arena;
    KBuf *bufs;
    int nbufs, capbufs;
    KStep *steps;
    int nsteps, capsteps;
    KIo *inputs, *outputs;
    int ninputs, noutputs;
    unsigned char *weights;   /* the constants, 64-byte aligned each */
    int64_t weights_size;
    int64_t workspace_size;
    int64_t step_scratch;     /* the largest scratch one step needs */
    int64_t state_size;       /* bytes of KB_STATE memory */
    KMoeLayer *moe;
    int nmoe;
    const int *in_seq, *out_seq; /* the graph's (sequences among the inputs and outputs), or NULL */
    const int *in_group, *out_group;
} Kir;

/* Lowering state, passed to the ops' lower functions. */
typedef struct Lower {
    Kir *k;
    Graph *g;
    Diags *d;
    bool fold;         /* folding: every value is host memory */
    const char *comment;
    int64_t base;      /* added to planned offsets: a subgraph's region of the workspace */
} Lower;

/* The lowering column of the op table (codegen/lower.c): every lowering
 * ops.def names, declared from its rows; lower_none (an op that never reaches
 * code) reports that. */
#define OP(id, name, in_min, in_max, out_min, out_max, flags, infer, lower, batch, attrs) bool lower(Lower *, Node *);
#include "../ir/ops.def"
#undef OP
typedef bool (*LowerFn)(Lower *l, Node *n);
extern const LowerFn lower_table[OP_COUNT];
/* The services the compiler lends the IR (IrServices): folding by running a
 * node's lowering in the interpreter, and the runtime's kernel capabilities. */
extern const IrServices kir_services;

/* Lowers a planned graph to Kir. NULL with diagnostics on failure. */
Kir *kir_lower(Graph *g, Diags *d);
/* The same; without copy_weights the constants stay where the graph holds
 * them (KBuf.host of each KB_CONST buffer, which kir_exec reads; weights
 * NULL): driver/dyn.c, whose constants are in memory already. */
Kir *kir_lower_ex(Graph *g, bool copy_weights, Diags *d);
/* Folds node n (all inputs constant): runs its lowering in the interpreter and
 * makes its outputs constants. */
bool kir_fold_node(Graph *g, Node *n, Diags *d);

/* Helpers for the ops' lower functions (codegen/lower.c); the lowerings are
 * in one file per op family, named as ir/ names the shape rules. */
int lower_buf(Lower *l, const Value *v);
KStep *lower_call(Lower *l, int kernel, int nbufs, const int *bufs, int nparams, const int64_t *params);
/* A call of kernel NAME whose parameters are q, a kiln_p_NAME (kiln_params.h);
 * LOWER_CALL_TAIL for a struct with a tail of ntail words after its fixed part. */
#define LOWER_CALL(l, name, nbufs, bufs, q) \
    lower_call((l), KILN_K_##name, (nbufs), (bufs), KILN_PWORDS_##name, kiln_pw_##name(q))
#define LOWER_CALL_TAIL(l, name, nbufs, bufs, q, ntail) \
    lower_call((l), KILN_K_##name, (nbufs), (bufs), KILN_PWORDS_##name + (int)(ntail), kiln_pw_##name(q))
#define K(name, doc, ...) \
    static inline const int64_t *kiln_pw_##name(const kiln_p_##name *q) { return (const int64_t *)(const void *)q; }
#include "../runtime/kernels.def"
#undef K
/* Appends a step of the given kind (zeroed, with the current node's comment). */
KStep *add_step(Lower *l, KStepKind kind);
/* A control step (KS_JUMP, KS_BRANCH on buf, KS_FAIL); returns its index, so
 * that a forward target can be set once known (codegen/control.c). */
int lower_ctl(Lower *l, KStepKind kind, int buf, bool if_true);
/* Clears g's values' buffer numbers before g is lowered (a whole graph or a subgraph). */
void lower_forget(Graph *g);
/* Lowers l->g's nodes (a whole graph or a subgraph) in order. */
bool lower_nodes(Lower *l);
/* Workspace scratch for the whole run; scratch shared by all steps (one step's
 * life); per-context state (lives with the context: packed weights, counters). */
int scratch_buf(Lower *l, DType dt, int64_t numel);
/* The int64[rank] buffer where a kernel writes the run-time dims of v (v->dyn). */
int shape_slot(Lower *l, Value *v);
int step_scratch(Lower *l, int64_t nbytes);
int state_buf(Lower *l, const char *name, int64_t nbytes);
/* The string heap of a kernel that makes strings: bufs[0] the list head (the
 * state's first word), bufs[1] a slot of its own (runtime/strings.c). */
void heap_slot(Lower *l, int bufs[2]);
/* v as float32 (cast into scratch when needed); the buffer a kernel writes v
 * into as float32, and the cast back when v is not float32. */
int in_f32(Lower *l, const Value *v);
int out_f32(Lower *l, const Value *v);
void out_f32_done(Lower *l, const Value *v, int b);
/* A loop converting numel elements of src (dtype sdt) into dst (ddt) (codegen/elementwise.c). */
void cast_loop(Lower *l, int dst, DType ddt, int src, DType sdt, int64_t numel);
/* Cast to, from or between strings: kernel calls, not a loop (codegen/strings.c). */
bool lower_string_cast(Lower *l, Node *n);
/* The sizes before and after `axis`: v seen as [outer, dims[axis], inner]. */
void outer_inner(const Value *v, int axis, int64_t *outer, int64_t *inner);
/* A conv/pool window as kernel parameters (in, out, k, stride, dil, pads). */
kiln_pwin window_params(const Window *w);
/* The clamp of a Conv or Gemm whose Relu/Clip the fuse pass folded in. */
kiln_pact epilogue_params(const Node *n);

/* Runs a Kir program: inputs[i] for KB_INPUT buffers, workspace of
 * k->workspace_size bytes for KB_ARENA ones. Returns the status of the step
 * that failed (KILN_E_*), or 0. */
int kir_run(const Kir *k, const void *const *inputs, unsigned char *workspace);
/* The same in a model context (driver/dyn.c; NULL while folding): kernels and
 * fused loops run on its thread pool, KB_STATE buffers are its state, and with
 * names (the steps' profiler names) a run is timed when the context profiles
 * (KILN_PROFILE). which: 0 the run's steps, 1 the create-time ones (after
 * sizing the context's per-thread scratch for every step, as the generated
 * init does), -1 all.
 * Returns 0, or the status of the step that ended the run (a kernel's, or
 * KILN_E_LOOP for a KS_FAIL step), which the context records with the
 * step's name (kiln_step_failed). */
struct kiln_context;
/* Where buffer b of k is, given the inputs, workspace and state it runs with. */
void *kir_buf_ptr(const Kir *k, int b, const void *const *inputs, unsigned char *ws, unsigned char *state);
int kir_exec(const Kir *k, struct kiln_context *ctx, const char *const *names, const void *const *inputs, unsigned char *ws, int which);

/* Writes the C translation unit (codegen/emit_c.c). weights_incbin: path of a
 * file holding the weights to include with .incbin, or NULL to write them as
 * array literals; external: the name of the weights file the code maps at
 * create time instead (--weights external), or NULL; weights_id: that file's
 * build id (emit_weights_id; unused when embedded). With kernels_inline
 * (-O3 executables, compiled as a whole program), the file also compiles the
 * runtime's kernels (include/kiln_src/) with every kernel always inlined into
 * its call, specialized to its constant parameters. */
bool emit_c(const Kir *k, const Graph *g, const char *prefix, const char *weights_incbin, const char *external,
            uint64_t weights_id, bool with_main, int default_threads, bool kernels_inline, FILE *f);
/* The class a dtype computes in (f32 f64 i64 u64), the class of the scalar
 * function an instruction calls, and whether a loop runs on the thread pool
 * (at least PARALLEL_LOOP_MIN elements): the emitters agree through these. */
const char *kir_class(DType t);
const char *kir_instr_class(const KLoop *lp, const KInstr *in);
/* The value of a float KI_CONST as its dtype holds it (rounded to float32, float16, bfloat16). */
double kir_float_const(const KInstr *c);
/* A load whose strides are all 0 (a broadcast scalar): both emitters read it
 * once, before the loop nest. */
bool kir_load_invariant(const KLoop *lp, const KInstr *in);
bool kir_loop_parallel(const KLoop *lp);
/* A step's name for the profiler: its comment and, in brackets, the kernel it
 * calls ("loop" for a fused loop). */
const char *kir_step_name(const Kir *k, int s);
/* Which steps (0..nsteps, nsteps being the end) a jump or branch goes to. */
bool *kir_jump_targets(const Kir *k);

/* The LLVM backend (codegen/emit_llvm.c): builds the module in-process with
 * the LLVM-C API, links the scalar functions' bitcode (scalar_bc), optimizes at
 * opt_level and writes textual IR (ll_path) and/or an object file (obj_path). */
typedef struct LlvmOpts {
    const char *triple;       /* LLVM target triple */
    bool host_cpu;            /* tune for and use every feature of this machine's CPU */
    int opt_level;
    const char *scalar_bc;    /* build/lib/TRIPLE/kiln_scalar.bc */
    const char *runtime_bc;   /* build/lib/TRIPLE/kiln_rt.bc, linked and inlined (-O3), or NULL */
    const char *prefix;
    const char *external;     /* weights file name with --weights external, else NULL */
    uint64_t weights_id;
    const char *incbin;       /* a file holding the weights for the assembler's .incbin, or NULL
                                 to make them a constant array in the module */
    bool weights_elsewhere;   /* PREFIX_weights is defined by another object (codegen/elf.c) */
    bool with_main;
    int default_threads;
    double *times_ms;         /* if set: [build, passes, output] are written here */
} LlvmOpts;
bool emit_llvm(const Kir *k, const Graph *g, const LlvmOpts *o, const char *ll_path, const char *obj_path, Diags *d);

bool emit_header(const Kir *k, const char *prefix, const char *external, FILE *f);
/* The build id of the weights (what an external weights file must carry). */
uint64_t emit_weights_id(const Kir *k);

#endif
