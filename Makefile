# Two commands on a fresh Debian / Raspberry Pi OS machine with python3 (>= 3.11) and make:
#   make run    set up .venv and run the twin in simulation (Ctrl-C stops it)
#   make test   set up .venv with the test extras (and Debian's chromium for the browser tests)
#               and run ruff, mypy --strict and pytest
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
ARGS ?=

.PHONY: run test check venv clean bench browser image image-test

# The Raspberry Pi SD-card image (deploy/image, docs/operations.md "Flash and go"); as root.
# Not part of `make test`: the build takes tens of minutes, the emulated boot test more.
IMAGE ?= build/image/dsmr-twin-raspi-arm64.img
# The public key that may log in as `pi` (created with its private key if it does not exist).
SSH_KEY ?= build/image/id_ed25519.pub

$(BIN)/python:
	@./scripts/ensure-venv "$(PYTHON)" "$(VENV)"

$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $@ $(VENV)/.installed-run

venv: $(VENV)/.installed-run

run: $(VENV)/.installed-run
	$(BIN)/dsmr-twin run $(ARGS)

check: $(VENV)/.installed-test
	$(BIN)/ruff check twin hardware tests bench
	$(BIN)/ruff format --check twin hardware tests bench
	$(BIN)/mypy

# The web console's browser tests need chromium and chromium-driver (apt-get, as root).
browser:
	@./scripts/ensure-browser

test: check browser
	$(BIN)/python -m pytest $(ARGS)

bench: $(VENV)/.installed-test
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

image: $(VENV)/.installed-test
	deploy/image/build-image $(IMAGE) $(SSH_KEY) $(BIN)/python

image-test: $(VENV)/.installed-test
	$(BIN)/python -m tests.image.run_image_test --image $(IMAGE) --ssh-key $(SSH_KEY:.pub=)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
