#!/usr/bin/env bash
# GPU parity and GPU benchmark on any CUDA host as it is (torch with CUDA, lightning, onnx,
# onnxscript, onnxruntime, jinja2; pytest optional; no TensorFlow needed, no package registry).
# No install step: run from the repository root with PYTHONPATH=. (docs/bench.md).
#
#   OUT=/some/dir PYTHONPATH=. bash scripts/gpu_check.sh
#
# Budget: under 6 minutes. Everything is written under $OUT:
#   $OUT/summary.txt          one line per step with its exit code and seconds, then the verdict
#   $OUT/gpu-check.tar.gz     every log, report (md/html/json/junit, error maps) and bench JSON
#   $OUT/report-object.md, $OUT/report-physics.md   the two parity reports, readable as they are
#   $OUT/work/gpu/check/      the full working tree (artifacts, scan, reports, logs); the files
#                             above are the ones to read or copy back
# GPU_CHECK_BUDGET (default 330 s) bounds all the steps together and GPU_CHECK_STEP_TIMEOUT
# (default 240 s) each one; a step cut short or not started is exit 124 in the summary.
# Exit: 0 every step passed; 3 no CUDA device, or a step exited 3 (e.g. ONNX Runtime's CUDA
# provider absent) and none failed otherwise; 1 some step failed (its log says why).
#
# Rehearsal without a GPU (every step on the CPU, small batches):
#   GPU_CHECK_DEVICE=cpu GPU_CHECK_BATCHES="1 4" GPU_CHECK_REPEATS=3 OUT=/tmp/rehearsal \
#     GPU_CHECK_BENCH_ARGS="--seconds 0 --repeats 3 --no-layers" PYTHONPATH=. bash scripts/gpu_check.sh
# TensorFlow is not needed: the demo's bundled TensorFlow references are used. Without ONNX
# Runtime's CUDA provider (onnxruntime-gpu) the check compares eager/TorchScript/.pt2 on CUDA
# (and ONNX Runtime on CPU) and exits 3 with a line saying so, never a pass.
set -u
OUT=${OUT:-/tmp/gpu-check}
WORK=$OUT/work/gpu/check
mkdir -p "$WORK"
OUT=$(cd "$OUT" && pwd)
WORK=$(cd "$WORK" && pwd)
export PYTHONPATH=${PYTHONPATH:-$(pwd)}
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3} # the interpreter that holds torch (python3 unless PYTHON says otherwise)
DEVICE=${GPU_CHECK_DEVICE:-cuda} # cpu: a rehearsal of every step on a machine without a GPU
BATCHES=${GPU_CHECK_BATCHES:-"1 32 256"}
REPEATS=${GPU_CHECK_REPEATS:-30}
BENCH_ARGS=${GPU_CHECK_BENCH_ARGS:-"--seconds 5 --repeats $REPEATS --warmup 3"}
STEP_TIMEOUT=${GPU_CHECK_STEP_TIMEOUT:-240} # seconds; a hung step is killed (exit 124)
BUDGET=${GPU_CHECK_BUDGET:-330} # seconds for all steps: a step is cut to what is left of it
SUMMARY="$OUT/summary.txt"
: >"$SUMMARY"
CODES=()

step() { # step NAME COMMAND...: run (with a time limit), tee the log, record the exit code
  local name=$1
  shift
  echo "== $name"
  local start=$SECONDS limit=$STEP_TIMEOUT left=$((BUDGET - SECONDS))
  [ "$left" -lt "$limit" ] && limit=$left
  if [ "$limit" -lt 5 ]; then
    CODES+=(124)
    echo "$name: exit 124 (not run: the ${BUDGET} s budget is spent)" | tee -a "$SUMMARY"
    return
  fi
  if command -v timeout >/dev/null; then
    timeout -k 10 "$limit" "$@" 2>&1 | tee "$WORK/$name.log"
  else
    "$@" 2>&1 | tee "$WORK/$name.log"
  fi
  local code=${PIPESTATUS[0]}
  CODES+=("$code")
  echo "$name: exit $code ($((SECONDS - start)) s)" | tee -a "$SUMMARY"
}

finish() { # finish: verdict into the summary, pack what should come back, exit with the verdict
  local verdict=0 code
  for code in "${CODES[@]}"; do
    if [ "$code" = 3 ] && [ "$verdict" = 0 ]; then
      verdict=3
    elif [ "$code" != 0 ] && [ "$code" != 3 ]; then
      verdict=1
    fi
  done
  echo "verdict: exit $verdict (0 all passed, 3 no CUDA device or a runner missing, 1 a step failed)" |
    tee -a "$SUMMARY"
  cp "$SUMMARY" "$WORK/summary.txt"
  for head in object physics; do
    [ -f "$WORK/report-$head/report.md" ] && cp "$WORK/report-$head/report.md" "$OUT/report-$head.md"
  done
  # Small files only: logs, reports, JSON, plots; not the model files, the scan or old versions.
  (cd "$WORK" && find . -type f \( -name '*.log' -o -name '*.txt' -o -name '*.md' \
    -o -name '*.json' -o -name '*.html' -o -name '*.xml' -o -name '*.png' -o -name '*.csv' \) \
    -not -path '*/.*.versions/*' -print0 | tar -czf "$OUT/gpu-check.tar.gz" --null -T -)
  echo "== summary ($SUMMARY; logs and reports in $OUT/gpu-check.tar.gz)"
  cat "$SUMMARY"
  exit "$verdict"
}

# 0. What is there: versions, the device, what is absent. Then every module and command the
# later steps use, imported and asked for --help, so a missing package shows here, on any
# machine, before the CUDA gate (a GPU-less machine stops at the gate).
step environment "$PY" - <<'PY'
import importlib, platform
import torch, onnxruntime as ort
print("python", platform.python_version())
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
if torch.cuda.is_available():
    print("gpu", torch.cuda.get_device_name(0), "cudnn", torch.backends.cudnn.version())
print("onnxruntime", ort.__version__, "providers", ort.get_available_providers())
for name in ("onnx", "onnxscript", "lightning", "numpy", "h5py", "matplotlib", "jinja2",
             "pytest", "hypothesis", "tensorflow"):
    try:
        print(name, getattr(importlib.import_module(name), "__version__", "?"))
    except ImportError:
        print(name, "absent", "(bundled references are used)" if name == "tensorflow" else "")
PY
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv >"$WORK/nvidia-smi.txt" 2>&1 || true

step preflight bash -c '
set -e
"$0" -c "import ptychopinn.main, ptychopinn.build, bench.run, parity.bisect, parity.report.html_page, ptycho_torch.simulate as s
print(\"project imported from\", s.__file__.rsplit(\"/ptycho_torch/\", 1)[0])"
"$0" -m export build --help >/dev/null
"$0" -m export bench --help >/dev/null
"$0" -m export simulate --help >/dev/null
for f in model.pt reference-object.npz reference-physics.npz; do test -f "export/demo/$f"; done
echo "preflight: project modules import, commands answer --help, bundled references present"
' "$PY"

if [ "$DEVICE" = cuda ] && ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 3)"; then
  echo "no CUDA device: torch.cuda.is_available() is False; exit 3 (the CUDA steps were not run)" |
    tee -a "$SUMMARY"
  CODES+=(3)
  finish
fi

# 1. Parity on the device against the bundled TensorFlow references (TF32 off), both heads.
parity_section() {
  local head
  for head in object physics; do
    step "parity-$head" "$PY" -m export build --head "$head" --out "$WORK/artifacts-$head" \
      --device "$DEVICE" --report-dir "$WORK/report-$head" --keep 0
    sed -n 1,25p "$WORK/report-$head/report.md" 2>/dev/null || true
  done
}

# 2. Benchmark on the device: `python -m export bench` on artifacts cut from a simulated scan
# at the first of $BATCHES; the others (default 1, 32, 256) are built on the fly. Patterns/s,
# p50/p99, GFLOP/s and the fraction of the GEMM ceiling measured in the same run, per backend.
# $BENCH_ARGS (GPU_CHECK_BENCH_ARGS) sets its timing, default 5 s per batch size.
bench_section() {
  local base=${BATCHES%% *}
  step simulate "$PY" -m export simulate --out "$WORK/scan.npz" --seed 1 --n-images 300
  step "build-b$base" "$PY" -m export build --inputs "$WORK/scan.npz" --batch "$base" \
    --out "$WORK/bench-b$base" --reference none --no-parity --keep 0
  # shellcheck disable=SC2086
  step "bench-$DEVICE" "$PY" -m export bench --artifacts "$WORK/bench-b$base" \
    --batch "${BATCHES// /,}" --device "$DEVICE" $BENCH_ARGS \
    --json "$WORK/bench-$DEVICE.json" --plot "$WORK/bench-$DEVICE.png"
}

# 3. The GPU tests: only the modules that hold gpu-marked tests are collected, so an unrelated
# module's import error cannot fail this step (if pytest is absent, say so).
gpu_tests_section() {
  local files
  files=$(grep -rl --include='test_*.py' 'mark.gpu' tests | sort | tr '\n' ' ')
  if ! "$PY" -c "import pytest" 2>/dev/null; then
    echo "gpu-tests: pytest not installed on this machine: not run" | tee -a "$SUMMARY"
  elif [ -z "$files" ]; then
    echo "gpu-tests: no gpu-marked test module found under tests/" | tee -a "$SUMMARY"
  else
    # shellcheck disable=SC2086
    step gpu-tests "$PY" -m pytest -q -m gpu -p no:cacheprovider \
      --junitxml "$WORK/gpu-tests.xml" $files
  fi
}

parity_section
bench_section
gpu_tests_section
finish
