# kvbench: build, test, run. `make run` and `make test` are the two set-up
# commands; both install missing Debian packages first (as root or via sudo).

CC      ?= cc
PKGS    := build-essential pkg-config libbenchmark-dev libopenblas-dev libhwloc-dev gnuplot-nox \
           libcmocka-dev libcjson-dev
BLAS_CFLAGS := $(shell pkg-config --cflags openblas 2>/dev/null)
BLAS_LIBS   := $(shell pkg-config --libs openblas 2>/dev/null || echo -lopenblas)
CMOCKA_LIBS := $(shell pkg-config --libs cmocka 2>/dev/null || echo -lcmocka)
GBENCH_LIBS := $(shell pkg-config --libs benchmark 2>/dev/null || echo -lbenchmark) -lpthread
HWLOC_CFLAGS := $(shell pkg-config --cflags hwloc 2>/dev/null)
HWLOC_LIBS  := $(shell pkg-config --libs hwloc 2>/dev/null || echo -lhwloc)
CJSON_CFLAGS := $(shell pkg-config --cflags libcjson 2>/dev/null)
CJSON_LIBS  := $(shell pkg-config --libs libcjson 2>/dev/null || echo -lcjson)
CXX     ?= g++

# snprintf truncation is the intended, safe behaviour for messages and labels
# (the flag only where the compiler knows it: clang does not)
WARN    := -Wall -Wextra -Werror -Wshadow -Wvla -Wstrict-prototypes -Wmissing-prototypes \
           $(shell $(CC) -Werror -Wno-format-truncation -E -x c /dev/null >/dev/null 2>&1 && \
                   echo -Wno-format-truncation)
OPT     ?= -O3 -g
CFLAGS  := -std=c11 $(OPT) $(WARN) -pthread $(BLAS_CFLAGS) $(HWLOC_CFLAGS) $(CJSON_CFLAGS)
CXXFLAGS := -std=c++17 $(OPT) -Wall -Wextra -Werror -pthread
LDLIBS  := $(BLAS_LIBS) $(HWLOC_LIBS) $(CJSON_LIBS) -lm -pthread

BUILD   ?= build
SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

# the layers, lowest first (an arrow only points down): base/ (files, clocks, stats),
# impls/ (types, kernels, then backends and their registry), model/ (the decoder), harness/
# (the measurements and sweeps), analysis/ (reports and compare); cli/ on top.
# impls/ by wildcard: a new backend is a file there and a line in impls/registry.c
LIB_SRC := base/probe.c base/stats.c base/textio.c base/datadir.c \
           base/afile.c base/json.c base/csv.c \
           $(sort $(wildcard impls/types/*.c impls/kernels/*.c impls/*.c)) \
           $(sort $(wildcard model/*.c)) \
           harness/ceiling.c harness/run.c harness/attend_bench.c harness/serve.c \
           harness/sched.c harness/serve_run.c \
           harness/quality.c harness/ppl.c harness/topo.c harness/results.c \
           harness/sweep_def.c harness/sweep_child.c harness/sweep_run.c harness/sweep_merge.c \
           harness/sweep_slurm.c harness/sweep_ab.c \
           analysis/report.c analysis/report_read.c analysis/report_plot.c analysis/report_ppl.c \
           analysis/compare.c analysis/compare_load.c analysis/compare_dirs.c \
           analysis/history.c analysis/history_plot.c
LIB_OBJ  = $(LIB_SRC:%.c=$(BUILD)/%.o)
# the command line: main.c's table dispatches to a cmd_*.c per command
CLI_SRC := $(wildcard cli/*.c)
CLI_OBJ  = $(CLI_SRC:%.c=$(BUILD)/%.o)
# one cmocka binary per tests/test_*.c (each linked with tests/testlib.c),
# one shell suite per tests/cli_*.sh
TEST_SRC := $(wildcard tests/test_*.c)
TEST_BIN  = $(TEST_SRC:tests/%.c=$(BUILD)/%)
CLI_TESTS := $(wildcard tests/cli_*.sh)
# header dependencies: each object's .d file (-MMD) names the headers it read
DEPFLAGS := -MMD -MP

# what `make run` runs: both backends on stories15m, a few minutes on 2 cores
RUN_ARGS ?= --backend nocache,contiguous --mode grow,prealloc --preset stories15m \
            --prompt 16 --tokens 512 --reps 3 --time-budget 240

.PHONY: all install deps run run-only test test-only test-asan bench bench-only sweep sweep-only \
        plots regress regress-only baseline baseline-only check clean help \
        deps-slurm test-slurm test-slurm-only ab ab-only
all: $(BUILD)/kvbench $(TEST_BIN) $(BUILD)/kvbench-gbench $(BUILD)/kvbench-roofline

help:
	@echo "make run        install missing packages, build, run the default benchmark, plot"
	@echo "make test       build and run the test suite"
	@echo "make test-asan  the same tests under AddressSanitizer + UBSan"
	@echo "make test-slurm the smoke sweep through a real one-node Slurm started here"
	@echo "                (installs slurm-wlm and munge; SKIP where it cannot)"
	@echo "make bench      Google Benchmark micro-benchmarks -> results/<run-id>-gbench/gbench.json"
	@echo "make sweep      the default sweep (SWEEP=smoke|default|long-context)"
	@echo "                -> results/<UTC>-sweep-NAME/"
	@echo "make plots      plots and report for the newest results (or RESULTS=dir)"
	@echo "make regress    the smoke sweep against results/baselines/smoke/<this CPU>"
	@echo "make ab         BASE=rev [NEW=rev]: two commits built and run in turns, then judged"
	@echo "                (fails on a regression)"
	@echo "make baseline   record or refresh results/baselines/smoke/<this CPU>"
	@echo "make fuzz       libFuzzer targets, FUZZ_SECONDS each (fuzz/README.md)"
	@echo "make install    PREFIX=/usr/local: bin/kvbench, bin/kvbench-gbench,"
	@echo "                share/kvbench (sweeps, plot scripts)"
	@echo "make clean      remove build outputs (results/ is kept)"

# install_missing PACKAGES: the Debian packages not yet installed, as root or through sudo;
# without either, the exact apt-get line and a failure (one mechanism for deps and deps-slurm)
define install_missing
	@missing=""; for p in $(1); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || \
	    missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	echo "kvbench: installing missing packages:$$missing"; \
	if [ "$$(id -u)" = 0 ]; then SUDO=""; \
	elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo"; \
	else echo "kvbench: not root and no sudo; run this, then make again:"; \
	     echo "  sudo apt-get install -y$$missing"; exit 1; fi; \
	export DEBIAN_FRONTEND=noninteractive; \
	$$SUDO apt-get install -y -q $$missing || \
	  { $$SUDO apt-get update -q && $$SUDO apt-get install -y -q $$missing; }
endef
deps:
	$(call install_missing,$(PKGS))
# what make test-slurm starts: a one-node Slurm (slurmctld, slurmd) and its munge
SLURM_PKGS := slurm-wlm munge
deps-slurm:
	$(call install_missing,$(SLURM_PKGS))

# commit, dirty flag and flags for meta.json; rewritten only when they change
$(BUILD)/kvb_build_info.h: FORCE
	@mkdir -p $(BUILD)
	@commit=$$(git rev-parse --verify -q HEAD 2>/dev/null || echo unknown); \
	dirty=$$(git status --porcelain --untracked-files=no 2>/dev/null | grep -q . && \
	         echo 1 || echo 0); \
	git rev-parse --verify -q HEAD >/dev/null 2>&1 || dirty=-1; \
	printf '#define KVB_GIT_COMMIT "%s"\n#define KVB_GIT_DIRTY %s\n#define KVB_BUILD_CFLAGS "%s"\n' \
	  "$$commit" "$$dirty" "$(CC) $(CFLAGS)" > $@.tmp; \
	cmp -s $@.tmp $@ && rm -f $@.tmp || mv $@.tmp $@
FORCE:

# V=1 shows the full compiler lines
Q := $(if $(V),,@)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS) $(DEPFLAGS) -c $< -o $@

$(BUILD)/harness/results.o: harness/results.c $(BUILD)/kvb_build_info.h
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS) $(DEPFLAGS) -I$(BUILD) -c $< -o $@

$(BUILD)/libkvbench.a: $(LIB_OBJ)
	$(Q)rm -f $@ && ar rcs $@ $^

$(BUILD)/kvbench: $(CLI_OBJ) $(BUILD)/libkvbench.a
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(CFLAGS) $^ $(LDLIBS) -o $@

$(BUILD)/bench/kvbench_gbench.o: bench/kvbench_gbench.c $(BUILD)/kvb_build_info.h
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS) $(DEPFLAGS) -I$(BUILD) -c $< -o $@

$(BUILD)/bench/gbench.o: bench/gbench.cc
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CXX     $<")
	$(Q)$(CXX) $(CXXFLAGS) $(DEPFLAGS) -c $< -o $@

$(BUILD)/kvbench-gbench: $(BUILD)/bench/kvbench_gbench.o $(BUILD)/bench/gbench.o \
                         $(BUILD)/libkvbench.a
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CXX) $(CXXFLAGS) $^ $(LDLIBS) $(GBENCH_LIBS) -o $@

# the machine's side of a kernel's roofline (bench/roofline.c; docs/attention.md)
$(BUILD)/kvbench-roofline: bench/roofline.c $(BUILD)/libkvbench.a
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(CFLAGS) $^ $(LDLIBS) -o $@

# every test binary links the shared test library (tests/testlib.[ch])
$(BUILD)/test_%: $(BUILD)/tests/test_%.o $(BUILD)/tests/testlib.o $(BUILD)/libkvbench.a
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(CFLAGS) $^ $(CMOCKA_LIBS) $(LDLIBS) -o $@

# the decoder's test binaries and the scheduler's share a tiny model (tests/model_fixture.[ch])
$(BUILD)/test_forward $(BUILD)/test_step $(BUILD)/test_sched: \
  $(BUILD)/test_%: $(BUILD)/tests/test_%.o \
  $(BUILD)/tests/model_fixture.o $(BUILD)/tests/testlib.o $(BUILD)/libkvbench.a
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(CFLAGS) $^ $(CMOCKA_LIBS) $(LDLIBS) -o $@

# the loaders' two test binaries share a fixture (tests/load_fixture.[ch])
$(BUILD)/test_load $(BUILD)/test_load_bad: $(BUILD)/test_%: $(BUILD)/tests/test_%.o \
  $(BUILD)/tests/load_fixture.o $(BUILD)/tests/testlib.o $(BUILD)/libkvbench.a
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(CFLAGS) $^ $(CMOCKA_LIBS) $(LDLIBS) -o $@

# run and test install packages first, then build in a fresh make so that
# pkg-config sees what was just installed
run: deps
	@$(MAKE) --no-print-directory run-only
test: deps
	@$(MAKE) --no-print-directory test-only

# kvbench's own exit status decides; plots are drawn only from a complete run
run-only: $(BUILD)/kvbench
	./$(BUILD)/kvbench run $(RUN_ARGS) > $(BUILD)/last-run.txt; rc=$$?; cat $(BUILD)/last-run.txt; \
	  [ $$rc -eq 0 ] || exit $$rc; \
	  dir=$$(sed -n 's/^results: //p' $(BUILD)/last-run.txt | tail -n 1); \
	  KVBENCH=./$(BUILD)/kvbench sh plots/plot.sh "$$dir"

# a named sweep (bench/sweeps/$(SWEEP).sweep) into results/<UTC>-sweep-$(SWEEP)/
# with its report and plots; interrupted, it stays .partial: kvbench sweep --resume DIR.partial
SWEEP ?= default
sweep: deps
	@$(MAKE) --no-print-directory sweep-only
sweep-only: $(BUILD)/kvbench
	./$(BUILD)/kvbench sweep $(SWEEP)

# The regression gate: the smoke sweep, compared with the committed baseline
# (kvbench compare exits 1 on a regression, so make fails). PLANT=pct builds a copy whose paged
# attend does pct% more work, PLANT_Q8=pct one whose q8 step is pct% coarser (its errors grow
# as much), to check that the gate catches them.
# One baseline per CPU model, BASELINES/<kvbench info --cpu-key>/: ratios gate only
# against the CPU model they were measured on, seeded errors only between results of
# the same kernels, so a machine of another model is compared with the first baseline
# there and only the figures that hold on any CPU gate (make baseline records one for it).
# BASELINE=dir names one outright.
# A baseline with a STALE file beside its runs/ (make baseline on another CPU model
# writes it: a kernel changed there) gates bytes and seeded errors only (compare
# reads the file and says why): its ratios were measured on the kernels before.
BASELINES ?= results/baselines/smoke
BASELINE  ?=
PLANT    ?=
PLANT_Q8 ?=
# what may fail the gate: ratios measured within each run (on the baseline's CPU
# model) and the deterministic figures; absolute times and read-ceiling fractions
# of two runs on a shared machine drift past 10%, so they are reported, not gated
# (REGRESS_GATE=all gates them too). A baseline's own GATE file (first line: the
# kinds, second: why; make baseline BASELINE_GATE=kinds writes it) replaces the
# default, for a machine whose ratios drift too much to gate; REGRESS_GATE on the
# command line wins over both.
REGRESS_GATE ?= ratio,exact,tolerance
REGRESS_PLANT := $(if $(PLANT),-DKVB_PLANT_SLOWDOWN_PCT=$(PLANT)) \
                 $(if $(PLANT_Q8),-DKVB_PLANT_COARSER_Q8_PCT=$(PLANT_Q8))
REGRESS_PLANT_DIR := build-plant$(PLANT)$(if $(PLANT_Q8),-q8-$(PLANT_Q8))
REGRESS_BUILD := $(if $(strip $(REGRESS_PLANT)),$(REGRESS_PLANT_DIR),$(BUILD))
REGRESS_TAG   := $(if $(PLANT),-plant$(PLANT))$(if $(PLANT_Q8),-plantq8-$(PLANT_Q8))
regress: deps
	@$(MAKE) --no-print-directory regress-only
regress-only:
	@$(MAKE) --no-print-directory BUILD=$(REGRESS_BUILD) \
	  $(if $(strip $(REGRESS_PLANT)),OPT="$(OPT) $(strip $(REGRESS_PLANT))") \
	  $(REGRESS_BUILD)/kvbench
	@base="$(BASELINE)"; base=$${base%/}; \
	  key=$$(./$(REGRESS_BUILD)/kvbench info --cpu-key) || exit 2; \
	  if [ -z "$$base" ]; then base="$(BASELINES)/$$key"; \
	    if [ ! -d "$$base" ]; then \
	      base=; for d in "$(BASELINES)"/*/; do \
	        case "$$d" in *.new/) ;; *) [ -d "$$d" ] && { base=$${d%/}; break; };; esac; done; \
	      [ -n "$$base" ] || \
	        { echo "regress: no baseline in $(BASELINES) (make baseline makes one)"; exit 2; }; \
	      echo "regress: no baseline for this CPU ($$key) in $(BASELINES); comparing with $$base," \
	           "where only figures that hold on any CPU can gate" \
	           "(make baseline records one for this CPU)"; \
	    fi; fi; \
	  [ -d "$$base" ] || \
	    { echo "regress: no baseline at $$base (make baseline makes one)"; exit 2; }; \
	  echo "regress: baseline $$base"; gate="$(REGRESS_GATE)"; \
	  if [ "$(origin REGRESS_GATE)" = file ] && [ -s "$$base/GATE" ]; then \
	    gate=$$(head -n 1 "$$base/GATE"); \
	    echo "regress: gate $$gate, from $$base/GATE: $$(sed -n 2p "$$base/GATE")"; fi; \
	  if [ -f "$$base/STALE" ]; then \
	    echo "regress: $$base is stale (compare gates only bytes and seeded errors" \
	    "against it; make baseline on a $$(basename "$$base") machine re-records it)"; fi; \
	  mkdir -p results; dir=results/$$(date -u +%Y%m%d-%H%M%S)-regress$(REGRESS_TAG); \
	  start=$$(date +%s); \
	  ./$(REGRESS_BUILD)/kvbench sweep smoke --quiet --out "$$dir" > /dev/null || exit $$?; \
	  ./$(REGRESS_BUILD)/kvbench compare "$$base" "$$dir" --quiet --gate "$$gate" \
	    --markdown "$$dir/compare.md" \
	    --json "$$dir/compare.json"; rc=$$?; \
	  echo "regress: $$dir/compare.md ($$(( $$(date +%s) - start )) s)"; \
	  if [ -n "$$GITHUB_STEP_SUMMARY" ]; then cat "$$dir/compare.md" >> "$$GITHUB_STEP_SUMMARY"; fi; \
	  exit $$rc

# Commit against commit on this machine, no stored baseline: kvbench ab builds BASE (and
# NEW, else this tree's build) from git into build-ab/<commit>/, runs bench/sweeps/ab.sweep's
# points with the two binaries in turns for AB_ROUNDS rounds and judges NEW against BASE,
# times included (docs/regression.md). CI runs it with BASE=HEAD~1.
BASE      ?= HEAD~1
NEW       ?=
AB_ROUNDS ?= 10
AB_FLAGS  ?=
ab: deps
	@$(MAKE) --no-print-directory ab-only
ab-only: $(BUILD)/kvbench
	@start=$$(date +%s); ./$(BUILD)/kvbench ab $(BASE) $(NEW) --rounds $(AB_ROUNDS) $(AB_FLAGS); \
	  rc=$$?; echo "ab: $$(( $$(date +%s) - start )) s"; exit $$rc

# records or refreshes this CPU's committed baseline on purpose: three runs of the
# smoke sweep in $(BASELINES)/<cpu key>/runs/ (or $(BASELINE)/runs/; compare pools
# them, so the drift between runs is part of the baseline); only what compare
# reads is kept (no report or plot data). Every other CPU model's baseline in
# $(BASELINES) gets a STALE file naming this commit, its earlier lines kept below (the
# kernels changed, so their ratios may have; MARK_STALE=no leaves them, for a refresh
# with no code change);
# this one's STALE goes.
BASELINE_RUNS ?= 3
MARK_STALE ?= yes
# BASELINE_GATE=kinds [BASELINE_GATE_WHY=text] writes the baseline's GATE file
# (BASELINE_GATE=default removes it); unset, a re-recorded baseline keeps its GATE
BASELINE_GATE ?=
BASELINE_GATE_WHY ?= set by make baseline BASELINE_GATE=$(BASELINE_GATE)
baseline: deps
	@$(MAKE) --no-print-directory baseline-only
baseline-only: $(BUILD)/kvbench
	@key=$$(./$(BUILD)/kvbench info --cpu-key) || exit 2; \
	  base="$(BASELINE)"; base=$${base%/}; \
	  [ -n "$$base" ] || base="$(patsubst %/,%,$(BASELINES))/$$key"; \
	  rm -rf "$$base.new"; mkdir -p "$$base.new/runs" || exit 1; \
	  for i in $$(seq 1 $(BASELINE_RUNS)); do \
	    ./$(BUILD)/kvbench sweep smoke --quiet --out "$$base.new/runs/$$i" > /dev/null || exit 1; \
	    rm -rf "$$base.new/runs/$$i/plots" "$$base.new/runs/$$i/report.md" \
	      "$$base.new/runs/$$i/report.html"; \
	    echo "baseline: run $$i of $(BASELINE_RUNS) done"; done; \
	  if [ -n "$(BASELINE_GATE)" ] && [ "$(BASELINE_GATE)" != default ]; then \
	    printf '%s\n' "$(BASELINE_GATE)" "$(BASELINE_GATE_WHY)" > "$$base.new/GATE"; \
	  elif [ -z "$(BASELINE_GATE)" ] && [ -f "$$base/GATE" ]; then \
	    cp "$$base/GATE" "$$base.new/GATE"; fi; \
	  rm -rf "$$base" && mv "$$base.new" "$$base" && echo "baseline: $$base"; \
	  [ ! -f "$$base/GATE" ] || echo "baseline: gate $$(head -n 1 "$$base/GATE") ($$base/GATE)"; \
	  if [ "$(MARK_STALE)" = yes ]; then \
	    commit=$$(git rev-parse --short HEAD 2>/dev/null || echo unknown); \
	    git diff --quiet HEAD -- impls model harness 2>/dev/null || \
	      commit="$$commit + uncommitted changes"; \
	    here=$$(realpath "$$base"); root=$$(realpath "$(BASELINES)"); \
	    case "$$here" in "$$root"/*) ;; *) root=; esac; \
	    for d in $${root:+"$$root"/*/}; do d=$${d%/}; \
	      case "$$d" in "$$here"|*.new) continue;; esac; [ -d "$$d/runs" ] || continue; \
	      why="since $$commit: the $$key baseline was re-recorded there;"; \
	      why="$$why re-record this one on a $$(basename "$$d") machine (make baseline)"; \
	      { printf '%s\n' "$$why" \
	          "until then make regress gates only bytes and seeded errors against it"; \
	        [ ! -f "$$d/STALE" ] || sed 's/^/earlier: /' "$$d/STALE"; } > "$$d/STALE.new" && \
	        mv "$$d/STALE.new" "$$d/STALE" && echo "baseline: marked $$d stale"; \
	    done; fi

# plots and report for the newest result directory, or RESULTS=dir
plots: $(BUILD)/kvbench
	KVBENCH=./$(BUILD)/kvbench sh plots/plot.sh $(RESULTS)

# every suite runs even when one fails; make fails if any did
test-only: $(BUILD)/kvbench $(TEST_BIN) $(BUILD)/kvbench-gbench
	@rc=0; for t in $(TEST_BIN); do echo "./$$t"; ./$$t || rc=1; done; \
	  for s in $(CLI_TESTS); do echo "sh $$s"; \
	    sh $$s ./$(BUILD)/kvbench ./$(BUILD)/kvbench-gbench || rc=1; done; \
	  $(MAKE) --no-print-directory fuzz-replay || rc=1; \
	  exit $$rc

# a real Slurm on this machine (tests/slurm_test.sh): packages first, as deps does; where they
# cannot be installed the test prints SKIP and passes, so the install's failure is not fatal
test-slurm: deps
	@$(MAKE) --no-print-directory deps-slurm || echo "kvbench: could not install $(SLURM_PKGS)"
	@$(MAKE) --no-print-directory test-slurm-only
test-slurm-only: $(BUILD)/kvbench
	sh tests/slurm_test.sh ./$(BUILD)/kvbench

# Google Benchmark JSON into results/<run-id>-gbench/, built as .partial and
# renamed only when every case ran without error. BENCH_ARGS: any
# --benchmark_* flag; the default selects the headline cases (a few minutes).
BENCH_ATTEND := attend/(contiguous|quant)/(f32|f16|q8|q4)/nh=32/nkv=(32|8)/hd=128
BENCH_ATTEND := $(BENCH_ATTEND)/ctx=(8192|32768)(/threads=[0-9]+)?$$
BENCH_ARGS ?= --benchmark_filter='$(BENCH_ATTEND)|append/contiguous/f32|prefill|decode' \
              --benchmark_min_time=0.5
bench: deps
	@$(MAKE) --no-print-directory bench-only
bench-only: $(BUILD)/kvbench-gbench
	@mkdir -p results; dir=results/$$(date -u +%Y%m%d-%H%M%S)-gbench; \
	  if [ -e "$$dir" ] || [ -e "$$dir.partial" ]; then \
	    echo "bench: $$dir exists; try again in a second"; exit 1; fi; \
	  mkdir "$$dir.partial" && \
	  ./$(BUILD)/kvbench-gbench $(BENCH_ARGS) --benchmark_out="$$dir.partial/gbench.json" \
	    --benchmark_out_format=json; rc=$$?; \
	  if [ $$rc -eq 0 ] && [ -s "$$dir.partial/gbench.json" ]; then \
	    mv "$$dir.partial" "$$dir" && echo "results: $$dir"; \
	  else echo "bench: a case failed (exit $$rc); the incomplete output stays in $$dir.partial"; \
	    exit $$rc; fi

test-asan: deps
	@$(MAKE) --no-print-directory BUILD=build-asan OPT="-O1 -g $(SAN_FLAGS)" \
	  build-asan/kvbench $(TEST_SRC:tests/%.c=build-asan/%) build-asan/kvbench-gbench
	@export ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1; rc=0; \
	  for t in $(TEST_SRC:tests/%.c=build-asan/%); do echo "./$$t"; ./$$t || rc=1; done; \
	  for s in $(CLI_TESTS); do echo "sh $$s"; \
	    sh $$s ./build-asan/kvbench ./build-asan/kvbench-gbench || rc=1; done; \
	  $(MAKE) --no-print-directory BUILD=build-asan OPT="-O1 -g $(SAN_FLAGS)" fuzz-replay || rc=1; \
	  exit $$rc

check: test

# the binaries, and the data they find from there (kvb_data_path: <prefix>/share/kvbench):
# sweep definitions and plot scripts, so an installed kvbench works from any directory
PREFIX ?= /usr/local
install: $(BUILD)/kvbench $(BUILD)/kvbench-gbench
	install -d "$(DESTDIR)$(PREFIX)/bin" "$(DESTDIR)$(PREFIX)/share/kvbench/bench/sweeps" \
	  "$(DESTDIR)$(PREFIX)/share/kvbench/plots"
	install -m 755 $(BUILD)/kvbench $(BUILD)/kvbench-gbench "$(DESTDIR)$(PREFIX)/bin/"
	install -m 644 bench/sweeps/*.sweep "$(DESTDIR)$(PREFIX)/share/kvbench/bench/sweeps/"
	install -m 644 plots/*.gp "$(DESTDIR)$(PREFIX)/share/kvbench/plots/"
	install -m 755 plots/plot.sh "$(DESTDIR)$(PREFIX)/share/kvbench/plots/"

clean:
	rm -rf build build-asan build-plant*

.PRECIOUS: $(BUILD)/tests/%.o

# fuzz targets (make fuzz): their own rules
include fuzz/fuzz.mk

# the headers each object was built from (none yet on a first build)
-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
