#!/usr/bin/env bash
# Prepare what benchmarks/gpu_check.sh needs on a GPU machine without network (docs/GPU.md):
#   .whl/  wheels for its Python (3.12): PyAV, pydantic, lap, PyNvVideoCodec (slimmed)
#   .gpu/  the 1080p25 clip and yolov5n.pt
# Both folders are ignored by git (.git/info/exclude). Prints the command to run there.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
PYV=${GPU_PYTHON_VERSION:-3.12}
SHARED=${SHARED:-../shared}
for d in /.whl/ /.gpu/; do
  grep -qxF "$d" .git/info/exclude 2>/dev/null || echo "$d" >> .git/info/exclude
done
mkdir -p .whl .gpu
dl() {
  "$PY" -m pip download --quiet --no-deps --only-binary=:all: --python-version "$PYV" \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl "$@"
}
# av pinned to the version CI tests with; the rest are what the GPU image lacks.
dl "av==$("$PY" -c 'import av; print(av.__version__)')" pydantic pydantic-core annotated-types \
  typing-inspection typing-extensions lap pynvvideocodec
# PyNvVideoCodec's wheel carries an FFmpeg source tarball, notebooks and benchmarks (17 MB):
# drop them so everything fits the device tool's 64 MiB (the library itself is unchanged).
"$PY" - <<'PYEOF'
import pathlib, zipfile
for src in pathlib.Path(".whl").glob("pynvvideocodec-*.whl"):
    tmp = src.with_suffix(".tmp")
    with zipfile.ZipFile(src) as zi, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zo:
        for info in zi.infolist():
            n = info.filename
            if ".data/data/" in n or n.startswith(("samples/", "benchmarks/")):
                continue
            zo.writestr(info, zi.read(n))
    tmp.replace(src)
PYEOF
[ -f benchmarks/out/gpu_1080p25.mp4 ] || "$PY" -m benchmarks.make_gpu_clip
cp benchmarks/out/gpu_1080p25.mp4 .gpu/
cp "$SHARED/models/yolov5n.pt" .gpu/
du -sh .whl .gpu
cat <<'CMD'
On the GPU machine (carry .whl and .gpu):
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 3; export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 PYTHON=python3 WHEELS=/none; bash benchmarks/gpu_check.sh --clip .gpu/gpu_1080p25.mp4 --weights .gpu/yolov5n.pt --budget-s 420 > $OUT/log.txt 2>&1; grep -E "^\[gpu_check\]|^\|" $OUT/log.txt | cut -c1-600
CMD
