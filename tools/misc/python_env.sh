# Copyright (c) EVLab contributors.
# Sourced by the tools/*.sh launchers: picks the interpreter (PYTHON) and
# puts the repository root on PYTHONPATH. The repo's .venv is used unless
# PYTHON is set or a virtual environment is active.
EVLAB_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
if [[ -z ${PYTHON:-} ]]; then
  if [[ -z ${VIRTUAL_ENV:-} && -x $EVLAB_ROOT/.venv/bin/python ]]; then
    PYTHON=$EVLAB_ROOT/.venv/bin/python
  else
    PYTHON=python
  fi
fi
export PYTHONPATH="$EVLAB_ROOT${PYTHONPATH:+:$PYTHONPATH}"
