# Kiln: `make` installs missing Debian packages (scripts/deps.sh), builds the
# compiler and its runtime into build/; `make demo` compiles and runs the bundled
# example; `make test` runs every test.
PYTHON   ?= /usr/bin/python3
BUILD    ?= build
CFLAGS   ?= -O2 -g
KCFLAGS  := -std=gnu11 -Wall -Wextra -fPIC -fno-strict-aliasing -MMD -MP $(CFLAGS)
ONNX_PROTO := /usr/lib/python3/dist-packages/onnx/onnx.proto
JOBS     ?= 2

RT_SRC   := runtime/rt.c runtime/kernels.c runtime/kernel_table.c runtime/kernels_extra.c runtime/gemm.c runtime/moe.c runtime/quant.c runtime/rnn.c runtime/io.c runtime/main.c
RT_HDR   := runtime/kiln_rt.h runtime/kiln_scalar.h runtime/kernels.def
KILN_SRC := kiln.c ir/ir.c ir/infer.c ir/infer_extra.c ir/moe.c ir/verify.c ir/print.c \
            frontend/common.c frontend/onnx.c frontend/kir.c frontend/target.c \
            passes/pipeline.c passes/infer.c passes/dce.c passes/cse.c passes/fold_bn.c passes/patterns.c passes/fuse.c passes/place.c passes/place_print.c passes/plan.c \
            codegen/lower.c codegen/lower_extra.c codegen/kir_interp.c codegen/emit_c.c codegen/emit_llvm.c codegen/elf.c codegen/link.c

RT_OBJ   := $(RT_SRC:%.c=$(BUILD)/obj/%.o)
KILN_OBJ := $(KILN_SRC:%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/gen/onnx.pb-c.o
KILN     := $(BUILD)/bin/kiln
RTLIB    := $(BUILD)/lib/libkilnrt.a
UNIT     := $(BUILD)/tests/unit

# The LLVM backend (libLLVM through its C API, Debian's llvm-dev) and the
# bitcode of the scalar functions it links into every model, built by clang per
# target triple; the runtime again for 64-bit ARM (cross gcc) for --target
# aarch64-linux-gnu. `=` (not `:=`): llvm-config exists only after deps.sh ran.
LLVM_CONFIG ?= llvm-config
CLANG       ?= clang
AARCH64_CC  ?= aarch64-linux-gnu-gcc
HOST_TRIPLE := $(shell $(CC) -dumpmachine)
LLVM_CFLAGS  = $(shell $(LLVM_CONFIG) --cflags)
LLVM_LIBS    = $(shell $(LLVM_CONFIG) --ldflags --libs)
LLVM_LINK    = $(shell $(LLVM_CONFIG) --bindir)/llvm-link
BITCODE     := $(foreach t,$(HOST_TRIPLE) aarch64-linux-gnu,$(BUILD)/lib/$(t)/kiln_scalar.bc $(BUILD)/lib/$(t)/kiln_rt.bc)
# the kernels' bitcode (-O3 links it into each model): the runtime less main, I/O and the kernel table
RT_BC_SRC   := $(filter-out runtime/main.c runtime/io.c runtime/kernel_table.c,$(RT_SRC))
RTLIB_A64   := $(BUILD)/lib/aarch64-linux-gnu/libkilnrt.a
RT_OBJ_A64  := $(RT_SRC:%.c=$(BUILD)/obj-aarch64/%.o)

.PHONY: all deps demo test test-sanitize fuzz bench bench-compile clean
TARGETS  := $(patsubst %,$(BUILD)/%,$(wildcard targets/*.json))
all: $(KILN) $(RTLIB) $(BUILD)/include/kiln_rt.h $(TARGETS) $(BITCODE) $(RTLIB_A64)

$(BUILD)/lib/%/kiln_scalar.bc: runtime/scalar_bc.c runtime/kiln_scalar.h $(BUILD)/.deps-ok
	@mkdir -p $(dir $@)
	$(CLANG) --target=$* -std=gnu11 -O2 -ffp-contract=off -fno-strict-aliasing -emit-llvm -c $< -o $@

$(BUILD)/bc/%/all.bc: $(RT_BC_SRC) $(RT_HDR) runtime/kiln_simd.h $(BUILD)/.deps-ok
	@mkdir -p $(dir $@)
	for f in $(RT_BC_SRC); do $(CLANG) --target=$* -std=gnu11 -O2 -fPIC -fno-strict-aliasing -emit-llvm -c $$f \
	  -o $(dir $@)$$(basename $$f .c).bc || exit 1; done
	$(LLVM_LINK) $(patsubst runtime/%.c,$(dir $@)%.bc,$(RT_BC_SRC)) -o $@

$(BUILD)/lib/%/kiln_rt.bc: $(BUILD)/bc/%/all.bc
	@mkdir -p $(dir $@)
	cp $< $@

# cross-compiled with fixed flags (the sanitizers' CFLAGS have no ARM libraries here)
$(BUILD)/obj-aarch64/runtime/%.o: runtime/%.c $(BUILD)/.deps-ok
	@mkdir -p $(dir $@)
	$(AARCH64_CC) -std=gnu11 -Wall -Wextra -fPIC -fno-strict-aliasing -MMD -MP -O2 -g $(RTVEC) -c $< -o $@

$(RTLIB_A64): $(RT_OBJ_A64)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/obj/codegen/emit_llvm.o: codegen/emit_llvm.c $(BUILD)/.deps-ok
	@mkdir -p $(dir $@)
	$(CC) $(KCFLAGS) $(LLVM_CFLAGS) -c $< -o $@

# the shipped target files, where `--target NAME` finds them
$(BUILD)/targets/%.json: targets/%.json
	@mkdir -p $(dir $@)
	cp $< $@

deps: $(BUILD)/.deps-ok
$(BUILD)/.deps-ok: scripts/deps.sh
	@mkdir -p $(BUILD)
	bash scripts/deps.sh
	@touch $@

$(BUILD)/gen/onnx.pb-c.c $(BUILD)/gen/onnx.pb-c.h: $(BUILD)/.deps-ok
	@mkdir -p $(BUILD)/gen
	protoc-c --c_out=$(BUILD)/gen -I$(dir $(ONNX_PROTO)) $(ONNX_PROTO)

$(BUILD)/obj/gen/onnx.pb-c.o: $(BUILD)/gen/onnx.pb-c.c
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -fPIC $(CFLAGS) -I$(BUILD)/gen -c $< -o $@

$(BUILD)/obj/frontend/onnx.o: $(BUILD)/gen/onnx.pb-c.h
# The runtime's plain loops are auto-vectorized (and cloned per ISA where marked
# KILN_CLONES in runtime/kiln_simd.h).
RTVEC    := -ftree-vectorize -fvect-cost-model=dynamic
$(BUILD)/obj/runtime/%.o: runtime/%.c $(BUILD)/.deps-ok
	@mkdir -p $(dir $@)
	$(CC) $(KCFLAGS) $(RTVEC) -c $< -o $@

$(BUILD)/obj/%.o: %.c $(BUILD)/.deps-ok
	@mkdir -p $(dir $@)
	$(CC) $(KCFLAGS) -I$(BUILD)/gen -c $< -o $@

$(RTLIB): $(RT_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/include/kiln_rt.h: $(RT_HDR)
	@mkdir -p $(BUILD)/include
	cp $(RT_HDR) $(BUILD)/include/

$(KILN): $(KILN_OBJ) $(RTLIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) $(KILN_OBJ) $(RTLIB) -lprotobuf-c -ljansson $(LLVM_LIBS) -lm -lpthread -o $@

# The bundled example: a small MLP built by a python3-onnx script.
examples/mlp/mlp.onnx examples/mlp/input_0.npy: examples/mlp/make_model.py $(BUILD)/.deps-ok
	$(PYTHON) examples/mlp/make_model.py examples/mlp

demo: all examples/mlp/mlp.onnx
	$(KILN) compile examples/mlp/mlp.onnx -o $(BUILD)/mlp -v
	$(BUILD)/mlp examples/mlp/input_0.npy -o $(BUILD)/demo-out
	$(PYTHON) -c "import numpy as np; y=np.load('$(BUILD)/demo-out/output_0.npy'); print('output_0', y.dtype, y.shape); print(y)"

test: all $(UNIT) bench/node_modules/onnxruntime-node
	KILN_BUILD=$(BUILD) $(PYTHON) tests/run_tests.py --jobs $(JOBS)

# The whole suite again with kiln, its runtime and every compiled model built
# with AddressSanitizer and UBSan (any report fails the run).
SAN := -fsanitize=address,undefined -fno-omit-frame-pointer
test-sanitize: bench/node_modules/onnxruntime-node
	$(MAKE) BUILD=build-san CFLAGS="-O1 -g $(SAN)" LDFLAGS="$(SAN)" all build-san/tests/unit
	KILN_BUILD=build-san CC="cc $(SAN)" ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	  $(PYTHON) tests/run_tests.py --jobs $(JOBS)

# Mutation fuzzing of the ONNX and text-IR readers under the sanitizers (not part of `make test`).
fuzz:
	$(MAKE) BUILD=build-san CFLAGS="-O1 -g $(SAN)" LDFLAGS="$(SAN)" all
	KILN_BUILD=build-san $(PYTHON) tests/fuzz.py --runs 500

clean:
	rm -rf $(BUILD) build-san examples/mlp/mlp.onnx examples/mlp/input_0.npy

-include $(shell find $(BUILD)/obj $(BUILD)/obj-aarch64 -name '*.d' 2>/dev/null)

$(UNIT): tests/unit/test_unit.c $(filter-out $(BUILD)/obj/kiln.o,$(KILN_OBJ)) $(RTLIB)
	@mkdir -p $(dir $@)
	$(CC) $(KCFLAGS) $(LDFLAGS) -I$(BUILD)/gen $^ -lprotobuf-c -ljansson $(LLVM_LIBS) -lm -lpthread -o $@

# `make bench`: kiln against ONNX Runtime (npm onnxruntime-node, CPU).
bench/node_modules/onnxruntime-node: bench/package.json
	bash scripts/deps.sh bench
	cd bench && npm install --ignore-scripts --no-audit --no-fund
	@touch $@

bench: all bench/node_modules/onnxruntime-node
	$(PYTHON) bench/run.py $(BUILD)
	KILN_BUILD=$(BUILD) $(PYTHON) bench/moe_place.py
	$(PYTHON) bench/compile_time.py $(BUILD)

# compile time of the C and LLVM backends (also the end of `make bench`)
bench-compile: all
	$(PYTHON) bench/compile_time.py $(BUILD)
