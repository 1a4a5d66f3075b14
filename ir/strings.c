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
    const char *cas = node_attr_string(n, "case_change_action", "NONE");
    if (strcmp(cas, "NONE") != 0 && strcmp(cas, "LOWER") != 0 && strcmp(cas, "UPPER") != 0) {
        diag_error(d, n, "case_change_action must be NONE, LOWER or UPPER, not '%s'", cas);
        return false;
    }
    const Attr *sw = node_attr(n, "stopwords");
    if (sw && sw->kind != ATTR_STRINGS) { diag_error(d, n, "stopwords must be a list of strings"); return false; }
    int64_t c = x->dims[x->rank - 1], dims[2] = {1, c > 0 ? c : 1};
    set_out(n->out[0], DT_STRING, x->rank, x->rank == 2 ? dims : dims + 1);
    n->out[0]->dyn = 1u << (x->rank - 1);
    return true;
}

bool tfidf_info(const Node *n, TfIdfInfo *t, Diags *d) {
    memset(t, 0, sizeof *t);
    const char *mode = node_attr_string(n, "mode", "");
    t->mode = strcmp(mode, "TF") == 0 ? 0 : strcmp(mode, "IDF") == 0 ? 1 : strcmp(mode, "TFIDF") == 0 ? 2 : -1;
    if (t->mode < 0) { diag_error(d, n, "mode must be TF, IDF or TFIDF"); return false; }
    t->min_n = node_attr_int(n, "min_gram_length", 0);
    t->max_n = node_attr_int(n, "max_gram_length", 0);
    t->max_skip = node_attr_int(n, "max_skip_count", 0);
    if (t->min_n < 1 || t->max_n < t->min_n || t->max_n > 64 || t->max_skip < 0) {
        diag_error(d, n, "needs 1 <= min_gram_length <= max_gram_length <= 64 and max_skip_count >= 0");
        return false;
    }
    const Attr *pool = node_attr(n, "pool_int64s"), *counts = node_attr(n, "ngram_counts"), *idx = node_attr(n, "ngram_indexes");
    const Attr *w = node_attr(n, "weights");
    if (node_attr(n, "pool_strings")) { diag_error(d, n, "string pools (pool_strings) are not supported"); return false; }
    if (!pool || !counts || !idx || counts->n > 64) { diag_error(d, n, "needs pool_int64s, ngram_counts (at most 64) and ngram_indexes"); return false; }
    int64_t grams = 0;
    for (int i = 0; i < counts->n; i++) {
        int64_t b = counts->ints[i], e = i + 1 < counts->n ? counts->ints[i + 1] : pool->n;
        if (b < 0 || e < b || e > pool->n || (e - b) % (i + 1)) {
            diag_error(d, n, "ngram_counts[%d] does not start a whole number of %d-grams in the pool", i, i + 1);
            return false;
        }
        t->start[i + 1] = b;
        grams += (e - b) / (i + 1);
    }
    for (int i = counts->n + 1; i <= 65; i++) t->start[i] = pool->n;
    if (idx->n != grams || (w && w->n != grams)) {
        diag_error(d, n, "ngram_indexes (and weights) need one entry per pool n-gram (%lld)", (long long)grams);
        return false;
    }
    t->n_grams = grams;
    for (int i = 0; i < idx->n; i++) {
        if (idx->ints[i] < 0 || idx->ints[i] > ((int64_t)1 << 30)) { diag_error(d, n, "ngram_indexes[%d] is out of range", i); return false; }
        if (idx->ints[i] + 1 > t->out_dim) t->out_dim = idx->ints[i] + 1;
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
