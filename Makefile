VENV ?= .venv
PY := $(VENV)/bin/python
PROFILE ?= quick
PORT ?= 8501

.PHONY: setup run build test bench clean

setup:
	@bash scripts/setup.sh

build: setup
	$(PY) -m dml_core build --profile $(PROFILE)

run: build
	$(PY) -m streamlit run app.py --server.port $(PORT) --server.headless true

test: setup
	$(PY) -m pytest -q

bench: setup
	$(PY) -m dml_core bench --profile $(PROFILE) --json BENCHMARKS.json

clean:
	rm -rf artifacts .pytest_cache
