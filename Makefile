# Two entry points for a new machine (see README "Quick start"):
#   make demo   set up, start the bundled sample API and the daemon against it (Ctrl-C stops)
#   make test   set up with dev extras, then lint, type-check and run every test
# and one more for the CI gate:
#   make demo-once   start the sample API, run `prober run-once` against it, print the summary
# Deployment (README "Deployment"):
#   make image         docker build the production image (Dockerfile), tagged prober:VERSION
#   make chart-assets  regenerate the Helm chart's PrometheusRule and Grafana dashboard
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo demo-once test lint bench golden clean image chart-assets

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
	$(BIN)/python bench/timing_accuracy.py
	$(BIN)/python bench/anchors.py
	$(BIN)/python bench/slo_engine.py
	$(BIN)/python bench/rule_eval_cost.py
	$(BIN)/python bench/notify_outbox.py
	$(BIN)/python bench/notify_alertmanager.py

VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
IMAGE   ?= prober:$(VERSION)
CHART   := helm/prober

# The production image. Needs Docker (no test does): push it and set the chart's image.*.
image:
	docker build --tag $(IMAGE) --build-arg VERSION=$(VERSION) \
	  --build-arg REVISION=$$(git rev-parse HEAD 2>/dev/null || echo unknown) \
	  --build-arg CREATED=$$(date -u +%Y-%m-%dT%H:%M:%SZ) .

# The chart ships `prober rules` and `prober dashboard` output for its default config
# (values.yaml `config`); tests/deploy checks the shipped copies equal a fresh generation.
chart-assets: $(VENV)/.installed
	@mkdir -p $(CHART)/files; config=$$(mktemp --suffix=.yaml); trap 'rm -f $$config' EXIT; \
	$(BIN)/python -c 'import sys, yaml; sys.stdout.write(yaml.safe_load(open("$(CHART)/values.yaml"))["config"])' >$$config && \
	$(BIN)/prober rules -c $$config --format prometheusrule -o $(CHART)/files/prometheusrule.yaml && \
	$(BIN)/prober dashboard -c $$config -o $(CHART)/files/dashboard.json && \
	git status --short $(CHART)/files

clean:
	rm -rf $(VENV) build *.egg-info
