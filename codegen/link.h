/* link.h: the driver that turns Kir into files: C source, header, object,
 * static or shared library, executable. */
#ifndef KILN_LINK_H
#define KILN_LINK_H

#include "kir.h"

typedef struct LinkOpts {
    const char *emit;       /* exe lib so obj header c */
    const char *out;        /* output path */
    const char *prefix;     /* C symbol prefix */
    const char *home;       /* folder holding include/ and lib/ of the runtime */
    int opt_level;
    int threads;            /* default threads of an executable (0: all cores) */
    bool verbose;
    bool external_weights;  /* weights in OUT.weights, mapped at create time */
    bool llvm;              /* --backend llvm */
    const char *triple;     /* Debian triple of the code (x86_64-linux-gnu, aarch64-linux-gnu) */
    bool host;              /* the code runs on this machine: the LLVM backend uses its CPU's features */
} LinkOpts;

/* This machine's triple, as the runtime's lib/TRIPLE folders name it. */
const char *link_host_triple(void);

/* Writes the requested output (and PREFIX.h beside it for lib/so/obj/header),
 * atomically: on failure nothing is left behind. */
bool link_build(const Kir *k, const Graph *g, const LinkOpts *o, Diags *d);
/* An executable whose shapes are known only when it runs (driver/dyn.c): g as
 * read (symbolic input dims kept) goes in as text IR with its constants, linked
 * with libkilnc and the runtime. */
bool link_build_dynamic(const Graph *g, const LinkOpts *o, Diags *d);
/* Writes a make-style dependency file: "target: dep dep ..." */
bool link_write_depfile(const char *path, const char *target, const PtrVec *deps, Diags *d);

#endif
