# The two set-up commands of the README: `make demo` and `make test`.
# Everything the project needs is installed here, into .venv, from pinned versions.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip

.PHONY: system-deps bench-mdr bench-metaspace demo test lint typecheck bench-storage bench-executor bench-csv bench-cog bench-imzml bench-laz bench-streams-store bench-streams bench-streams-server bench-streams-historical bench-streams-checkpoints bench-backends bench-video bench-optimizer bench-security bench-fastq bench-seaweedfs bench-variants bench-streams-scaling bench-streams-nats bench-ephemeral bench-ephemeral-actions bench-web bench-catalog bench-state clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade "pip>=24"

# Re-install whenever the dependency declarations or the C source change.
CSRC := src/xtremehub/connectors/codecs/_bytescan.c
# The demo also reads point clouds and rasters and writes Parquet: the `demo` extra.
$(VENV)/.installed-run: pyproject.toml setup.py $(CSRC) constraints.txt | $(BIN)/python
	$(PIP) install --quiet -c constraints.txt -e '.[demo]'
	touch $@

# Debian packages the tests run for real, as `command:package` (one per line: `SYSTEM_DEPS += ...`).
# Installed with apt-get when a command is missing and we are root; otherwise make fails saying how.
# The MDR epistasis tests launch Open MPI's mpiexec, and mpi4py (the `hpc` extra) builds against it.
# The variant-calling tests compare with the Debian minimap2 | samtools | bcftools command line.
SYSTEM_DEPS := mpiexec:openmpi-bin
# pip builds the one C module (xtremehub.connectors.codecs._bytescan, setup.py) with gcc and
# Python's headers (pyenv/python.org builds ship them; Debian's python3 needs python3-dev); the tests
# check that it is built (without a compiler the package falls back to NumPy, slower).
SYSTEM_DEPS += gcc:gcc
SYSTEM_DEPS += mpicc:libopenmpi-dev
# The security tests run the npm oidc-provider (an independent OpenID Provider) with node.
SYSTEM_DEPS += node:nodejs
SYSTEM_DEPS += npm:npm
# bench-fastq runs Dataplug, whose FASTQ.gz preprocessing calls gztool.
SYSTEM_DEPS += gztool:gztool
SYSTEM_DEPS += minimap2:minimap2
SYSTEM_DEPS += samtools:samtools
SYSTEM_DEPS += bcftools:bcftools
# The stream store's JetStream backend is tested on a real 3-node NATS JetStream cluster.
SYSTEM_DEPS += nats-server:nats-server
# The cockpit's browser tests drive Debian's Chromium with Playwright (no browser download).
SYSTEM_DEPS += chromium:chromium
# The catalog's PostgreSQL tests start a real server (initdb/postgres under /usr/lib/postgresql/*/bin).
SYSTEM_DEPS += pg_ctlcluster:postgresql

system-deps:
	@missing=""; for dep in $(SYSTEM_DEPS); do \
	  command -v "$${dep%%:*}" >/dev/null 2>&1 || missing="$$missing $${dep#*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else \
	    echo "make test needs these Debian packages: sudo apt-get install -y$$missing" >&2; \
	    exit 1; \
	  fi; \
	fi

# The independent OpenID Provider of the security tests (npm oidc-provider, OpenID Certified),
# installed from its lock file into the gitignored tests/oidc_provider/node_modules.
OIDC_PROVIDER := tests/oidc_provider
$(OIDC_PROVIDER)/node_modules/.package-lock.json: $(OIDC_PROVIDER)/package.json $(OIDC_PROVIDER)/package-lock.json | system-deps
	npm ci --prefix $(OIDC_PROVIDER) --no-audit --no-fund --loglevel=error

$(VENV)/.installed-test: pyproject.toml setup.py $(CSRC) constraints.txt $(OIDC_PROVIDER)/node_modules/.package-lock.json | $(BIN)/python system-deps
	$(PIP) install --quiet -c constraints.txt -e '.[test]'
	touch $@ $(VENV)/.installed-run

$(VENV)/.installed-bench: pyproject.toml setup.py $(CSRC) constraints.txt | $(BIN)/python system-deps
	$(PIP) install --quiet -c constraints.txt -e '.[test,bench]'
	touch $@ $(VENV)/.installed-test $(VENV)/.installed-run

demo: $(VENV)/.installed-run
	$(BIN)/xhub demo

lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(VENV)/.installed-test
	$(BIN)/mypy

test: system-deps $(VENV)/.installed-test lint typecheck
	$(BIN)/python -m pytest

bench-storage: $(VENV)/.installed-bench
	$(BIN)/python bench/storage_ranged_get.py

bench-executor: $(VENV)/.installed-bench
	$(BIN)/python bench/executor_overhead.py

bench-csv: $(VENV)/.installed-bench
	$(BIN)/python bench/csv_index.py

bench-metaspace: $(VENV)/.installed-bench
	$(BIN)/python bench/metaspace.py

bench-cog: $(VENV)/.installed-bench
	$(BIN)/python bench/cog_windows.py

bench-imzml: $(VENV)/.installed-bench
	$(BIN)/python bench/imzml_ion_images.py

bench-laz: $(VENV)/.installed-bench
	$(BIN)/python bench/laz_dtm.py

bench-streams: $(VENV)/.installed-bench
	$(BIN)/python bench/streams_embedded.py

bench-streams-checkpoints: $(VENV)/.installed-bench
	$(BIN)/python bench/streams_checkpoints.py

bench-streams-scaling: $(VENV)/.installed-bench
	$(BIN)/python bench/streams_scaling.py

bench-streams-historical: $(VENV)/.installed-bench
	$(BIN)/python bench/streams_historical.py

bench-streams-store: $(VENV)/.installed-bench
	$(BIN)/python bench/segmentstore_write.py

bench-streams-server: $(VENV)/.installed-bench
	$(BIN)/python bench/streams_server.py

bench-streams-nats: $(VENV)/.installed-bench
	$(BIN)/python bench/streams_nats.py

bench-web: $(VENV)/.installed-bench
	$(BIN)/python bench/web_api.py

bench-optimizer: $(VENV)/.installed-bench
	$(BIN)/python bench/optimizer_plan.py --plots docs/images

bench-backends: $(VENV)/.installed-bench
	$(BIN)/python bench/backends_overhead.py

bench-video: $(VENV)/.installed-bench
	$(BIN)/python bench/video_streams.py

bench-state: $(VENV)/.installed-bench
	$(BIN)/python bench/state_counter.py

bench-security: $(VENV)/.installed-bench
	$(BIN)/python bench/security_tokens.py
	$(BIN)/python bench/security_policy.py
	$(BIN)/python bench/security_keyrelease.py
	$(BIN)/python bench/security_streams.py
	$(BIN)/python bench/security_video.py
	$(BIN)/python bench/encrypted_scan.py

bench-mdr: $(VENV)/.installed-bench
	$(BIN)/python bench/mdr_epistasis.py

# `make bench-variants VARIANTS_ARGS=--quick` on a loaded machine
bench-variants: $(VENV)/.installed-bench
	$(BIN)/python bench/variants.py $(VARIANTS_ARGS)
bench-ephemeral: $(VENV)/.installed-bench
	$(BIN)/python bench/ephemeral_checkpoint.py

bench-ephemeral-actions: $(VENV)/.installed-bench
	$(BIN)/python bench/ephemeral_actions.py

# `make bench-catalog CATALOG_ARGS=--quick` for 10,000 datasets
bench-catalog: $(VENV)/.installed-bench
	$(BIN)/python bench/catalog.py $(CATALOG_ARGS)

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
	find src -name "*.so" -delete

bench-fastq: $(VENV)/.installed-bench
	$(BIN)/python bench/fastq_gzip.py

bench-seaweedfs: $(VENV)/.installed-bench
	$(BIN)/python bench/seaweed_serving.py --floor
