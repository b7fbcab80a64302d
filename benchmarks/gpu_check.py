"""Training-step throughput of an Audio-JEPA preset on one GPU in bf16, eager and compiled, and what the paper's recipe would cost at it.

Measures the model alone (random log-mel already on the device, so data loading is left out): the library's training
step, `audiojepa.train.jepa_step` (forward without diagnostics, backward, AdamW, EMA update), under bf16 autocast
(`--dtype fp32`: none), given the model eager or compiled as `run.compile=true` compiles it
(`audiojepa.loop.compile_modules`: the whole `AudioJEPA` forward, its state_dict unchanged). Reports clips/s, achieved
TFLOP/s (FLOPs of one step counted by torch's FlopCounterMode: the forward and backward matmuls and attention), the
share of the GPU's dense bf16 peak, peak memory, and the device-hours the paper's recipe (`configs/paper.yaml`:
200 000 steps of 256 clips) would take on one such device at that throughput. Masks use a fixed ratio (0.5) so that
every step has the same shapes and the compiled step compiles once. Prints one JSON line per mode and a small table.

usage: python -m benchmarks.gpu_check [--preset base] [--batch-size 64] [--steps 30] [--clip-seconds 10]
       python -m benchmarks.gpu_check --device cpu --dtype fp32 --preset tiny --batch-size 4 --steps 3 --warmup 2   # a CPU check
       python -m benchmarks.gpu_check --job-metrics RUN/metrics.csv   # a whole job's median clips/s and the recipe's hours at it
"""
import argparse, contextlib, csv, json, statistics, time

import torch
from torch.utils.flop_counter import FlopCounterMode

from audiojepa.audio import frontend_config
from audiojepa.jepa import AudioJEPA
from audiojepa.loop import compile_modules
from audiojepa.masking import RandomPatchMask
from audiojepa.train import jepa_step, param_groups

# dense (no sparsity) bf16 tensor-core peaks from the vendor data sheets, TFLOP/s
PEAK_BF16_TFLOPS = {'H200': 989.4, 'H100 PCIe': 756.0, 'H100': 989.4, 'A100': 312.0, 'L40S': 362.1, 'L4': 121.0}
RECIPE_CLIPS = 200_000 * 256   # configs/paper.yaml: 200 000 optimiser steps of 256 clips

def peak_tflops(name:str) -> float|None:
    return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)

def recipe_hours(clips_per_s:float) -> float:
    "Hours of one device for the paper's recipe at `clips_per_s`."
    return RECIPE_CLIPS / clips_per_s / 3600

def timed_step(model, optimizer, batch:dict, dtype:str):
    "One `jepa_step` on `batch`, under bf16 autocast unless `dtype` is 'fp32'."
    autocast = torch.autocast(batch['mel'].device.type, dtype=torch.bfloat16) if dtype == 'bf16' else contextlib.nullcontext()
    with autocast: return jepa_step(model, optimizer, [batch], ema=0.999)

def measure(args, compiled:bool) -> dict:
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = AudioJEPA.from_preset(args.preset).to(device).train()
    fc = frontend_config('audiojepa')
    frames = round(args.clip_seconds * fc.sample_rate / fc.hop_length / 16) * 16
    grid = model.encoder.grid(frames)
    mel = torch.randn(args.batch_size, frames, model.encoder.config.n_mels, device=device)
    ctx, tgt = RandomPatchMask(ratio=0.5)(args.batch_size, grid, 0)
    batch = {'mel': mel, 'context_idx': ctx.to(device), 'target_idx': tgt.to(device)}
    optimizer = torch.optim.AdamW(param_groups(model), lr=1e-4, fused=device.type in ('cuda', 'cpu'))
    with FlopCounterMode(display=False) as counter:     # one eager step: the optimiser and EMA add no counted FLOPs
        timed_step(model, optimizer, batch, args.dtype)
    flops = counter.get_total_flops()
    if compiled and not compile_modules([model]): raise SystemExit('torch.compile does not work on this machine (see the warning)')
    sync = torch.cuda.synchronize if device.type == 'cuda' else (lambda: None)
    if device.type == 'cuda': torch.cuda.reset_peak_memory_stats()
    t0 = time.time()
    for _ in range(args.warmup): timed_step(model, optimizer, batch, args.dtype)
    sync(); warmup_s = time.time() - t0
    sync(); t0 = time.time()
    for _ in range(args.steps): timed_step(model, optimizer, batch, args.dtype)
    sync(); seconds = time.time() - t0
    tflops = flops * args.steps / seconds / 1e12
    name = torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'
    peak, clips_per_s = peak_tflops(name), args.batch_size * args.steps / seconds
    return {'device': name, 'preset': args.preset, 'dtype': args.dtype, 'compile': compiled, 'batch_size': args.batch_size,
            'clip_seconds': args.clip_seconds, 'patches': grid[0] * grid[1],
            'params_M': round(sum(p.numel() for p in model.parameters() if p.requires_grad) / 1e6, 1),
            'clips_per_s': round(clips_per_s, 1), 'step_ms': round(1000 * seconds / args.steps, 1),
            'gflop_per_step': round(flops / 1e9, 1), 'tflops': round(tflops, 3),
            'share_of_peak': None if peak is None else round(tflops / peak, 3), 'peak_tflops_bf16': peak,
            'peak_memory_gib': round(torch.cuda.max_memory_allocated(device) / 2**30, 2) if device.type == 'cuda' else None,
            'warmup_s': round(warmup_s, 1), 'recipe_device_hours': round(recipe_hours(clips_per_s), 1)}

def job_summary(metrics:str) -> str:
    "A whole job's median clips/s (metrics.csv rows after the first) and the recipe's hours at it."
    rows = list(csv.DictReader(open(metrics)))[1:]
    rate = statistics.median(float(r['clips_per_s']) for r in rows if r['clips_per_s'])
    return f"median {rate:.1f} clips/s: the paper's recipe (200 000 steps x 256 clips) in {recipe_hours(rate):,.0f} device-hours at it"

if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--preset', default='base')
    parser.add_argument('--batch-size', type=int, default=64)
    parser.add_argument('--clip-seconds', type=float, default=10.0)
    parser.add_argument('--steps', type=int, default=30)
    parser.add_argument('--warmup', type=int, default=5)
    parser.add_argument('--device', default='cuda')
    parser.add_argument('--dtype', default='bf16', choices=('bf16', 'fp32'))
    parser.add_argument('--no-compile', action='store_true', help='only the eager mode')
    parser.add_argument('--job-metrics', default='', help="a run's metrics.csv: print its median clips/s and the recipe's hours, and stop")
    args = parser.parse_args()
    if args.job_metrics:
        print(job_summary(args.job_metrics))
        raise SystemExit(0)
    torch.backends.cuda.matmul.allow_tf32 = True
    results = [measure(args, False)] + ([] if args.no_compile else [measure(args, True)])
    for r in results: print(json.dumps(r))
    print(f"\n{'mode':8} {'clips/s':>8} {'step ms':>8} {'TFLOP/s':>8} {'of peak':>8} {'peak GiB':>9} {'recipe h':>9}")
    for r in results:
        share = '-' if r['share_of_peak'] is None else f"{100 * r['share_of_peak']:.0f} %"
        print(f"{'compiled' if r['compile'] else 'eager':8} {r['clips_per_s']:8.1f} {r['step_ms']:8.1f} {r['tflops']:8.3f} "
              f"{share:>8} {r['peak_memory_gib'] if r['peak_memory_gib'] is not None else '-':>9} {r['recipe_device_hours']:9,.0f}")
    print(f"recipe h: hours of one {results[0]['device']} for the paper's recipe (200 000 steps x 256 clips) at the model-alone throughput")
