#!/usr/bin/env bash
# One command on a machine with a CUDA GPU and audiojepa installed (pip install -e .):
#   1. the model alone: bf16 training steps of the `base` preset on 10 s clips (batch 64), eager and torch.compile:
#      clips/s, achieved TFLOP/s, share of the GPU's dense bf16 peak, peak memory  (benchmarks/gpu_check.py);
#   2. the whole job: 40 steps of `audiojepa-pretrain --preset base` in bf16 on SyntheticSounds 10 s clips
#      (audio rendered on the fly by CPU workers, log-mel on the GPU), median clips/s.
# Takes about 3-5 minutes. usage: bash benchmarks/gpu_check.sh [OUT_DIR]   (default benchmarks/results/gpu_check)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-benchmarks/results/gpu_check}
rm -rf "$out"; mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
python -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)' | tee -a "$out/gpu.txt"

python -m benchmarks.gpu_check --preset base --batch-size 64 --clip-seconds 10 --steps 30 | tee "$out/model.txt"

workers=$(( $(nproc) > 2 ? $(nproc) - 2 : 1 ))
audiojepa-pretrain --out "$out/job" --preset base --max-steps 40 --batch-size 64 --checkpoint-every 0 \
    data.clip_seconds=10 data.num_workers=$workers run.mixed_precision=bf16 run.log_every=10 \
    run.trackers=[] run.progress=false 2> "$out/job.log" | tee "$out/job.txt"
python - "$out/job/metrics.csv" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))[1:]
print(f"whole job (base, bf16, {sys.argv[1]}): median {statistics.median(float(r['clips_per_s']) for r in rows):.0f} clips/s "
      "(bounded by rendering synthetic audio on the CPU workers when below the model-alone figure)")
PY
