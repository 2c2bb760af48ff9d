# Set-up and the two commands of the README: `make run` (the main study) and `make test`.
# Each target creates .venv and installs the project into it on first use.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU build of torch; on this project's machines it is on local disk. Override for a GPU box,
# e.g. `make TORCH=torch==2.13.0+cu128 ...` with your own index.
TORCH ?= torch==2.13.0
STUDY ?= studies/ablation_asd.yaml
PRESET ?= default
PYTEST_ARGS ?=
# OpenMP's wait policy (read when torch is imported, hence here) moves a step of the sprites DiT by 2-3x
# either way (docs/history.md has the figures). Threads that spin while waiting lose their core when other
# processes share it, so the tests, which run two-rank jobs on 2 cores, wait passively. A study runs alone,
# where sleeping threads pay a wake-up per small op, so it keeps the default policy. On a machine busy with
# other work, export OMP_WAIT_POLICY=PASSIVE.
TEST_WAIT_POLICY ?= PASSIVE

.PHONY: install run test bench clean vbench-env system-deps

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH)"
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

run: install
	WANDB_MODE=$${WANDB_MODE:-offline} $(VENV)/bin/harness run $(STUDY) --preset $(PRESET)

# vbench 0.1.5 lives in its own environment (numpy<2, transformers 4.33.2); the integration test drives it.
VBENCH_VENV ?= .cache/vbench-venv
vbench-env:
	bash scripts/vbench_env.sh $(VBENCH_VENV)

# Programs the tests drive for real, installed with apt when absent: Chromium for the HTML report,
# the PostgreSQL server for the multi-worker sweep test.
system-deps:
	bash scripts/install_chromium.sh
	bash scripts/install_postgres.sh
	bash scripts/install_texlive.sh

test: install vbench-env system-deps
	OMP_WAIT_POLICY=$${OMP_WAIT_POLICY:-$(TEST_WAIT_POLICY)} WANDB_MODE=offline WANDB_SILENT=true \
		$(PY) -m pytest $(PYTEST_ARGS)

bench: install
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache
