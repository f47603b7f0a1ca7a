#!/usr/bin/env bash
# Thin wrapper for the GPU node check (see benchmarks/gpu_check.py and docs/GPU.md).
#   benchmarks/gpu_check.sh [--dry] [--budget-s 420] ...   (stopped at budget + 50 s)
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
# Hard stop 50 s after the time budget (--budget-s, default 420) so a hung part cannot hold the
# node; GPU_CHECK_TIMEOUT_S overrides it. The JSON is saved after every part, so a run stopped
# here keeps what it measured ("complete": false).
budget=420
prev=
for arg in "$@"; do
  case "$arg" in
    --budget-s=*) budget="${arg#--budget-s=}" ;;
    *) if [ "$prev" = "--budget-s" ]; then budget="$arg"; fi ;;
  esac
  prev="$arg"
done
budget="${budget%%.*}"
case "$budget" in
  ''|*[!0-9]*) echo "gpu_check.sh: --budget-s must be a number of seconds" >&2; exit 2 ;;
esac
exec timeout "${GPU_CHECK_TIMEOUT_S:-$((budget + 50))}" "$PY" -m benchmarks.gpu_check "$@"
