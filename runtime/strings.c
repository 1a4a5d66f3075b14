/* strings.c: the text kernels: string tensors (ONNX STRING), Cast to and from
 * strings and StringNormalizer, and TfIdfVectorizer over token ids.
 *
 * A string element is a kiln_str {p, n}: n bytes at p, not NUL-terminated.
 * Strings a kernel makes live in a heap block of its own step (a kiln_heap_slot
 * in the context's state), reused and grown by each run, valid until the next
 * run, and freed with the context: the first use links the slot into the list
 * whose head is the state's first word, which kiln_context_destroy walks. */
#include "kiln_params.h"
#include "kiln_scalar.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct kiln_heap_slot {
    char *mem;
    size_t cap;
    struct kiln_heap_slot *next;
    int64_t linked;
} kiln_heap_slot;

void kiln_free_heap_slots(void *state) {
    kiln_heap_slot *s = state ? *(kiln_heap_slot **)state : NULL;
    while (s) {
        kiln_heap_slot *next = s->next;
        free(s->mem);
        s = next;
    }
}

/* n bytes of slot s (head: the state's first word), or NULL when out of memory. */
static char *slot_bytes(void *head, kiln_heap_slot *s, size_t n) {
    if (!s->linked) {
        s->next = *(kiln_heap_slot **)head;
        *(kiln_heap_slot **)head = s;
        s->linked = 1;
    }
    if (n > s->cap || !s->mem) {
        char *m = realloc(s->mem, n ? n : 1);
        if (!m) return NULL;
        s->mem = m;
        s->cap = n ? n : 1;
    }
    return s->mem;
}

/* A number as NumPy's str() writes it: the fewest digits that read back to the
 * same value of its dtype; positional from 1e-4 up to 1e16 (with ".0" when
 * whole), else d.ddde+XX. */
static double round_to(double v, int dt) {
    switch (dt) {
    case KILN_DT_F32: return (float)v;
    case KILN_DT_F16: return kiln_f16_to_f32(kiln_f32_to_f16((float)v));
    case KILN_DT_BF16: return kiln_bf16_to_f32(kiln_f32_to_bf16((float)v));
    default: return v;
    }
}

static int format_real(char *out, double v, int dt) {
    if (isnan(v)) return sprintf(out, "nan");
    if (isinf(v)) return sprintf(out, v > 0 ? "inf" : "-inf");
    int maxp = dt == KILN_DT_F64 ? 17 : dt == KILN_DT_F32 ? 9 : 5;
    char e[48];
    for (int p = 1; p <= maxp; p++) {
        snprintf(e, sizeof e, "%.*e", p - 1, v);
        if (round_to(strtod(e, NULL), dt) == v) break;
    }
    /* e: [-]d[.ddd]e(+|-)XX */
    char digits[32];
    int nd = 0, neg = e[0] == '-';
    const char *q = e + neg;
    for (; *q && *q != 'e'; q++)
        if (*q != '.') digits[nd++] = *q;
    int exp = atoi(q + 1);
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    char *o = out;
    if (neg) *o++ = '-';
    double a = fabs(v);
    if (a == 0 || (a >= 1e-4 && a < 1e16)) {
        if (exp >= 0) {
            for (int i = 0; i <= exp; i++) *o++ = i < nd ? digits[i] : '0';
            *o++ = '.';
            if (nd > exp + 1)
                for (int i = exp + 1; i < nd; i++) *o++ = digits[i];
            else *o++ = '0';
        } else {
            *o++ = '0';
            *o++ = '.';
            for (int i = 0; i < -exp - 1; i++) *o++ = '0';
            for (int i = 0; i < nd; i++) *o++ = digits[i];
        }
        *o = 0;
        return (int)(o - out);
    }
    *o++ = digits[0];
    if (nd > 1) {
        *o++ = '.';
        for (int i = 1; i < nd; i++) *o++ = digits[i];
    }
    return (int)(o - out) + sprintf(o, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
}

/* The element i of x (dtype dt) as text, into out (at least 48 bytes). */
static int format_elem(char *out, const void *x, int64_t i, int dt) {
    switch (dt) {
    case KILN_DT_F32: return format_real(out, ((const float *)x)[i], dt);
    case KILN_DT_F64: return format_real(out, ((const double *)x)[i], dt);
    case KILN_DT_F16: return format_real(out, kiln_f16_to_f32(((const uint16_t *)x)[i]), dt);
    case KILN_DT_BF16: return format_real(out, kiln_bf16_to_f32(((const uint16_t *)x)[i]), dt);
    case KILN_DT_BOOL: return sprintf(out, "%s", ((const uint8_t *)x)[i] ? "True" : "False");
    case KILN_DT_I8: return sprintf(out, "%d", ((const int8_t *)x)[i]);
    case KILN_DT_U8: return sprintf(out, "%u", ((const uint8_t *)x)[i]);
    case KILN_DT_I16: return sprintf(out, "%d", ((const int16_t *)x)[i]);
    case KILN_DT_U16: return sprintf(out, "%u", ((const uint16_t *)x)[i]);
    case KILN_DT_I32: return sprintf(out, "%d", ((const int32_t *)x)[i]);
    case KILN_DT_U32: return sprintf(out, "%u", ((const uint32_t *)x)[i]);
    case KILN_DT_I64: return sprintf(out, "%lld", (long long)((const int64_t *)x)[i]);
    case KILN_DT_U64: return sprintf(out, "%llu", (unsigned long long)((const uint64_t *)x)[i]);
    case KILN_DT_STRING: return -1;
    default: return sprintf(out, "?");
    }
}

#define FORMAT_MAX 48

KILN_KERNEL(cast_to_string, "y (strings) <- x, heap head, heap slot: each as NumPy str() writes it (runtime/strings.c)", F(n) F(dtype /* of x */))
int kiln_k_cast_to_string(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    (void)pool;
    const kiln_p_cast_to_string *q = KILN_P(cast_to_string, p);
    int64_t n = q->n;
    int dt = (int)q->dtype;
    kiln_str *y = bufs[0];
    char *mem = slot_bytes(bufs[2], bufs[3], (size_t)(n * FORMAT_MAX));
    for (int64_t i = 0; i < n; i++) {
        if (!mem) { y[i] = (kiln_str){"", 0}; continue; }
        char *at = mem + i * FORMAT_MAX;
        y[i] = (kiln_str){at, format_elem(at, bufs[1], i, dt)};
    }
    return 0;
}

KILN_KERNEL(cast_from_string, "y <- x (strings)", F(n) F(dtype /* of y */))
int kiln_k_cast_from_string(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    (void)pool;
    const kiln_p_cast_from_string *q = KILN_P(cast_from_string, p);
    int64_t n = q->n;
    int dt = (int)q->dtype;
    const kiln_str *x = bufs[1];
    for (int64_t i = 0; i < n; i++) {
        char tmp[128];
        size_t l = x[i].n < (int64_t)sizeof tmp - 1 ? (size_t)x[i].n : sizeof tmp - 1;
        memcpy(tmp, x[i].p, l);
        tmp[l] = 0;
        bool real = dt == KILN_DT_F32 || dt == KILN_DT_F64 || dt == KILN_DT_F16 || dt == KILN_DT_BF16;
        double d = real ? strtod(tmp, NULL) : 0;
        long long s = real ? 0 : strtoll(tmp, NULL, 10);
        unsigned long long u = real ? 0 : strtoull(tmp, NULL, 10);
        void *o = bufs[0];
        switch (dt) {
        case KILN_DT_F32: ((float *)o)[i] = (float)d; break;
        case KILN_DT_F64: ((double *)o)[i] = d; break;
        case KILN_DT_F16: ((uint16_t *)o)[i] = kiln_f32_to_f16((float)d); break;
        case KILN_DT_BF16: ((uint16_t *)o)[i] = kiln_f32_to_bf16((float)d); break;
        case KILN_DT_BOOL: ((uint8_t *)o)[i] = s != 0 || strcmp(tmp, "True") == 0 || strcmp(tmp, "true") == 0; break;
        case KILN_DT_I8: ((int8_t *)o)[i] = (int8_t)s; break;
        case KILN_DT_U8: ((uint8_t *)o)[i] = (uint8_t)u; break;
        case KILN_DT_I16: ((int16_t *)o)[i] = (int16_t)s; break;
        case KILN_DT_U16: ((uint16_t *)o)[i] = (uint16_t)u; break;
        case KILN_DT_I32: ((int32_t *)o)[i] = (int32_t)s; break;
        case KILN_DT_U32: ((uint32_t *)o)[i] = (uint32_t)u; break;
        case KILN_DT_I64: ((int64_t *)o)[i] = s; break;
        case KILN_DT_U64: ((uint64_t *)o)[i] = u; break;
        default: break;
        }
    }
    return 0;
}

static char ascii_lower(char c) { return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c; }
static char ascii_upper(char c) { return c >= 'a' && c <= 'z' ? (char)(c - 'a' + 'A') : c; }

static bool same_word(const kiln_str *s, const char *w, int64_t wn, bool sensitive) {
    if (s->n != wn) return false;
    for (int64_t i = 0; i < wn; i++)
        if (sensitive ? s->p[i] != w[i] : ascii_lower(s->p[i]) != ascii_lower(w[i])) return false;
    return true;
}

/* Output: the strings that are not stopwords, case changed (ASCII letters),
 * in order; [""] when none is left. rank 1: x is [C]; 2: [1, C]. */
KILN_KERNEL(string_normalizer, "y (strings, sized at run time), shape <- x, heap head, heap slot",
    F(C) F(rank) F(case_change /* 0 none, 1 lower, 2 upper */) F(case_sensitive) F(n_stop) T(stopwords /* each: length, bytes packed 8 per int64 */))
int kiln_k_string_normalizer(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    (void)pool;
    const kiln_p_string_normalizer *q = KILN_P(string_normalizer, p);
    int64_t C = q->C, rank = q->rank, cas = q->case_change, sensitive = q->case_sensitive, nstop = q->n_stop;
    kiln_str *y = bufs[0];
    int64_t *shape = bufs[1];
    const kiln_str *x = bufs[2];
    size_t bytes = 1;
    for (int64_t i = 0; i < C; i++) bytes += (size_t)x[i].n;
    char *mem = cas ? slot_bytes(bufs[3], bufs[4], bytes) : NULL;
    int64_t kept = 0, at = 0;
    for (int64_t i = 0; i < C; i++) {
        bool stop = false;
        const int64_t *w = q->stopwords;
        for (int64_t s = 0; s < nstop && !stop; s++) {
            int64_t wn = w[0];
            stop = same_word(&x[i], (const char *)(w + 1), wn, sensitive != 0);
            w += 1 + (wn + 7) / 8;
        }
        if (stop) continue;
        if (!cas || !mem) { y[kept++] = x[i]; continue; }
        for (int64_t k = 0; k < x[i].n; k++) mem[at + k] = cas == 1 ? ascii_lower(x[i].p[k]) : ascii_upper(x[i].p[k]);
        y[kept++] = (kiln_str){mem + at, x[i].n};
        at += x[i].n;
    }
    if (kept == 0) y[kept++] = (kiln_str){"", 0};
    if (rank == 2) { shape[0] = 1; shape[1] = kept; }
    else shape[0] = kept;
    return 0;
}

/* TfIdfVectorizer: per row, each n-gram (n from min_n to max_n; items
 * skip + 1 apart, skip from 0 to max_skip; one pass for 1-grams) found in the
 * pool counts once toward its output index; IDF gives weight for a count, TFIDF
 * count x weight. Pool lookups are linear over the n-grams of one length. */
KILN_KERNEL(tfidf, "out (f32) <- x (i32/i64) [N, C]", F(N) F(C) F(x_esize) F(min_n) F(max_n) F(max_skip) F(mode /* 0 TF, 1 IDF, 2 TFIDF */) F(out_dim) F(n_grams) F(n_pool)
    T(tables /* pool[n_pool], start[65] (the n-grams of length n are pool[start[n-1] .. start[n])), index[n_grams], weight[n_grams] (double bits) */))
int kiln_k_tfidf(kiln_pool *pool, void *const *b, const int64_t *p) {
    (void)pool;
    const kiln_p_tfidf *q = KILN_P(tfidf, p);
    int64_t N = q->N, C = q->C, es = q->x_esize, min_n = q->min_n, max_n = q->max_n, max_skip = q->max_skip, mode = q->mode;
    int64_t out_dim = q->out_dim, grams = q->n_grams, npool = q->n_pool;
    const int64_t *pl = q->tables, *start = pl + npool, *index = start + 65, *weight = index + grams;
    float *out = b[0];
    for (int64_t r = 0; r < N; r++) {
        float *y = out + r * out_dim;
        for (int64_t j = 0; j < out_dim; j++) y[j] = 0;
        const unsigned char *row = (const unsigned char *)b[1] + r * C * es;
#define ITEM(i) (es == 4 ? (int64_t)((const int32_t *)row)[i] : ((const int64_t *)row)[i])
        int64_t first = 0; /* ordinal of the first n-gram of length n */
        for (int64_t n = 1; n <= max_n; n++) {
            int64_t b0 = start[n - 1], count = (start[n] - b0) / n;
            if (n >= min_n)
                for (int64_t skip = 0; skip <= (n == 1 ? 0 : max_skip); skip++)
                    for (int64_t i = 0; i + (n - 1) * (skip + 1) < C; i++)
                        for (int64_t g = 0; g < count; g++) {
                            const int64_t *gram = pl + b0 + g * n;
                            int64_t k = 0;
                            while (k < n && ITEM(i + k * (skip + 1)) == gram[k]) k++;
                            if (k == n) y[index[first + g]] += 1;
                        }
            first += count;
        }
#undef ITEM
        for (int64_t g = 0; g < grams && mode; g++) {
            float *v = &y[index[g]];
            double w = kiln_p2d(weight[g]);
            if (*v > 0) *v = mode == 1 ? (float)w : (float)(*v * w);
        }
    }
    return 0;
}
