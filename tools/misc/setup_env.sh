#!/usr/bin/env bash
# Copyright (c) EVLab contributors.
# Bootstrap EVLab's virtual environment (.venv) with the pinned OpenMMLab
# stack. Called by `make setup` (and so by `make test` / `make demo`).
#
# Steps, each resumable: a rerun skips the steps already done.
#   1. venv      python3.11 -m venv .venv, build tools (setuptools<81: mmcv's
#                setup.py imports pkg_resources)
#   2. torch     torch / torchvision at the pinned versions
#   3. mmcv      mmcv 2.1.0 with ops, from the PyPI sdist, patched to C++20
#                (torch 2.14's headers need it); the wheel is cached outside
#                the clone, keyed by mmcv, torch and CPU/CUDA
#   4. evlab     pip install -e .[tests] (mmengine, mmdet, mmseg, mmpretrain,
#                timm, test tools, mmcv's own requirements) and torchreid
#                (--no-deps, a test reference), then imports every library
#                (mmcv.ops included) as a check
#
# Environment:
#   EVLAB_MMCV_OPS=auto|cpu|cuda   which mmcv ops to build (default auto:
#                                  CUDA when a GPU and nvcc are present)
#   EVLAB_CACHE=DIR                wheel cache (default ~/.cache/evlab)
#   PYTHON=python3.11              interpreter for the venv
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
VENV=${VENV:-$ROOT/.venv}
PYTHON=${PYTHON:-python3.11}
CACHE=${EVLAB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/evlab}
OPS=${EVLAB_MMCV_OPS:-auto}
TORCH_VERSION=2.14.1
TORCHVISION_VERSION=0.29.1
MMCV_VERSION=2.1.0
SETUPTOOLS='setuptools>=77.0.3,<81'
STATE=$VENV/.evlab-setup
LOGS=$STATE/logs

say() {
  if [[ -t 1 ]]; then printf '\033[1m[setup]\033[0m %s\n' "$*"; else
    printf '[setup] %s\n' "$*"; fi
}

# run_step NAME DESCRIPTION FUNCTION: runs FUNCTION once, logging to a file;
# on failure names the step, shows the log's tail and how to continue.
run_step() {
  local name=$1 desc=$2 fn=$3
  if [[ -f $STATE/$name.done ]]; then
    say "$desc: done before, skipped"
    return
  fi
  say "$desc ..."
  local t0=$SECONDS log=$LOGS/$name.log pid
  # in the background, so that `set -e` holds inside the step: bash ignores
  # it in functions that run as an `if` condition
  (set -e; "$fn") >"$log" 2>&1 &
  pid=$!
  if ! wait "$pid"; then
    echo >&2
    echo "[setup] step '$name' ($desc) failed. Last lines of $log:" >&2
    tail -n 25 "$log" >&2
    echo >&2
    echo "[setup] fix the cause above, then rerun 'make setup': it continues" \
      "from step '$name'." >&2
    exit 1
  fi
  touch "$STATE/$name.done"
  say "$desc: ok ($((SECONDS - t0))s)"
}

# --no-compile: byte-compiling torch's thousands of files at install time
# costs tens of seconds; Python compiles what is imported, when imported
pip_() { "$VENV/bin/python" -m pip --disable-pip-version-check "$@"; }
pip_install() { pip_ install --no-compile "$@"; }

step_venv() {
  command -v "$PYTHON" >/dev/null || {
    echo "$PYTHON not found: EVLab needs Python 3.11 (set PYTHON=...)"
    return 1
  }
  "$PYTHON" -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version' ||
    { echo "$PYTHON is not Python 3.11"; return 1; }
  [[ -x $VENV/bin/python ]] || "$PYTHON" -m venv "$VENV"
  pip_install "$SETUPTOOLS" wheel ninja
}

step_torch() {
  # torch asks for setuptools>=77.0.3, mmengine/mmcv import pkg_resources,
  # which setuptools 81 removed: pin both ends in the same resolution
  pip_install "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION" \
    "$SETUPTOOLS"
}

# cpu or cuda: which mmcv ops this machine builds
mmcv_flavour() {
  case $OPS in
    cpu | cuda) echo "$OPS" ;;
    auto)
      if command -v nvcc >/dev/null && command -v nvidia-smi >/dev/null &&
        nvidia-smi -L >/dev/null 2>&1; then echo cuda; else echo cpu; fi
      ;;
    *)
      echo "EVLAB_MMCV_OPS must be auto, cpu or cuda, not '$OPS'" >&2
      return 1
      ;;
  esac
}

step_mmcv() {
  local flavour key dir wheel
  flavour=$(mmcv_flavour)
  key="mmcv-$MMCV_VERSION-torch$TORCH_VERSION-$flavour"
  dir=$CACHE/wheels/$key
  wheel=$(ls "$dir"/mmcv-*.whl 2>/dev/null | head -n 1 || true)
  if [[ -z $wheel ]]; then
    echo "no cached wheel in $dir: building mmcv $MMCV_VERSION ($flavour ops)"
    local src
    src=$(mktemp -d)
    pip_ download --no-deps --no-binary mmcv --no-build-isolation \
      "mmcv==$MMCV_VERSION" -d "$src"
    tar -xzf "$src/mmcv-$MMCV_VERSION.tar.gz" -C "$src"
    # torch 2.14's headers need C++20; mmcv hard-codes -std=c++14/17
    sed -i 's/-std=c++1[47]/-std=c++20/g' "$src/mmcv-$MMCV_VERSION/setup.py"
    grep -q 'std=c++20' "$src/mmcv-$MMCV_VERSION/setup.py"
    local -a env=(MMCV_WITH_OPS=1 "MAX_JOBS=${MAX_JOBS:-$(nproc)}")
    if [[ $flavour == cuda ]]; then
      env+=(FORCE_CUDA=1)
    else
      env+=(FORCE_CUDA=0 CUDA_VISIBLE_DEVICES=)
    fi
    mkdir -p "$dir"
    (cd "$src/mmcv-$MMCV_VERSION" &&
      env "${env[@]}" "$VENV/bin/python" -m pip wheel --no-deps \
        --no-build-isolation . -w "$src/wheel")
    # copy then rename: a killed build never leaves a broken cached wheel
    local built
    built=$(ls "$src"/wheel/mmcv-*.whl)
    cp "$built" "$dir/.partial.whl"
    mv "$dir/.partial.whl" "$dir/$(basename "$built")"
    wheel=$dir/$(basename "$built")
    rm -rf "$src"
  else
    echo "using cached wheel $wheel"
  fi
  # the wheel alone, replacing any other mmcv build; its requirements
  # (opencv, ...) come with the next step, which also imports mmcv.ops
  pip_install --force-reinstall --no-deps "$wheel"
}

step_evlab() {
  pip_install -e "$ROOT[tests]"
  # torchreid's metric is the parity reference of P2Net's Market-1501
  # evaluation (tests/projects/test_p2net/test_metric.py); --no-deps: its
  # rank.py and rerank.py are loaded standalone and need only numpy, not
  # torchreid's dependencies (cv2, gdown, tensorboard)
  pip_install --no-deps "torchreid==0.2.5"
  "$VENV/bin/python" - <<'EOF'
import mmcv, mmdet, mmengine, mmpretrain, mmseg, torch
import mmcv.ops, mmdet.models, mmpretrain.models, mmseg.models  # noqa
print('torch', torch.__version__, 'mmcv', mmcv.__version__,
      'mmengine', mmengine.__version__, 'mmdet', mmdet.__version__,
      'mmseg', mmseg.__version__, 'mmpretrain', mmpretrain.__version__)
EOF
}

mkdir -p "$LOGS"
# the requirements changed since the last setup: redo the evlab step
stamp=$(cat "$ROOT/pyproject.toml" | cksum | cut -d' ' -f1)
if [[ -f $STATE/evlab.done && "$(cat "$STATE/evlab.done")" != "$stamp" ]]; then
  rm -f "$STATE/evlab.done"
fi
t0=$SECONDS
run_step venv "virtual environment $VENV" step_venv
run_step torch "torch $TORCH_VERSION + torchvision $TORCHVISION_VERSION" step_torch
run_step mmcv "mmcv $MMCV_VERSION with ops" step_mmcv
run_step evlab "evlab and the OpenMMLab stack" step_evlab
echo "$stamp" >"$STATE/evlab.done"
say "environment ready in $((SECONDS - t0))s: $VENV"
