# Switchboard: the only entry points a newcomer needs.
#   make up     install what is needed, start NATS + every service, print URL and admin key
#   make test   install what is needed, lint, run every test
#   make bench  gateway vs direct-to-upstream latency and throughput (see tools/bench)

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
TEST_WORKERS ?= 2

.PHONY: install browser k8s-tools image up test lint unit integration bench clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test]'
	@touch $(STAMP)

install: $(STAMP)

up: install
	$(VENV)/bin/switchboard up

lint: install
	$(VENV)/bin/ruff check .

# The dashboard test drives Debian's headless Chromium through Playwright (no browser download).
browser:
	@command -v chromium >/dev/null || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)

# deploy/k8s is rendered with kubectl's built-in kustomize in the tests.
k8s-tools:
	@command -v kubectl >/dev/null || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kubernetes-client >/dev/null)

# switchboard:dev (every service; the command picks one) and switchboard-nats:dev (FROM scratch).
image: install
	$(PY) -m tools.imaging.build

# Two processes (the suite mostly waits on the services it starts), one file per process at a
# time; then the schemathesis modules, whose generated cases pytest-xdist cannot schedule.
test: lint browser k8s-tools
	$(PY) -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist loadfile -m 'not one_process'
	$(PY) -m pytest -q -p no:cacheprovider -m one_process

unit: install
	$(PY) -m pytest -q tests/unit

integration: install
	$(PY) -m pytest -q tests/integration

bench: install
	@command -v wrk >/dev/null && command -v hey >/dev/null && command -v nginx >/dev/null || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk hey nginx-light >/dev/null)
	$(PY) -m tools.bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache bench-results
