/* target.h: what the placement pass knows of the hardware and of the routing.
 *
 * A Target is a set of identical devices grouped into nodes, with one link kind
 * inside a node and one between nodes (SPEC "Target files"; the JSON readers are
 * in frontend/target.c). Per-device figures: compute in FLOP/s per dtype class,
 * memory in bytes, memory bandwidth in bytes/s. shared_memory marks the host,
 * whose devices are the threads of one process: experts are not copied per
 * device and tokens do not travel.
 *
 * A RoutingProfile holds, per MoE layer (by node name), how many tokens each
 * expert received over `tokens` routed tokens; profiles of several runs merge by
 * adding both. */
#ifndef KILN_TARGET_H
#define KILN_TARGET_H

#include "ir.h"

typedef struct Link {
    const char *name;
    double bandwidth;          /* bytes/s per device, one direction */
    double latency;            /* seconds */
} Link;

typedef struct GemmRate { int64_t M, N, K; double rate; } GemmRate;

typedef struct Target {
    const char *name, *path;   /* path NULL for the detected host */
    const char *device_name;
    int nodes, per_node;       /* devices = nodes * per_node */
    double flops_f32, flops_16; /* FLOP/s per device: float32, and float16/bfloat16 */
    double mem_bytes;          /* per device (the host: all of it) */
    double mem_bw;             /* bytes/s per device */
    Link intra, inter;
    double gemm_efficiency;    /* fraction of peak the expert GEMMs reach (files: an assumption, default 0.6) */
    bool shared_memory;
    bool measured;             /* figures measured on this machine (host) */
    GemmRate rates[16];        /* the host's measured GEMM rates, by shape */
    int nrates;
} Target;

typedef struct ProfileLayer {
    const char *name;
    int64_t experts, tokens, top_k;
    double *counts;
} ProfileLayer;

typedef struct RoutingProfile {
    ProfileLayer *layers;
    int n, cap;
    int runs;
} RoutingProfile;

/* The placement options the CLI passes to the "place" pass. */
typedef enum { PLACE_CONTIGUOUS, PLACE_ROUND_ROBIN, PLACE_BALANCED } PlaceStrategy;
typedef struct PlaceOpts {
    Target *target;
    const RoutingProfile *profile; /* NULL: uniform routing */
    PlaceStrategy strategy;
    int redundant;                 /* extra expert slots per layer; -1: the strategy's default */
} PlaceOpts;

/* frontend/target.c */
bool target_load(Arena *a, const char *spec, const char *home, int threads, Target *t, Diags *d, PtrVec *deps);
bool profile_load(Arena *a, const char *path, RoutingProfile *p, Diags *d, PtrVec *deps);
/* FLOP/s one device reaches on an M x N x K float32 GEMM (the host measures it). */
double target_gemm_rate(Target *t, int64_t M, int64_t N, int64_t K);
const char *place_strategy_name(PlaceStrategy s);
bool place_strategy_parse(const char *s, PlaceStrategy *out);

#endif
