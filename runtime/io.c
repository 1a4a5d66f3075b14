/* io.c: tensors in and out of files: NumPy .npy (format 1.0-3.0, C order) and
 * serialized ONNX TensorProto .pb (the conformance data's format).
 *
 * The .pb reader decodes the protobuf wire format directly (a TensorProto is a
 * flat message of varints, fixed-width numbers and length-delimited fields), so
 * a deployed binary needs no protobuf library. Every size read from a file is
 * checked against the bytes actually present before it is used. Writers write
 * PATH.tmp and rename it, so a failed run leaves no half-written output.
 * .npy has no bfloat16: bfloat16 tensors are written to .npy as float32 (exact). */
#include "kiln_rt.h"
#include "kiln_scalar.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static int fail(char *err, size_t n, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, n, fmt, ap);
    va_end(ap);
    return -1;
}

static unsigned char *slurp(const char *path, size_t *len, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) { fail(err, errlen, "%s: cannot open: %s", path, strerror(errno)); return NULL; }
    size_t cap = 1 << 16, n = 0;
    unsigned char *buf = malloc(cap);
    while (buf) {
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0) break;
        if (n == cap) {
            unsigned char *nb = realloc(buf, cap * 2);
            if (!nb) { free(buf); buf = NULL; break; }
            buf = nb;
            cap *= 2;
        }
    }
    int bad = ferror(f);
    fclose(f);
    if (!buf || bad) { free(buf); fail(err, errlen, "%s: read error", path); return NULL; }
    *len = n;
    return buf;
}

void kiln_tensor_free(kiln_tensor *t) {
    if (t) { free(t->data); t->data = NULL; }
}

/* Sets t->nbytes from shape and dtype; -1 on overflow or a bad dimension. */
static int tensor_size(kiln_tensor *t) {
    int es = kiln_dtype_size(t->dtype);
    if (es == 0 || t->rank < 0 || t->rank > KILN_MAX_RANK) return -1;
    int64_t n = 1;
    for (int i = 0; i < t->rank; i++) {
        if (t->shape[i] < 0) return -1;
        if (t->shape[i] && n > (INT64_MAX / 16) / t->shape[i]) return -1;
        n *= t->shape[i];
    }
    t->nbytes = n * es;
    return 0;
}

/* String tensors: kiln_str[count] followed by their bytes, in one block
 * (kiln_tensor_free frees it). text(i) gives string i's bytes and length. */
static void *strings_block(int64_t count, size_t total, const unsigned char *(*text)(const void *, int64_t, size_t *), const void *src) {
    kiln_str *s = malloc((size_t)count * sizeof *s + total + 1);
    if (!s) return NULL;
    char *bytes = (char *)(s + count);
    for (int64_t i = 0; i < count; i++) {
        size_t n;
        const unsigned char *t = text(src, i, &n);
        memcpy(bytes, t, n);
        s[i] = (kiln_str){bytes, (int64_t)n};
        bytes += n;
    }
    return s;
}

/* ---- .npy ---- */

static const struct { const char *descr; int dtype; } npy_types[] = {
    {"f4", KILN_DT_F32}, {"f8", KILN_DT_F64}, {"f2", KILN_DT_F16}, {"i1", KILN_DT_I8},
    {"u1", KILN_DT_U8}, {"i2", KILN_DT_I16}, {"u2", KILN_DT_U16}, {"i4", KILN_DT_I32},
    {"u4", KILN_DT_U32}, {"i8", KILN_DT_I64}, {"u8", KILN_DT_U64}, {"b1", KILN_DT_BOOL},
};

static const char *npy_value(const char *hdr, const char *key) {
    const char *k = strstr(hdr, key);
    if (!k) return NULL;
    k = strchr(k + strlen(key), ':');
    if (!k) return NULL;
    k++;
    while (*k == ' ') k++;
    return k;
}

/* Element i of a NumPy 'S' (bytes, NUL-padded) or 'U' (UTF-32, written as
 * UTF-8 into tmp) array. */
typedef struct { const unsigned char *data; int64_t width; int utf32; unsigned char *tmp; } npy_text_src;

static const unsigned char *npy_text(const void *arg, int64_t i, size_t *n) {
    const npy_text_src *s = arg;
    const unsigned char *e = s->data + i * s->width;
    if (!s->utf32) {
        size_t l = (size_t)s->width;
        while (l > 0 && e[l - 1] == 0) l--;
        *n = l;
        return e;
    }
    size_t o = 0; /* UTF-8 is at most 4 bytes per code point: the width in bytes */
    for (int64_t k = 0; k + 4 <= s->width; k += 4) {
        uint32_t c = (uint32_t)e[k] | (uint32_t)e[k + 1] << 8 | (uint32_t)e[k + 2] << 16 | (uint32_t)e[k + 3] << 24;
        if (c == 0) break;
        if (c > 0x10ffff) c = 0xfffd;
        if (c < 0x80) s->tmp[o++] = (unsigned char)c;
        else if (c < 0x800) { s->tmp[o++] = (unsigned char)(0xc0 | c >> 6); s->tmp[o++] = (unsigned char)(0x80 | (c & 63)); }
        else if (c < 0x10000) {
            s->tmp[o++] = (unsigned char)(0xe0 | c >> 12); s->tmp[o++] = (unsigned char)(0x80 | (c >> 6 & 63)); s->tmp[o++] = (unsigned char)(0x80 | (c & 63));
        } else {
            s->tmp[o++] = (unsigned char)(0xf0 | c >> 18); s->tmp[o++] = (unsigned char)(0x80 | (c >> 12 & 63));
            s->tmp[o++] = (unsigned char)(0x80 | (c >> 6 & 63)); s->tmp[o++] = (unsigned char)(0x80 | (c & 63));
        }
    }
    *n = o;
    return s->tmp;
}

int kiln_read_npy(const char *path, kiln_tensor *out, char *err, size_t errlen) {
    size_t len;
    memset(out, 0, sizeof *out);
    unsigned char *buf = slurp(path, &len, err, errlen);
    if (!buf) return -1;
    int rc = -1;
    char hdr[4096];
    size_t hlen, start;
    if (len < 10 || memcmp(buf, "\x93NUMPY", 6) != 0) { fail(err, errlen, "%s: not a .npy file (bad magic)", path); goto done; }
    if (buf[6] == 1) { hlen = buf[8] | (size_t)buf[9] << 8; start = 10; }
    else if ((buf[6] == 2 || buf[6] == 3) && len >= 12) {
        hlen = buf[8] | (size_t)buf[9] << 8 | (size_t)buf[10] << 16 | (size_t)buf[11] << 24;
        start = 12;
    } else { fail(err, errlen, "%s: unsupported .npy version %d", path, buf[6]); goto done; }
    if (hlen >= sizeof hdr || start + hlen > len) { fail(err, errlen, "%s: truncated or oversized .npy header", path); goto done; }
    memcpy(hdr, buf + start, hlen);
    hdr[hlen] = 0;
    const char *d = npy_value(hdr, "'descr'"), *fo = npy_value(hdr, "'fortran_order'"), *sh = npy_value(hdr, "'shape'");
    if (!d || !fo || !sh) { fail(err, errlen, "%s: malformed .npy header", path); goto done; }
    if (strncmp(fo, "False", 5) != 0) { fail(err, errlen, "%s: Fortran-order arrays are not supported; save with C order", path); goto done; }
    if (*d != '\'' || strlen(d) < 4 || (d[1] != '<' && d[1] != '|' && d[1] != '=')) {
        fail(err, errlen, "%s: unsupported .npy dtype %.8s (little-endian numbers only)", path, d);
        goto done;
    }
    out->dtype = 0;
    for (size_t i = 0; i < sizeof npy_types / sizeof *npy_types; i++)
        if (strncmp(d + 2, npy_types[i].descr, 2) == 0 && d[4] == '\'') out->dtype = npy_types[i].dtype;
    int64_t swidth = 0; /* strings: 'S' bytes or 'U' UTF-32 code points per element */
    if (!out->dtype && (d[2] == 'S' || d[2] == 'U') && d[3] >= '0' && d[3] <= '9') {
        long long w = strtoll(d + 3, NULL, 10); /* saturates: checked before it is multiplied */
        swidth = w > 0 && w <= (1 << 20) ? w * (d[2] == 'U' ? 4 : 1) : 0;
        out->dtype = KILN_DT_STRING;
        if (swidth <= 0 || swidth > (1 << 20)) { fail(err, errlen, "%s: unsupported .npy string width", path); goto done; }
    }
    if (!out->dtype) { fail(err, errlen, "%s: unsupported .npy dtype %.8s", path, d); goto done; }
    if (*sh != '(') { fail(err, errlen, "%s: malformed .npy shape", path); goto done; }
    sh++;
    out->rank = 0;
    for (;;) {
        while (*sh == ' ' || *sh == ',') sh++;
        if (*sh == ')') break;
        char *end;
        long long v = strtoll(sh, &end, 10);
        if (end == sh || v < 0 || out->rank >= KILN_MAX_RANK) { fail(err, errlen, "%s: malformed or too large .npy shape", path); goto done; }
        out->shape[out->rank++] = v;
        sh = end;
        if (*sh == 'L') sh++;
    }
    if (tensor_size(out) != 0) { fail(err, errlen, "%s: .npy shape too large", path); goto done; }
    size_t data_at = start + hlen;
    if (swidth) {
        int64_t count = out->nbytes / (int64_t)sizeof(kiln_str);
        if (count > (int64_t)((len - data_at) / (size_t)swidth)) { fail(err, errlen, "%s: truncated .npy data", path); goto done; }
        npy_text_src src = {buf + data_at, swidth, d[2] == 'U', NULL};
        size_t total = (size_t)(count * swidth);
        if (src.utf32 && !(src.tmp = malloc((size_t)swidth + 1))) { fail(err, errlen, "%s: out of memory", path); goto done; }
        out->data = strings_block(count, total, npy_text, &src);
        free(src.tmp);
        if (!out->data) { fail(err, errlen, "%s: out of memory or bad UTF-32 text", path); goto done; }
        rc = 0;
        goto done;
    }
    if ((uint64_t)(len - data_at) < (uint64_t)out->nbytes) {
        fail(err, errlen, "%s: truncated .npy data (%zu bytes, shape needs %lld)", path, len - data_at, (long long)out->nbytes);
        goto done;
    }
    out->data = malloc(out->nbytes ? (size_t)out->nbytes : 1);
    if (!out->data) { fail(err, errlen, "%s: out of memory", path); goto done; }
    memcpy(out->data, buf + data_at, (size_t)out->nbytes);
    rc = 0;
done:
    free(buf);
    return rc;
}

static int write_atomic(const char *path, const void *a, size_t alen, const void *b, size_t blen, char *err, size_t errlen) {
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) return fail(err, errlen, "%s: path too long", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return fail(err, errlen, "%s: cannot write: %s", path, strerror(errno));
    int ok = fwrite(a, 1, alen, f) == alen && (blen == 0 || fwrite(b, 1, blen, f) == blen);
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        remove(tmp);
        return fail(err, errlen, "%s: write failed", path);
    }
    return 0;
}

int kiln_write_npy(const char *path, const kiln_tensor *t, char *err, size_t errlen) {
    const char *descr = NULL;
    const void *data = t->data;
    float *conv = NULL;
    int64_t nbytes = t->nbytes;
    if (t->dtype == KILN_DT_BF16) { /* no bf16 in NumPy: write exact float32 */
        int64_t n = t->nbytes / 2;
        conv = malloc((size_t)(n ? n : 1) * 4);
        if (!conv) return fail(err, errlen, "%s: out of memory", path);
        for (int64_t i = 0; i < n; i++) conv[i] = kiln_bf16_to_f32(((const uint16_t *)t->data)[i]);
        data = conv;
        nbytes = n * 4;
        descr = "<f4";
    }
    static char d[32];
    if (t->dtype == KILN_DT_STRING) { /* bytes, NUL-padded to the longest: 'S' */
        const kiln_str *str = t->data;
        int64_t n = t->nbytes / (int64_t)sizeof *str, w = 1;
        for (int64_t i = 0; i < n; i++) w = str[i].n > w ? str[i].n : w;
        char *c = calloc((size_t)(n ? n : 1), (size_t)w);
        if (!c) return fail(err, errlen, "%s: out of memory", path);
        for (int64_t i = 0; i < n; i++) memcpy(c + i * w, str[i].p, (size_t)str[i].n);
        conv = (float *)(void *)c;
        data = c;
        nbytes = n * w;
        snprintf(d, sizeof d, "|S%lld", (long long)w);
        descr = d;
    }
    for (size_t i = 0; !descr && i < sizeof npy_types / sizeof *npy_types; i++)
        if (npy_types[i].dtype == t->dtype) {
            snprintf(d, sizeof d, "%c%s", kiln_dtype_size(t->dtype) == 1 ? '|' : '<', npy_types[i].descr);
            descr = d;
        }
    if (!descr) return fail(err, errlen, "%s: dtype %s cannot be written to .npy", path, kiln_dtype_name(t->dtype));
    char hdr[512], shape[300] = "";
    size_t sl = 0;
    for (int i = 0; i < t->rank; i++)
        sl += (size_t)snprintf(shape + sl, sizeof shape - sl, "%lld,%s", (long long)t->shape[i], (i + 1 < t->rank) ? " " : "");
    if (t->rank > 1) shape[sl - 1] = 0; /* "(2, 3)" but "(4,)" */
    int n = snprintf(hdr + 10, sizeof hdr - 10, "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }", descr, shape);
    size_t total = 10 + (size_t)n + 1;
    size_t pad = (64 - total % 64) % 64;
    memset(hdr + 10 + n, ' ', pad);
    hdr[10 + n + pad] = '\n';
    size_t hl = (size_t)n + pad + 1;
    memcpy(hdr, "\x93NUMPY\x01\x00", 8);
    hdr[8] = (char)(hl & 0xff);
    hdr[9] = (char)(hl >> 8);
    int rc = write_atomic(path, hdr, 10 + hl, data, (size_t)nbytes, err, errlen);
    free(conv);
    return rc;
}

/* ---- ONNX TensorProto (.pb) ---- */

typedef struct { const unsigned char *p, *end; } pbuf;

static int pb_varint(pbuf *b, uint64_t *v) {
    uint64_t r = 0;
    for (int s = 0; s < 64; s += 7) {
        if (b->p >= b->end) return -1;
        unsigned char c = *b->p++;
        r |= (uint64_t)(c & 0x7f) << s;
        if (!(c & 0x80)) { *v = r; return 0; }
    }
    return -1;
}

/* The next field of a message: a varint or fixed-width value in *v, a
 * length-delimited payload in (*payload, *plen); -1 when corrupt. */
static int pb_field(pbuf *b, int *field, int *wt, uint64_t *v, const unsigned char **payload, uint64_t *plen) {
    uint64_t key;
    if (pb_varint(b, &key) != 0) return -1;
    *field = (int)(key >> 3);
    *wt = (int)(key & 7);
    if (*wt == 0) return pb_varint(b, v);
    if (*wt == 2) {
        if (pb_varint(b, plen) != 0 || *plen > (uint64_t)(b->end - b->p)) return -1;
        *payload = b->p;
        b->p += *plen;
        return 0;
    }
    if (*wt == 1 && b->end - b->p >= 8) { memcpy(v, b->p, 8); b->p += 8; return 0; }
    if (*wt == 5 && b->end - b->p >= 4) { uint32_t w; memcpy(&w, b->p, 4); *v = w; b->p += 4; return 0; }
    return -1;
}

typedef struct { const unsigned char *p; size_t n; int packed; } pfield;

static const unsigned char *pb_text(const void *arg, int64_t i, size_t *n) {
    const pfield *f = (const pfield *)arg + i;
    *n = f->n;
    return f->p;
}

/* A TensorProto of len bytes at buf (path names it in messages). */
static int parse_tensor(const unsigned char *buf, size_t len, const char *path, kiln_tensor *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    pbuf b = {buf, buf + len};
    int rc = -1;
    uint64_t dtype = 0;
    /* typed payloads: 4 float, 5 int32, 7 int64, 9 raw, 10 double, 11 uint64; may repeat */
    const unsigned char *raw = NULL;
    size_t raw_n = 0;
    uint64_t *vals = NULL; /* unpacked numeric values of the typed fields, as bits */
    size_t nvals = 0, capvals = 0;
    pfield *strs = NULL; /* string_data entries */
    size_t nstr = 0, capstr = 0, str_total = 0;
    while (b.p < b.end) {
        uint64_t v = 0, plen = 0;
        int field, wt;
        const unsigned char *payload = NULL;
        if (pb_field(&b, &field, &wt, &v, &payload, &plen) != 0) goto corrupt;
        if (field == 1) { /* dims */
            pbuf q = wt == 2 ? (pbuf){payload, payload + plen} : (pbuf){NULL, NULL};
            for (;;) {
                if (wt == 2) { if (q.p >= q.end) break; if (pb_varint(&q, &v) != 0) goto corrupt; }
                if (out->rank >= KILN_MAX_RANK) { fail(err, errlen, "%s: tensor rank above %d", path, KILN_MAX_RANK); goto done; }
                out->shape[out->rank++] = (int64_t)v;
                if (wt != 2) break;
            }
        } else if (field == 2 && wt == 0) dtype = v;
        else if (field == 9 && wt == 2) { raw = payload; raw_n = plen; }
        else if (field == 14 && wt == 0 && v == 1) { fail(err, errlen, "%s: tensors with external data are not supported as inputs", path); goto done; }
        else if (field == 4 || field == 5 || field == 7 || field == 10 || field == 11) {
            int fixed = field == 4 ? 4 : field == 10 ? 8 : 0;
            pbuf q = wt == 2 ? (pbuf){payload, payload + plen} : (pbuf){NULL, NULL};
            for (;;) {
                if (wt == 2) {
                    if (q.p >= q.end) break;
                    if (fixed) {
                        if (q.end - q.p < fixed) goto corrupt;
                        uint32_t w32;
                        if (fixed == 4) { memcpy(&w32, q.p, 4); v = w32; } else memcpy(&v, q.p, 8);
                        q.p += fixed;
                    } else if (pb_varint(&q, &v) != 0) goto corrupt;
                }
                if (nvals == capvals) {
                    capvals = capvals ? capvals * 2 : 64;
                    uint64_t *nv = realloc(vals, capvals * sizeof *vals);
                    if (!nv) { fail(err, errlen, "%s: out of memory", path); goto done; }
                    vals = nv;
                }
                vals[nvals++] = v;
                if (wt != 2) break;
            }
        } else if (field == 6 && wt == 2) { /* string_data */
            if (nstr == capstr) {
                capstr = capstr ? capstr * 2 : 64;
                pfield *ns = realloc(strs, capstr * sizeof *strs);
                if (!ns) { fail(err, errlen, "%s: out of memory", path); goto done; }
                strs = ns;
            }
            strs[nstr++] = (pfield){payload, plen, 0};
            str_total += plen;
        }
    }
    out->dtype = (int)dtype;
    if (kiln_dtype_size(out->dtype) == 0) { fail(err, errlen, "%s: unsupported tensor data type %llu", path, (unsigned long long)dtype); goto done; }
    if (tensor_size(out) != 0) { fail(err, errlen, "%s: invalid or too large tensor shape", path); goto done; }
    int es = kiln_dtype_size(out->dtype);
    int64_t count = out->nbytes / es;
    if (out->dtype == KILN_DT_STRING) {
        if ((int64_t)nstr != count) { fail(err, errlen, "%s: tensor has %zu strings, shape needs %lld", path, nstr, (long long)count); goto done; }
        out->data = strings_block(count, str_total, pb_text, strs);
        if (!out->data) { fail(err, errlen, "%s: out of memory", path); goto done; }
        rc = 0;
        goto done;
    }
    /* the data must be there before the shape's bytes are taken */
    if (raw && (uint64_t)raw_n != (uint64_t)out->nbytes) {
        fail(err, errlen, "%s: raw_data has %zu bytes, shape needs %lld", path, raw_n, (long long)out->nbytes);
        goto done;
    }
    if (!raw && (int64_t)nvals != count) {
        fail(err, errlen, "%s: tensor has %zu values, shape needs %lld", path, nvals, (long long)count);
        goto done;
    }
    out->data = malloc(out->nbytes ? (size_t)out->nbytes : 1);
    if (!out->data) { fail(err, errlen, "%s: out of memory", path); goto done; }
    if (raw) {
        memcpy(out->data, raw, raw_n);
    } else {
        for (int64_t i = 0; i < count; i++) {
            uint64_t v = vals[i];
            char *dst = (char *)out->data + i * es;
            if (out->dtype == KILN_DT_F32) { uint32_t w = (uint32_t)v; memcpy(dst, &w, 4); }
            else if (es == 8) memcpy(dst, &v, 8);
            else if (es == 4) { uint32_t w = (uint32_t)v; memcpy(dst, &w, 4); }
            else if (es == 2) { uint16_t w = (uint16_t)v; memcpy(dst, &w, 2); }
            else *dst = (char)v;
        }
    }
    rc = 0;
    goto done;
corrupt:
    fail(err, errlen, "%s: corrupt or truncated TensorProto", path);
done:
    if (rc != 0) kiln_tensor_free(out);
    free(strs);
    free(vals);
    return rc;
}

int kiln_read_pb(const char *path, kiln_tensor *out, char *err, size_t errlen) {
    size_t len;
    memset(out, 0, sizeof *out);
    unsigned char *buf = slurp(path, &len, err, errlen);
    if (!buf) return -1;
    int rc = parse_tensor(buf, len, path, out, err, errlen);
    free(buf);
    return rc;
}

/* A SequenceProto of len bytes at buf: its tensors into *out (*count). */
static int parse_sequence(const unsigned char *buf, size_t len, const char *path, kiln_tensor **out, int *count, char *err, size_t errlen) {
    *out = NULL;
    *count = 0;
    pbuf b = {buf, buf + len};
    int rc = -1, cap = 0;
    uint64_t elem_type = 1;
    while (b.p < b.end) { /* SequenceProto: 2 elem_type, 3 tensor_values; others refused */
        uint64_t v = 0, plen = 0;
        int field, wt;
        const unsigned char *payload = NULL;
        if (pb_field(&b, &field, &wt, &v, &payload, &plen) != 0) goto corrupt;
        if (field == 2 && wt == 0) elem_type = v;
        else if (field >= 4 && field <= 7 && wt == 2) { fail(err, errlen, "%s: only sequences of tensors are supported", path); goto done; }
        else if (field == 3 && wt == 2) {
            if (*count == cap) {
                cap = cap ? cap * 2 : 8;
                kiln_tensor *n = cap <= (1 << 20) ? realloc(*out, (size_t)cap * sizeof *n) : NULL;
                if (!n) { fail(err, errlen, "%s: out of memory or too many tensors", path); goto done; }
                *out = n;
            }
            if (parse_tensor(payload, (size_t)plen, path, &(*out)[*count], err, errlen) != 0) goto done;
            (*count)++;
        }
    }
    if (elem_type != 1) { fail(err, errlen, "%s: not an ONNX SequenceProto of tensors", path); goto done; }
    rc = 0;
    goto done;
corrupt:
    fail(err, errlen, "%s: corrupt or truncated SequenceProto", path);
done:
    if (rc != 0) {
        for (int i = 0; i < *count; i++) kiln_tensor_free(&(*out)[i]);
        free(*out);
        *out = NULL;
        *count = 0;
    }
    return rc;
}

int kiln_read_pb_sequence(const char *path, kiln_tensor **out, int *count, char *err, size_t errlen) {
    size_t len;
    *out = NULL;
    *count = 0;
    unsigned char *buf = slurp(path, &len, err, errlen);
    if (!buf) return -1;
    int rc = parse_sequence(buf, len, path, out, count, err, errlen);
    free(buf);
    return rc;
}

int kiln_read_pb_optional(const char *path, int *kind, kiln_tensor **out, int *count, char *err, size_t errlen) {
    size_t len;
    *out = NULL;
    *count = 0;
    *kind = 0;
    unsigned char *buf = slurp(path, &len, err, errlen);
    if (!buf) return -1;
    pbuf b = {buf, buf + len};
    int rc = -1;
    uint64_t elem_type = 0;
    const unsigned char *tv = NULL, *sv = NULL;
    size_t tn = 0, sn = 0;
    while (b.p < b.end) { /* OptionalProto: 2 elem_type, 3 tensor_value, 5 sequence_value */
        uint64_t v = 0, plen = 0;
        int field, wt;
        const unsigned char *payload = NULL;
        if (pb_field(&b, &field, &wt, &v, &payload, &plen) != 0) goto corrupt;
        if (field == 2 && wt == 0) elem_type = v;
        else if (field == 3 && wt == 2) tv = payload, tn = (size_t)plen;
        else if (field == 5 && wt == 2) sv = payload, sn = (size_t)plen;
        else if ((field == 4 || field > 5) && wt == 2) { fail(err, errlen, "%s: only optional tensors and sequences are supported", path); goto done; }
    }
    if (elem_type == 1 && tv) {
        *out = calloc(1, sizeof **out);
        if (!*out) { fail(err, errlen, "%s: out of memory", path); goto done; }
        if (parse_tensor(tv, tn, path, *out, err, errlen) != 0) { free(*out); *out = NULL; goto done; }
        *count = 1;
        *kind = 1;
    } else if (elem_type == 3 && sv) {
        if (parse_sequence(sv, sn, path, out, count, err, errlen) != 0) goto done;
        *kind = 3;
    } else if (elem_type != 0 && elem_type != 1 && elem_type != 3) { fail(err, errlen, "%s: only optional tensors and sequences are supported", path); goto done; }
    rc = 0;
    goto done;
corrupt:
    fail(err, errlen, "%s: corrupt or truncated OptionalProto", path);
done:
    free(buf);
    return rc;
}

static size_t put_varint(unsigned char *p, uint64_t v) {
    size_t n = 0;
    do { p[n++] = (unsigned char)((v & 0x7f) | (v > 0x7f ? 0x80 : 0)); v >>= 7; } while (v);
    return n;
}

/* The TensorProto encoding of t (with name when given), malloc'ed: *n bytes. */
static unsigned char *encode_tensor(const kiln_tensor *t, const char *name, size_t *n) {
    size_t nl = name ? strlen(name) : 0, cap = 64 + nl + (size_t)t->rank * 11;
    const kiln_str *str = t->dtype == KILN_DT_STRING ? t->data : NULL;
    int64_t count = str ? t->nbytes / (int64_t)sizeof *str : 0;
    if (str) for (int64_t i = 0; i < count; i++) cap += 11 + (size_t)str[i].n;
    else cap += (size_t)t->nbytes;
    unsigned char *b = malloc(cap), *q = b;
    if (!b) return NULL;
    for (int i = 0; i < t->rank; i++) { *q++ = 1 << 3; q += put_varint(q, (uint64_t)t->shape[i]); }
    *q++ = 2 << 3;
    q += put_varint(q, (uint64_t)t->dtype);
    if (nl) { *q++ = 8 << 3 | 2; q += put_varint(q, nl); memcpy(q, name, nl); q += nl; }
    if (str) { /* string_data, one field each */
        for (int64_t i = 0; i < count; i++) {
            *q++ = 6 << 3 | 2;
            q += put_varint(q, (uint64_t)str[i].n);
            memcpy(q, str[i].p, (size_t)str[i].n);
            q += str[i].n;
        }
    } else {
        *q++ = 9 << 3 | 2;
        q += put_varint(q, (uint64_t)t->nbytes);
        memcpy(q, t->data, (size_t)t->nbytes);
        q += t->nbytes;
    }
    *n = (size_t)(q - b);
    return b;
}

/* Writes the n encoded bytes at b (NULL: out of memory) to path, and frees them. */
static int write_encoded(const char *path, unsigned char *b, size_t n, char *err, size_t errlen) {
    if (!b) return fail(err, errlen, "%s: out of memory", path);
    int rc = write_atomic(path, b, n, NULL, 0, err, errlen);
    free(b);
    return rc;
}

int kiln_write_pb(const char *path, const kiln_tensor *t, const char *name, char *err, size_t errlen) {
    size_t n = 0;
    unsigned char *b = encode_tensor(t, name && strlen(name) <= 512 ? name : NULL, &n);
    return write_encoded(path, b, n, err, errlen);
}

/* The encoding of a message of `count` length-delimited fields `field`
 * (tensors), after elem_type `elem`: *n bytes, malloc'ed. */
static unsigned char *encode_list(const kiln_tensor *t, int count, int elem, int field, size_t *n) {
    size_t total = 16;
    unsigned char **enc = calloc((size_t)count + 1, sizeof *enc), *b = NULL;
    size_t *len = calloc((size_t)count + 1, sizeof *len);
    if (!enc || !len) goto done;
    for (int i = 0; i < count; i++) {
        if (!(enc[i] = encode_tensor(&t[i], NULL, &len[i]))) goto done;
        total += 11 + len[i];
    }
    unsigned char *q = b = malloc(total);
    if (!b) goto done;
    *q++ = 2 << 3;
    q += put_varint(q, (uint64_t)elem);
    for (int i = 0; i < count; i++) {
        *q++ = (unsigned char)(field << 3 | 2);
        q += put_varint(q, len[i]);
        memcpy(q, enc[i], len[i]);
        q += len[i];
    }
    *n = (size_t)(q - b);
done:
    for (int i = 0; enc && i < count; i++) free(enc[i]);
    free(enc);
    free(len);
    return b;
}

int kiln_write_pb_sequence(const char *path, const kiln_tensor *t, int count, char *err, size_t errlen) {
    size_t n = 0;
    unsigned char *b = encode_list(t, count, 1, 3, &n); /* elem_type TENSOR, tensor_values */
    return write_encoded(path, b, n, err, errlen);
}

int kiln_write_pb_optional(const char *path, int kind, const kiln_tensor *t, int count, char *err, size_t errlen) {
    size_t n = 0;
    unsigned char *b;
    if (kind == 1) b = encode_list(t, 1, 1, 3, &n); /* tensor_value */
    else if (kind == 3) { /* sequence_value: a SequenceProto inside */
        size_t sn;
        unsigned char *s = encode_list(t, count, 1, 3, &sn);
        b = s ? malloc(sn + 16) : NULL;
        if (b) {
            unsigned char *q = b;
            *q++ = 2 << 3;
            q += put_varint(q, 3);
            *q++ = 5 << 3 | 2;
            q += put_varint(q, sn);
            memcpy(q, s, sn);
            n = (size_t)(q - b) + sn;
        }
        free(s);
    } else {
        b = calloc(1, 2); /* absent: elem_type UNDEFINED */
        if (b) b[0] = 2 << 3, b[1] = 0, n = 2;
    }
    return write_encoded(path, b, n, err, errlen);
}

int kiln_read_tensor(const char *path, kiln_tensor *out, char *err, size_t errlen) {
    size_t l = strlen(path);
    if (l > 4 && strcmp(path + l - 4, ".npy") == 0) return kiln_read_npy(path, out, err, errlen);
    if (l > 3 && strcmp(path + l - 3, ".pb") == 0) return kiln_read_pb(path, out, err, errlen);
    memset(out, 0, sizeof *out);
    return fail(err, errlen, "%s: unknown input format (expected a .npy or .pb file)", path);
}

/* ---- routing profile (JSON) ---- */

void kiln_json_string(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 32) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

int kiln_write_routing_profile(const char *path, const kiln_model *m, const int64_t *counts, int64_t runs,
                               char *err, size_t errlen) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) return fail(err, errlen, "%s: out of memory", path);
    fprintf(f, "{\n  \"format\": \"kiln-routing-profile\",\n  \"version\": 1,\n  \"model\": ");
    kiln_json_string(f, m->name);
    fprintf(f, ",\n  \"runs\": %lld,\n  \"layers\": [", (long long)runs);
    for (int i = 0; i < m->num_moe_layers; i++) {
        const kiln_moe_layer *l = &m->moe_layers[i];
        const int64_t *c = (const int64_t *)((const unsigned char *)counts + l->offset);
        fprintf(f, "%s\n    {\"name\": ", i ? "," : "");
        kiln_json_string(f, l->name);
        fprintf(f, ", \"experts\": %lld, \"top_k\": %lld, \"tokens\": %lld,\n     \"counts\": [",
                (long long)l->experts, (long long)l->top_k, (long long)(l->tokens * runs));
        for (int64_t e = 0; e < l->experts; e++) fprintf(f, "%s%lld", e ? ", " : "", (long long)c[e]);
        fprintf(f, "]}");
    }
    fprintf(f, "%s]\n}\n", m->num_moe_layers ? "\n  " : "");
    if (fclose(f) != 0) { free(text); return fail(err, errlen, "%s: out of memory", path); }
    int rc = write_atomic(path, text, len, NULL, 0, err, errlen);
    free(text);
    return rc;
}

/* ---- external weights (--weights external) ----
 * OUT.weights: a 64-byte header ("KILNWTS1", data size, build id: a hash of the
 * data computed by kiln), then the data. Mapped read-only at create time; the
 * size and build id must match the ones compiled into the model, so a file of
 * another build or a truncated one is refused, not used. */

const unsigned char *kiln_weights_map(const char *path, int64_t size, uint64_t id, size_t *map_len, char *err, size_t errlen) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) { fail(err, errlen, "cannot open weights file %s: %s", path, strerror(errno)); return NULL; }
    struct stat st;
    unsigned char head[64];
    const unsigned char *map = NULL;
    if (fstat(fd, &st) != 0 || st.st_size < 64 || pread(fd, head, 64, 0) != 64 || memcmp(head, "KILNWTS1", 8) != 0) {
        fail(err, errlen, "%s is not a kiln weights file", path);
        goto done;
    }
    int64_t hsize;
    uint64_t hid;
    memcpy(&hsize, head + 8, 8);
    memcpy(&hid, head + 16, 8);
    if (hsize != size || hid != id) {
        fail(err, errlen, "%s belongs to another build of the model (size %lld, id %016llx; expected %lld, %016llx)", path,
             (long long)hsize, (unsigned long long)hid, (long long)size, (unsigned long long)id);
        goto done;
    }
    if ((uint64_t)st.st_size < 64 + (uint64_t)size) { fail(err, errlen, "%s is truncated (%lld bytes, needs %lld)", path, (long long)st.st_size, (long long)(64 + size)); goto done; }
    void *p = mmap(NULL, (size_t)(64 + size), PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) { fail(err, errlen, "cannot map %s: %s", path, strerror(errno)); goto done; }
    *map_len = (size_t)(64 + size);
    map = (const unsigned char *)p + 64;
done:
    close(fd);
    return map;
}

void kiln_weights_unmap(const unsigned char *data, size_t map_len) {
    if (data) munmap((void *)(data - 64), map_len);
}

/* The weights file's default place: beside the running executable, or PATH's
 * folder when given; name is the file's base name. */
int kiln_weights_default_path(const char *name, char *out, size_t n) {
    char exe[4096];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len <= 0) return -1;
    exe[len] = 0;
    char *slash = strrchr(exe, '/');
    if (slash) *slash = 0;
    return snprintf(out, n, "%s/%s", exe, name) < (int)n ? 0 : -1;
}
