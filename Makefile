# Everything a newcomer needs: `make serve` and `make test` do all set-up themselves (idempotent).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
STAMP_SERVE := $(VENV)/.stamp-serve
STAMP_DEV := $(VENV)/.stamp-dev
STAMP_APT := $(VENV)/.stamp-apt
APT_PACKAGES := chromium chromium-driver iproute2 util-linux ffmpeg
LIVESTYLE_HOST ?= 127.0.0.1
LIVESTYLE_PORT ?= 8000
export LIVESTYLE_HOST LIVESTYLE_PORT

.PHONY: setup setup-serve serve test test-fast lint bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# Service only: no torch.
$(STAMP_SERVE): pyproject.toml | $(PY)
	$(PIP) install -e .
	touch $@

# Training and test extras; torch==2.13.0 is the CPU build (pinned in pyproject.toml).
$(STAMP_DEV): pyproject.toml | $(PY)
	$(PIP) install -e '.[train,dev,video-ray]'
	touch $@ $(STAMP_SERVE)

# Browser tests need Debian's Chromium (never `playwright install`) and a loopback-only namespace.
$(STAMP_APT): | $(PY)
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing apt packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	touch $@

setup-serve: $(STAMP_SERVE)

setup: $(STAMP_DEV) $(STAMP_APT)

serve: $(STAMP_SERVE)
	$(VENV)/bin/livestyle-serve

# The whole suite, inside a network namespace that holds only `lo` (no test traffic leaves 127.0.0.0/8).
test: setup
	unshare -n sh -c 'ip link set lo up && exec "$$@"' sh $(PY) -m pytest tests -q

# Without the namespace (browser tests skip): for machines where unshare is not allowed.
test-fast: setup
	$(PY) -m pytest tests -q

lint: setup
	$(VENV)/bin/ruff check service training tests
	$(VENV)/bin/mypy service training

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
