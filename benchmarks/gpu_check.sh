#!/usr/bin/env bash
# One command on a machine with a CUDA GPU and audiojepa installed (pip install -e .):
#   1. the model alone: bf16 training steps of the `base` preset on 10 s clips (batch 64), eager and compiled as
#      run.compile=true compiles (audiojepa.loop.compile_modules): clips/s, achieved TFLOP/s, share of the GPU's dense
#      bf16 peak, peak memory, and the GPU-hours of the paper's recipe (200 000 steps of 256 clips) at that throughput
#      (benchmarks/gpu_check.py);
#   2. the whole job, eager and with run.compile=true: 40 steps of `audiojepa-pretrain --preset base` in bf16 on
#      SyntheticSounds 10 s clips (audio rendered on the fly by CPU workers, log-mel on the GPU), median clips/s and
#      the recipe's GPU-hours at it.
# Takes about 5-8 minutes on an H100. usage: bash benchmarks/gpu_check.sh [--device cpu] [OUT_DIR]
#   (default OUT_DIR benchmarks/results/gpu_check). `--device cpu` runs the same steps shrunk (tiny preset, batch 4,
#   2 s clips, fp32, a few steps) so that the script itself can be checked where there is no GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
device=cuda
if [[ "${1:-}" == "--device" ]]; then device=$2; shift 2; fi
out=${1:-benchmarks/results/gpu_check}
rm -rf "$out"; mkdir -p "$out"

if [[ "$device" == cpu ]]; then
  model=(--device cpu --dtype fp32 --preset tiny --batch-size 4 --clip-seconds 2 --steps 3 --warmup 2)
  job=(--preset tiny --max-steps 12 --batch-size 4 data.clip_seconds=2 data.num_workers=1 run.mixed_precision=no
       run.log_every=4 frontend.norm_clips=8)
  echo "cpu: $(nproc) cores" | tee "$out/device.txt"
else
  model=(--preset base --batch-size 64 --clip-seconds 10 --steps 30)
  job=(--preset base --max-steps 40 --batch-size 64 data.clip_seconds=10 data.num_workers=$(( $(nproc) > 2 ? $(nproc) - 2 : 1 ))
       run.mixed_precision=bf16 run.log_every=10)
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/device.txt"
fi
python -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)' | tee -a "$out/device.txt"

python -m benchmarks.gpu_check "${model[@]}" | tee "$out/model.txt"

for compile in false true; do
  audiojepa-pretrain --out "$out/job_compile_$compile" "${job[@]}" --checkpoint-every 0 run.compile=$compile \
      run.trackers=[] run.progress=false 2> "$out/job_compile_$compile.log" | tee "$out/job_compile_$compile.txt"
  echo "whole job, run.compile=$compile: $(python -m benchmarks.gpu_check --job-metrics "$out/job_compile_$compile/metrics.csv")" \
      "(bounded by rendering synthetic audio on the CPU workers when below the model-alone figure)" | tee -a "$out/summary.txt"
done
