#!/usr/bin/env bash
# CPU throughput of pretraining: the README's main job (`audiojepa-pretrain` with no arguments: tiny preset,
# SyntheticSounds, 2 s clips, batch 32, 300 steps) and a short run of the `small` preset on the same data.
# Prints the main job's wall time (start-up included) and the median clips/s of each (first logged interval left out).
#
# usage: bash benchmarks/pretrain_cpu.sh [OUT_DIR]        (default benchmarks/results/pretrain_cpu, git-ignored)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-benchmarks/results/pretrain_cpu}
rm -rf "$out"; mkdir -p "$out"

median_clips_per_s() {   # metrics.csv -> median clips_per_s of the logged rows after the first
  python - "$1" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))[1:]
print(f"{statistics.median(float(r['clips_per_s']) for r in rows):.1f}")
PY
}

echo "machine: $(nproc) cores, $(python -c 'import torch; print("torch", torch.__version__)'), load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

start=$(date +%s.%N)
audiojepa-pretrain --out "$out/main_job" run.progress=false 2> "$out/main_job.log" | tee "$out/main_job.txt"
end=$(date +%s.%N)
echo "main job: $(python -c "print(f'{$end - $start:.1f}')") s wall (start-up included), median $(median_clips_per_s "$out/main_job/metrics.csv") clips/s"

audiojepa-pretrain --out "$out/small" --preset small --max-steps 25 --checkpoint-every 0 \
    run.log_every=5 run.progress=false run.trackers=[] 2> "$out/small.log" > "$out/small.txt"
echo "small preset (same data, batch 32 of 2 s clips): median $(median_clips_per_s "$out/small/metrics.csv") clips/s"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
