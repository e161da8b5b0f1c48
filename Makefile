# vmacd — every target installs what it needs (Debian 12, as root).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# what the lab and the demo need; the suite and the benchmarks add the reference implementations
APT_LAB := iproute2 nftables iputils-arping procps psmisc python3-venv
APT_PKGS := $(APT_LAB) keepalived frr tcpdump iputils-ping prometheus curl
# CI runs the full simulation budget; a developer can lower it: make test SIM_EXAMPLES=200
SIM_EXAMPLES ?= 2000
PYTEST_ARGS ?=

.PHONY: all deps apt apt-lab venv demo test test-unit test-netns bench lint deb clean

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
	$(call apt_install,$(APT_LAB))
	touch $@

apt: .apt.stamp
.apt.stamp:
	$(call apt_install,$(APT_PKGS))
	@# the Debian packages must not run their daemons in the root namespace: the lab starts them
	@-pkill -x keepalived 2>/dev/null; pkill -x watchfrr 2>/dev/null; pkill -x zebra 2>/dev/null; \
	  pkill -x prometheus 2>/dev/null; true
	touch $@

venv: $(VENV)/.stamp
$(VENV)/.stamp: setup.cfg setup.py pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	$(PY) -m pip install -q -e '.[lab,test]'
	touch $@

deps: apt venv

demo: apt-lab venv
	$(VENV)/bin/vmac-lab demo

test: deps
	VMACD_SIM_EXAMPLES=$(SIM_EXAMPLES) $(PY) -m pytest -p no:cacheprovider --timeout=300 $(PYTEST_ARGS) tests

test-unit: venv
	$(PY) -m pytest -p no:cacheprovider tests/unit tests/sim $(PYTEST_ARGS)

test-netns: deps
	$(PY) -m pytest -p no:cacheprovider --timeout=300 tests/netns tests/interop $(PYTEST_ARGS)

# every bench runs even when one fails; the target fails at the end if any did
bench: deps
	rc=0; \
	$(VENV)/bin/vmac-lab bench failover --impl vmacd,keepalived,frr --event crash,term,linkdown \
	  --advert 1s,100ms --runs 5 --json lab-out/bench-failover.json --out lab-out/failover || rc=1; \
	$(VENV)/bin/vmac-lab bench scale --impl vmacd,keepalived --vrids 255 --advert 100ms \
	  --duration 20s --runs 3 --json lab-out/bench-scale.json || rc=1; \
	$(VENV)/bin/vmac-lab bench jitter --impl vmacd,keepalived --advert 100ms --duration 20s \
	  --load cpu,cpu-all,cpu-pinned,gc --runs 3 --json lab-out/bench-jitter.json || rc=1; \
	$(VENV)/bin/vmac-lab bench faults --impl vmacd,keepalived,frr \
	  --fault partition,freeze-master,freeze-backup,restart-term,restart-kill,replug,reload,flood \
	  --runs 3 --json lab-out/bench-faults.json || rc=1; \
	$(VENV)/bin/vmac-lab bench faults --impl vmacd,keepalived --fault loss10,loss30 --duration 5m \
	  --runs 1 --json lab-out/bench-faults-loss.json || rc=1; \
	exit $$rc

lint: venv
	$(PY) -m pip install -q ruff
	$(VENV)/bin/ruff check vmacd netns-lab tests

deb: venv
	bash appliance/debian/build-deb.sh dist

clean:
	-$(VENV)/bin/vmac-lab down --all 2>/dev/null
	rm -rf $(VENV) .apt.stamp .apt-lab.stamp build dist *.egg-info .pytest_cache .hypothesis lab-out
