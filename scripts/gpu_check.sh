#!/usr/bin/env bash
# GPU parity and GPU benchmark on a CUDA machine as it is (e.g. the lent H200: Python 3.12,
# torch+CUDA, lightning, onnx, onnxscript, the CPU onnxruntime package, no TensorFlow, no
# package registry). No install step: run from the repository root with PYTHONPATH=.
#
#   OUT=/some/dir PYTHONPATH=. bash scripts/gpu_check.sh
#
# Writes everything under $OUT (reports, bench JSON, a summary). Budget: under 6 minutes.
# Rehearsal without a GPU (every step on the CPU, small batches):
#   GPU_CHECK_DEVICE=cpu GPU_CHECK_BATCHES="1 4" GPU_CHECK_REPEATS=3 OUT=/tmp/rehearsal \
#     PYTHONPATH=. bash scripts/gpu_check.sh
# TensorFlow is not needed: the demo's bundled TensorFlow references are used. ONNX Runtime's
# CUDA provider (onnxruntime-gpu) is usually absent on that image: the check then compares
# eager/TorchScript/.pt2 on CUDA (and ONNX Runtime on CPU) and exits 3 with a line saying so,
# never a pass. Every step's exit code goes into $OUT/summary.txt.
set -u
OUT=${OUT:-/tmp/gpu-check}
mkdir -p "$OUT"
export PYTHONPATH=${PYTHONPATH:-$(pwd)}
PY=${PYTHON:-python}
DEVICE=${GPU_CHECK_DEVICE:-cuda}      # cpu: a rehearsal of every step on a machine without a GPU
BATCHES=${GPU_CHECK_BATCHES:-"1 32 256"}
REPEATS=${GPU_CHECK_REPEATS:-30}
SUMMARY="$OUT/summary.txt"
: >"$SUMMARY"
step() {  # step NAME COMMAND...: run, tee the log, record the exit code
  local name=$1
  shift
  echo "== $name"
  local start=$SECONDS
  "$@" 2>&1 | tee "$OUT/$name.log"
  local code=${PIPESTATUS[0]}
  echo "$name: exit $code ($((SECONDS - start)) s)" | tee -a "$SUMMARY"
}

step environment "$PY" - <<'PY'
import platform, torch, onnxruntime as ort
print("python", platform.python_version())
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
if torch.cuda.is_available():
    print("gpu", torch.cuda.get_device_name(0), "cudnn", torch.backends.cudnn.version())
print("onnxruntime", ort.__version__, "providers", ort.get_available_providers())
PY
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv >"$OUT/nvidia-smi.txt" 2>&1 || true

if [ "$DEVICE" = cuda ] && ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 3)"; then
  echo "no CUDA device: exit 3 (nothing else to check here)" | tee -a "$SUMMARY"
  exit 3
fi

# 1. Parity on CUDA against the bundled TensorFlow references (TF32 off), both heads.
for head in object physics; do
  step "parity-$head" "$PY" -m export build --head "$head" --out "$OUT/artifacts-$head" \
    --device "$DEVICE" --report-dir "$OUT/report-$head" --keep 0
  sed -n 1,25p "$OUT/report-$head/report.md" 2>/dev/null || true
done

# 2. Benchmark on CUDA at batch 1, 32 and 256 (artifacts cut from a simulated scan).
step simulate "$PY" -m ptycho_torch.simulate --out "$OUT/scan.npz" --seed 1 --n-images 300
for batch in $BATCHES; do
  step "build-b$batch" "$PY" -m export build --inputs "$OUT/scan.npz" --batch "$batch" \
    --out "$OUT/bench-b$batch" --reference none --no-parity --keep 0
  step "bench-$DEVICE-b$batch" "$PY" -m parity.bench --artifacts "$OUT/bench-b$batch" \
    --device "$DEVICE" --repeats "$REPEATS" --warmup 5 --json "$OUT/bench-$DEVICE-b$batch.json"
done

# 3. The GPU tests (pytest may be absent from the image: then say so).
if "$PY" -c "import pytest" 2>/dev/null; then
  step gpu-tests "$PY" -m pytest -q -m gpu tests -p no:cacheprovider
else
  echo "gpu-tests: pytest not installed on this machine: not run" | tee -a "$SUMMARY"
fi

echo "== summary"
cat "$SUMMARY"
