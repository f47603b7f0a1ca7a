# sharpeyes — two commands for a newcomer: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: setup setup-export model demo test test-all lint bench clean

# What running sharpeyes needs, nothing more: no torch, no test tools.
$(VENV)/.runtime: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e .
	touch $@

# The virtualenv with sharpeyes and its dev/test tools (re-run when pyproject.toml changes).
$(VENV)/.installed: $(VENV)/.runtime
	$(PIP) install -q -e '.[dev]'
	touch $@

# Model export tools (torch CPU + the yolov5 package), used once to derive the dynamic-shape
# yolov5n.onnx from the official yolov5n.pt into the model cache. Never needed at run time.
$(VENV)/.export: $(VENV)/.runtime
	$(PIP) install -q torch==2.13.0 || $(PIP) install -q torch
	$(PIP) install -q onnx pyyaml tqdm pandas requests psutil scipy 'setuptools<75' pillow matplotlib seaborn
	$(PIP) install -q --no-deps yolov5==7.0.14
	touch $@

setup: $(VENV)/.installed $(VENV)/.export
	$(PY) -c "from sharpeyes.models.resolve import resolve_model; print(resolve_model('yolov5n'))"

# The default model from ../shared, the cache, $$SHARPEYES_MODEL_MIRROR or its release; the
# export tools are installed only when none of those has it.
model: $(VENV)/.runtime
	$(PY) -c "from sharpeyes.models.resolve import resolve_model; resolve_model('yolov5n', export=False)" 2>/dev/null \
	  || $(MAKE) $(VENV)/.export
	$(PY) -c "from sharpeyes.models.resolve import resolve_model; print(resolve_model('yolov5n'))"

demo: model
	$(VENV)/bin/sharpeyes demo

test: setup
	$(PY) -m pytest -q --durations=20

test-all: setup
	$(PY) -m pytest -q -m ''

lint: $(VENV)/.installed $(VENV)/.export
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

bench: setup
	$(PY) -m benchmarks.run

clean:
	rm -rf out .pytest_cache .mypy_cache .ruff_cache
