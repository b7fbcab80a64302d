"""How the cost of a training step grows with the clip: clips/s and peak memory against patches per clip, eager and compiled.

The step is the library's own, `audiojepa.train.jepa_step` (the JEPA forward, backward, gradient clipping at 1,
fused AdamW, the EMA update), of the `--preset` model on random log-mel of 128 mel bins (8 frequency patches of 16)
with 16 frames per time patch: P patches per clip are 2P frames, so 64 ... 1024 patches are 2.5 ... 40 s at the
paper's patching (32 kHz, hop 625: 51.2 frames/s, 10 s = 256 patches). Masks are the default random ones (40-60 % of
the patches to predict, a new draw every step), so the compiled step meets changing shapes as in a run. 'compiled'
is what `run.compile=true` does (`audiojepa.loop.compile_modules` on the `AudioJEPA`).

Each (preset, patches, mode) runs in a fresh process: `--warmup` untimed steps (compilation, and the recompilation
for changing mask sizes), then `--steps` timed ones; clips/s = batch x timed steps / their time. Memory is the
process's resident set (Linux /proc): its peak over the timed steps (the peak is reset after the warm-up) minus the
resident set before the model was built, i.e. what training at that length holds: weights, gradients, AdamW's
moments, activations, the allocator's reserve, and for the compiled step the compiled code. The attention path is
the kernel `scaled_dot_product_attention` picks for the target pass's shapes (`torch._fused_sdp_choice`), and the
attention operator torch.profiler sees in one step (for the compiled step too: inductor may keep the kernel or
write the attention out as matmuls and softmax).

    python -m benchmarks.clip_length                       # tiny, batch 8, 64 ... 1024 patches, eager and compiled
    python -m benchmarks.clip_length --presets small --batch-size 4 --patches 64,256,1024
    python -m benchmarks.clip_length --patches 64,128 --steps 2 --warmup 2   # a smoke test

Writes OUT/clip_length.json and OUT/clip_length.md (default OUT benchmarks/results/clip_length, git-ignored).
"""
from __future__ import annotations
import json, os, platform, statistics, subprocess, sys, time
from pathlib import Path

import numpy as np
import torch
from torch.nn.attention import SDPBackend

from audiojepa.cli import dashed_call_parse, fail
from audiojepa.jepa import AudioJEPA
from audiojepa.loop import compile_modules
from audiojepa.masking import RandomPatchMask
from audiojepa.models import preset as model_preset
from audiojepa.train import jepa_step, param_groups

N_MELS, PATCH, FRAMES_PER_SECOND = 128, 16, 32000 / 625   # the paper's patching: 25.6 patches per second of audio
GIB = 2**30


def status_kib(field:str) -> int:
    "A field of /proc/self/status in KiB (VmRSS: resident now, VmHWM: its peak)."
    for line in Path('/proc/self/status').read_text().splitlines():
        if line.startswith(field + ':'): return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status (a Linux kernel is needed)")


def attention_ops(prof) -> list[str]:
    "The attention operators of a profiled step."
    return sorted({e.key for e in prof.key_averages() if 'scaled_dot_product' in e.key or 'attention' in e.key.lower()})


def child_run(spec:dict) -> dict:
    "Time `jepa_step` at one length in this process; its clips/s, memory and attention path."
    torch.set_num_threads(spec['threads'])
    before = status_kib('VmRSS')
    cfgs = model_preset(spec['preset'])
    cfgs['encoder'].n_mels, B, P = N_MELS, spec['batch_size'], spec['patches']
    torch.manual_seed(0)
    model = AudioJEPA(cfgs['encoder'], cfgs['predictor']).train()
    optimizer = torch.optim.AdamW(param_groups(model), lr=1e-4, fused=True)
    if spec['mode'] == 'compiled' and not compile_modules([model]): raise RuntimeError('torch.compile does not work here')
    grid, masks = (P // (N_MELS // PATCH), N_MELS // PATCH), RandomPatchMask()
    mel = torch.randn(B, grid[0] * PATCH, N_MELS)
    def step(i:int):
        ctx, tgt = masks(B, grid, generator=i)
        out = jepa_step(model, optimizer, [{'mel': mel, 'context_idx': ctx, 'target_idx': tgt}], ema=0.999, grad_clip=1.0)
        return out.losses[0].item()
    for i in range(spec['warmup']): step(i)
    Path('/proc/self/clear_refs').write_text('5')   # the peak resident set starts again from here
    t0 = time.perf_counter()
    losses = [step(spec['warmup'] + i) for i in range(spec['steps'])]
    seconds = time.perf_counter() - t0
    peak = status_kib('VmHWM')
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof: step(10**6)
    heads = cfgs['encoder'].num_heads
    q = torch.randn(B, heads, P, cfgs['encoder'].embed_dim // heads)
    return {'clips_per_s': B * spec['steps'] / seconds, 'step_s': seconds / spec['steps'],
            'memory_gib': (peak - before) / 2**20, 'peak_rss_gib': peak / 2**20, 'losses': losses,
            'sdpa_choice': SDPBackend(torch._fused_sdp_choice(q, q, q)).name, 'attention_ops': attention_ops(prof)}


def measure(preset:str, patches:int, mode:str, args:dict) -> dict:
    "One (preset, patches, mode) in a fresh process."
    spec = {**args, 'preset': preset, 'patches': patches, 'mode': mode}
    load = os.getloadavg()[0]
    proc = subprocess.run([sys.executable, '-m', 'benchmarks.clip_length', '--child', json.dumps(spec)], capture_output=True,
                          text=True, env={k: v for k, v in os.environ.items() if k != 'OMP_NUM_THREADS'})
    if proc.returncode: raise RuntimeError(f"{preset} {patches} patches {mode} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return {'preset': preset, 'patches': patches, 'seconds': patches / (N_MELS // PATCH) * PATCH / FRAMES_PER_SECOND,
            'mode': mode, 'batch_size': args['batch_size'], 'load_before': load, 'load_after': os.getloadavg()[0],
            **json.loads(proc.stdout.strip().splitlines()[-1])}


def fits(rows:list[dict], budget_gib:float=24.0) -> dict:
    "Per (preset, mode) measured at two lengths or more: the least-squares line memory = a + b x patches, and the patches (and seconds) it puts at `budget_gib`."
    out = {}
    for key in sorted({(r['preset'], r['mode']) for r in rows}):
        rs = sorted((r for r in rows if (r['preset'], r['mode']) == key), key=lambda r: r['patches'])
        p, m = np.array([r['patches'] for r in rs], float), np.array([r['memory_gib'] for r in rs])
        if len(p) < 2: continue   # a line needs two lengths
        b, a = np.polyfit(p, m, 1)
        limit = (budget_gib - a) / b if b > 0 else float('inf')
        out[f'{key[0]} {key[1]}'] = {'intercept_gib': a, 'gib_per_1k_patches': 1e3 * b, 'patches_at_budget': limit,
                                     'seconds_at_budget': limit / (N_MELS // PATCH) * PATCH / FRAMES_PER_SECOND,
                                     'memory_ratio_last_first': m[-1] / m[0], 'patch_ratio_last_first': p[-1] / p[0]}
    return out


def markdown(rows:list[dict], lines_fit:dict, info:dict) -> str:
    a = info['args']
    lines = [f"# Cost against clip length ({info['cores']} cores, torch {info['torch']})", '',
             f"`jepa_step` on random log-mel, 128 mels, batch {a['batch_size']}, {a['threads']} threads; {a['warmup']} untimed "
             f"then {a['steps']} timed steps per point, each point a fresh process. Load average (1 min) {info['load_before']:.2f} "
             f"before, {info['load_after']:.2f} after; {info['total_s'] / 60:.1f} min.", '',
             '| preset | patches | seconds | mode | clips/s | step s | memory GiB | SDPA choice | attention op in the step | load |',
             '|---|---|---|---|---|---|---|---|---|---|']
    for r in rows:
        lines.append(f"| {r['preset']} | {r['patches']} | {r['seconds']:.1f} | {r['mode']} | {r['clips_per_s']:.2f} | {r['step_s']:.2f} | "
                     f"{r['memory_gib']:.2f} | {r['sdpa_choice']} | {', '.join(r['attention_ops']) or 'none (matmul + softmax)'} | "
                     f"{r['load_before']:.1f} |")
    lines += ['', '| preset mode | GiB at 0 patches | GiB per 1k patches | memory ratio / patch ratio | patches in 24 GiB | seconds in 24 GiB |',
              '|---|---|---|---|---|---|']
    for k, f in lines_fit.items():
        lines.append(f"| {k} | {f['intercept_gib']:.2f} | {f['gib_per_1k_patches']:.3f} | {f['memory_ratio_last_first']:.1f} / "
                     f"{f['patch_ratio_last_first']:.0f} | {f['patches_at_budget']:.0f} | {f['seconds_at_budget']:.0f} |")
    return '\n'.join(lines) + '\n'


@dashed_call_parse
def main(out:str='benchmarks/results/clip_length', # results folder (git-ignored)
         presets:str='tiny', # comma-separated presets
         patches:str='64,128,256,512,1024', # comma-separated patches per clip (multiples of 8)
         modes:str='eager,compiled', # comma-separated: eager and/or compiled
         batch_size:int=8, # clips per step
         steps:int=5, # timed steps per point
         warmup:int=3, # untimed steps per point (compilation included)
         threads:int=2, # torch threads
         child:str='', # internal: one point (JSON) in this process
        ):
    "Clips/s and memory of a training step against patches per clip, eager and compiled."
    if child:
        print(json.dumps(child_run(json.loads(child))))
        return
    ps = [int(p) for p in patches.split(',') if p.strip()]
    if bad := [p for p in ps if p <= 0 or p % (N_MELS // PATCH)]: fail('clip_length.py', f"patches must be positive multiples of 8, got {bad[0]}")
    args = {'batch_size': batch_size, 'steps': steps, 'warmup': warmup, 'threads': threads}
    info = {'cores': os.cpu_count(), 'machine': platform.processor() or platform.machine(), 'torch': torch.__version__,
            'args': args, 'load_before': os.getloadavg()[0]}
    rows, t0 = [], time.perf_counter()
    for preset in presets.split(','):
        for p in ps:
            for mode in modes.split(','):   # eager and compiled of a length one after the other: load hits both alike
                rows.append(r := measure(preset, p, mode, args))
                print(f"{preset} {p:5d} patches ({r['seconds']:4.1f} s) {mode:8s} {r['clips_per_s']:7.2f} clips/s "
                      f"{r['memory_gib']:6.2f} GiB {r['sdpa_choice']} {r['attention_ops']} load {r['load_before']:.1f}", flush=True)
    info.update(total_s=time.perf_counter() - t0, load_after=os.getloadavg()[0])
    lines_fit = fits(rows)
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / 'clip_length.json').write_text(json.dumps({**info, 'rows': rows, 'fits': lines_fit}, indent=1))
    (Path(out) / 'clip_length.md').write_text(md := markdown(rows, lines_fit, info))
    print('\n' + md)
