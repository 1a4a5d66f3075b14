/* main.c: the main() of every compiled executable (SPEC, "The compiled executable").
 *
 *   ./model [INPUT...] [-o DIR] [--format npy|pb] [--threads N] [--repeat N] [--routing-profile-out FILE]
 *
 * Reads one file per graph input, checks each against the model's dtype and
 * shape before anything runs, runs the model (N times with --repeat, printing
 * min/median/max latency to stderr), and writes output_K.npy or output_K.pb into
 * DIR; with --routing-profile-out, the per-expert token counts of every MoE layer
 * over all runs, as JSON. Exit 0 on success, 1 on bad input or a failed run (nothing written),
 * 2 on a usage error. */
#include "kiln_rt.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* dtype[d0,d1,...]; with batch, dim 0 is written N */
static void shape_str(char *buf, size_t n, int dtype, int rank, const int64_t *shape, int batch) {
    size_t l = (size_t)snprintf(buf, n, "%s[", kiln_dtype_name(dtype));
    for (int d = 0; d < rank && l < n; d++)
        l += d == 0 && batch ? (size_t)snprintf(buf + l, n - l, "N")
             : shape[d] < 0  ? (size_t)snprintf(buf + l, n - l, "%s?", d ? "," : "")
                             : (size_t)snprintf(buf + l, n - l, "%s%lld", d ? "," : "", (long long)shape[d]);
    if (l < n) snprintf(buf + l, n - l, "]");
}

static void usage(const kiln_model *m, FILE *f) {
    fprintf(f, "usage: %s", m->name);
    int nf = 0, seqs = 0;
    for (int i = 0; i < m->num_inputs; i++)
        if (m->inputs[i].seq >= 0) fprintf(f, " INPUT%d", nf++);
    fprintf(f, " [-o DIR] [--format npy|pb] [--threads N] [--repeat N] [--routing-profile-out FILE]\n"
               "  INPUTs are .npy arrays or ONNX TensorProto .pb files, in this order:\n");
    for (int i = 0, fi = 0; i < m->num_inputs; i++) {
        const kiln_tensor_info *t = &m->inputs[i];
        char s[256];
        shape_str(s, sizeof s, t->dtype, t->rank, t->shape, t->batch);
        if (t->group == 1 || t->group == 3) {
            int l = t->seq > 0 ? (int)strlen(t->name) - 2 : (int)strlen(t->name); /* NAME.0 */
            fprintf(f, "    %d: '%.*s' %s of %d tensors (an ONNX %s .pb file)%s%s", fi++, l > 0 ? l : 0, t->name,
                    t->group == 3 ? "an optional sequence" : "a sequence", t->seq, t->group == 3 ? "OptionalProto" : "SequenceProto",
                    t->seq ? ": " : "", t->seq ? s : "");
            seqs = 1;
        } else if (t->group == 2 || t->group == 4) {
            fprintf(f, "    %d: '%s' %s (an ONNX OptionalProto .pb file)%s%s", fi++, t->name, t->group == 2 ? "an optional tensor" : "an absent optional",
                    t->group == 2 ? ": " : "", t->group == 2 ? s : "");
            seqs = 1;
        } else if (t->seq < 0) fprintf(f, ", %s", s);
        else fprintf(f, "    %d: '%s' %s", fi++, t->name, s);
        if (i + 1 == m->num_inputs || m->inputs[i + 1].seq >= 0) fputc('\n', f);
    }
    fprintf(f, "  outputs go to DIR (default .) as output_K.npy (or .pb with --format pb)\n");
    for (int k = 0; k < m->num_outputs && !seqs; k++) seqs = m->outputs[k].group != 0;
    if (seqs)
        fprintf(f, "  a sequence or optional output: output_K.pb, an ONNX SequenceProto or OptionalProto, or its tensors\n"
                   "  as output_K_J.npy (a sequence's) or output_K.npy (an optional tensor; no file when absent)\n");
    for (int i = 0; i < m->num_inputs; i++)
        if (m->inputs[i].batch) {
            fprintf(f, "  N is the batch: any size, the same in every input that has it\n");
            break;
        }
    if (m->prepare)
        fprintf(f, "  ? is any size: the model is specialized to the input files' shapes (and to the contents\n"
                   "  of inputs that decide shapes) when it runs\n");
}

static int parse_int(const char *s, int lo, int *out) {
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < lo || v > 1000000) return -1;
    *out = (int)v;
    return 0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int kiln_exe_main(const kiln_model *m, int argc, char **argv) {
    const char *dir = ".", *format = "npy", *profile = NULL;
    int threads = m->default_threads, repeat = 0, nin = 0, rc = 1, runs = 0, batch_of = -1;
    int64_t batch = 1; /* samples in the batched inputs */
    const char **files = calloc((size_t)argc + 1, sizeof *files);
    if (!files) return 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) { usage(m, stdout); free(files); return 0; }
        int has_val = i + 1 < argc;
        if (strcmp(a, "-o") == 0 && has_val) dir = argv[++i];
        else if (strcmp(a, "--format") == 0 && has_val) {
            format = argv[++i];
            if (strcmp(format, "npy") != 0 && strcmp(format, "pb") != 0) {
                fprintf(stderr, "%s: error: --format takes npy or pb, not '%s'\n", m->name, format);
                free(files);
                return 2;
            }
        } else if (strcmp(a, "--threads") == 0 && has_val) {
            if (parse_int(argv[++i], 1, &threads) != 0) { fprintf(stderr, "%s: error: --threads takes a positive number\n", m->name); free(files); return 2; }
        } else if (strcmp(a, "--repeat") == 0 && has_val) {
            if (parse_int(argv[++i], 1, &repeat) != 0) { fprintf(stderr, "%s: error: --repeat takes a positive number\n", m->name); free(files); return 2; }
        } else if (strcmp(a, "--routing-profile-out") == 0 && has_val) {
            profile = argv[++i];
        } else if (a[0] == '-' && a[1] != 0) {
            fprintf(stderr, "%s: error: unknown or incomplete option '%s'\n", m->name, a);
            usage(m, stderr);
            free(files);
            return 2;
        } else files[nin++] = a;
    }
    int nfiles = 0; /* a sequence's elements come from one file */
    for (int i = 0; i < m->num_inputs; i++) nfiles += m->inputs[i].seq >= 0;
    if (nin != nfiles) {
        fprintf(stderr, "%s: error: expected %d input file%s, got %d\n", m->name, nfiles, nfiles == 1 ? "" : "s", nin);
        usage(m, stderr);
        free(files);
        return 1;
    }
    kiln_tensor *in = calloc((size_t)m->num_inputs + 1, sizeof *in);
    const void **inp = calloc((size_t)m->num_inputs + 1, sizeof *inp);
    char **written = NULL; /* output files, removed if a later one fails */
    int nwritten = 0;
    void **outp = NULL;
    void *ctx = NULL;
    char err[1024];
    if (!in || !inp) goto out;
    for (int i = 0, fi = 0; i < m->num_inputs; i++) {
        const kiln_tensor_info *ti = &m->inputs[i];
        const char *file = files[ti->seq >= 0 ? fi++ : fi - 1];
        bool placeholder = ti->group && ti->seq == 0; /* an empty sequence, an absent optional */
        if (ti->group && ti->seq >= 0) { /* a SequenceProto or OptionalProto .pb: inputs i .. i + seq - 1 */
            kiln_tensor *ts = NULL;
            int cnt = 0, kind = 0, want = ti->group == 4 ? 0 : ti->group == 2 ? 1 : 3;
            size_t l = strlen(file);
            const char *what = ti->group == 1 ? "SequenceProto" : "OptionalProto";
            if (l < 3 || strcmp(file + l - 3, ".pb") != 0) {
                fprintf(stderr, "%s: error: input %d '%s' (%s): this input comes as an ONNX %s .pb file\n", m->name, i, ti->name, file, what);
                goto out;
            }
            int r = ti->group == 1 ? kiln_read_pb_sequence(file, &ts, &cnt, err, sizeof err) : kiln_read_pb_optional(file, &kind, &ts, &cnt, err, sizeof err);
            if (r != 0) {
                fprintf(stderr, "%s: error: input %d '%s': %s\n", m->name, i, ti->name, err);
                goto out;
            }
            for (int j = 0; j < cnt; j++)
                if (j < ti->seq) in[i + j] = ts[j];
                else kiln_tensor_free(&ts[j]);
            free(ts);
            if (ti->group == 1 && cnt != ti->seq) {
                fprintf(stderr, "%s: error: input %d '%s' (%s): expected a sequence of %d tensors, found %d\n", m->name, i, ti->name, file,
                        ti->seq, cnt);
                goto out;
            }
            if (ti->group != 1 && (kind != want || cnt != ti->seq)) {
                fprintf(stderr, "%s: error: input %d '%s' (%s): expected %s, found %s\n", m->name, i, ti->name, file,
                        want == 0 ? "an absent optional" : want == 1 ? "an optional holding a tensor" : "an optional holding a sequence",
                        kind == 0 ? "an absent one" : kind == 1 ? "one holding a tensor" : "one holding a sequence");
                goto out;
            }
        } else if (!ti->group && kiln_read_tensor(file, &in[i], err, sizeof err) != 0) {
            fprintf(stderr, "%s: error: input %d '%s': %s\n", m->name, i, ti->name, err);
            goto out;
        }
        if (placeholder) { /* no data: a valid pointer */
            if (!(in[i].data = malloc(1))) goto out;
            inp[i] = in[i].data;
            continue;
        }
        /* NumPy has no bfloat16: accept its bits as uint16 */
        if (ti->dtype == KILN_DT_BF16 && in[i].dtype == KILN_DT_U16) in[i].dtype = KILN_DT_BF16;
        int same = in[i].dtype == ti->dtype && in[i].rank == ti->rank;
        for (int d = 0; same && d < ti->rank; d++)
            same = in[i].shape[d] == ti->shape[d] || (d == 0 && ti->batch && in[i].shape[0] > 0) || ti->shape[d] < 0;
        if (!same) {
            char want[256], got[256];
            shape_str(want, sizeof want, ti->dtype, ti->rank, ti->shape, ti->batch);
            shape_str(got, sizeof got, in[i].dtype, in[i].rank, in[i].shape, 0);
            fprintf(stderr, "%s: error: input %d '%s' (%s): expected %s%s, found %s\n", m->name, i, ti->name, file, want,
                    ti->batch ? " (N: the batch, 1 or more)" : "", got);
            goto out;
        }
        if (ti->batch && batch_of >= 0 && in[i].shape[0] != in[batch_of].shape[0]) {
            fprintf(stderr, "%s: error: input %d '%s' (%s) has a batch of %lld, but input %d '%s' has %lld: the batch must be the same\n",
                    m->name, i, ti->name, file, (long long)in[i].shape[0], batch_of, m->inputs[batch_of].name,
                    (long long)in[batch_of].shape[0]);
            goto out;
        }
        if (ti->batch && batch_of < 0) batch_of = i, batch = in[i].shape[0];
        inp[i] = in[i].data;
    }
    if (m->prepare && m->prepare(m, in, err, sizeof err) != 0) { /* (it may change the outputs) */
        fprintf(stderr, "%s: error: %s\n", m->name, err);
        goto out;
    }
    written = calloc((size_t)m->num_outputs + 1, sizeof *written);
    outp = calloc((size_t)m->num_outputs + 1, sizeof *outp);
    if (!outp || !written) goto out;
    for (int k = 0; k < m->num_outputs; k++) {
        int64_t nb = m->outputs[k].nbytes, times = m->outputs[k].batch ? batch : 1;
        if (nb > ((int64_t)1 << 40) / times || !(outp[k] = malloc(nb ? (size_t)(nb * times) : 1))) {
            fprintf(stderr, "%s: error: out of memory for output %d\n", m->name, k);
            goto out;
        }
    }
    ctx = m->create(threads);
    if (!ctx && m->weights_file) { /* say what is wrong with the weights file */
        char path[4096];
        size_t len = 0;
        const unsigned char *w = NULL;
        if (kiln_weights_default_path(m->weights_file, path, sizeof path) != 0) snprintf(err, sizeof err, "cannot find the executable's folder");
        else if ((w = kiln_weights_map(path, m->weights_size, m->weights_id, &len, err, sizeof err))) kiln_weights_unmap(w, len);
        if (!w) { fprintf(stderr, "%s: error: %s\n", m->name, err); goto out; }
    }
    if (!ctx) { fprintf(stderr, "%s: error: cannot create the model context (out of memory?)\n", m->name); goto out; }
    runs = repeat > 0 ? repeat : 1;
    double *ms = calloc((size_t)runs, sizeof *ms);
    if (!ms) goto out;
    for (int r = 0; r < runs; r++) {
        double t0 = kiln_now_ms();
        if (kiln_run_batch(m->run, ctx, m->inputs, m->num_inputs, m->outputs, m->num_outputs, batch, inp, outp) != 0) {
            const kiln_context *c = ctx; /* every model's context is a kiln_context */
            if (c->failed_step) fprintf(stderr, "%s: error: the run failed at %s\n", m->name, kiln_context_error(c));
            else fprintf(stderr, "%s: error: run failed\n", m->name);
            free(ms);
            goto out;
        }
        ms[r] = kiln_now_ms() - t0;
    }
    if (repeat > 0) {
        qsort(ms, (size_t)runs, sizeof *ms, cmp_double);
        double med = runs % 2 ? ms[runs / 2] : (ms[runs / 2 - 1] + ms[runs / 2]) / 2;
        fprintf(stderr, "latency_ms min=%.4f median=%.4f max=%.4f\n", ms[0], med, ms[runs - 1]);
    }
    free(ms);
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "%s: error: cannot create output folder '%s': %s\n", m->name, dir, strerror(errno));
        goto out;
    }
    kiln_tensor *ot = calloc((size_t)m->num_outputs + 1, sizeof *ot);
    if (!ot) goto out;
    for (int k = 0; k < m->num_outputs; k++) {
        const kiln_tensor_info *ti = &m->outputs[k];
        const int64_t *shape = m->output_shape(ctx, k); /* sized by the run for NonZero, Unique, ... */
        kiln_tensor t = {ti->dtype, ti->rank, {0}, ti->nbytes, outp[k]};
        for (int d = 0; d < ti->rank; d++) t.shape[d] = shape[d];
        if (ti->batch) t.shape[0] = batch, t.nbytes *= batch;
        if (shape != ti->shape) {
            t.nbytes = kiln_dtype_size(ti->dtype);
            for (int d = 0; d < ti->rank; d++) t.nbytes *= shape[d];
        }
        ot[k] = t;
    }
    /* one file per tensor output, per sequence and per optional (.pb: a
     * SequenceProto or OptionalProto; .npy: one file per tensor, output_F_J.npy
     * for a sequence's, none for an absent optional or an empty sequence) */
    for (int k = 0, fo = 0; k < m->num_outputs; fo++) {
        const kiln_tensor_info *ti = &m->outputs[k];
        int cnt = ti->group ? ti->seq : 1, w = 0, files_n;
        bool pb = strcmp(format, "pb") == 0, per_tensor = !pb && (ti->group == 1 || ti->group == 3);
        files_n = pb ? 1 : per_tensor ? cnt : cnt > 0;
        for (int j = 0; j < files_n && w == 0; j++) {
            char path[4096];
            if (per_tensor) snprintf(path, sizeof path, "%s/output_%d_%d.npy", dir, fo, j);
            else snprintf(path, sizeof path, "%s/output_%d.%s", dir, fo, format);
            if (pb && ti->group == 1) w = kiln_write_pb_sequence(path, &ot[k], cnt, err, sizeof err);
            else if (pb && ti->group) w = kiln_write_pb_optional(path, ti->group == 4 ? 0 : ti->group == 2 ? 1 : 3, &ot[k], cnt, err, sizeof err);
            else if (pb) w = kiln_write_pb(path, &ot[k], ti->name, err, sizeof err);
            else w = kiln_write_npy(path, &ot[k + j], err, sizeof err);
            if (w == 0 && !(written[nwritten] = strdup(path))) w = -1, snprintf(err, sizeof err, "out of memory");
            if (w == 0) {
                nwritten++;
                char **more = realloc(written, sizeof *written * (size_t)(nwritten + 1));
                if (more) written = more;
                else w = -1, snprintf(err, sizeof err, "out of memory");
            }
        }
        if (w != 0) {
            fprintf(stderr, "%s: error: %s\n", m->name, err);
            for (int j = 0; j < nwritten; j++) remove(written[j]); /* leave no partial set of outputs */
            free(ot);
            goto out;
        }
        k += cnt > 0 ? cnt : 1;
    }
    free(ot);
    if (profile && kiln_write_routing_profile(profile, m, m->routing_counts(ctx), runs, err, sizeof err) != 0) {
        fprintf(stderr, "%s: error: %s\n", m->name, err);
        goto out;
    }
    rc = 0;
out:
    if (ctx) m->destroy(ctx);
    for (int i = 0; in && i < m->num_inputs; i++) kiln_tensor_free(&in[i]);
    for (int j = 0; written && j < nwritten; j++) free(written[j]);
    free(written);
    for (int k = 0; outp && k < m->num_outputs; k++) free(outp[k]);
    free(in);
    free(inp);
    free(outp);
    free(files);
    return rc;
}
