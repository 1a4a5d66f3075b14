/* meta.c: the shape rules of the meta ops, whose output is data known at
 * compile time: Shape, Constant, ConstantOfShape, Size, Range and EyeLike.
 * Each rule computes its output's contents into the graph's arena, so these
 * ops never reach code (lower_none); the window functions are meta ops too
 * (signal.c). */
#include "ir.h"
#include "infer.h"

#include <math.h>
#include <string.h>

bool infer_shape_op(Graph *g, Node *n, Diags *d) {
    if (!need_shapes(n, d)) return false;
    Value *x = n->in[0];
    int64_t r = x->rank, s = node_attrs(n, shape)->start, e = node_attrs(n, shape)->end;
    if (s < 0) s += r;
    if (e < 0) e += r;
    s = s < 0 ? 0 : (s > r ? r : s);
    e = e < 0 ? 0 : (e > r ? r : e);
    int64_t len = e > s ? e - s : 0;
    set_out(n->out[0], DT_I64, 1, &len);
    int64_t *data = arena_alloc(g->arena, (size_t)(len + 1) * sizeof *data);
    for (int64_t i = 0; i < len; i++) data[i] = x->dims[s + i];
    n->out[0]->data = data;
    return true;
}

bool infer_constant(Graph *g, Node *n, Diags *d) {
    Value *o = n->out[0];
    if (n->n_attr != 1) { diag_error(d, n, "Constant needs exactly one value attribute"); return false; }
    const attrs_constant *a = node_attrs(n, constant);
    if (a->has_value) {
        set_out(o, a->value->dtype, a->value->rank, a->value->dims);
        o->data = a->value->data;
        return true;
    }
    int64_t one = 1;
    if (a->has_value_float) {
        float *p = arena_alloc(g->arena, 4);
        *p = (float)a->value_float;
        set_out(o, DT_F32, 0, &one);
        o->data = p;
    } else if (a->has_value_int) {
        int64_t *p = arena_alloc(g->arena, 8);
        *p = a->value_int;
        set_out(o, DT_I64, 0, &one);
        o->data = p;
    } else if (a->has_value_floats) {
        float *p = arena_alloc(g->arena, (size_t)a->value_floats.n * 4 + 4);
        for (int i = 0; i < a->value_floats.n; i++) p[i] = (float)a->value_floats.v[i];
        int64_t len = a->value_floats.n;
        set_out(o, DT_F32, 1, &len);
        o->data = p;
    } else if (a->has_value_ints) {
        int64_t len = a->value_ints.n;
        set_out(o, DT_I64, 1, &len);
        o->data = a->value_ints.v;
    } else { /* value_string(s), sparse_value, or a name Constant lacks */
        diag_error(d, n, "Constant attribute '%s' is not supported", n->attrs[0].name);
        return false;
    }
    return true;
}

bool infer_constant_of_shape(Graph *g, Node *n, Diags *d) {
    Value *s = n->in[0];
    int64_t dims[64];
    int count;
    if (!const_ints(s, dims, 64, &count)) { diag_need(d, n, s, "input '%s' must be a constant list of integers (computed at run time: only an executable built for this machine takes that)", s->name); return false; }
    if (count > MAX_RANK) { diag_error(d, n, "rank %d is above %d", count, MAX_RANK); return false; }
    const attrs_constant_of_shape *a = node_attrs(n, constant_of_shape);
    DType dt = DT_F32; /* none: float zeros */
    const void *fill = NULL;
    if (a->has_value) {
        if (value_numel(a->value) != 1) { diag_error(d, n, "'value' must be a one-element tensor"); return false; }
        dt = a->value->dtype;
        fill = a->value->data;
    }
    Value *o = n->out[0];
    for (int i = 0; i < count; i++)
        if (dims[i] < 0) { diag_error(d, n, "negative dimension %lld", (long long)dims[i]); return false; }
    set_out(o, dt, count, dims);
    if (!check_size(n, o, d)) return false;
    int64_t nb = value_nbytes(o), es = dtype_size(dt);
    unsigned char *p = arena_alloc(g->arena, (size_t)(nb ? nb : 1));
    if (fill)
        for (int64_t i = 0; i < nb; i += es) memcpy(p + i, fill, (size_t)es);
    o->data = p;
    return true;
}

bool infer_size(Graph *g, Node *n, Diags *d) {
    if (!need_shapes(n, d)) return false;
    int64_t *p = arena_alloc(g->arena, sizeof *p);
    *p = value_numel(n->in[0]);
    set_out(n->out[0], DT_I64, 0, NULL);
    n->out[0]->data = p;
    return true;
}

/* Range(start, limit, delta), all constant scalars of one numeric type. */
bool infer_range(Graph *g, Node *n, Diags *d) {
    if (!need_shapes(n, d)) return false;
    for (int i = 0; i < 3; i++)
        if (!n->in[i]->data || value_numel(n->in[i]) != 1) {
            diag_need(d, n, n->in[i], "input '%s' must be a constant scalar (computed at run time: only an executable built for this machine takes that)", n->in[i]->name);
            return false;
        }
    DType dt = n->in[0]->dtype;
    if (n->in[1]->dtype != dt || n->in[2]->dtype != dt) { diag_error(d, n, "inputs have different dtypes"); return false; }
    double s = value_const_float(n->in[0], 0), lim = value_const_float(n->in[1], 0), dl = value_const_float(n->in[2], 0);
    if (dl == 0) { diag_error(d, n, "delta is 0"); return false; }
    double cnt = ceil((lim - s) / dl);
    int64_t len = cnt > 0 ? (int64_t)cnt : 0;
    if (len > ((int64_t)1 << 32)) { diag_error(d, n, "the range is too long"); return false; }
    set_out(n->out[0], dt, 1, &len);
    if (!check_size(n, n->out[0], d)) return false;
    int es = dtype_size(dt);
    unsigned char *p = arena_alloc(g->arena, (size_t)(len * es + 1));
    for (int64_t i = 0; i < len; i++) {
        unsigned char *q = p + i * es;
        if (dt == DT_F32) { float v = (float)value_const_float(n->in[0], 0) + (float)i * (float)value_const_float(n->in[2], 0); memcpy(q, &v, 4); }
        else if (dt == DT_F64) { double v = s + (double)i * dl; memcpy(q, &v, 8); }
        else {
            int64_t v = value_const_int(n->in[0], 0) + i * value_const_int(n->in[2], 0);
            if (es == 8) memcpy(q, &v, 8);
            else if (es == 4) { int32_t w = (int32_t)v; memcpy(q, &w, 4); }
            else if (es == 2) { int16_t w = (int16_t)v; memcpy(q, &w, 2); }
            else *q = (unsigned char)v;
        }
    }
    n->out[0]->data = p;
    return true;
}

bool infer_eye_like(Graph *g, Node *n, Diags *d) {
    if (!need_shapes(n, d)) return false;
    Value *x = n->in[0];
    if (x->rank != 2) { diag_error(d, n, "input must be 2-D"); return false; }
    const attrs_eye_like *a = node_attrs(n, eye_like);
    DType dt = a->has_dtype ? (DType)a->dtype : x->dtype;
    if (dtype_size(dt) == 0) { diag_error(d, n, "unsupported dtype"); return false; }
    set_out(n->out[0], dt, 2, x->dims);
    if (!check_size(n, n->out[0], d)) return false;
    int64_t k = a->k, R = x->dims[0], C = x->dims[1];
    int es = dtype_size(dt);
    unsigned char *p = arena_alloc(g->arena, (size_t)(R * C * es + 1));
    for (int64_t r = 0; r < R; r++) {
        int64_t c = r + k;
        if (c < 0 || c >= C) continue;
        unsigned char *q = p + (r * C + c) * es;
        if (dt == DT_F32) { float one = 1; memcpy(q, &one, 4); }
        else if (dt == DT_F64) { double one = 1; memcpy(q, &one, 8); }
        else if (dt == DT_F16) { uint16_t h = 0x3c00; memcpy(q, &h, 2); }
        else if (dt == DT_BF16) { uint16_t h = 0x3f80; memcpy(q, &h, 2); }
        else *q = 1; /* little-endian integer 1 */
    }
    n->out[0]->data = p;
    return true;
}
