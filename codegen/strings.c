/* strings.c: the lowerings of the text ops: StringNormalizer, Cast to, from or
 * between strings (lower_elementwise hands those casts here) and
 * TfIdfVectorizer. A kernel that makes strings keeps them in a heap slot of
 * the context's state (heap_slot, runtime/strings.c). */
#include "kir.h"

#include <string.h>

bool lower_string_normalizer(Lower *l, Node *n) {
    const Value *x = n->in[0];
    const attrs_string_normalizer *a = node_attrs(n, string_normalizer);
    const char *cas = a->case_change_action;
    int nsw = a->stopwords.n;
    int64_t ntail = 0;
    for (int i = 0; i < nsw; i++) ntail += 1 + ((int64_t)strlen(a->stopwords.v[i]) + 7) / 8;
    size_t nw = (size_t)(KILN_PWORDS_string_normalizer + ntail);
    int64_t *words = arena_alloc(l->k->arena, sizeof *words * nw);
    memset(words, 0, sizeof *words * nw);
    kiln_p_string_normalizer *p = (kiln_p_string_normalizer *)words;
    p->C = x->dims[x->rank - 1];
    p->rank = x->rank;
    p->case_change = strcmp(cas, "LOWER") == 0 ? 1 : strcmp(cas, "UPPER") == 0 ? 2 : 0;
    p->case_sensitive = a->is_case_sensitive != 0;
    p->n_stop = nsw;
    int64_t at = 0;
    for (int i = 0; i < nsw; i++) {
        int64_t len = (int64_t)strlen(a->stopwords.v[i]);
        p->stopwords[at] = len;
        memcpy(p->stopwords + at + 1, a->stopwords.v[i], (size_t)len);
        at += 1 + (len + 7) / 8;
    }
    int bufs[5] = {lower_buf(l, n->out[0]), shape_slot(l, n->out[0]), lower_buf(l, x), 0, 0};
    heap_slot(l, bufs + 3);
    LOWER_CALL_TAIL(l, string_normalizer, 5, bufs, p, ntail);
    return true;
}

/* Cast to, from or between strings (the other casts are elementwise loops). */
bool lower_string_cast(Lower *l, Node *n) {
    const Value *x = n->in[0], *y = n->out[0];
    if (x->dtype == DT_STRING && y->dtype == DT_STRING) {
        int bufs[2] = {lower_buf(l, y), lower_buf(l, x)};
        kiln_p_copy q = {.nbytes = value_nbytes(x)};
        LOWER_CALL(l, copy, 2, bufs, &q);
    } else if (y->dtype == DT_STRING) {
        int bufs[4] = {lower_buf(l, y), lower_buf(l, x), 0, 0};
        heap_slot(l, bufs + 2);
        kiln_p_cast_to_string p = {.n = value_numel(x), .dtype = x->dtype};
        LOWER_CALL(l, cast_to_string, 4, bufs, &p);
    } else {
        int bufs[2] = {lower_buf(l, y), lower_buf(l, x)};
        kiln_p_cast_from_string p = {.n = value_numel(x), .dtype = y->dtype};
        LOWER_CALL(l, cast_from_string, 2, bufs, &p);
    }
    return true;
}

/* TfIdfVectorizer: the pool, its segments, the output indexes and the weights
 * travel as parameters. */
bool lower_tfidf(Lower *l, Node *n) {
    TfIdfInfo t;
    if (!tfidf_info(n, &t, l->d)) return false;
    const Value *x = n->in[0];
    const attrs_tfidf *a = node_attrs(n, tfidf);
    const AttrInts *pool = &a->pool_int64s, *idx = &a->ngram_indexes;
    int64_t ntail = pool->n + 65 + 2 * t.n_grams;
    int64_t *words = arena_alloc(l->k->arena, (size_t)(KILN_PWORDS_tfidf + ntail) * sizeof *words);
    kiln_p_tfidf *p = (kiln_p_tfidf *)words;
    p->N = x->rank == 2 ? x->dims[0] : 1;
    p->C = x->dims[x->rank - 1];
    p->x_esize = dtype_size(x->dtype);
    p->min_n = t.min_n;
    p->max_n = t.max_n;
    p->max_skip = t.max_skip;
    p->mode = t.mode;
    p->out_dim = t.out_dim;
    p->n_grams = t.n_grams;
    p->n_pool = pool->n;
    int64_t *q = p->tables;
    for (int i = 0; i < pool->n; i++) *q++ = pool->v[i];
    for (int i = 1; i <= 65; i++) *q++ = t.start[i];
    for (int i = 0; i < t.n_grams; i++) *q++ = idx->v[i];
    for (int i = 0; i < t.n_grams; i++) *q++ = kiln_d2p(a->has_weights ? a->weights.v[i] : 1.0);
    int bufs[2] = {lower_buf(l, n->out[0]), lower_buf(l, x)};
    LOWER_CALL_TAIL(l, tfidf, 2, bufs, p, ntail);
    return true;
}
