#!/usr/bin/env bash
# run.sh: coverage-guided fuzzing of kiln's untrusted-input readers with
# libFuzzer, under AddressSanitizer (LeakSanitizer on) and UBSan.
#
#   tests/fuzz/run.sh [BUILD_DIR [RUNS [HARNESS...]]]
#
# Builds one libFuzzer binary per reader (fuzz_*.c beside this script) with
# clang into BUILD_DIR [build-fuzz], writes their seed corpora there
# (make_corpus.py), then runs each harness for RUNS executions [1000000], on a
# copy of its seeds as the working corpus, with a per-input timeout of 10 s and
# an RSS limit of 2 GiB. One line per harness, then `N passed, N failed`; a
# harness that crashes, trips a sanitizer, leaks, times out or runs out of
# memory fails, and the file that reproduces it is named. Exit status: 0 when
# all passed. RUNS=0 only builds (and writes the corpora).
#
# Harnesses: onnx (frontend/onnx.c onnx_load, then arity, canonicalize/shape inference and
# verify), kir (frontend/kir.c kir_load_mem), npy and pb (runtime/io.c: the
# tensor, sequence and optional readers a compiled executable's main uses),
# target and profile (frontend/target.c: target files and routing profiles).
#
# Environment: CLANG [clang], KILN [BUILD/bin/kiln of the main build, KILN_BUILD
# or build: the kiln that makes the text IR seeds; without it the kir corpus
# holds only make_corpus.py's own texts], FUZZ_TIMEOUT [10], FUZZ_RSS_MB
# [2048], FUZZ_FLAGS (more libFuzzer flags), FUZZ_CFLAGS (more compiler flags,
# e.g. -fno-sanitize=nonnull-attribute to fuzz past a known report; use another
# BUILD_DIR then, objects are not rebuilt when only flags change). Needs clang (libFuzzer),
# protoc-c, libprotobuf-c, libjansson, python3-numpy and python3-onnx: what
# `make` installs (scripts/deps.sh) plus clang.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
FUZZ="$ROOT/tests/fuzz"
B=${1:-build-fuzz}
RUNS=${2:-1000000}
shift $(($# < 2 ? $# : 2))
case "$B" in /*) ;; *) B="$ROOT/$B" ;; esac
CLANG=${CLANG:-clang}
ONNX_PROTO=/usr/lib/python3/dist-packages/onnx/onnx.proto
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
CFLAGS_F="-std=gnu11 -O1 -g $SAN -fsanitize=fuzzer-no-link -w ${FUZZ_CFLAGS:-}"
HARNESSES=(onnx kir npy pb target profile)
[ $# -gt 0 ] && HARNESSES=("$@")

die() { echo "fuzz: $*" >&2; exit 2; }
command -v "$CLANG" >/dev/null || die "$CLANG not found (apt-get install clang)"
command -v protoc-c >/dev/null || die "protoc-c not found (run make first: scripts/deps.sh installs it)"
mkdir -p "$B/obj" "$B/gen" "$B/bin" "$B/crashes" || die "cannot create $B"
# libFuzzer and the sanitizers' runtimes are Debian's libclang-rt-14-dev (a
# Recommends of clang, which scripts/deps.sh installs without them)
if [ ! -x "$B/bin/.probe" ]; then
    printf '#include <stdint.h>\n#include <stddef.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n' >"$B/bin/.probe.c"
    "$CLANG" $SAN -fsanitize=fuzzer "$B/bin/.probe.c" -o "$B/bin/.probe" 2>/dev/null ||
        die "$CLANG cannot link -fsanitize=fuzzer,address,undefined: apt-get install libclang-rt-14-dev"
fi

# ---- build ----
# An object is rebuilt when it is missing or older than its source or any
# header its .d file names (clang -MMD).
stale() { # OBJ
    local o=$1 d=${1%.o}.d dep
    [ -f "$o" ] && [ -f "$d" ] || return 0
    for dep in $(sed -e 's/^[^:]*://' -e 's/\\$//' "$d"); do
        [ "$dep" -nt "$o" ] && return 0
    done
    return 1
}
obj() { # SOURCE (relative to ROOT, or absolute) -> prints the object path
    local src=$1 o
    case "$src" in /*) o="$B/obj/gen/$(basename "${src%.c}").o" ;; *) o="$B/obj/${src%.c}.o"; src="$ROOT/$src" ;; esac
    if stale "$o"; then
        mkdir -p "$(dirname "$o")"
        "$CLANG" $CFLAGS_F -I"$B/gen" -MMD -MF "${o%.o}.d" -c "$src" -o "$o" >&2 || return 1
    fi
    echo "$o"
}
if [ ! -f "$B/gen/onnx.pb-c.c" ] || [ "$ONNX_PROTO" -nt "$B/gen/onnx.pb-c.c" ]; then
    protoc-c --c_out="$B/gen" -I"$(dirname "$ONNX_PROTO")" "$ONNX_PROTO" || die "protoc-c failed"
fi

IR_SRC=$(cd "$ROOT" && ls ir/*.c)
declare -A SRCS LIBS
SRCS[onnx]="$IR_SRC passes/canonicalize.c frontend/common.c frontend/onnx.c $B/gen/onnx.pb-c.c"
LIBS[onnx]="-lprotobuf-c -lm"
SRCS[kir]="$IR_SRC passes/canonicalize.c frontend/common.c frontend/kir.c"
LIBS[kir]="-lm"
SRCS[npy]="runtime/io.c runtime/rt.c runtime/scratch.c runtime/strings.c"
LIBS[npy]="-lm -lpthread"
SRCS[pb]="runtime/io.c runtime/rt.c runtime/scratch.c runtime/strings.c"
LIBS[pb]="-lm -lpthread"
GEMM_SRC=$(cd "$ROOT" && ls runtime/gemm.c runtime/x86/gemm_*.c runtime/arm/gemm_*.c 2>/dev/null) # the GEMM and its microkernels
SRCS[target]="$IR_SRC frontend/common.c frontend/target.c runtime/rt.c runtime/scratch.c $GEMM_SRC runtime/io.c runtime/strings.c"
LIBS[target]="-ljansson -lm -lpthread"
SRCS[profile]="${SRCS[target]}"
LIBS[profile]="${LIBS[target]}"

build_failed=()
for h in "${HARNESSES[@]}"; do
    [ -n "${SRCS[$h]:-}" ] || die "unknown harness '$h' (${!SRCS[*]})"
    objs=() ok=1
    for s in ${SRCS[$h]}; do o=$(obj "$s") || { ok=0; break; }; objs+=("$o"); done
    exe="$B/bin/fuzz_$h"
    if [ $ok = 1 ]; then
        newest=0
        for f in "$FUZZ/fuzz_$h.c" "$FUZZ"/*.h "${objs[@]}"; do [ ! -f "$exe" ] || [ "$f" -nt "$exe" ] && newest=1; done
        if [ $newest = 1 ]; then
            "$CLANG" -std=gnu11 -O1 -g $SAN -fsanitize=fuzzer -w ${FUZZ_CFLAGS:-} "$FUZZ/fuzz_$h.c" "${objs[@]}" ${LIBS[$h]} -o "$exe" || ok=0
        fi
    fi
    [ $ok = 1 ] || { echo "fuzz $h: build failed"; build_failed+=("$h"); }
done

# ---- corpora ----
KILN=${KILN:-$ROOT/${KILN_BUILD:-build}/bin/kiln}
/usr/bin/python3 "$FUZZ/make_corpus.py" "$B/seeds" "$KILN" >/dev/null || die "make_corpus.py failed"

[ "$RUNS" -gt 0 ] 2>/dev/null || { [ ${#build_failed[@]} = 0 ] && echo "fuzz: built in $B/bin; corpora in $B/seeds"; exit $((${#build_failed[@]} > 0)); }

# ---- runs ----
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:allocator_may_return_null=0:detect_stack_use_after_return=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
passed=0 failed=${#build_failed[@]}
for h in "${HARNESSES[@]}"; do
    case " ${build_failed[*]:-} " in *" $h "*) continue ;; esac
    work="$B/corpus/$h" log="$B/logs/$h.log" art="$B/crashes/$h-"
    rm -rf "$work" && mkdir -p "$work" "$B/logs"
    cp -r "$B/seeds/$h/." "$work/" 2>/dev/null
    cp "$FUZZ/crashes/$h-"* "$work/" 2>/dev/null # the reports found so far: regressions fail at once
    dict=
    case $h in kir) dict="-dict=$B/seeds/kir.dict" ;; target|profile) dict="-dict=$B/seeds/json.dict" ;; esac
    t0=$(date +%s.%N)
    rm -rf "$B/tmp/$h" && mkdir -p "$B/tmp/$h"
    TMPDIR="$B/tmp/$h" "$B/bin/fuzz_$h" -runs="$RUNS" -timeout="${FUZZ_TIMEOUT:-10}" -rss_limit_mb="${FUZZ_RSS_MB:-2048}" \
        -artifact_prefix="$art" -print_final_stats=1 $dict ${FUZZ_FLAGS:-} "$work" </dev/null >"$log" 2>&1
    rc=$?
    rm -rf "$B/tmp/$h" # the harness's private input file, left behind when it crashed
    secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.0f", b - a }')
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    [ -n "$execs" ] || execs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$log" | tail -1)
    arts=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log")
    ncrash=$(echo -n "$arts" | grep -c .)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
    if [ $rc = 0 ] && [ "$ncrash" = 0 ]; then
        echo "fuzz $h: ${execs:-?} executions, 0 crashes, $secs s (${cov:-cov: ?})"
        passed=$((passed + 1))
    else
        why=$(grep -m1 -o -E '^[^ ]*: runtime error: .*' "$log" || grep -m1 -E '^SUMMARY: ' "$log" | sed 's/ (\/.*//; s/^SUMMARY: //')
        at=$(grep -m1 -o -E '#[0-9]+ 0x[0-9a-f]+ in [A-Za-z_0-9]+ [^ ]*/(frontend|ir|runtime|passes|codegen)/[^ ]*' "$log" | sed 's/^#[0-9]* 0x[0-9a-f]* in /at /')
        [ -n "$at" ] && why="$why, $at"
        echo "fuzz $h: ${execs:-?} executions, $((ncrash > 0 ? ncrash : 1)) crashes, $secs s: ${why:-exit status $rc} (log: $log)"
        for a in $arts; do echo "  reproducer: $a (rerun: $B/bin/fuzz_$h $a)"; done
        failed=$((failed + 1))
    fi
done
echo "$passed passed, $failed failed"
[ $failed = 0 ]
