# EVLab: `make test` and `make demo` set up .venv on first use.
VENV ?= .venv
PY := $(VENV)/bin/python
READY := $(VENV)/.evlab-setup/evlab.done

.PHONY: setup data demo test test-parity lint clean-venv

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

## test: the whole test suite, on TEST_WORKERS processes (pytest-xdist;
## a test file stays on one worker, so its module fixtures are built once)
TEST_WORKERS ?= 2
test: $(READY)
	@$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# The checks against public references (timm, mmseg, mmpretrain), all in
# float64 (docs/cpu_kernels.md). test-parity reruns them with ATen's and
# oneDNN's kernels capped at AVX2, so that a check which still depends on
# the kernels a CPU picks fails on an AVX-512 machine too.
PARITY_TESTS := \
	tests/projects/test_issa/test_isahead_parity.py \
	tests/projects/test_issa/test_module.py::test_equals_group_by_group_reference \
	tests/projects/test_issa/test_module.py::test_dense_module_equals_the_formula \
	tests/projects/test_issa/test_module.py::test_one_long_group_is_dense_attention_then_one_key_groups \
	tests/projects/test_issa/test_module.py::test_one_short_group_is_dense_attention_after_one_key_groups \
	tests/projects/test_ghostnet/test_ghostnet.py::test_logits_equal_timm_with_converted_weights \
	tests/projects/test_tnt/test_tnt.py::test_logits_equal_timm \
	tests/projects/test_tnt/test_tnt.py::test_tnt_ti_logits_equal_timm_tnt_class \
	tests/projects/test_tnt/test_tnt.py::test_legacy_logits_equal_mmpretrain_tnt \
	tests/projects/test_tnt/test_tnt.py::test_official_checkpoint_converts_exactly \
	tests/projects/test_tnt/test_tnt.py::test_interpolated_position_embedding_for_another_input_size \
	tests/projects/test_manifold_kd/test_timm_parity.py::test_converted_timm_deit_gives_timm_logits
PARITY_ENV ?= ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2

## test-parity: the reference checks again, kernels capped at AVX2
test-parity: $(READY)
	@env $(PARITY_ENV) $(PY) -m pytest -q $(PARITY_TESTS) $(PYTEST_ARGS)

## lint: ruff
lint: $(READY)
	@$(VENV)/bin/ruff check .

clean-venv:
	rm -rf $(VENV)
