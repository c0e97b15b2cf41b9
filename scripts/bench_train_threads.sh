#!/usr/bin/env bash
# Demo training with `--threads auto`, then with torch's default threads (`--threads default`),
# one after the other on this machine, and the held-out reconstruction quality of each
# (README, "Demo training"). Prints wall time, load average before/after, the thread count used,
# the weights digest and the metrics of each run.
#
#   nohup bash scripts/bench_train_threads.sh [OUT] > /tmp/train_threads.log 2>&1 &
#
# OUT defaults to runs/bench_threads (ignored by git). Takes 10-40 min on a 2-core machine.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/bench_threads}
mkdir -p "$OUT"

echo "== $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD)$(git diff --quiet || echo ' (dirty)')"
python -c "import platform, torch; from ptycho_torch.threads import cpu_kind, logical_cpus, physical_cores; \
print(f'torch {torch.__version__}, python {platform.python_version()}, {cpu_kind()}, ' \
f'{physical_cores()} physical cores, {logical_cpus()} logical CPUs, torch default threads {torch.get_num_threads()}')"
python -m export simulate --out "$OUT/test.npz" --seed 7 --n-images 256

for threads in auto default; do
  run="$OUT/$threads"
  rm -rf "$run" "$run-inf"
  echo "== threads $threads"
  echo "load before: $(uptime)"
  start=$(date +%s.%N)
  python -m export train --preset demo --out "$run" --no-progress --threads "$threads"
  end=$(date +%s.%N)
  echo "load after:  $(uptime)"
  echo "wall_s $threads: $(python -c "print(round($end - $start, 1))")"
  python -c "import sys, torch; from ptycho_torch.checkpoint import load_model, model_state_sha256; \
ck = torch.load(sys.argv[1] + '/last.ckpt', map_location='cpu', weights_only=True); \
r = ck.get('ptycho_run', {}); \
print('threads used:', r.get('threads'), '| weights', model_state_sha256(load_model(sys.argv[1] + '/model.pt')))" "$run"
  python -m export infer --checkpoint "$run/model.pt" --data "$OUT/test.npz" \
    --out "$run-inf" --threads 1
done
echo "== done $(date -u +%FT%TZ)"
