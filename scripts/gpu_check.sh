#!/usr/bin/env bash
# GPU parity and GPU benchmark, for a machine with a CUDA device (e.g. the lent H200).
# Usage: OUT=/some/dir bash scripts/gpu_check.sh   (writes reports under $OUT)
# Needs the project importable (pip install -e . or PYTHONPATH=.) and onnxruntime-gpu.
set -u
OUT=${OUT:-/tmp/gpu-check}
mkdir -p "$OUT"
export PYTHONPATH=${PYTHONPATH:-$(pwd)}
echo "== environment"
python - <<'PY'
import torch, onnxruntime as ort
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
if torch.cuda.is_available():
    print("gpu", torch.cuda.get_device_name(0), "cudnn", torch.backends.cudnn.version())
print("onnxruntime", ort.__version__, "providers", ort.get_available_providers())
PY
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || true
for head in object physics; do
  echo "== build + parity, head $head, --device cuda"
  python -m export build --head "$head" --out "$OUT/artifacts-$head" --device cuda \
      --report-dir "$OUT/report-$head" --force
  echo "exit code: $?"
  sed -n 1,20p "$OUT/report-$head/report.md"
done
echo "== benchmark (object head)"
python -m parity.bench --artifacts "$OUT/artifacts-object" --device cuda --repeats 50 --json "$OUT/bench-cuda.json"
python -m parity.bench --artifacts "$OUT/artifacts-object" --device cpu --repeats 10 --json "$OUT/bench-cpu.json"
echo "== gpu tests"
python -m pytest -q -m gpu tests -p no:cacheprovider
