#!/usr/bin/env bash
# Thin wrapper for the GPU node check (see benchmarks/gpu_check.py and docs/GPU.md).
#   benchmarks/gpu_check.sh [--dry] [--budget-s 420] ...
# On a GPU machine without network: wheels carried in $WHEELS (default .whl/) are installed
# with --no-index first (PyAV, pydantic, lap, pynvvideocodec …); results go to $OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
WHEELS="${WHEELS:-.whl}"
if [ -d "$WHEELS" ] && ls "$WHEELS"/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install --quiet --no-index --find-links "$WHEELS" "$WHEELS"/*.whl || \
    echo "gpu_check.sh: some carried wheels did not install; parts needing them will be skipped" >&2
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec timeout 470 "$PY" -m benchmarks.gpu_check "$@"
