# `make demo` and `make test` set everything up themselves: .venv, packages, servers.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint format services-up services-down clean browser-deps

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/ami demo

test: $(STAMP) browser-deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

services-up: $(STAMP)
	$(BIN)/ami services up

services-down: $(STAMP)
	$(BIN)/ami services down

clean: services-down
	rm -rf .run

# Browser tests drive Debian's Chromium (never a downloaded browser). Installed here when
# missing and we are root; otherwise the browser tests skip and say why.
browser-deps:
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing chromium for the browser tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null \
			|| echo "warning: could not install chromium; browser tests will skip"; \
	else echo "chromium not installed (needs root: apt-get install chromium); browser tests will skip"; fi
