# Two entry points for a fresh machine (see README):
#   make demo   install (offline profile) and run the main job on the embedded default
#   make test   install (offline profile + test tools) and run the test suite
PYTHON ?= python3
VENV   ?= .venv
PIP     = $(VENV)/bin/python -m pip
PIPOPTS = --constraint constraints.txt

.PHONY: install install-test demo test bench clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

# torch first, alone, so that nothing else can pick a different build of it.
$(VENV)/.installed: $(VENV)/bin/python pyproject.toml constraints.txt requirements-nodeps.txt
	$(PIP) install $(PIPOPTS) "torch==2.13.0"
	$(PIP) install $(PIPOPTS) -e ".[all,test]"
	$(PIP) install $(PIPOPTS) --no-deps --ignore-requires-python -r requirements-nodeps.txt
	@if $(VENV)/bin/python -c "import importlib.util,sys; sys.exit(importlib.util.find_spec('torchvision') is None)"; then \
		echo "torchvision is installed: it breaks transformers on CPU-only torch; remove it" >&2; exit 1; fi
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/pixlink demo --out demo-out

test: install
	$(VENV)/bin/python -m pytest -q

# every benchmarks/bench_*.py with small settings, one table; BENCH_ARGS="--only kb,link" or "--full"
bench: install
	$(VENV)/bin/python benchmarks/run_all.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) demo-out
