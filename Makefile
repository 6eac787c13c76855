# Thin wrapper around CMake and CTest. On a fresh Debian 12 machine `make demo` and
# `make check` do everything: install the missing Debian packages, configure, build, run.
#
#   make deps       install the Debian packages that are missing (idempotent)
#   make build      deps + configure + build into $(BUILD)
#   make demo       build, then trace the case study: leakcheck -- fib_leak 5
#   make check      build, then run the whole test suite (exit status = the tests')
#   make sanitize   the same with leakcheck built with ASan+UBSan, in $(SANITIZE_BUILD)
#   make bench      build, then the benchmarks (not tests; knobs: tests/bench/run_bench.py)
#   make clean      remove both build directories

BUILD ?= build
SANITIZE_BUILD ?= build-sanitize
BUILD_TYPE ?= RelWithDebInfo
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
CTEST_JOBS ?= 2
# Seconds; only for tests that do not set their own TIMEOUT property.
CTEST_TIMEOUT ?= 1800
CMAKE_ARGS ?=

# What building and testing need. llvm-14-dev brings, through its own dependencies,
# what its CMake package links LLVMSupport and friends against (zlib1g-dev, libz3-dev,
# libncurses-dev for terminfo, libxml2-dev, libffi-dev); they are listed so that a
# missing one is installed even if llvm-14-dev is already there. libunwind-dev
# replaces LLVM's libunwind-14-dev if that is installed (they conflict; apt removes
# the latter, which nothing here needs). valgrind is the tests' oracle.
DEBIAN_PACKAGES := build-essential cmake pkg-config \
	llvm-14-dev zlib1g-dev libz3-dev libncurses-dev libxml2-dev libffi-dev libedit-dev \
	libunwind-dev libcapstone-dev libcli11-dev libgtest-dev googletest nlohmann-json3-dev \
	valgrind python3 perl git sqlite3 libjemalloc2 \
	libjemalloc-dev libmimalloc-dev libgoogle-perftools-dev

CTEST_FLAGS = --output-on-failure --no-tests=error -j$(CTEST_JOBS) --timeout $(CTEST_TIMEOUT)

.PHONY: all deps configure build demo check sanitize clean

all: build

deps:
	@missing=""; \
	for pkg in $(DEBIAN_PACKAGES); do \
	  status=$$(dpkg-query -W -f='$${Status}' "$$pkg" 2>/dev/null || true); \
	  case "$$status" in \
	    *" ok installed") ;; \
	    *) missing="$$missing $$pkg" ;; \
	  esac; \
	done; \
	if [ -z "$$missing" ]; then \
	  echo "deps: all $(words $(DEBIAN_PACKAGES)) Debian packages are installed"; \
	  exit 0; \
	fi; \
	if [ "$$(id -u)" -eq 0 ]; then \
	  sudo=""; \
	elif command -v sudo >/dev/null 2>&1; then \
	  sudo="sudo"; \
	else \
	  echo "deps: missing:$$missing -- run as root (or install sudo) to install them" >&2; \
	  exit 1; \
	fi; \
	echo "deps: installing:$$missing"; \
	$$sudo env DEBIAN_FRONTEND=noninteractive apt-get update && \
	$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing

configure: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_ARGS)

build: configure
	cmake --build $(BUILD) -j$(JOBS)

demo: build
	$(BUILD)/leakcheck -- $(BUILD)/fixtures/fib_leak 5

check: build
	ctest --test-dir $(BUILD) $(CTEST_FLAGS)

sanitize: deps
	cmake -S . -B $(SANITIZE_BUILD) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) -DLEAKCHECK_SANITIZE=ON $(CMAKE_ARGS)
	cmake --build $(SANITIZE_BUILD) -j$(JOBS)
	ASAN_OPTIONS=$${ASAN_OPTIONS:-detect_leaks=1:verify_asan_link_order=0} \
	UBSAN_OPTIONS=$${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
	ctest --test-dir $(SANITIZE_BUILD) $(CTEST_FLAGS)

clean:
	rm -rf $(BUILD) $(SANITIZE_BUILD)

# Each workload natively, under leakcheck, valgrind and heaptrack; medians to stdout and
# $(BUILD)/bench/results.md. Environment knobs (BENCH_REPS...) are documented in the driver.
.PHONY: bench
bench: build
	python3 tests/bench/run_bench.py --build $(BUILD)
