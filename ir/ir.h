/* ir.h: Kiln's graph IR, shared by everything above codegen.
 *
 * A Graph holds Values (typed, shaped tensors; a constant Value carries its
 * data) and Nodes (an op from ops.def, its attributes, its input and output
 * Values, and the source node name from the model). Nodes are kept in
 * topological order; passes that add or reorder nodes restore it.
 *
 * Ownership, stated once: every object of a compilation (graphs, values, nodes,
 * attributes, strings, constant data, diagnostics) is allocated from one Arena
 * and freed together by arena_free. Nothing in the IR is freed individually.
 * Subgraphs (attributes of kind ATTR_GRAPH) share their parent's arena. */
#ifndef KILN_IR_H
#define KILN_IR_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* The most dims a tensor has (the runtime's KILN_MAX_RANK: codegen checks they agree). */
#define MAX_RANK 8

/* ---- arena ---- */

typedef struct ArenaChunk ArenaChunk;
typedef struct Arena {
    ArenaChunk *head;
    size_t used_total;
} Arena;

Arena *arena_new(void);
void arena_free(Arena *a);
/* 64-byte aligned, zeroed. Never NULL: out of memory aborts (a bug-class failure
 * of the host, not of the input; sizes from files are checked before this). */
void *arena_alloc(Arena *a, size_t n);
char *arena_strdup(Arena *a, const char *s);
char *arena_printf(Arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Growable arrays of pointers, arena-backed. */
typedef struct PtrVec {
    void **items;
    int n, cap;
} PtrVec;
void vec_push(Arena *a, PtrVec *v, void *item);

/* ---- diagnostics ---- */

typedef enum { DIAG_ERROR, DIAG_WARNING, DIAG_NOTE } DiagLevel;
typedef struct Diag {
    DiagLevel level;
    const char *node_name, *op_name; /* NULL when no node is involved */
    const char *msg;
    struct Diag *next;
} Diag;
typedef struct Diags {
    Arena *arena;
    Diag *first, *last;
    int errors;
    /* the error was a shape known only at run time (a symbolic input
     * dimension, a shape operand computed from the data, a value sized by the
     * data read by another op): an executable can still take it at run time
     * (driver/dyn.c); need: the value whose contents were wanted, when the
     * error was that (a top-graph value or not: driver/dyn.c checks) */
    bool run_time;
    const struct Value *need;
    /* a shape rule found that node `rewrite` of graph `rewrite_graph` must
     * first take its canonical form (a Dropout in training mode becoming
     * kiln.DropoutTrain, a Loop that carries a sequence unrolled, ...): the
     * canonicalize pass (passes/canonicalize.c) rewrites it and infers again */
    struct Graph *rewrite_graph;
    struct Node *rewrite;
} Diags;

struct Node;
void diag_add(Diags *d, DiagLevel lvl, const struct Node *n, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
#define diag_error(d, node, ...) diag_add((d), DIAG_ERROR, (node), __VA_ARGS__)
/* The error of a shape rule that wanted the contents of v: when v is not a
 * constant (known only at run time) this sets d->run_time and d->need. */
void diag_need(Diags *d, const struct Node *n, const struct Value *v, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Appends from's messages to d (with its run_time and need). */
void diag_merge(Diags *d, const Diags *from);
/* A shape rule's answer that node n of graph g must be rewritten first (see
 * Diags.rewrite): records it, adds no message, returns false. */
bool diag_rewrite(Diags *d, struct Graph *g, struct Node *n);

/* ---- dtypes (ONNX codes) ---- */

typedef enum {
    DT_UNDEF = 0, DT_F32 = 1, DT_U8 = 2, DT_I8 = 3, DT_U16 = 4, DT_I16 = 5, DT_I32 = 6,
    DT_I64 = 7, DT_STRING = 8, DT_BOOL = 9, DT_F16 = 10, DT_F64 = 11, DT_U32 = 12,
    DT_U64 = 13, DT_C64 = 14, DT_C128 = 15, DT_BF16 = 16
} DType;

#define DTYPE_STRING_SIZE ((int)(sizeof(const char *) + sizeof(int64_t)))
int dtype_size(DType t);          /* 0 for types kiln cannot hold */
const char *dtype_name(DType t);  /* "f32", ... */
DType dtype_from_name(const char *s);
bool dtype_is_float(DType t);
bool dtype_is_signed_int(DType t);
/* The C storage type ("float", "uint16_t" for f16/bf16, ...). */
const char *dtype_ctype(DType t);

/* ---- ops ---- */

typedef enum {
#define OP(id, name, in_min, in_max, out_min, out_max, flags, infer, lower, batch, attrs) OP_##id,
#include "ops.def"
#undef OP
    OP_COUNT
} OpKind;

enum {
    F_ELEM = 1,   /* elementwise with broadcasting: fusable into one loop */
    F_VIEW = 2,   /* output 0 is input 0's data with a new shape: no copy */
    F_META = 4,   /* always computed at compile time (Shape, Constant, ...) */
    F_INTERNAL = 8, /* kiln's own op, not an ONNX one */
    F_MOE = 16,     /* a Mixture-of-Experts layer: profiled and placed */
    F_CONTROL = 32, /* If, Loop, Scan: runs subgraphs (ir/control.c); never folded */
    F_SEQ = 64      /* takes or makes sequences (ir/sequence.c) */
};

struct Graph;
struct Node;
typedef bool (*InferFn)(struct Graph *g, struct Node *n, Diags *d);

/* The IR's column of the op table (ir/ops.c); the lowering keeps its own
 * column over the same rows (codegen/lower.c). */
/* The attribute sets of ops.def's ATTRS rows (AS_none: the op has none). */
typedef enum {
    AS_none,
#define ATTRS(set, ...) AS_##set,
#define OP(...)
#include "ops.def"
#undef OP
#undef ATTRS
    AS_COUNT
} AttrSet;

typedef struct OpInfo {
    const char *name;
    int in_min, in_max, out_min, out_max;
    unsigned flags;
    InferFn infer;
    AttrSet attrs;
} OpInfo;

extern const OpInfo op_table[OP_COUNT];
OpKind op_lookup(const char *name); /* OP_COUNT when unknown */

/* ---- values, attributes, nodes, graphs ---- */

typedef struct Value {
    const char *name;
    DType dtype;
    int rank;                 /* -1: shape not known yet */
    int64_t dims[MAX_RANK];
    const void *data;         /* constant data (row-major), or NULL */
    struct Node *producer;    /* NULL for graph inputs and constants */
    int producer_out;
    /* set by the memory planner */
    struct Value *alias;      /* a view of this value (same bytes) */
    int64_t mem_offset;       /* offset in the workspace, -1: none */
    int first_use, last_use;  /* node positions, planner scratch */
    int id;                   /* scratch index for passes */
    /* a sequence (ir/sequence.c): built at compile time, a list of tensor
     * values of dtype `dtype`; no storage of its own */
    bool is_seq;
    int n_elems;
    struct Value **elems;
    /* an optional (ONNX Optional), known at compile time like a sequence: its
     * element (a tensor or a sequence value) or NULL when absent; opt_kind 1 an
     * optional tensor, 3 an optional sequence */
    bool is_opt;
    int opt_kind;
    struct Value *opt_elem;
    /* bit i: dims[i] is an upper bound, the size known only when the model runs
     * (NonZero, Unique, NonMaxSuppression); such a value can only be an output */
    uint32_t dyn;
    int shape_buf;            /* lowering: the buffer its run-time dims go to */
    /* a graph input or output whose dim 0 is the batch, symbolic in the model:
     * the graph is one sample's (dims[0] == 1) and runs once per sample
     * (passes/batch.c checks that this is sound) */
    bool batch;
} Value;

typedef enum { ATTR_FLOAT = 1, ATTR_INT = 2, ATTR_STRING = 3, ATTR_TENSOR = 4, ATTR_GRAPH = 5,
               ATTR_FLOATS = 6, ATTR_INTS = 7, ATTR_STRINGS = 8 } AttrKind;

typedef struct Attr {
    const char *name;
    AttrKind kind;
    int64_t i;
    double f;
    const char *s;
    int n;                    /* element count of the list kinds */
    int64_t *ints;
    double *floats;
    const char **strings;
    Value *t;                 /* ATTR_TENSOR: a constant Value */
    struct Graph *g;          /* ATTR_GRAPH */
} Attr;

typedef struct Node {
    OpKind op;
    const char *name;         /* the model's node name ("" when it has none) */
    int n_in, n_out, n_attr;
    Value **in;               /* NULL entries: omitted optional inputs */
    Value **out;
    Attr *attrs;
    int opset;                /* opset version of the node's domain */
    bool dead;
    /* the attributes parsed (ir/attrs.c): a struct attrs_<set> of set pa_set,
     * NULL when not parsed since they last changed */
    const void *pa;
    AttrSet pa_set;
} Node;

/* ---- parsed attributes: one struct per ATTRS row of ops.def ---- */

typedef struct { int n; const int64_t *v; } AttrInts;
typedef struct { int n; const double *v; } AttrFloats;
typedef struct { int n; const char *const *v; } AttrStrs;
#define A_INT(nm, dflt) int64_t nm; bool has_##nm;
#define A_FLOAT(nm, dflt) double nm; bool has_##nm;
#define A_STR(nm, dflt) const char *nm; bool has_##nm;
#define A_INTS(nm) AttrInts nm; bool has_##nm;
#define A_FLOATS(nm) AttrFloats nm; bool has_##nm;
#define A_STRS(nm) AttrStrs nm; bool has_##nm;
#define A_TENSOR(nm) Value *nm; bool has_##nm;
#define A_GRAPH(nm) struct Graph *nm; bool has_##nm;
#define ATTRS(set, ...) typedef struct attrs_##set { __VA_ARGS__ } attrs_##set;
#define OP(...)
#include "ops.def"
#undef OP
#undef ATTRS
#undef A_INT
#undef A_FLOAT
#undef A_STR
#undef A_INTS
#undef A_FLOATS
#undef A_STRS
#undef A_TENSOR
#undef A_GRAPH

/* n's parsed attributes of set `set` (attrs_<set>, named without quotes):
 * `node_attrs(n, conv)->group`. Reading a set other than the op's, or a node
 * whose attributes changed without being parsed again, is an internal error
 * (abort with a message). */
#define node_attrs(n, set) ((const attrs_##set *)node_attrs_of((n), AS_##set))
const void *node_attrs_of(const Node *n, AttrSet set);
/* Parses n's attributes into its struct (defaults for those it lacks); an
 * attribute of the wrong kind is an error. Idempotent while they are unchanged. */
bool node_parse_attrs(struct Graph *g, Node *n, Diags *d);
/* node_parse_attrs for every live node of g and its subgraphs whose attributes
 * are not parsed; the pass manager runs it after each pass. */
bool graph_parse_attrs(struct Graph *g, Diags *d);
/* Marks n's attributes changed (node_add_attr does it; so must code that edits
 * n->attrs or n->op directly). */
static inline void node_attrs_changed(Node *n) { n->pa = NULL; }

/* What the layers above lend the IR, which depends on nothing of theirs:
 * installed on a top graph by whoever drives the compilation, when it has read
 * the model (kiln.c, driver/dyn.c; codegen/lower.c defines the compiler's set).
 * Subgraphs use their root's. Without services (the IR alone) nothing is
 * folded and every convolution counts as direct. */
typedef struct IrServices {
    /* Computes node n, every input of which is a constant, and makes its
     * outputs constants (constant folding). */
    bool (*fold)(struct Graph *g, struct Node *n, Diags *d);
    /* Whether a convolution (C in, M out channels, group groups) runs on the
     * runtime's direct kernel, which takes no fused residual. */
    bool (*conv_is_direct)(int64_t C, int64_t M, int64_t group);
} IrServices;

typedef struct Graph {
    Arena *arena;
    const IrServices *services; /* top graph only (graph_services) */
    const char *name;
    const char *source;       /* file the graph came from */
    const char *source_dir;   /* its folder, for external data */
    int opset;                /* default-domain opset */
    PtrVec values, nodes, inputs, outputs;
    struct Graph *parent;
    int captures;             /* a subgraph's last `captures` inputs are values of the enclosing
                                 graph, bound to the owning node's last inputs (ir/control.c) */
    int64_t workspace_size;   /* set by the memory planner */
    int64_t workspace_greedy; /* what greedy-by-size offsets would need (for -v) */
    int64_t workspace_bound;  /* the most bytes live at once: no plan needs less */
    /* a graph input or output sequence is a run of tensor inputs or outputs:
     * per input / output, the sequence's length on its first element, -1 on
     * the others, 0 for a tensor (NULL: no sequence) */
    int *in_seq, *out_seq;
    /* and what each run is: 1 a sequence, 2 an optional tensor, 3 an optional
     * sequence, 4 an absent optional (0 a tensor; NULL: none); a run of count
     * 0 (an empty sequence, an absent optional) is one placeholder input or
     * output of no data */
    int *in_group, *out_group;
    /* values whose contents a run already computed (driver/dyn.c): the infer
     * pass makes them constants (a node whose outputs are all bound is done) */
    const struct Bound *bound;
    int nbound;
} Graph;

typedef struct Bound {
    const char *name;
    DType dtype;
    int rank;
    int64_t dims[MAX_RANK];
    const void *data;
} Bound;

Graph *graph_new(Arena *a, const char *name);
Value *graph_add_value(Graph *g, const char *name);
/* Adds a constant value owning a copy of data (nbytes must match dtype/shape). */
Value *graph_add_const(Graph *g, const char *name, DType dt, int rank, const int64_t *dims, const void *data);
Node *graph_add_node(Graph *g, OpKind op, const char *name, int n_in, int n_out);
Value *graph_find_value(const Graph *g, const char *name);
/* whether v is one of g's own values (not a subgraph's) */
bool graph_has_value(const Graph *g, const Value *v);
/* Sets every value's id to its number of uses by live nodes; graph outputs
 * count GRAPH_OUTPUT_USES more, so "id == 1" means one use and not an output. */
#define GRAPH_OUTPUT_USES 1000000
void graph_count_uses(Graph *g);
/* Removes dead nodes from the node list and values nobody references. */
void graph_compact(Graph *g);
/* Sorts nodes topologically; false (with a diagnostic naming a node) on a cycle. */
bool graph_toposort(Graph *g, Diags *d);
/* The services of g's top graph (NULL: none installed). */
const IrServices *graph_services(const Graph *g);
/* Types and shapes of every value, folding nodes whose inputs are all
 * constants (ir/infer_graph.c): the infer and canonicalize passes, and a
 * control node's subgraphs from its shape rule. False with d->rewrite set: a
 * node must be rewritten first (passes/canonicalize.c). */
bool graph_infer(Graph *g, Diags *d);
/* Every node's input and output counts against the op table, at any depth
 * (what can be checked of a model before its shapes are known). */
bool graph_check_arity(const Graph *g, Diags *d);
/* Dead-code elimination: drops nodes none of whose outputs reach a graph
 * output as a value still to compute (constants need no code). */
void graph_dce(Graph *g);

int64_t value_numel(const Value *v);
int64_t value_nbytes(const Value *v);
bool value_same_shape(const Value *a, const Value *b);
/* "f32[1,3,224,224]" into buf. */
const char *value_type_str(const Value *v, char *buf, size_t n);
/* Element i of a constant integer value, converted to int64 (any int dtype). */
int64_t value_const_int(const Value *v, int64_t i);
/* Element i of a constant float value as double. */
double value_const_float(const Value *v, int64_t i);

Attr *node_add_attr(Graph *g, Node *n, const char *name, AttrKind kind);
Value *node_input(const Node *n, int i); /* NULL when absent */

/* Checks the invariants every pass must keep; false with diagnostics. */
bool ir_verify(const Graph *g, Diags *d);

/* ---- printing (ir/print.c) and the text IR parser (frontend/kir.c) ---- */

#include <stdio.h>
typedef struct PrintOpts {
    const char *weights_path;   /* side file for large constants, or NULL: all inline */
    const char *weights_ref;    /* how the text names that file */
    int64_t inline_limit;       /* constants with at most this many elements are inline */
} PrintOpts;
bool ir_print_text(const Graph *g, FILE *f, const PrintOpts *o, Diags *d);
void ir_print_dot(const Graph *g, FILE *f);
void ir_print_json(const Graph *g, FILE *f);

/* ---- shapes ---- */

/* Normalizes a possibly negative axis against rank; false when out of range. */
bool axis_norm(int64_t axis, int rank, int *out);
/* Sets out's dtype and shape to the broadcast of the inputs; false on mismatch. */
bool shape_broadcast(Value *const *in, int n, int *rank, int64_t *dims);
/* Checked product of dims; -1 on overflow. */
int64_t dims_numel(int rank, const int64_t *dims);
/* A perm field of kiln.Attention's attributes (q_perm, k_perm, v_perm,
 * out_perm; has: the node carries it) as a permutation of rank r, the
 * identity when absent; false when it is none (ir/attention.c). */
bool attention_perm(AttrInts p, bool has, int r, int *perm);


/* ---- op geometry shared by the shape rules and the lowering (in the ops'
 * family files of ir/, named on each) ---- */

#define MAX_WIN 3
typedef struct Window {
    int nd;
    int64_t in[MAX_WIN], out[MAX_WIN], k[MAX_WIN], stride[MAX_WIN], dil[MAX_WIN], pad_b[MAX_WIN], pad_e[MAX_WIN];
} Window;
/* Conv / pool window from the node's parsed conv or pool set; kernel NULL: from kernel_shape (ir/infer.c). */
bool window_compute(const Node *n, const Value *x, const int64_t *kernel, Window *w, Diags *d);
/* Slice: per-axis start and step in input elements, and the output dims (ir/movement.c). */
bool slice_compute(const Node *n, const Value *x, int64_t *starts, int64_t *steps, int64_t *out_dims, Diags *d);
/* Reduce: bit i of *mask set when axis i is reduced; *noop when nothing is (ir/reduce.c). */
bool reduce_axes(const Node *n, const Value *x, uint32_t *mask, bool *keepdims, bool *noop, Diags *d);
/* Split: the size of each output along axis (ir/movement.c). */
bool split_sizes(const Node *n, const Value *x, int axis, int64_t *sizes, Diags *d);
/* ConvTranspose: the window of output positions each input element reaches (ir/conv.c). */
bool convt_window(const Node *n, const Value *x, const Value *wt, Window *w, Diags *d);
/* Resize / Upsample: per-dimension scales, roi and output size (ir/resize.c). */
bool resize_geometry(const Node *n, const Value *x, double *scales, double *roi_s, double *roi_e, int64_t *out, Diags *d);
/* Pad: begin and end amounts per dimension (ir/movement.c). */
bool pad_amounts(const Node *n, const Value *x, int64_t *pb, int64_t *pe, Diags *d);
/* Einsum: labels 0..51 are letters, 52.. the dims under "..." (ir/linalg.c). */
typedef struct EinsumInfo {
    int n_in, rank[8], labels[8][MAX_RANK], out_rank, out[MAX_RANK];
    int64_t size[64];
} EinsumInfo;
bool einsum_parse(const Node *n, EinsumInfo *e, Diags *d);
/* RNN 1, GRU 3, LSTM 4 gates (ir/rnn.c). */
int rnn_gates(const Node *n);
/* QuantizeLinear / DequantizeLinear: the axis of a per-axis scale (-1: none) (ir/quant.c). */
bool quant_axis(const Node *n, const Value *x, int *axis);
/* Integer list from a constant input (any int dtype); false if absent or not constant (ir/infer.c). */
bool const_ints(const Value *v, int64_t *out, int max, int *count);
/* The shape MaxUnpool's indices address (ir/pool.c). */
bool max_unpool_shape(const Node *n, const Value *x, int64_t *dims, Diags *d);


/* TfIdfVectorizer: the n-gram pool's segments (n-grams of length n start at
 * element start[n] of pool_int64s), checked (ir/strings.c). */
typedef struct TfIdfInfo {
    int64_t min_n, max_n, max_skip, out_dim, n_grams;
    int mode; /* 0 TF, 1 IDF, 2 TFIDF */
    int64_t start[66]; /* start[n + 1]: where n-grams end */
} TfIdfInfo;
bool tfidf_info(const Node *n, TfIdfInfo *t, Diags *d);

/* ---- rewrites the canonicalize pass makes (passes/canonicalize.c) ---- */

/* PRelu before opset 7 with a 1-D slope of one value per channel: the slope
 * is reshaped to [C, 1, ...] (ir/elementwise.c). */
bool prelu_per_channel(const Node *n);
/* Dropout's ratio: its input, else its attribute, else 0.5 (ir/elementwise.c). */
double dropout_ratio(const Node *n);

/* ---- sequences (ir/sequence.c) ---- */

/* o becomes the sequence of count values elems (of dtype dt). */
void value_set_sequence(Graph *g, Value *o, DType dt, Value *const *elems, int count);
/* Node n's input i as a position in a sequence of count (constant; negative
 * counts from the end; absent: the end, or the last when !insert). */
bool sequence_position(const Node *n, int i, int count, bool insert, int *pos, Diags *d);
/* SplitToSequence: the axis, the parts' sizes along it, and whether the axis
 * is squeezed away (no split input and keepdims 0). */
bool split_to_sequence_sizes(const Node *n, const Value *x, int *axis, int64_t *sizes, int *parts, bool *squeeze, Diags *d);
/* Only the sequence ops take sequences; a diagnostic otherwise. */
bool sequence_check(const Node *n, Diags *d);
/* Identity of a sequence: its output is the same list (true when n is one). */
bool sequence_identity(Graph *g, Node *n);
/* A Loop whose body carries a sequence is unrolled at compile time (by the
 * canonicalize pass, passes/canonicalize.c), and so is one that can be
 * (loop_unrollable) when it cannot run as a loop; loop_unroll_check says
 * whether it can be unrolled, and how many times. */
bool loop_carries_sequence(const Node *n, const Graph *body);
bool loop_unrollable(const Node *n, const Graph *body);
bool loop_unroll_check(const Node *n, const Graph *body, int64_t *trip, Diags *d);
/* An If whose branches make sequences or optionals is inlined, the branch
 * its constant condition takes copied into the graph (passes/canonicalize.c). */
bool if_inlined(const Node *n);

/* ---- control flow (ir/control.c) ---- */

/* False for the branch an If on a constant condition never takes (never
 * inferred, planned or compiled). */
bool subgraph_live(const Node *n, const Graph *sub);
/* Scan's geometry: N states, M scan inputs, K scan outputs over T steps; where
 * the node's inputs start (opset 8 has sequence_lens first); per scan input and
 * output the axis in the node's tensor and whether it runs backwards. Opset 8's
 * batch axis (of size 1) is axis 0 of every state and scan tensor. */
typedef struct ScanInfo {
    int first, N, M, K;
    int64_t T;
    bool batch;
    int in_axis[64], out_axis[64];
    bool in_rev[64], out_rev[64];
} ScanInfo;
bool scan_info(const Node *n, ScanInfo *s, Diags *d);

/* ---- kiln.MoE (ir/moe.c) ---- */

enum { MOE_IDENTITY, MOE_RELU, MOE_GELU, MOE_SILU, MOE_SWIGLU };
typedef struct MoeInfo {
    int64_t T, H, I, I1, E, k;  /* tokens, hidden, inter, fc1 rows, experts, top-k */
    int act, fusion;            /* MOE_*; swiglu_fusion */
    bool has_b1, has_b2, has_w3, has_b3, has_rbias, sigmoid, normalize;
    double scale, alpha, beta, limit;
    int64_t n_group, topk_group;
} MoeInfo;
bool moe_info(const Node *n, MoeInfo *m, Diags *d);
const char *moe_act_name(int act);
const char *moe_layer_name(const Node *n);
int64_t moe_expert_bytes(const Node *n, const MoeInfo *m);
double moe_expert_flops(const MoeInfo *m);

#endif
