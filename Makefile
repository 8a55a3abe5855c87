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

run: venv
	$(BIN)/snakemake --cores $(CORES) --configfile config/config.yaml

test: venv
	$(BIN)/python -m pytest -q

lint: venv
	$(BIN)/snakemake --lint --configfile config/config.yaml

bench: venv
	for b in bench/bench_*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf results/*/ figures/*.png figures/*.pdf figures/*.md resources .snakemake
