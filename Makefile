# vmacd — every target installs what it needs (Debian 12, as root).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# what the lab and the demos need (lighttpd: the web cluster); the suite and the benchmarks add the
# reference implementations and what the tests use (e2fsprogs: the shared-docroot image)
APT_LAB := iproute2 nftables iputils-arping procps psmisc python3-venv lighttpd
# make deb builds with dpkg-deb and checks with lintian; tests/netns/test_deb.py also installs the
# packages (in a sandbox), which needs their dependencies on the host
APT_DEB := dpkg-dev lintian
APT_DEB_DEPS := python3-netifaces python3-scapy
APT_PKGS := $(APT_LAB) keepalived frr tcpdump iputils-ping prometheus curl e2fsprogs $(APT_DEB) \
	$(APT_DEB_DEPS)
# CI runs the full simulation budget; a developer can lower it: make test SIM_EXAMPLES=200
SIM_EXAMPLES ?= 2000
PYTEST_ARGS ?=
# what the rfc-marked tests did in the last `make test` (tests/rfcmarks.py); docs/conformance.md is
# checked against it, unless the run was partial (PYTEST_ARGS selecting less): then it says so
RFC_OUTCOMES := lab-out/rfc-outcomes.json
# ruff, mypy (vmacd) and vulture, pinned by the lint extra and configured in pyproject.toml; vulture
# runs over the daemon alone, then over the lab with the tests that drive it. Each sets rc on failure.
LINT_GATES = $(VENV)/bin/ruff check vmacd netns-lab tests tools || rc=1; \
  $(VENV)/bin/mypy || rc=1; \
  $(VENV)/bin/vulture vmacd tools/vulture_whitelist.py || rc=1; \
  $(VENV)/bin/vulture netns-lab/vmaclab tests/conftest.py tests/netns tests/interop \
    tools/vulture_whitelist.py || rc=1;

# `make fuzz`: 1,060,000 inputs over every target (tests/fuzz; FUZZ_SCALE=0.1 for a tenth), then
# FUZZ_COV_SECONDS of coverage-guided fuzzing (atheris) per raw-input target (0: none)
FUZZ_SCALE ?= 1
FUZZ_JOBS ?= 2
FUZZ_SEED ?= 1
FUZZ_COV_SECONDS ?= 30
FUZZ_COV_TARGETS := wire-ip wire-payload control-line config import-heartbeat import-keepalived

.PHONY: all deps apt apt-lab venv demo test test-unit test-netns interop-doc bench fuzz lint deb clean

all: test

define apt_install
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "apt-get install:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
endef

apt-lab: .apt-lab.stamp
.apt-lab.stamp:
	@dpkg -s lighttpd >/dev/null 2>&1 || touch .lighttpd-new
	$(call apt_install,$(APT_LAB))
	@# the lab runs lighttpd in its node namespaces; the service the package just installed must not
	@# serve on the host (a lighttpd that was installed before is left as it is)
	@if [ -e .lighttpd-new ]; then rm -f .lighttpd-new; \
	  if [ -d /run/systemd/system ]; then systemctl disable --now lighttpd.service >/dev/null 2>&1; \
	  else invoke-rc.d lighttpd stop >/dev/null 2>&1; update-rc.d lighttpd disable >/dev/null 2>&1; fi; \
	fi; true
	touch $@

apt: .apt.stamp
.apt.stamp: .apt-lab.stamp
	$(call apt_install,$(APT_PKGS))
	@# the Debian packages must not run their daemons in the root namespace: the lab starts them
	@-pkill -x keepalived 2>/dev/null; pkill -x watchfrr 2>/dev/null; pkill -x zebra 2>/dev/null; \
	  pkill -x prometheus 2>/dev/null; true
	touch $@

venv: $(VENV)/.stamp
$(VENV)/.stamp: setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	$(PY) -m pip install -q -e '.[lab,test,lint]'
	touch $@

deps: apt venv

demo: apt-lab venv
	$(VENV)/bin/vmac-lab demo

# the suite, then every gate (conformance ledger, ruff, mypy, dead code) even when one fails
test: deps
	mkdir -p lab-out
	rc=0; \
	VMACD_SIM_EXAMPLES=$(SIM_EXAMPLES) $(PY) -m pytest -p no:cacheprovider --timeout=300 \
	  --rfc-outcomes=$(RFC_OUTCOMES) --junitxml=lab-out/junit.xml $(PYTEST_ARGS) tests || rc=1; \
	$(PY) tools/conformance.py --check --outcomes $(RFC_OUTCOMES) || rc=1; \
	$(if $(PYTEST_ARGS),,$(PY) tools/interop_doc.py --junit lab-out/junit.xml --check || rc=1;) \
	$(LINT_GATES) \
	exit $$rc

# rerun the interop tests and rewrite docs/interop.md's matrix from their outcomes
interop-doc: deps
	mkdir -p lab-out
	$(PY) -m pytest -p no:cacheprovider --timeout=300 --junitxml=lab-out/interop-junit.xml tests/interop; \
	  $(PY) tools/interop_doc.py --junit lab-out/interop-junit.xml

test-unit: venv
	$(PY) -m pytest -p no:cacheprovider tests/unit tests/fuzz tests/sim $(PYTEST_ARGS)

test-netns: deps
	$(PY) -m pytest -p no:cacheprovider --timeout=300 tests/netns tests/interop $(PYTEST_ARGS)

# every bench runs even when one fails; the target fails at the end if any did. About 2 h 35 min on
# two cores: failover ~14 min, scale ~10 min, jitter ~12 min, metrics ~2 min, the soak ~82 min (10 min
# per implementation, interval and scheduling policy, one pair at a time) and the fault matrix
# ~33 min (docs/benchmarks.md)
bench: deps
	rc=0; \
	$(VENV)/bin/vmac-lab bench failover --impl vmacd,keepalived,frr --event crash,term,linkdown,kill \
	  --advert 100ms,20ms,10ms --runs 5 --json lab-out/bench-failover-fast.json \
	  --out lab-out/failover || rc=1; \
	$(VENV)/bin/vmac-lab bench failover --impl vmacd,keepalived,frr --event crash,term,linkdown,kill \
	  --advert 1s --runs 3 --json lab-out/bench-failover-1s.json --out lab-out/failover || rc=1; \
	$(VENV)/bin/vmac-lab bench scale --impl vmacd,keepalived --vrids 1,50,255 --advert 100ms \
	  --duration 20s --runs 3 --json lab-out/bench-scale.json || rc=1; \
	$(VENV)/bin/vmac-lab bench jitter --impl vmacd,keepalived --advert 100ms --duration 20s \
	  --load cpu,cpu-all,cpu-pinned,gc --runs 3 --json lab-out/bench-jitter.json || rc=1; \
	$(VENV)/bin/vmac-lab bench soak --impl vmacd,keepalived --advert 10ms,20ms --duration 10m \
	  --load cpu-all --sched default,fifo --json lab-out/bench-soak.json || rc=1; \
	$(PY) tools/bench_metrics.py --runs 5 --json lab-out/bench-metrics.json || rc=1; \
	$(VENV)/bin/vmac-lab bench faults --impl vmacd,keepalived,frr \
	  --fault partition,freeze-master,freeze-backup,restart-term,restart-kill,replug,reload,flood \
	  --runs 3 --json lab-out/bench-faults.json || rc=1; \
	$(VENV)/bin/vmac-lab bench faults --impl vmacd,keepalived --fault loss10,loss30 --duration 5m \
	  --runs 1 --json lab-out/bench-faults-loss.json || rc=1; \
	exit $$rc

# pure Python, no root: every phase runs; exits 1 on any finding, reproducers in lab-out/fuzz
# (docs/fuzzing.md)
fuzz: venv
	rc=0; \
	$(PY) tests/fuzz/run.py --scale $(FUZZ_SCALE) --jobs $(FUZZ_JOBS) --seed $(FUZZ_SEED) \
	  --out lab-out/fuzz || rc=1; \
	if [ "$(FUZZ_COV_SECONDS)" != 0 ]; then for t in $(FUZZ_COV_TARGETS); do \
	  echo "== coverage-guided: $$t, $(FUZZ_COV_SECONDS) s"; \
	  out=$$($(PY) tests/fuzz/covfuzz.py $$t --seconds $(FUZZ_COV_SECONDS) --out lab-out/fuzz 2>&1); \
	  st=$$?; printf '%s\n' "$$out" \
	    | grep -E '^(==|line |reproducer|  replay|#[0-9]+[[:space:]]+(INITED|DONE)|Done )'; \
	  [ $$st = 0 ] || rc=1; \
	done; fi; \
	exit $$rc

lint: venv
	rc=0; $(LINT_GATES) exit $$rc

# dist/vmacd_VERSION_all.deb (daemon) and dist/vmacd-lab_VERSION_all.deb (lab), then lintian
deb:
	$(call apt_install,$(APT_DEB))
	debs=$$(bash appliance/debian/build-deb.sh dist) && echo "$$debs" && \
	  lintian --fail-on error --tag-display-limit 0 $$debs

clean:
	-$(VENV)/bin/vmac-lab down --all 2>/dev/null
	rm -rf $(VENV) .apt.stamp .apt-lab.stamp build dist *.egg-info .pytest_cache .hypothesis lab-out
