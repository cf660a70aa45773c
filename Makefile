# The two commands of the README:
#   make book   set up (if needed) and build the book on the default profile (PROFILE=smoke for a quick one)
#   make test   set up (if needed) and run the tests
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
PROFILE ?= default
PYTEST_ARGS ?=

.PHONY: book test env vendor browser clean-build

$(VENV)/.installed: pyproject.toml requirements.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	# torch first, from the pinned wheels (torch 2.13 breaks timm and segment-anything)
	$(BIN)/pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -q -r requirements.txt
	$(BIN)/pip install -q --no-deps -e .
	touch $@

env: $(VENV)/.installed

_static/vendor/embed-amd.js: package.json scripts/vendor_js.sh
	bash scripts/vendor_js.sh

vendor: _static/vendor/embed-amd.js

# Debian's Chromium drives the book's browser test (never a browser downloaded by a test tool).
browser:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

book: env vendor
	$(BIN)/dfnb book --profile $(PROFILE)

test: env vendor browser
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

clean-build:
	rm -rf _build book/chapters
