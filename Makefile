# portalops: `make demo` runs the main job on the lab, `make test` everything
# CI runs. Both set the machine up first (Debian packages, the virtualenv).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed

export PATH := $(BIN):$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export CONTAINERS_CONF := $(CURDIR)/lab/containers.conf
export PIP_DISABLE_PIP_VERSION_CHECK := 1
MOLECULE_JOBS ?= 2
# The lab's vault (labelled `lab`) opens with its committed password; ansible.cfg names none, so a
# production vault never meets it. Every target here runs on the lab.
export ANSIBLE_VAULT_IDENTITY_LIST := lab@$(CURDIR)/inventory/vault-password.LAB-ONLY

.PHONY: help setup demo test test-serial lint unit integration lab-snapshot lab-snapshot-remove integration-clone lab-image lab-up lab-down lab-status lock bench-lab bench-lanes bench-converge bench-strategy bench-molecule bench-backup bench-drills bench-detect bench-patch bench-inspect audit docs plans molecule

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 16

setup: $(STAMP)  ## Debian packages and the virtualenv (quick and offline when nothing changed)
	@scripts/setup-system

# The runtime (requirements.lock) and the development tools: requirements-dev.lock holds both, every
# file checked against its hash. Then portalops itself, editable, built by the lock's setuptools.
$(STAMP): requirements.lock requirements-dev.lock pyproject.toml
	scripts/setup-system
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "portalops needs Python 3.11+"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --require-hashes -r requirements-dev.lock
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	touch $@

demo: setup  ## bring the lab up, converge the portal (site.yml), back it up, prove a restore, show it answering
	portalops lab up
	ansible all -m ansible.builtin.ping
	ansible-playbook playbooks/site.yml
	portalops lab status
	portalops nightly
	@sed -n '/^| measure/,/^$$/p' $$(ls -t reports/drills/*.md | head -1)
	@curl -s -o /dev/null -w 'portal: %{http_code} from https://127.0.0.1:8443 (CA: .lab/tls/web1-ca.crt)\n' \
	  --cacert .lab/tls/web1-ca.crt https://127.0.0.1:8443/
	@curl -s -o /dev/null -w 'prometheus: %{http_code} from http://127.0.0.1:9090 (mon1)\n' http://127.0.0.1:9090/-/ready
	@curl -s -o /dev/null -w 'alertmanager: %{http_code} from http://127.0.0.1:9093 (mon1)\n' http://127.0.0.1:9093/-/ready

test:  ## everything CI runs: setup, then the lab tests with lint, unit and molecule beside them; a table of times
	@python3 scripts/test_lanes.py

test-serial:  ## the same layers one after the other, all output on the terminal
	@python3 scripts/test_lanes.py --serial

lint: setup  ## ruff, mypy (strict), yamllint, ansible-lint (production profile)
	ruff check portalops portalops_host tests scripts roles runbooks plugins playbooks
	ruff format --check portalops portalops_host tests scripts roles runbooks plugins playbooks
	mypy
	yamllint --strict .
	ansible-lint

unit: setup  ## fast tests, no hosts
	pytest -q tests/unit

# The lab tests to run (LAB_TESTS) and where their JUnit XML goes: `make test` splits them in shares.
LAB_TESTS ?= tests/integration
LAB_JUNIT ?= .lab/logs/integration.xml
CLONE_DIR ?= /var/tmp/portalops-lab-clone
LAB_PYTEST = $(BIN)/python -m pytest -q --durations=30 --junitxml=$(abspath $(LAB_JUNIT)) $(LAB_TESTS)

integration: setup  ## the lab: real hosts (root, podman)
	$(LAB_PYTEST)

lab-snapshot: setup  ## commit every lab host as it is to an image, for `lab clone` (integration-clone)
	portalops lab snapshot

lab-snapshot-remove: setup  ## remove the snapshot's images (once no clone runs from them)
	portalops lab snapshot --remove

integration-clone: setup  ## LAB_TESTS on a clone of the lab (from lab-snapshot, in its own network namespace) at CLONE_DIR, removed after
	portalops lab clone $(CLONE_DIR) -- $(LAB_PYTEST)

molecule: setup lab-image  ## every role's molecule scenario (converge, idempotence, check, verify), MOLECULE_JOBS (2) at a time
	$(BIN)/python scripts/molecule_all.py --jobs $(MOLECULE_JOBS)

lab-image: setup  ## build the lab image when its recipe changed (the lab and molecule start from it)
	portalops lab image

lab-up: setup  ## bring the lab up (idempotent)
	portalops lab up

lab-down: setup  ## remove the lab's containers and network
	portalops lab down

lab-status: setup
	portalops lab status

plans: setup  ## regenerate docs/emergency_plans/ (runbooks, inventory contacts, recorded drills) and the alert rules the runbooks declare
	$(BIN)/python -m portalops.runbook.plans

docs: setup  ## regenerate the variables section of every role README from its argument spec
	python -m portalops.specdoc

audit: setup  ## Lynis, ssh-audit and testssl.sh against the lab; report under reports/audit/
	portalops audit

# pip-compile keeps the versions the locks already pin (the suite is verified with them) and adds
# sha256 hashes of every file PyPI has for them. It resolves against PyPI alone, whatever mirror or
# find-links this machine's pip configuration names, so the hashes are PyPI's and the same everywhere.
# Move a pin on purpose: make lock UPGRADE='--upgrade-package NAME' (or UPGRADE=--upgrade: all).
PIP_TOOLS := pip-tools==7.6.2
LOCK_VENV := /tmp/portalops-lock-venv
PIP_COMPILE := env -u PIP_FIND_LINKS -u PIP_INDEX_URL -u PIP_EXTRA_INDEX_URL -u PIP_CONSTRAINT \
  PIP_CONFIG_FILE=/dev/null CUSTOM_COMPILE_COMMAND='make lock' $(LOCK_VENV)/bin/pip-compile --quiet \
  --generate-hashes --allow-unsafe --strip-extras --index-url https://pypi.org/simple $(UPGRADE)

lock:  ## re-pin requirements.lock (runtime) and requirements-dev.lock (+ dev tools), with hashes, from the .in files
	$(PYTHON) -m venv --clear $(LOCK_VENV)
	$(LOCK_VENV)/bin/pip install -q $(PIP_TOOLS)
	$(PIP_COMPILE) --output-file requirements.lock requirements.in
	$(PIP_COMPILE) --output-file requirements-dev.lock requirements-dev.in

bench-lab: setup  ## image build, cold and warm `lab up`, against a bare podman baseline
	$(BIN)/python scripts/bench_lab.py

bench-lanes: setup lab-image  ## does make test's side lane (nice + autogroup) and molecule's containers yield the CPU to the lab lane? vs without
	$(BIN)/python scripts/bench_lanes.py

bench-converge: setup  ## site.yml from bare and from the hosts' image, and the idempotent re-run with our ansible.cfg vs stock settings
	$(BIN)/python scripts/bench_converge.py

bench-strategy: setup  ## controller CPU per task: our strategy plugin (collections listed once per run) vs Mitogen's own; no lab
	$(BIN)/python scripts/bench_strategy.py

bench-molecule: setup lab-image  ## one role's `molecule test` through Mitogen vs the stock linear strategy (ROLE=base)
	$(BIN)/python scripts/bench_molecule.py $(ROLE)

bench-drills: setup  ## every runbook's fault drill on the lab: MTTR against the runbook on the healthy lab
	$(BIN)/python scripts/bench_drills.py

bench-detect: setup  ## each L1 fault through the monitoring (no human command): MTTD/MTTR, ours vs the stock timing
	$(BIN)/python scripts/bench_detect.py

bench-backup: setup  ## the backup wrapper on ~1 GiB + 200k rows: backups and restores vs tar, cp -a, a dump
	$(BIN)/python scripts/bench_backup.py

bench-patch: setup  ## patch.yml over the lab, nothing / one package to upgrade, vs a plain ungated apt upgrade
	$(BIN)/python scripts/bench_patch.py

bench-inspect: setup  ## portalops inspect on the seeded portal and with 1,000 generated pages, vs a plain linkchecker run
	$(BIN)/python scripts/bench_inspect.py
