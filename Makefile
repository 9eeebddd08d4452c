# EVLab: `make test` and `make demo` set up .venv on first use.
VENV ?= .venv
PY := $(VENV)/bin/python
READY := $(VENV)/.evlab-setup/evlab.done

.PHONY: setup data demo test lint clean-venv

$(READY): pyproject.toml tools/misc/setup_env.sh
	@bash tools/misc/setup_env.sh

## setup: create .venv with the pinned OpenMMLab stack (resumable)
setup:
	@bash tools/misc/setup_env.sh

## data: generate the toy datasets that are missing (data/)
data: $(READY)
	@$(PY) tools/misc/make_toy_data.py

## demo: DeFeat on toy detection: teacher, student, distilled student; table
demo: $(READY)
	@$(PY) tools/misc/make_toy_data.py --tasks det
	@$(PY) tools/misc/demo.py

## test: the whole test suite
test: $(READY)
	@$(PY) -m pytest $(PYTEST_ARGS)

## lint: ruff
lint: $(READY)
	@$(VENV)/bin/ruff check .

clean-venv:
	rm -rf $(VENV)
