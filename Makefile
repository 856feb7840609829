# meshd — the two commands a newcomer needs are `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: install run test unit fuzz bench images system-deps peers clean

install: $(STAMP)

# the compiled hot path's sources (meshd/compiled.py lists them): an edit rebuilds it
HOT    := $(shell sed -n '/^MODULES = (/,/^)/p' meshd/compiled.py | grep -o '"meshd[a-z0-9_.]*"' | tr -d '"' | sed 's|\.|/|g; s|$$|.py|')

$(STAMP): pyproject.toml setup.py meshd/compiled.py $(HOT) $(wildcard $(HOT:.py=.pxd))
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@rm -f $(VENV)/.installed-*; touch $@

run: install
	$(VENV)/bin/meshd demo

# System packages the suites need (ZooKeeper, Docker engine, debootstrap, node, curl for the demo's lines);
# apt when root on Debian.
system-deps:
	@sh integration/provision.sh zookeeper:/usr/share/java/zookeeper.jar debootstrap:debootstrap docker.io:dockerd nodejs:node npm:npm curl:curl

images: install system-deps
	$(PY) -m integration.images build

peers: install
	$(PY) -m integration.peers install

# Every suite twice: on the compiled hot path, then on its Python source (MESHD_PURE=1, meshd/compiled.py).
test: install system-deps images peers
	$(PY) -m pytest
	MESHD_PURE=1 $(PY) -m pytest

unit: install
	$(PY) -m pytest tests/unit

# The fuzz suite (tests/fuzz) for FUZZ_SECONDS: hypothesis rounds with fresh seeds, then atheris
# (coverage-guided) when it installs; `make test` runs the same properties for a few thousand cases each.
FUZZ_SECONDS ?= 600
fuzz: install
	@$(PY) -c "import atheris" 2>/dev/null || $(PY) -m pip install --quiet atheris \
		|| echo "fuzz: atheris did not install; hypothesis only"
	$(PY) -m tests.fuzz --seconds $(FUZZ_SECONDS)

bench: install
	$(PY) -m bench

clean:
	rm -rf $(VENV) .cache build *.egg-info
