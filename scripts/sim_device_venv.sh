#!/usr/bin/env bash
# The lent H200's image, simulated on a machine without a GPU, and scripts/gpu_check.sh run in
# it: a venv outside the repository with the image's versions of onnxruntime (the CPU package),
# onnx, onnxscript and lightning, and the image's other packages that this project uses
# (numpy, matplotlib, h5py, jinja2, pytest, hypothesis); no TensorFlow and no install of this
# project (PYTHONPATH=. as on the device). torch stays the CPU build (2.13.0 here; the image has
# 2.11+cu130), so the check must stop at the CUDA gate with exit 3 and nothing before it failing.
#
#   bash scripts/sim_device_venv.sh                # build/refresh the venv, run the check: expect 3
#   bash scripts/sim_device_venv.sh --rehearsal    # also every step on the CPU: expect 0
#
# Settings: SIM_VENV (default /work/simvenv, or ../simvenv beside the repo elsewhere),
# SIM_PYTHON (the interpreter that makes the venv; default python3), SIM_OUT (default
# /tmp/sim-device), SIM_REHEARSAL_BUDGET (the rehearsal's GPU_CHECK_BUDGET, default 900 s: a
# 2-core CPU is slower than the device). The image's Python is 3.12; this machine's torch CPU
# wheel is cp311 only (PyPI's torch for Linux is the multi-GB CUDA build), so the venv is
# Python 3.11 here.
# Exit: 0 the simulation came out as expected, 1 it did not (see the summary printed).
set -u
cd "$(dirname "$0")/.."
ROOT=$(pwd)
if [ -d /work ]; then DEFAULT_VENV=/work/simvenv; else DEFAULT_VENV=$ROOT/../simvenv; fi
VENV=${SIM_VENV:-$DEFAULT_VENV}
SIM_PYTHON=${SIM_PYTHON:-python3}
SIM_OUT=${SIM_OUT:-/tmp/sim-device}
REHEARSAL=0
[ "${1:-}" = --rehearsal ] && REHEARSAL=1

# The image's versions where they are known (its pip list: onnxruntime 1.30.0, onnx 1.23.1,
# onnxscript 0.7.2, lightning/pytorch-lightning 2.6.6, numpy 2.5.2, which PyPI does not have:
# 2.4.6 instead); the rest are constraints.txt's pins.
PACKAGES=(torch==2.13.0 onnxruntime==1.30.0 onnx==1.23.1 onnxscript==0.7.2 lightning==2.6.6
  pytorch-lightning==2.6.6 numpy==2.4.6 matplotlib==3.11.2 h5py==3.14.0 jinja2==3.1.6
  markupsafe==3.0.3 pytest==9.0.3 hypothesis==6.155.2)

case "$VENV" in "$ROOT"/*)
  echo "SIM_VENV must lie outside the repository ($VENV)" >&2
  exit 2
  ;;
esac
if [ ! -x "$VENV/bin/python" ]; then
  "$SIM_PYTHON" -m venv "$VENV" || exit 1
fi
echo "== venv $VENV ($("$VENV/bin/python" --version))"
"$VENV/bin/python" -m pip install -q "${PACKAGES[@]}" || exit 1
"$VENV/bin/python" -m pip uninstall -q -y tensorflow tensorflow-cpu ptychopinn-export 2>/dev/null
"$VENV/bin/python" -m pip list 2>/dev/null |
  grep -i -E '^(torch|onnx|onnxruntime|onnxscript|onnx-ir|lightning|pytorch-lightning|numpy|matplotlib|h5py|jinja2|markupsafe|pytest|hypothesis) '

fail=0
(cd / && "$VENV/bin/python" -c "import tensorflow" 2>/dev/null) &&
  { echo "FAIL: tensorflow is importable in the venv" >&2; fail=1; }
(cd / && "$VENV/bin/python" -c "import export" 2>/dev/null) &&
  { echo "FAIL: the project is installed in the venv" >&2; fail=1; }

echo "== gpu_check.sh as on the device (OUT=$SIM_OUT/check)"
rm -rf "$SIM_OUT/check"
start=$SECONDS
PATH="$VENV/bin:$PATH" OUT="$SIM_OUT/check" PYTHONPATH=. bash scripts/gpu_check.sh
code=$?
echo "gpu_check.sh: exit $code in $((SECONDS - start)) s (expected 3: no CUDA device)"
if [ "$code" != 3 ] || ! grep -q '^no CUDA device' "$SIM_OUT/check/summary.txt" ||
  grep -v -E '^(no CUDA device|verdict)' "$SIM_OUT/check/summary.txt" | grep -v -q ': exit 0 '; then
  echo "FAIL: expected exit 3 at the CUDA gate with every earlier step at exit 0" >&2
  fail=1
fi

if [ "$REHEARSAL" = 1 ]; then
  echo "== gpu_check.sh, every step on the CPU (OUT=$SIM_OUT/rehearsal)"
  rm -rf "$SIM_OUT/rehearsal"
  start=$SECONDS
  PATH="$VENV/bin:$PATH" GPU_CHECK_DEVICE=cpu GPU_CHECK_BATCHES="1 4" GPU_CHECK_REPEATS=3 \
    GPU_CHECK_BENCH_ARGS="--seconds 0 --repeats 3 --no-layers" GPU_CHECK_BUDGET=${SIM_REHEARSAL_BUDGET:-900} OUT="$SIM_OUT/rehearsal" PYTHONPATH=. bash scripts/gpu_check.sh
  code=$?
  echo "rehearsal: exit $code in $((SECONDS - start)) s (expected 0)"
  [ "$code" = 0 ] || fail=1
fi
[ "$fail" = 0 ] && echo "simulation: as expected" || echo "simulation: NOT as expected"
exit "$fail"
