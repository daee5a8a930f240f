# Two commands for a fresh machine:  make demo   (the main job)   and   make test
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench gallery mutate clean

$(STAMP): pyproject.toml constraints-cpu.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -c constraints-cpu.txt -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/landscape demo --out runs/demo --overwrite

test: $(STAMP)
	$(BIN)/python -m pytest -q

# The README's gallery, regenerated: the demo's figures, Fig. 2 (noisy BN) and the init-scale
# sweep (11 minutes on 2 shared CPU cores), copied into docs/gallery.
gallery: $(STAMP)
	$(BIN)/landscape demo --out runs/demo --overwrite
	$(BIN)/python scripts/fig2_noisy_bn.py --out runs/fig2_tiny --overwrite
	$(BIN)/landscape sweep init-scale --out runs/sweep/sweep.h5
	cp runs/demo/figures/*.png runs/fig2_tiny/*.png runs/sweep/*.png docs/gallery/

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_report.py --threads 1
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
