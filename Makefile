VENV ?= .venv
PY := $(VENV)/bin/python
PROFILE ?= quick
PORT ?= 8501

.PHONY: setup run dev build test bench clean

setup:
	@bash scripts/setup.sh

build: setup
	$(PY) -m dml_core build --profile $(PROFILE)

# Serves at once and builds what is missing in the background (pages show its progress);
# Ctrl-C stops both, and the next `make run` resumes the build.
run: setup
	$(PY) -m dml_core app --profile $(PROFILE) --port $(PORT)

# Reload on edit: the polling watcher checks only the app's own imported sources (not .venv);
# watchdog would watch the whole checkout recursively (see .streamlit/config.toml).
dev: setup
	$(PY) -m dml_core app --profile $(PROFILE) --port $(PORT) -- \
		--server.fileWatcherType poll --server.runOnSave true

test: setup
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q --durations=30

bench: setup
	$(PY) -m dml_core bench --profile $(PROFILE) --json BENCHMARKS.json

clean:
	rm -rf artifacts .pytest_cache
