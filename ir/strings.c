/* strings.c: the shape rules of the text ops: StringNormalizer (its output's
 * length known at run time, marked in Value.dyn) and TfIdfVectorizer (integer
 * n-grams only; tfidf_info checks the n-gram pool's segments once, for the
 * shape rule and the lowering). The lowerings are in codegen/strings.c, with
 * those of Cast to and from strings. */
#include "ir.h"
#include "infer.h"

#include <string.h>

/* StringNormalizer: strings [C] or [1, C] without the stopwords, case changed;
 * as many as are left (at least one: [""] when none is), known at run time. */
bool infer_string_normalizer(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d)) return false;
    const Value *x = n->in[0];
    if (x->dtype != DT_STRING || x->rank < 1 || x->rank > 2 || (x->rank == 2 && x->dims[0] != 1)) {
        diag_error(d, n, "input must be strings of shape [C] or [1, C]");
        return false;
    }
    const char *cas = node_attrs(n, string_normalizer)->case_change_action;
    if (strcmp(cas, "NONE") != 0 && strcmp(cas, "LOWER") != 0 && strcmp(cas, "UPPER") != 0) {
        diag_error(d, n, "case_change_action must be NONE, LOWER or UPPER, not '%s'", cas);
        return false;
    }
    int64_t c = x->dims[x->rank - 1], dims[2] = {1, c > 0 ? c : 1};
    set_out(n->out[0], DT_STRING, x->rank, x->rank == 2 ? dims : dims + 1);
    n->out[0]->dyn = 1u << (x->rank - 1);
    return true;
}

bool tfidf_info(const Node *n, TfIdfInfo *t, Diags *d) {
    memset(t, 0, sizeof *t);
    const attrs_tfidf *a = node_attrs(n, tfidf);
    const char *mode = a->mode;
    t->mode = strcmp(mode, "TF") == 0 ? 0 : strcmp(mode, "IDF") == 0 ? 1 : strcmp(mode, "TFIDF") == 0 ? 2 : -1;
    if (t->mode < 0) { diag_error(d, n, "mode must be TF, IDF or TFIDF"); return false; }
    t->min_n = a->min_gram_length;
    t->max_n = a->max_gram_length;
    t->max_skip = a->max_skip_count;
    if (t->min_n < 1 || t->max_n < t->min_n || t->max_n > 64 || t->max_skip < 0) {
        diag_error(d, n, "needs 1 <= min_gram_length <= max_gram_length <= 64 and max_skip_count >= 0");
        return false;
    }
    const AttrInts *pool = &a->pool_int64s, *counts = &a->ngram_counts, *idx = &a->ngram_indexes;
    if (a->has_pool_strings) { diag_error(d, n, "string pools (pool_strings) are not supported"); return false; }
    if (!a->has_pool_int64s || !a->has_ngram_counts || !a->has_ngram_indexes || counts->n > 64) {
        diag_error(d, n, "needs pool_int64s, ngram_counts (at most 64) and ngram_indexes");
        return false;
    }
    int64_t grams = 0;
    for (int i = 0; i < counts->n; i++) {
        int64_t b = counts->v[i], e = i + 1 < counts->n ? counts->v[i + 1] : pool->n;
        if (b < 0 || e < b || e > pool->n || (e - b) % (i + 1)) {
            diag_error(d, n, "ngram_counts[%d] does not start a whole number of %d-grams in the pool", i, i + 1);
            return false;
        }
        t->start[i + 1] = b;
        grams += (e - b) / (i + 1);
    }
    for (int i = counts->n + 1; i <= 65; i++) t->start[i] = pool->n;
    if (idx->n != grams || (a->has_weights && a->weights.n != grams)) {
        diag_error(d, n, "ngram_indexes (and weights) need one entry per pool n-gram (%lld)", (long long)grams);
        return false;
    }
    t->n_grams = grams;
    for (int i = 0; i < idx->n; i++) {
        if (idx->v[i] < 0 || idx->v[i] > ((int64_t)1 << 30)) { diag_error(d, n, "ngram_indexes[%d] is out of range", i); return false; }
        if (idx->v[i] + 1 > t->out_dim) t->out_dim = idx->v[i] + 1;
    }
    return true;
}

bool infer_tfidf(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d)) return false;
    const Value *x = n->in[0];
    if ((x->dtype != DT_I32 && x->dtype != DT_I64) || x->rank < 1 || x->rank > 2) {
        diag_error(d, n, "input must be int32 or int64 of shape [C] or [N, C] (string inputs are not supported)");
        return false;
    }
    TfIdfInfo t;
    if (!tfidf_info(n, &t, d)) return false;
    int64_t dims[2] = {x->dims[0], t.out_dim};
    if (x->rank == 1) dims[0] = t.out_dim;
    set_out(n->out[0], DT_F32, x->rank, dims);
    return true;
}
