# The two commands of the README: `make dev` runs the platform on embedded defaults, `make test` runs the tests.
# Both install what they need first: a virtualenv with the project, and (as root) the testbed's Debian
# packages and its Kubernetes build, cached in $(TESTBED_CACHE) outside the repository, and the browser tests'
# Chromium.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-12)
export TESTBED_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/deploy-mcp-testbed

.PHONY: dev test install testbed browser lint typecheck unit bench clean image image-base image-push image-postgres image-postgres-push

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "Python >= 3.11 needed"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

dev: install
	$(BIN)/deploy-mcp dev

testbed: install
	$(BIN)/deploy-mcp testbed build

# Debian's chromium and chromium-driver for the browser tests (as root; only the missing ones; skipped otherwise)
browser:
	mcp_server/devenv/browser_packages.sh

lint: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports

typecheck: install
	$(BIN)/mypy

unit: install
	$(BIN)/pytest -q tests/unit

# Two processes side by side (tests/conftest.py --testbed): the tests on the one testbed, in order, and every
# other test (each starts its own Postgres and Temporal); the second's report is printed after the first's.
test: install testbed browser lint typecheck
	@rest_log=$$(mktemp -t deploy-mcp-tests.XXXXXX); \
	$(BIN)/pytest -q -ra --durations=8 --testbed none -p no:cacheprovider > "$$rest_log" 2>&1 & rest=$$!; \
	trap 'kill $$rest 2>/dev/null' INT TERM; \
	$(BIN)/pytest -q -ra --durations=12 --testbed only; on_testbed=$$?; \
	wait $$rest; others=$$?; \
	echo "== the tests off the testbed"; cat "$$rest_log"; rm -f "$$rest_log"; \
	echo "make test: testbed tests exit $$on_testbed, the others exit $$others"; \
	[ $$on_testbed -eq 0 ] && [ $$others -eq 0 ]

bench: install
	@for b in bench/[!_]*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

# The platform's image (image/Containerfile) with buildah, as root, in the testbed's buildah storage.
# IMAGE_BASE=docker.io/library/python:3.11-slim-bookworm builds on a pullable base; without it the Debian
# base is debootstrapped once (cached in $(TESTBED_CACHE)/image-base). IMAGE=host/repo:tag adds a tag.
IMAGE_PY := $(PYTHON) -m mcp_server.devenv

image-base:
	$(IMAGE_PY).image_base

image:
	$(IMAGE_PY).platform_image build $(if $(IMAGE_BASE),--base $(IMAGE_BASE)) $(if $(IMAGE),--tag $(IMAGE))

# push: IMAGE=host[:port]/repo:tag (plain http only for a loopback registry, e.g. the testbed's 127.0.0.1:5000)
image-push: image
	@test -n "$(IMAGE)" || { echo "make image-push IMAGE=host[:port]/repo:tag"; exit 1; }
	$(IMAGE_PY).platform_image push --image $(IMAGE) $(IMAGE)

# The platform's Postgres (image/postgres/Containerfile: Debian's postgresql-15 on the self-built base), tagged
# ghcr.io/deploy-mcp/postgres:15; push: PG_IMAGE=host[:port]/repo:tag (e.g. 127.0.0.1:5000/deploy-mcp-postgres:15)
image-postgres:
	$(IMAGE_PY).postgres_image build $(if $(IMAGE_BASE),--base $(IMAGE_BASE))

image-postgres-push: image-postgres
	@test -n "$(PG_IMAGE)" || { echo "make image-postgres-push PG_IMAGE=host[:port]/repo:tag"; exit 1; }
	$(IMAGE_PY).postgres_image push $(PG_IMAGE)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
