# Two entry points: `make run` and `make test`. Both create .venv with the pinned packages first.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
CORES  ?= 2

.PHONY: run test venv lint clean bench

$(BIN)/dicebench: pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

venv: $(BIN)/dicebench

# The rules call the package's `dicebench` command: put the venv first on PATH.
export PATH := $(CURDIR)/$(BIN):$(PATH)

run: venv
	snakemake --cores $(CORES) --configfile config/config.yaml

test: venv
	$(BIN)/python -m pytest -q

lint: venv
	snakemake --lint --configfile config/config.yaml

bench: venv
	for b in bench/bench_*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf results/*/ figures/*.png figures/*.pdf figures/*.md resources .snakemake
