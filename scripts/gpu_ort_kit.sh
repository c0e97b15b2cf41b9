#!/usr/bin/env bash
# Carry ONNX Runtime's CUDA provider to the lent GPU machine, whose image has only the CPU
# onnxruntime package and no package registry.
#
# The onnxruntime-gpu wheel for the device (cp312, manylinux_2_28) is about 255 MB; one device
# call carries at most 64 MiB. So:
#   here:    bash scripts/gpu_ort_kit.sh prepare     # download, split into 60 MiB parts + sha256
#   device:  one `run` per part with carry=[".ortkit/parts/part-XX"] (a warm machine keeps
#            ignored files between calls), then
#            bash scripts/gpu_ort_kit.sh install     # join, verify sha256, pip install --target
#   then:    PYTHONPATH=.ortkit/site:. bash scripts/gpu_check.sh
# `install` installs with --no-deps into .ortkit/site (the image's numpy, protobuf etc. stay);
# ONNX Runtime finds CUDA and cuDNN through torch's nvidia-* libraries (onnxruntime.preload_dlls).
set -euo pipefail
KIT=.ortkit
VERSION=${ORT_GPU_VERSION:-1.31.1}
WHEEL=onnxruntime_gpu-$VERSION-cp312-cp312-manylinux_2_28_x86_64.whl

case "${1:-}" in
prepare)
  rm -rf "$KIT" && mkdir -p "$KIT/parts"
  python -m pip download "onnxruntime-gpu==$VERSION" --no-deps --only-binary=:all: \
    --python-version 3.12 --platform manylinux_2_28_x86_64 -d "$KIT" -q
  (cd "$KIT" && sha256sum "$WHEEL" >wheel.sha256)
  split -b 60M -d -a 2 "$KIT/$WHEEL" "$KIT/parts/part-"
  rm "$KIT/$WHEEL"
  cp "$KIT/wheel.sha256" "$KIT/parts/"
  ls -la "$KIT/parts"
  echo "carry each of these, one per device call (each under 64 MiB)"
  ;;
status)
  ls -la "$KIT/parts" 2>/dev/null || echo "no parts here yet"
  ;;
install)
  cat "$KIT"/parts/part-* >"$KIT/$WHEEL"
  (cd "$KIT" && sha256sum -c parts/wheel.sha256 --status) || {
    echo "the joined wheel does not match its sha256: a part is missing or damaged" >&2
    ls -la "$KIT/parts" >&2
    exit 2
  }
  python -m pip install --no-deps --no-index --only-binary=:all: --python-version 3.12 \
    --target "$KIT/site" "$KIT/$WHEEL" -q
  PYTHONPATH="$KIT/site" python -c "import onnxruntime as ort; print('onnxruntime', ort.__version__, ort.get_available_providers())"
  ;;
*)
  echo "usage: bash scripts/gpu_ort_kit.sh prepare|status|install" >&2
  exit 2
  ;;
esac
