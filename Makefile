# Set-up and everyday commands. Only Python 3.11 is needed on the machine.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
DEMO_OUT ?= stems-out

.PHONY: demo test lint bench mappings clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Stamp files re-run the install whenever pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

# The built-in SEW-ResNet-18 on the default hardware (stems-edge), sweeping the global buffer; then every
# Pareto point's mapping file is re-priced to check it reproduces its stored numbers (the round trip).
DEMO_MODEL := $(DEMO_OUT)/sew-resnet18-dvs128.onnx
DEMO_DIR   := $(DEMO_OUT)/sew-resnet18-dvs128-stems-edge
DEMO_FLAGS ?= --sweep global_buffer.size=256KiB,512KiB,1MiB --objective energy_pj --objective offchip_bytes \
              --objective onchip_peak_bytes --pareto-steps 3 --time-limit 10 --workers 2

demo: $(VENV)/.installed
	$(BIN)/stems zoo export sew-resnet18-dvs128 $(DEMO_MODEL) --force
	$(BIN)/stems explore $(DEMO_MODEL) $(DEMO_FLAGS) --out $(DEMO_DIR) --force
	@echo
	$(BIN)/stems evaluate $(DEMO_DIR) --check --quiet
	@echo
	@echo "demo outputs: $(abspath $(DEMO_DIR))/ (open report.html; tables in points.csv and pareto.csv)"

test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -q

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check stems tests bench
	$(BIN)/ruff format --check stems tests bench

# Regenerate the example mapping files in mappings/ (the Pareto points of the built-in models on the
# default hardware); tests/test_shipped_mappings.py checks that each still reproduces its numbers.
EXAMPLES := sew-resnet18-dvs128:256KiB red-lif:1MiB
mappings: $(VENV)/.installed
	set -e; for ex in $(EXAMPLES); do model=$${ex%%:*}; size=$${ex##*:}; dir=mappings/$$model-stems-edge-$$size; \
	  $(BIN)/stems explore zoo:$$model --set global_buffer.size=$$size --objective energy_pj \
	    --objective offchip_bytes --objective onchip_peak_bytes --pareto-steps 2 --time-limit 20 --workers 2 \
	    --no-plots --quiet --out $(DEMO_OUT)/examples/$$model --force; \
	  rm -rf $$dir; cp -r $(DEMO_OUT)/examples/$$model/mappings $$dir; done

bench: $(VENV)/.installed-dev
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache .ruff_cache
