/* strings.c: the lowerings of the text ops: StringNormalizer, Cast to, from or
 * between strings (lower_elementwise hands those casts here) and
 * TfIdfVectorizer. A kernel that makes strings keeps them in a heap slot of
 * the context's state (heap_slot, runtime/strings.c). */
#include "kir.h"

#include <string.h>

bool lower_string_normalizer(Lower *l, Node *n) {
    const Value *x = n->in[0];
    const char *cas = node_attr_string(n, "case_change_action", "NONE");
    const Attr *sw = node_attr(n, "stopwords");
    int nsw = sw ? sw->n : 0;
    int64_t np = 5;
    for (int i = 0; i < nsw; i++) np += 1 + ((int64_t)strlen(sw->strings[i]) + 7) / 8;
    int64_t *p = arena_alloc(l->k->arena, sizeof *p * (size_t)np);
    memset(p, 0, sizeof *p * (size_t)np);
    p[0] = x->dims[x->rank - 1];
    p[1] = x->rank;
    p[2] = strcmp(cas, "LOWER") == 0 ? 1 : strcmp(cas, "UPPER") == 0 ? 2 : 0;
    p[3] = node_attr_int(n, "is_case_sensitive", 0) != 0;
    p[4] = nsw;
    int64_t at = 5;
    for (int i = 0; i < nsw; i++) {
        int64_t len = (int64_t)strlen(sw->strings[i]);
        p[at] = len;
        memcpy(p + at + 1, sw->strings[i], (size_t)len);
        at += 1 + (len + 7) / 8;
    }
    int bufs[5] = {lower_buf(l, n->out[0]), shape_slot(l, n->out[0]), lower_buf(l, x), 0, 0};
    heap_slot(l, bufs + 3);
    lower_call(l, KILN_K_string_normalizer, 5, bufs, (int)np, p);
    return true;
}

/* Cast to, from or between strings (the other casts are elementwise loops). */
bool lower_string_cast(Lower *l, Node *n) {
    const Value *x = n->in[0], *y = n->out[0];
    int64_t p[2] = {value_numel(x), x->dtype == DT_STRING ? y->dtype : x->dtype};
    if (x->dtype == DT_STRING && y->dtype == DT_STRING) {
        int bufs[2] = {lower_buf(l, y), lower_buf(l, x)};
        int64_t q[1] = {value_nbytes(x)};
        lower_call(l, KILN_K_copy, 2, bufs, 1, q);
    } else if (y->dtype == DT_STRING) {
        int bufs[4] = {lower_buf(l, y), lower_buf(l, x), 0, 0};
        heap_slot(l, bufs + 2);
        lower_call(l, KILN_K_cast_to_string, 4, bufs, 2, p);
    } else {
        int bufs[2] = {lower_buf(l, y), lower_buf(l, x)};
        lower_call(l, KILN_K_cast_from_string, 2, bufs, 2, p);
    }
    return true;
}

/* TfIdfVectorizer: the pool, its segments, the output indexes and the weights
 * travel as parameters. */
bool lower_tfidf(Lower *l, Node *n) {
    TfIdfInfo t;
    if (!tfidf_info(n, &t, l->d)) return false;
    const Value *x = n->in[0];
    const Attr *pool = node_attr(n, "pool_int64s"), *idx = node_attr(n, "ngram_indexes"), *w = node_attr(n, "weights");
    int64_t np = 10 + pool->n + 65 + 2 * t.n_grams;
    int64_t *p = arena_alloc(l->k->arena, (size_t)np * sizeof *p), *q = p;
    *q++ = x->rank == 2 ? x->dims[0] : 1;
    *q++ = x->dims[x->rank - 1];
    *q++ = dtype_size(x->dtype);
    *q++ = t.min_n;
    *q++ = t.max_n;
    *q++ = t.max_skip;
    *q++ = t.mode;
    *q++ = t.out_dim;
    *q++ = t.n_grams;
    *q++ = pool->n;
    for (int i = 0; i < pool->n; i++) *q++ = pool->ints[i];
    for (int i = 1; i <= 65; i++) *q++ = t.start[i];
    for (int i = 0; i < t.n_grams; i++) *q++ = idx->ints[i];
    for (int i = 0; i < t.n_grams; i++) *q++ = kiln_d2p(w ? w->floats[i] : 1.0);
    int bufs[2] = {lower_buf(l, n->out[0]), lower_buf(l, x)};
    lower_call(l, KILN_K_tfidf, 2, bufs, (int)np, p);
    return true;
}
