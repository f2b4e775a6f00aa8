# Set-up and everyday commands. `make train ARGS="model.latent_dim=2 noise=0.3"` passes Hydra overrides.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
ARGS ?=
PYTEST_ARGS ?=
# Test processes (pytest-xdist): most of a test's time is starting Python and a few tiny runs, so
# two share two cores well; TEST_WORKERS=0 runs the tests in this process alone.
TEST_WORKERS ?= 2
# The optional extras to install besides the package; CI adds the loggers' (wandb,mlflow).
EXTRAS ?= test,lint
# A wheel index to take torch and torchvision from before the rest, e.g. PyTorch's CPU-only one
# (TORCH_INDEX=https://download.pytorch.org/whl/cpu), which leaves out the CUDA packages (~6 GB).
TORCH_INDEX ?=

# Use the MNIST files beside the checkout when they are there (no download needed).
SHARED_DATA := $(abspath ../shared/data)
ifneq ($(wildcard $(SHARED_DATA)/MNIST/raw),)
export AUTOENCODER_DATA_DIR ?= $(SHARED_DATA)
endif

.PHONY: install train bench bench-quality bench-likelihood bench-sweeps lint test test-fast clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(if $(TORCH_INDEX),$(BIN)/pip install torch torchvision --index-url $(TORCH_INDEX))
	$(BIN)/pip install -e '.[$(EXTRAS)]'
	touch $@

train: install
	$(BIN)/python -m autoencoder.train $(ARGS)

# Lecture-style loop vs framework vs compute bound; writes the table to docs/benchmarks.md.
bench: install
	$(BIN)/python -m autoencoder.bench $(ARGS)

# Time until the val loss reaches the documented figures' level, recipe from before vs defaults, 3 seeds (~2 h on 2 CPU cores).
bench-quality: install
	$(BIN)/python -m autoencoder.time_to_quality $(ARGS)

# The VAE's importance-weighted likelihood pass against its compute bound (the decoder alone; ~10 min on 2 CPU cores).
bench-likelihood: install
	$(BIN)/python -m benchmarks.likelihood_speed $(ARGS)

# An Optuna search's storage with 1-8 workers: SQLite, journal file, PostgreSQL (a server of its own; ~5 min).
bench-sweeps: install
	$(BIN)/python -m benchmarks.sweep_storage $(ARGS)

# ruff: lint and format check (the pre-commit hooks run the same).
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# pytest exits 5 when it collects no test; say so instead of failing obscurely.
test: install
	$(BIN)/pytest -n $(TEST_WORKERS) $(PYTEST_ARGS) || { rc=$$?; if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; else exit $$rc; fi; }

test-fast: PYTEST_ARGS += -m "not slow"
test-fast: test

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
