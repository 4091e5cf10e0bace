# fuzz.mk: the fuzz targets' build and run rules (included by the Makefile).
#
#   make fuzz          installs clang when missing, builds the library and the
#                      targets with libFuzzer + ASan + UBSan into $(BUILD)/fuzz-clang,
#                      runs each target FUZZ_SECONDS (default 60) from its seed
#                      corpus, prints executions, coverage and findings; fails on a finding
#   make fuzz-ci       the same, FUZZ_CI_SECONDS (15) per target
#   make fuzz-replay   no clang: each target built with $(CC) against the normal
#                      library, fed every seed and every saved regression
#   make fuzz-pending  each known, unfixed finding (fuzz/pending/<name>/), one run
#                      per input with every check on: says which still fail
# Targets: fuzz/fuzz_<name>.c, one LLVMFuzzerTestOneInput each; seeds in
# fuzz/corpus/<name>/, crashing inputs kept in fuzz/regressions/<name>/ (see fuzz/README.md).

FUZZ_TARGETS    := checkpoint sweep compare gguf safetensors tokenizer
FUZZ_SECONDS    ?= 60
FUZZ_CI_SECONDS ?= 15
FUZZ_CC         ?= clang
FUZZ_DIR        := $(BUILD)/fuzz-clang
# instrumented like test-asan, at -O1 so a run gets through many inputs;
# clang knows no -Wformat-truncation (the Makefile adds its -Wno- for gcc only)
FUZZ_CFLAGS := -std=c11 -O1 -g $(filter-out -Wno-format-truncation,$(WARN)) -pthread \
               $(BLAS_CFLAGS) $(HWLOC_CFLAGS) -fsanitize=address,undefined \
               -fno-omit-frame-pointer -fno-sanitize-recover=undefined
FUZZ_LIB_OBJ   = $(LIB_SRC:%.c=$(FUZZ_DIR)/%.o)
FUZZ_BIN       = $(FUZZ_TARGETS:%=$(FUZZ_DIR)/fuzz-%)
FUZZ_REPLAY    = $(FUZZ_TARGETS:%=$(BUILD)/fuzz/replay-%)

.PHONY: fuzz fuzz-only fuzz-ci fuzz-deps fuzz-build fuzz-replay fuzz-pending

# clang from Debian, as the deps target installs the project's packages;
# libFuzzer's runtime is only a Recommends of clang: installed when a trivial
# fuzzer does not link. The probe's file names, the probe's function and the
# message are variables only to keep the recipe lines short.
FUZZ_PROBE       = /tmp/kvb-fuzz-probe-$$$$
FUZZ_PROBE_FN    = int LLVMFuzzerTestOneInput(const char *d, unsigned long n)
FUZZ_NO_CC       = fuzz: $(FUZZ_CC) does not run (FUZZ_CC names the clang that builds the targets)
fuzz-deps:
	@need=""; \
	dpkg-query -W -f='$${Status}' clang 2>/dev/null | grep -q "install ok installed" || need="clang"; \
	if [ -z "$$need" ]; then \
	  printf '$(FUZZ_PROBE_FN);\n$(FUZZ_PROBE_FN) { (void)d; (void)n; return 0; }\n' \
	    > $(FUZZ_PROBE).c; \
	  $(FUZZ_CC) -fsanitize=fuzzer $(FUZZ_PROBE).c -o $(FUZZ_PROBE) >/dev/null 2>&1 || \
	    need="libclang-rt-$$($(FUZZ_CC) -dumpversion 2>/dev/null | cut -d. -f1)-dev"; \
	  rm -f $(FUZZ_PROBE).c $(FUZZ_PROBE); \
	fi; \
	case "$$need" in libclang-rt--dev) \
	  echo "$(FUZZ_NO_CC)"; exit 1;; esac; \
	if [ -z "$$need" ]; then exit 0; fi; \
	$(MAKE) --no-print-directory deps PKGS="$$need" || exit 1; \
	case "$$need" in clang) $(MAKE) --no-print-directory fuzz-deps;; esac

fuzz: fuzz-deps
	@$(MAKE) --no-print-directory fuzz-only
fuzz-ci: fuzz-deps
	@$(MAKE) --no-print-directory fuzz-only FUZZ_SECONDS=$(FUZZ_CI_SECONDS)
fuzz-build: $(FUZZ_BIN)
fuzz-only: $(FUZZ_BIN)
	@sh fuzz/run.sh $(FUZZ_DIR) $(FUZZ_SECONDS) $(FUZZ_TARGETS)

$(FUZZ_DIR)/%.o: %.c fuzz/fuzz_util.h $(BUILD)/kvb_build_info.h
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CLANG   $<")
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) $(DEPFLAGS) -fsanitize=fuzzer-no-link -I$(BUILD) -c $< -o $@

$(FUZZ_DIR)/libkvbench.a: $(FUZZ_LIB_OBJ)
	$(Q)rm -f $@ && ar rcs $@ $^

$(FUZZ_DIR)/fuzz-%: $(FUZZ_DIR)/fuzz/fuzz_%.o $(FUZZ_DIR)/fuzz/fuzz_util.o $(FUZZ_DIR)/libkvbench.a
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer $^ $(LDLIBS) -o $@

# the replay: the same target functions, the normal compiler and flags
$(BUILD)/fuzz/fuzz_util.o $(BUILD)/fuzz/replay.o $(FUZZ_TARGETS:%=$(BUILD)/fuzz/fuzz_%.o): \
  fuzz/fuzz_util.h

$(BUILD)/fuzz/replay-%: $(BUILD)/fuzz/fuzz_%.o $(BUILD)/fuzz/fuzz_util.o $(BUILD)/fuzz/replay.o \
  $(BUILD)/libkvbench.a
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(CFLAGS) $^ $(LDLIBS) -o $@

# each target over its seeds and regressions (not fuzz/pending: known, unfixed);
# FUZZ_REPLAY_HOW, the failure's hint for target $$t, is a variable only to keep
# the recipe lines short
FUZZ_REPLAY_HOW = ./$(BUILD)/fuzz/replay-$$t -v fuzz/corpus/$$t fuzz/regressions/$$t \
                  names each input
fuzz-replay: $(FUZZ_REPLAY)
	@rc=0; for t in $(FUZZ_TARGETS); do \
	  printf 'fuzz-replay %s: ' $$t; \
	  ./$(BUILD)/fuzz/replay-$$t fuzz/corpus/$$t fuzz/regressions/$$t || \
	    { rc=1; echo "fuzz-replay $$t FAILED ($(FUZZ_REPLAY_HOW))"; }; \
	done; exit $$rc

# known findings awaiting a fix elsewhere: every check on (KVB_FUZZ_ALL_CHECKS),
# each input its own process (a failure aborts); informational, exits 0
$(BUILD)/fuzz/pending/%.o: fuzz/%.c fuzz/fuzz_util.h
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $< (all checks)")
	$(Q)$(CC) $(CFLAGS) $(DEPFLAGS) -DKVB_FUZZ_ALL_CHECKS -c $< -o $@

$(BUILD)/fuzz/pending-%: $(BUILD)/fuzz/pending/fuzz_%.o $(BUILD)/fuzz/fuzz_util.o \
  $(BUILD)/fuzz/replay.o $(BUILD)/libkvbench.a
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(CFLAGS) $^ $(LDLIBS) -o $@

# FUZZ_PENDING_UB is a variable only to keep the recipe lines short
FUZZ_PENDING_UB = fuzz-pending: undefined behaviour fails only in a sanitizer build:
fuzz-pending: $(FUZZ_TARGETS:%=$(BUILD)/fuzz/pending-%)
	@for t in $(FUZZ_TARGETS); do for f in fuzz/pending/$$t/*; do [ -f "$$f" ] || continue; \
	  if ./$(BUILD)/fuzz/pending-$$t "$$f" >/dev/null 2>&1; then \
	    echo "fuzz-pending $$f: passes now (git mv it to fuzz/regressions/$$t/)"; \
	  else echo "fuzz-pending $$f: still fails (./$(BUILD)/fuzz/pending-$$t $$f)"; fi; \
	done; done; \
	case "$(OPT)" in *sanitize*) ;; *) echo "$(FUZZ_PENDING_UB)" \
	  "make BUILD=build-asan OPT=\"-O1 -g $(SAN_FLAGS)\" fuzz-pending";; esac

.PRECIOUS: $(FUZZ_DIR)/%.o $(BUILD)/fuzz/%.o $(BUILD)/fuzz/pending/%.o
