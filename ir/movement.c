/* movement.c: the shape rules of the ops that move data without computing
 * on it: the views (Reshape, Flatten, Squeeze, Unsqueeze: output 0 is input
 * 0's data with a new shape), Transpose, Concat, Split, Slice, Pad, Tile,
 * DepthToSpace, SpaceToDepth and ReverseSequence.
 *
 * Shape operands (Reshape's shape, the axes of Squeeze and Unsqueeze, Split's
 * sizes, Slice's starts, ends, axes and steps, Pad's pads) are attributes
 * before the opset that made them inputs and constant inputs from it on
 * (ints_from). slice_compute, split_sizes and pad_amounts give the lowering the
 * same geometry. The lowerings are in codegen/movement.c (the views need none:
 * lower_view). */
#include "ir.h"
#include "infer.h"

#include <string.h>

bool infer_reshape(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d)) return false;
    Value *x = n->in[0];
    int64_t shape[64];
    int count;
    bool present;
    const attrs_reshape *at = node_attrs(n, reshape);
    if (!ints_from(n, at->shape, at->has_shape, 1, 5, shape, &count, &present, d)) return false;
    if (!present) { diag_error(d, n, "Reshape needs a shape"); return false; }
    if (count > MAX_RANK) { diag_error(d, n, "rank %d is above kiln's limit of %d", count, MAX_RANK); return false; }
    bool allowzero = at->allowzero != 0;
    int infer_at = -1;
    int64_t known = 1, total = value_numel(x);
    for (int i = 0; i < count; i++) {
        if (shape[i] == 0 && !allowzero) {
            if (i >= x->rank) { diag_error(d, n, "shape entry %d is 0 but the input has rank %d", i, x->rank); return false; }
            shape[i] = x->dims[i];
        }
        if (shape[i] == -1) {
            if (infer_at >= 0) { diag_error(d, n, "more than one -1 in the shape"); return false; }
            infer_at = i;
        } else if (shape[i] < 0) { diag_error(d, n, "invalid shape entry %lld", (long long)shape[i]); return false; }
        else {
            if (shape[i] && known > INT64_MAX / shape[i]) { diag_error(d, n, "shape size overflows"); return false; }
            known *= shape[i];
        }
    }
    if (infer_at >= 0) {
        if (known == 0 || total % known) { diag_error(d, n, "cannot infer the -1 dimension: %lld elements into %lld", (long long)total, (long long)known); return false; }
        shape[infer_at] = total / known;
        known = total;
    }
    if (known != total) { diag_error(d, n, "cannot reshape %lld elements into %lld", (long long)total, (long long)known); return false; }
    set_out(n->out[0], x->dtype, count, shape);
    return true;
}

bool infer_flatten(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d)) return false;
    Value *x = n->in[0];
    int64_t axis = node_attrs(n, flatten)->axis;
    if (axis < 0) axis += x->rank;
    if (axis < 0 || axis > x->rank) { diag_error(d, n, "axis is out of range for rank %d", x->rank); return false; }
    int64_t dims[2] = {dims_numel((int)axis, x->dims), dims_numel(x->rank - (int)axis, x->dims + axis)};
    set_out(n->out[0], x->dtype, 2, dims);
    return true;
}

bool infer_squeeze(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d)) return false;
    Value *x = n->in[0];
    int64_t axes[64];
    int count;
    bool present;
    const attrs_squeeze *at = node_attrs(n, squeeze);
    if (!ints_from(n, at->axes, at->has_axes, 1, 13, axes, &count, &present, d)) return false;
    uint32_t mask = 0;
    for (int i = 0; i < count; i++) {
        int a;
        if (!axis_norm(axes[i], x->rank, &a)) { diag_error(d, n, "axis %lld is out of range", (long long)axes[i]); return false; }
        if (x->dims[a] != 1) { diag_error(d, n, "cannot squeeze axis %d of size %lld", a, (long long)x->dims[a]); return false; }
        mask |= 1u << a;
    }
    int64_t dims[MAX_RANK];
    int r = 0;
    for (int i = 0; i < x->rank; i++)
        if (!(count ? (mask >> i & 1) : x->dims[i] == 1)) dims[r++] = x->dims[i];
    set_out(n->out[0], x->dtype, r, dims);
    return true;
}

bool infer_unsqueeze(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d)) return false;
    Value *x = n->in[0];
    int64_t axes[64];
    int count;
    bool present;
    const attrs_squeeze *at = node_attrs(n, squeeze);
    if (!ints_from(n, at->axes, at->has_axes, 1, 13, axes, &count, &present, d)) return false;
    int r = x->rank + count;
    if (!present || r > MAX_RANK) { diag_error(d, n, "Unsqueeze needs axes, and the result's rank must be at most %d", MAX_RANK); return false; }
    uint32_t mask = 0;
    for (int i = 0; i < count; i++) {
        int a;
        if (!axis_norm(axes[i], r, &a) || (mask >> a & 1)) { diag_error(d, n, "axis %lld is out of range or repeated", (long long)axes[i]); return false; }
        mask |= 1u << a;
    }
    int64_t dims[MAX_RANK];
    for (int i = 0, j = 0; i < r; i++) dims[i] = (mask >> i & 1) ? 1 : x->dims[j++];
    set_out(n->out[0], x->dtype, r, dims);
    return true;
}

bool infer_transpose(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d)) return false;
    Value *x = n->in[0];
    int64_t perm[MAX_RANK], dims[MAX_RANK];
    const attrs_transpose *at = node_attrs(n, transpose);
    for (int i = 0; i < x->rank; i++) perm[i] = x->rank - 1 - i; /* none: the axes reversed */
    if (at->has_perm) {
        if (at->perm.n != x->rank) { diag_error(d, n, "perm must have %d entries", x->rank); return false; }
        uint32_t seen = 0;
        for (int i = 0; i < x->rank; i++) {
            int p;
            if (!axis_norm(at->perm.v[i], x->rank, &p) || (seen >> p & 1)) { diag_error(d, n, "perm is not a permutation"); return false; }
            seen |= 1u << p;
            perm[i] = p;
        }
    }
    for (int i = 0; i < x->rank; i++) dims[i] = x->dims[perm[i]];
    set_out(n->out[0], x->dtype, x->rank, dims);
    return true;
}

bool infer_concat(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d)) return false;
    Value *x = n->in[0];
    int axis;
    const attrs_concat *at = node_attrs(n, concat);
    if (!at->has_axis && n->opset >= 4) { diag_error(d, n, "Concat needs an axis"); return false; }
    if (!axis_norm(at->axis, x->rank, &axis)) { diag_error(d, n, "axis is out of range for rank %d", x->rank); return false; }
    int64_t dims[MAX_RANK];
    memcpy(dims, x->dims, sizeof dims);
    dims[axis] = 0;
    for (int i = 0; i < n->n_in; i++) {
        Value *v = n->in[i];
        if (!v) { diag_error(d, n, "Concat input %d is missing", i); return false; }
        bool ok = v->rank == x->rank && v->dtype == x->dtype;
        for (int j = 0; ok && j < x->rank; j++) ok = j == axis || v->dims[j] == x->dims[j];
        if (!ok) {
            char a[128], b[128];
            diag_error(d, n, "input '%s' %s does not match '%s' %s outside axis %d", v->name, value_type_str(v, a, sizeof a), x->name, value_type_str(x, b, sizeof b), axis);
            return false;
        }
        dims[axis] += v->dims[axis];
    }
    set_out(n->out[0], x->dtype, x->rank, dims);
    return check_size(n, n->out[0], d);
}

bool split_sizes(const Node *n, const Value *x, int axis, int64_t *sizes, Diags *d) {
    int64_t split[64];
    int count;
    bool present;
    const attrs_split *at = node_attrs(n, split);
    if (!ints_from((Node *)n, at->split, at->has_split, 1, 13, split, &count, &present, d)) return false;
    int64_t dim = x->dims[axis], sum = 0;
    if (!present) {
        if (dim % n->n_out) { diag_error(d, n, "dimension %lld does not split evenly into %d outputs", (long long)dim, n->n_out); return false; }
        for (int i = 0; i < n->n_out; i++) sizes[i] = dim / n->n_out;
        return true;
    }
    if (count != n->n_out) { diag_error(d, n, "split has %d entries for %d outputs", count, n->n_out); return false; }
    for (int i = 0; i < count; i++) {
        if (split[i] < 0) { diag_error(d, n, "negative split size"); return false; }
        sizes[i] = split[i];
        sum += split[i];
    }
    if (sum != dim) { diag_error(d, n, "split sizes add up to %lld, not the dimension %lld", (long long)sum, (long long)dim); return false; }
    return true;
}

bool infer_split(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d)) return false;
    Value *x = n->in[0];
    int axis;
    if (!axis_norm(node_attrs(n, split)->axis, x->rank, &axis)) { diag_error(d, n, "axis is out of range for rank %d", x->rank); return false; }
    int64_t sizes[64];
    if (!split_sizes(n, x, axis, sizes, d)) return false;
    for (int i = 0; i < n->n_out; i++) {
        int64_t dims[MAX_RANK];
        memcpy(dims, x->dims, sizeof dims);
        dims[axis] = sizes[i];
        set_out(n->out[i], x->dtype, x->rank, dims);
    }
    return true;
}

bool slice_compute(const Node *n, const Value *x, int64_t *starts, int64_t *steps, int64_t *out_dims, Diags *d) {
    int64_t st[64], en[64], ax[64], sp[64];
    int ns, ne, na, nsp;
    bool ps, pe, pa, psp;
    const attrs_slice *at = node_attrs(n, slice);
    if (!ints_from((Node *)n, at->starts, at->has_starts, 1, 10, st, &ns, &ps, d) ||
        !ints_from((Node *)n, at->ends, at->has_ends, 2, 10, en, &ne, &pe, d) ||
        !ints_from((Node *)n, at->axes, at->has_axes, 3, 10, ax, &na, &pa, d) ||
        !ints_from((Node *)n, (AttrInts){0}, false, 4, 10, sp, &nsp, &psp, d)) /* Slice-1 has no steps attribute */
        return false;
    if (!ps || !pe || ns != ne || (pa && na != ns) || (psp && nsp != ns)) { diag_error(d, n, "starts, ends, axes and steps must be given with equal lengths"); return false; }
    for (int i = 0; i < x->rank; i++) { starts[i] = 0; steps[i] = 1; out_dims[i] = x->dims[i]; }
    uint32_t seen = 0;
    for (int i = 0; i < ns; i++) {
        int a;
        if (!axis_norm(pa ? ax[i] : i, x->rank, &a) || (seen >> a & 1)) { diag_error(d, n, "axis %lld is out of range or repeated", (long long)(pa ? ax[i] : i)); return false; }
        seen |= 1u << a;
        int64_t dim = x->dims[a], s = st[i], e = en[i], step = psp ? sp[i] : 1;
        if (step == 0) { diag_error(d, n, "slice step cannot be 0"); return false; }
        if (s < 0) s = s < -dim ? 0 - (step < 0) : s + dim;
        if (e < 0) e = e < -dim ? -1 : e + dim;
        if (step > 0) {
            s = s < 0 ? 0 : (s > dim ? dim : s);
            e = e < 0 ? 0 : (e > dim ? dim : e);
        } else {
            s = s < 0 ? -1 : (s > dim - 1 ? dim - 1 : s);
            e = e < -1 ? -1 : (e > dim - 1 ? dim - 1 : e);
        }
        int64_t len = step > 0 ? (e - s + step - 1) / step : (s - e + (-step) - 1) / (-step);
        if (len < 0) len = 0;
        starts[a] = len > 0 ? s : 0;
        steps[a] = step;
        out_dims[a] = len;
    }
    return true;
}

bool infer_slice(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d)) return false;
    int64_t starts[MAX_RANK], steps[MAX_RANK], dims[MAX_RANK];
    if (!slice_compute(n, n->in[0], starts, steps, dims, d)) return false;
    set_out(n->out[0], n->in[0]->dtype, n->in[0]->rank, dims);
    return true;
}

/* Pad: pads from the attribute (opset < 11) or a constant input. */
bool pad_amounts(const Node *n, const Value *x, int64_t *pb, int64_t *pe, Diags *d) {
    int64_t pads[64];
    int count;
    bool present;
    const attrs_pad *at = node_attrs(n, pad);
    if (!ints_from((Node *)n, at->pads, at->has_pads, 1, 11, pads, &count, &present, d)) return false;
    if (!present || count != 2 * x->rank) { diag_error(d, n, "pads must have %d values", 2 * x->rank); return false; }
    for (int i = 0; i < x->rank; i++) { pb[i] = pads[i]; pe[i] = pads[x->rank + i]; }
    return true;
}

bool infer_pad(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d)) return false;
    Value *x = n->in[0], *cv = node_input(n, 2);
    int64_t pb[MAX_RANK], pe[MAX_RANK], dims[MAX_RANK];
    if (!pad_amounts(n, x, pb, pe, d)) return false;
    const char *mode = node_attrs(n, pad)->mode;
    if (strcmp(mode, "constant") && strcmp(mode, "reflect") && strcmp(mode, "edge")) { diag_error(d, n, "unknown mode '%s'", mode); return false; }
    if (cv && (!cv->data || value_numel(cv) != 1 || cv->dtype != x->dtype)) {
        diag_need(d, n, cv, "input '%s' must be a constant scalar of the data's type", cv->name);
        return false;
    }
    for (int i = 0; i < x->rank; i++) {
        dims[i] = x->dims[i] + pb[i] + pe[i];
        if (dims[i] < 0 || pb[i] < 0 || pe[i] < 0) { diag_error(d, n, "negative pads are not supported"); return false; }
        if (strcmp(mode, "constant") != 0 && x->dims[i] == 0 && dims[i] > 0) { diag_error(d, n, "cannot %s-pad an empty dimension", mode); return false; }
    }
    set_out(n->out[0], x->dtype, x->rank, dims);
    return check_size(n, n->out[0], d);
}

bool infer_tile(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d)) return false;
    Value *x = n->in[0];
    int64_t rep[64];
    int count;
    if (!const_ints(n->in[1], rep, 64, &count)) { diag_need(d, n, n->in[1], "input '%s' must be a constant list of integers (computed at run time: only an executable built for this machine takes that)", n->in[1]->name); return false; }
    if (count != x->rank) { diag_error(d, n, "repeats must have %d values", x->rank); return false; }
    int64_t dims[MAX_RANK];
    for (int i = 0; i < x->rank; i++) {
        if (rep[i] < 0 || (rep[i] && x->dims[i] > INT64_MAX / 16 / rep[i])) { diag_error(d, n, "invalid repeat %lld", (long long)rep[i]); return false; }
        dims[i] = x->dims[i] * rep[i];
    }
    set_out(n->out[0], x->dtype, x->rank, dims);
    return check_size(n, n->out[0], d);
}

bool infer_space_depth(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d)) return false;
    Value *x = n->in[0];
    int64_t b = node_attrs(n, space_depth)->blocksize;
    if (x->rank != 4 || b < 1) { diag_error(d, n, "needs a 4-D input and a positive blocksize"); return false; }
    int64_t dims[4] = {x->dims[0], x->dims[1], x->dims[2], x->dims[3]};
    if (n->op == OP_DEPTH_TO_SPACE) {
        if (dims[1] % (b * b)) { diag_error(d, n, "channels %lld are not a multiple of blocksize^2", (long long)dims[1]); return false; }
        dims[1] /= b * b; dims[2] *= b; dims[3] *= b;
    } else {
        if (dims[2] % b || dims[3] % b) { diag_error(d, n, "height and width must be multiples of blocksize"); return false; }
        dims[1] *= b * b; dims[2] /= b; dims[3] /= b;
    }
    set_out(n->out[0], x->dtype, 4, dims);
    return true;
}

bool infer_reverse_sequence(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d)) return false;
    Value *x = n->in[0], *lens = n->in[1];
    int b, t;
    if (x->rank < 2 || !axis_norm(node_attrs(n, reverse_sequence)->batch_axis, x->rank, &b) ||
        !axis_norm(node_attrs(n, reverse_sequence)->time_axis, x->rank, &t) ||
        b == t || (b != 0 && b != 1) || (t != 0 && t != 1)) {
        diag_error(d, n, "batch_axis and time_axis must be 0 and 1 (either order) of an input of rank 2 or more");
        return false;
    }
    if (lens->rank != 1 || lens->dims[0] != x->dims[b] || lens->dtype != DT_I64) { diag_error(d, n, "sequence_lens must be int64 [%lld]", (long long)x->dims[b]); return false; }
    set_out(n->out[0], x->dtype, x->rank, x->dims);
    return true;
}
