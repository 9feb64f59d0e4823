# Two entry points for a new machine (see README "Quick start"):
#   make demo   set up, start the bundled sample API and the daemon against it (Ctrl-C stops)
#   make test   set up with dev extras, then lint, type-check and run every test
# and one more for the CI gate:
#   make demo-once   start the sample API, run `prober run-once` against it, print the summary
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo demo-once test lint bench golden clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

demo: $(VENV)/.installed
	$(BIN)/prober demo --log-format text

demo-once: $(VENV)/.installed
	@port=$$($(BIN)/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'); \
	log=$$(mktemp); \
	$(BIN)/python -m prober.demo --port $$port >$$log 2>&1 & pid=$$!; \
	trap "kill $$pid 2>/dev/null; rm -f $$log" EXIT; \
	for _ in $$(seq 100); do grep -q listening $$log && break; sleep 0.05; done; \
	echo "sample API on http://127.0.0.1:$$port — prober run-once -c config/demo.yaml:"; echo; \
	DEMO_PASSWORD=demo-password $(BIN)/prober run-once -c config/demo.yaml --base-url http://127.0.0.1:$$port --iterations 3

lint: $(VENV)/.installed
	$(BIN)/ruff check prober slo tests bench
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest -q

golden: $(VENV)/.installed
	$(BIN)/python -m pytest -q --update-golden tests && git status --short tests/golden

bench: $(VENV)/.installed
	$(BIN)/python bench/run_once_wall.py
	$(BIN)/python bench/step_overhead.py
	$(BIN)/python bench/daemon_throughput.py
	$(BIN)/python bench/slo_store.py

clean:
	rm -rf $(VENV) build *.egg-info
