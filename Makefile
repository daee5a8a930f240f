# Two commands for a fresh machine:  make demo   (the main job)   and   make test
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench mutate clean

$(STAMP): pyproject.toml constraints-cpu.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -c constraints-cpu.txt -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/landscape demo --out runs/demo --overwrite

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_probe.py --threads 1
	$(BIN)/python benchmarks/bench_slices.py --threads 1 --quick
	$(BIN)/python benchmarks/bench_grid_file.py --threads 1
	$(BIN)/python benchmarks/bench_distributed.py --repeats 3

# Mutation testing of one wing, not in CI: make mutate WING=probes [MODULES="gradient core"]
# [TESTS="tests/probes/test_core.py ..."] [ARGS=--survivors|--fresh]; docs/testing.md has the scores.
mutate: $(STAMP)
	$(if $(WING),,$(error WING is required: make mutate WING=probes))
	$(BIN)/python scripts/mutate.py $(WING) $(if $(MODULES),--modules $(MODULES)) \
		$(if $(TESTS),--tests $(TESTS)) $(ARGS)

clean:
	rm -rf $(VENV) runs .pytest_cache build/mutate
