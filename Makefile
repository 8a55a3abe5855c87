# Two entry points: `make run` and `make test`. Both create .venv with the pinned packages first.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
CORES  ?= 2
# The driver of cluster runs (Snakemake and its Slurm plugin; README "Running on a Slurm cluster").
DRIVER := .venv-driver

.PHONY: run evidence test venv driver sysdeps testdeps lint clean bench bundle

# Debian packages the workflow needs beyond Python: latexmk and TeX for paper/paper.pdf.
APT_PACKAGES := latexmk texlive-latex-base texlive-latex-recommended texlive-latex-extra
# ... and the tests: a headless browser for the viewer pages (tests/test_viewer.py).
TEST_APT_PACKAGES := chromium poppler-utils

$(BIN)/dicebench: pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

venv: $(BIN)/dicebench

# The pins of envs/driver.yaml's pip section in a venv, for clusters without conda; the package
# itself without dependencies (for `dicebench sbatch-preview`; the Snakefile imports it from src/).
$(DRIVER)/bin/dicebench: envs/driver.yaml pyproject.toml
	test -x $(DRIVER)/bin/python || $(PYTHON) -m venv $(DRIVER)
	grep -E '^ +- [A-Za-z0-9_.-]+==' envs/driver.yaml | sed 's/^ *- //' > $(DRIVER)/requirements.txt
	$(DRIVER)/bin/pip install --quiet --disable-pip-version-check -r $(DRIVER)/requirements.txt
	$(DRIVER)/bin/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

driver: $(DRIVER)/bin/dicebench

# $(call apt_install,COMMANDS,PACKAGES): install the Debian PACKAGES (as root or through sudo)
# unless every one of COMMANDS is already on PATH.
define apt_install
	@for c in $(1); do command -v $$c >/dev/null || missing=1; done; [ -z "$$missing" ] || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null; then SUDO=sudo; else \
	    echo "$(1) missing: install the Debian packages $(2)" >&2; exit 1; fi; \
	  echo "installing $(2)"; \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends $(2); }
endef

sysdeps:
	$(call apt_install,latexmk pdflatex,$(APT_PACKAGES))

testdeps:
	$(call apt_install,chromium pdftotext,$(TEST_APT_PACKAGES))

# The rules call the package's `dicebench` command: put the venv first on PATH.
export PATH := $(CURDIR)/$(BIN):$(PATH)

# The greedy scheduler: the default ILP one spends a tenth of the 2 cores choosing among the
# evidence run's ~300 jobs, which a 2-core machine cannot spare.
SCHEDULER := --scheduler greedy

run: venv sysdeps
	snakemake --cores $(CORES) $(SCHEDULER) --configfile config/config.yaml

# The evidence run (README "What the evidence run shows"): every paper's grid trained to
# convergence on CPU with enough seeds and test cases to decide the claims; at the end its wall
# time, how much of the cores its jobs used (from Snakemake's benchmark files) and whether it met
# its targets (convergence, floors, seeds, cases, median mdd: figures/evidence/evidence_check.md).
evidence: venv sysdeps
	@start=$$(date +%s); status=0; \
	snakemake --cores $(CORES) $(SCHEDULER) --configfile config/evidence.yaml || status=$$?; \
	dicebench utilisation --benchmarks results/evidence/benchmarks --since $$start --cores $(CORES); \
	dicebench evidence-check --configfile config/evidence.yaml --out figures/evidence/evidence_check.md; \
	exit $$status

# The driver is built too: the Slurm end-to-end test submits from it, the preview test runs in it.
test: venv driver sysdeps testdeps
	$(BIN)/python -m pytest -q

# One checksummed archive of the run for others to check (README "Checking a run"): runs
# whatever is missing first. WEIGHTS=1 adds every cell's model.pt and model_best.pt.
bundle: venv sysdeps
	snakemake --cores $(CORES) --configfile config/config.yaml \
	  $(if $(filter 1 yes true,$(WEIGHTS)),results/bundle_with_weights.tar.gz,results/bundle.tar.gz)

# What tests/test_lint.py checks: Snakemake's linter and the workflow's formatting (snakefmt).
lint: venv
	snakemake --lint --configfile config/config.yaml
	snakefmt --check Snakefile workflow/

bench: venv
	for b in bench/bench_*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf results/*/ figures/*.png figures/*.pdf figures/*.md resources .snakemake
