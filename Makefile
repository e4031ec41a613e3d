# Convenience entry points; the build itself is CMake (CMakeLists.txt).
#   make run    install dependencies, build, start the server on 127.0.0.1:8080
#   make test   install dependencies, build with -Werror, run every test (ctest)
#   make asan   the same under AddressSanitizer + UndefinedBehaviorSanitizer (build-asan)
#   make fuzz   build the libFuzzer targets with clang (build-fuzz) and run each for
#               FUZZ_SECONDS (default 60); new corpus entries go to build-fuzz/corpus/,
#               crashes to build-fuzz/crashes/<target>/ (copy them to tests/regress/<target>/);
#               FUZZ_TIMEOUT (default 1 s, wall clock) flags slow inputs: raise it on a
#               machine shared with other jobs; FUZZ_SEED fixes libFuzzer's random seed
#               (CI uses one, so a run replays the same inputs; default: a new seed each run)
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all setup build run test asan fuzz bench clean

all: build

setup:
	@bash scripts/setup.sh

build: setup
	@cmake -S . -B $(BUILD) -DCHATD_WERROR=ON $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

run: build
	./$(BUILD)/chatd serve $(ARGS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

asan:
	$(MAKE) test BUILD=build-asan CMAKE_FLAGS="-DCHATD_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug"

FUZZ_SECONDS ?= 60
FUZZ_TIMEOUT ?= 1
FUZZ_BUILD ?= build-fuzz
FUZZ_SEED ?=
FUZZ_TARGETS = fuzz_gguf_parse fuzz_gguf_load fuzz_tokenize fuzz_detokenize \
	fuzz_request_json fuzz_sse_utf8 fuzz_ids fuzz_template fuzz_grammar

fuzz: setup
	@CC=clang cmake -S . -B $(FUZZ_BUILD) -DCHATD_FUZZ=ON >/dev/null
	@cmake --build $(FUZZ_BUILD) -j $(JOBS) --target $(FUZZ_TARGETS)
	@set -e; for t in $(FUZZ_TARGETS); do \
	    mkdir -p $(FUZZ_BUILD)/corpus/$$t $(FUZZ_BUILD)/crashes/$$t; \
	    dict=; case $$t in fuzz_gguf_*) dict=-dict=tests/fuzz/gguf.dict;; \
	        fuzz_template) dict=-dict=tests/fuzz/template.dict;; esac; \
	    regress=; if [ -d tests/regress/$$t ]; then regress=tests/regress/$$t; fi; \
	    seeds=; if [ -d tests/fuzz/corpus/$$t ]; then seeds=tests/fuzz/corpus/$$t; fi; \
	    echo "== $$t: $(FUZZ_SECONDS) s"; \
	    ASAN_OPTIONS=quarantine_size_mb=16 ./$(FUZZ_BUILD)/tests/fuzz/$$t $$dict -max_total_time=$(FUZZ_SECONDS) -timeout=$(FUZZ_TIMEOUT) \
	        $(if $(FUZZ_SEED),-seed=$(FUZZ_SEED)) \
	        -rss_limit_mb=256 -malloc_limit_mb=128 -print_final_stats=1 \
	        -artifact_prefix=$(FUZZ_BUILD)/crashes/$$t/ \
	        $(FUZZ_BUILD)/corpus/$$t $$seeds $$regress; \
	done

clean:
	rm -rf build build-asan build-fuzz
