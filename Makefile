# make run   - set everything up, then serve the built-in default (model "sim-small" on the simulator)
# make test  - set everything up (virtualenv, packages incl. the hf/onnx engines, a Redis if none is reachable),
#              then lint, type-check, test
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.lockgate-installed

.PHONY: setup run test lint typecheck unit redis chromium clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev,hf,onnx]'
	touch $(STAMP)

run: setup
	$(BIN)/lockgate serve $(ARGS)

redis: setup
	$(BIN)/python scripts/ensure_redis.py

lint: setup
	$(BIN)/ruff check .

typecheck: setup
	$(BIN)/mypy

chromium:
	$(PYTHON) scripts/ensure_chromium.py

unit: setup redis chromium
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test: lint typecheck unit

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .lockgate-redis
