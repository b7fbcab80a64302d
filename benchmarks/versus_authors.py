"""audiojepa's pretraining against a re-implementation of the Audio-JEPA authors' training step, side by side.

The authors' current training code (`LudovicTuncay/audio-embeddings`, a Lightning module) is not run or copied here:
`AuthorsJEPA` and `authors_step` re-implement its training step from its public description. Per step, on the
device: the log-mel of the waveforms (torchaudio `MelSpectrogram(normalized=True)` and `AmplitudeToDB`, the frame
axis cut to whole patches), a patch embedding shared by student and teacher (a strided 16 x 16 convolution,
frequency-major tokens), ONE random mask for the whole batch (40-60 % of the patches to predict, a random
permutation), the EMA update of the teacher (a Python loop of `mul_` and `add_` over its parameters, before the
forward), the teacher on every patch without gradients, the student on the kept patches (their fixed 2-D sin-cos
positions added), the predictor on ALL patches in patch order (the student's outputs projected to its width, mask
tokens plus its positions at the masked places), its outputs at the masked places projected back, and the MSE to
the teacher's outputs there (normed: the teacher ends with a LayerNorm); then backward, PyTorch's AdamW with its
defaults for CPU tensors, a warm-up + cosine `LambdaLR` step and the loss read for the progress bar. Their ViT
blocks are pre-norm with LayerNorm eps 1e-5 and compute attention explicitly (q k^T, softmax, times v). The widths
are those of audiojepa's preset (`--preset`), so that both train the same number of weights on the same tokens.

Both sides read the same real files: `--n-files` 10 s 16 kHz WAVs built by `benchmarks.threads.build_audio`, random
10 s crops, batch 32, one loader worker (audiojepa's source and collate for both, each side one loader iterator for
the whole run, as in a long AudioSet epoch), `run.threads=2` (torch threads of the reference). audiojepa runs the
user's defaults (`pretrain`'s loop: logging every 10 steps, the diagnostics hook every 10 steps on 8 clips, gradient
clipping, fused AdamW, VICReg's terms) at issue 33's matched configuration
(the torchaudio front end, 128 mels x 256 frames, 128 patches of 16 x 16), with `run.checkpoint_every=0` (one
checkpoint after the timed steps), `frontend.norm_clips=0` (no statistics pass before step 1), no progress bar;
`+compile` adds `run.compile=true`; `+compile cached` also replaces the loader by 8 of its batches in a cycle, which
shows whether the loader holds the step back. Each run is a fresh process; its steps are timed from the end of step
`--warmup` to the end of the last (compilation and the loader's start in the untimed steps); clips/s = clips of
the timed steps / their wall time. The sides alternate in each of `--rounds` rounds (each round in a rotated order),
and the load average is recorded with every run; the result is the median over rounds.

    python -m benchmarks.versus_authors                                   # tiny, 3 rounds of 200 steps (20 untimed)
    python -m benchmarks.versus_authors --preset small --steps 40 --warmup 10 --sides authors,audiojepa,compiled
    python -m benchmarks.versus_authors --rounds 1 --steps 12 --warmup 4   # a smoke test

Writes OUT/versus_authors_<preset>_t<threads>.json and .md (default OUT benchmarks/results/versus_authors, git-ignored).
"""
from __future__ import annotations
import copy, csv, itertools, json, math, os, platform, shutil, statistics, subprocess, sys, time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchaudio
from timm.layers import build_sincos2d_pos_embed
from torch import nn
from torch.utils.data import DataLoader, RandomSampler

from audiojepa.cli import dashed_call_parse, fail
from audiojepa.config import apply_overrides
from audiojepa.data import collate, open_source
from audiojepa.loop import train_loop
from audiojepa.models import preset as model_preset
from audiojepa.train import TrainConfig, open_run
from benchmarks.threads import CLIP_SECONDS, FRONTEND, SAMPLE_RATE, SOUND_DIRS, build_audio

SIDES = {'authors': "the authors' step, re-implemented", 'audiojepa': 'audiojepa, defaults',
         'compiled': 'audiojepa, run.compile=true', 'cached': 'audiojepa, run.compile=true, 8 cached batches'}
BATCH_SIZE, PATCH = 32, 16


# ------------------------------------------------------------------------------------------ the authors' step
class AuthorsBlock(nn.Module):
    "A pre-norm transformer block as their ViT has it: LayerNorm (eps 1e-5), explicit softmax attention, GELU MLP."
    def __init__(self, dim:int, heads:int, mlp_ratio:float):
        super().__init__()
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, int(dim * mlp_ratio)), nn.GELU(), nn.Linear(int(dim * mlp_ratio), dim))

    def attend(self, x:torch.Tensor) -> torch.Tensor:
        B, N, D = x.shape
        q, k, v = self.qkv(x).reshape(B, N, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        weights = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        return self.proj((weights @ v).transpose(1, 2).reshape(B, N, D))

    def forward(self, x:torch.Tensor) -> torch.Tensor:
        x = x + self.attend(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class AuthorsViT(nn.Module):
    "Their ViT: fixed 2-D sin-cos positions added to the tokens it gets (`pos_ids`: which patches they are), blocks, a final LayerNorm."
    def __init__(self, dim:int, depth:int, heads:int, grid:tuple, mlp_ratio:float=4.0):
        super().__init__()
        self.register_buffer('pos', build_sincos2d_pos_embed(grid, dim)[None])   # [1, N, D], frequency-major
        self.blocks = nn.ModuleList(AuthorsBlock(dim, heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)

    def forward(self, x:torch.Tensor, pos_ids:torch.Tensor|None=None, add_pos:bool=True) -> torch.Tensor:
        if add_pos: x = x + (self.pos if pos_ids is None else self.pos[:, pos_ids])
        for block in self.blocks: x = block(x)
        return self.norm(x)


def init_weights(module:nn.Module):
    "Truncated-normal linear weights (std 0.02), zero biases, unit LayerNorms, as their ViT initialises."
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02); nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm): nn.init.ones_(m.weight); nn.init.zeros_(m.bias)


class AuthorsJEPA(nn.Module):
    "Their Lightning module's networks: log-mel, shared patch embedding, student, EMA teacher, predictor with its projections and mask token."
    def __init__(self, preset:str='tiny', n_mels:int=128, frames:int=256):
        super().__init__()
        cfgs = model_preset(preset)
        enc, pred = cfgs['encoder'], cfgs['predictor']
        self.frames, self.grid = frames, (n_mels // PATCH, frames // PATCH)
        self.spectrogram = torchaudio.transforms.MelSpectrogram(
            sample_rate=SAMPLE_RATE, n_fft=2048, win_length=2048, hop_length=625, n_mels=n_mels, f_min=0.0, f_max=8000.0,
            power=2.0, normalized=True)
        self.to_db = torchaudio.transforms.AmplitudeToDB()
        self.patch_embed = nn.Conv2d(1, enc.embed_dim, PATCH, stride=PATCH)
        self.student = AuthorsViT(enc.embed_dim, enc.depth, enc.num_heads, self.grid, enc.mlp_ratio)
        self.predictor = AuthorsViT(pred.embed_dim, pred.depth, pred.num_heads, self.grid, pred.mlp_ratio)
        self.predictor_in, self.predictor_out = nn.Linear(enc.embed_dim, pred.embed_dim), nn.Linear(pred.embed_dim, enc.embed_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, pred.embed_dim))
        init_weights(self); nn.init.trunc_normal_(self.mask_token, std=0.02)
        self.teacher = copy.deepcopy(self.student).requires_grad_(False)

    def loss(self, waveform:torch.Tensor, # [B, samples]
             mask:torch.Tensor, # bool [N], True = a patch to predict, the same for every clip
            ) -> torch.Tensor:
        spec = self.to_db(self.spectrogram(waveform))[..., :self.frames]          # [B, mels, frames], whole patches
        patches = self.patch_embed(spec[:, None]).flatten(2).transpose(1, 2)      # [B, N, D]
        with torch.no_grad(): targets = self.teacher(patches)
        keep, masked = (~mask).nonzero().flatten(), mask.nonzero().flatten()
        context = self.student(patches[:, keep], pos_ids=keep)
        queries = (self.mask_token + self.predictor.pos[:, masked]).expand(len(patches), -1, -1)
        tokens = torch.cat([self.predictor_in(context), queries], dim=1)[:, torch.argsort(torch.cat([keep, masked]))]
        predictions = self.predictor_out(self.predictor(tokens, add_pos=False)[:, masked])
        return F.mse_loss(predictions, targets[:, masked])


def authors_mask(n_patches:int, ratio:tuple=(0.4, 0.6)) -> torch.Tensor:
    "One mask for the batch: a uniform fraction of the patches, chosen by a random permutation (NumPy for the fraction, torch for the order)."
    mask = torch.zeros(n_patches, dtype=torch.bool)
    mask[torch.randperm(n_patches)[:int(n_patches * np.random.uniform(*ratio))]] = True
    return mask


def authors_step(model:AuthorsJEPA, optimizer, scheduler, waveform:torch.Tensor, momentum:float) -> float:
    "One training step as theirs runs it: mask, EMA update of the teacher, forward, backward, AdamW, schedule; the loss read."
    mask = authors_mask(model.grid[0] * model.grid[1])
    with torch.no_grad():
        for t, s in zip(model.teacher.parameters(), model.student.parameters()): t.mul_(momentum).add_((1 - momentum) * s)
    loss = model.loss(waveform, mask)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    scheduler.step()
    return loss.item()   # what their per-step progress-bar log reads


def warmup_cosine(steps:int, warmup_share:float=0.05, final_ratio:float=0.001):
    "Their learning-rate factor: linear warm-up over a share of the steps, then cosine down to `final_ratio`."
    warmup = max(1, int(steps * warmup_share))
    def factor(step:int) -> float:
        if step < warmup: return (step + 1) / warmup
        t = min(1.0, (step - warmup) / max(1, steps - warmup))
        return final_ratio + (1 - final_ratio) * 0.5 * (1 + math.cos(math.pi * t))
    return factor


def run_authors(spec:dict) -> dict:
    "Train the re-implemented step for `spec['steps']` steps on the files; the end of every step (wall and CPU time)."
    torch.manual_seed(0); np.random.seed(0)
    torch.set_num_threads(spec['threads'])
    model = AuthorsJEPA(spec['preset']).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.05)   # their optimiser config
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(spec['steps']))
    source = open_source(spec['data'], sample_rate=SAMPLE_RATE, clip_seconds=CLIP_SECONDS, crop='random', seed=0)
    # One loader iterator for the whole run, shuffled orders end to end, as audiojepa's StepBatches gives its side.
    # With --n-files 128 an epoch is 4 steps, and a new iterator per epoch re-forks the worker and waits for its first
    # batch every 4 steps: a cost their AudioSet runs (epochs of thousands of steps) do not pay. Until 6 Dec 2026 this
    # side had it, which made it 30 % slower than its step alone and audiojepa look 1.66x faster rather than 1.05x.
    sampler = RandomSampler(source, num_samples=spec['steps'] * BATCH_SIZE, generator=torch.Generator().manual_seed(0))
    batches = iter(DataLoader(source, batch_size=BATCH_SIZE, sampler=sampler, num_workers=spec['workers'],
                              collate_fn=collate, drop_last=True))
    ends, losses = [], []
    for step in range(spec['steps']):
        momentum = 0.996 + (1.0 - 0.996) * step / spec['steps']   # their linear EMA schedule
        losses.append(authors_step(model, optimizer, scheduler, next(batches)['audio'], momentum))
        ends.append((time.perf_counter(), time.process_time()))
    return {'ends': ends, 'losses': losses[::10]}


# ------------------------------------------------------------------------------------------------ audiojepa
def audiojepa_overrides(spec:dict) -> list[str]:
    "The matched configuration on audiojepa's defaults."
    return [f"data.spec={spec['data']}", f'data.clip_seconds={CLIP_SECONDS}', f"data.num_workers={spec['workers']}",
            f'data.batch_size={BATCH_SIZE}', f"model.preset={spec['preset']}", 'frontend.norm_clips=0',
            *(f'frontend.options.{k}={v}' for k, v in FRONTEND.items()), f"run.threads={spec['threads']}",
            'run.progress=false', 'run.checkpoint_every=0', f"run.compile={spec['side'] in ('compiled', 'cached')}",
            f"schedule.max_steps={spec['steps']}", f"run.out={spec['out']}"]


def run_audiojepa(spec:dict) -> dict:
    "`pretrain`'s loop on the matched configuration; the end of every step, wall and CPU time (logging and hooks included)."
    run = open_run(apply_overrides(TrainConfig(), audiojepa_overrides(spec)))
    if spec['side'] == 'cached': run.batches = itertools.cycle(list(itertools.islice(run.batches, 8)))
    ends, step = [], run.train_step
    def timed(*args, **kwargs):
        out = step(*args, **kwargs)
        ends.append((time.perf_counter(), time.process_time()))
        return out
    run.train_step = timed
    train_loop(run, run.hooks)
    with open(Path(spec['out']) / 'metrics.csv') as f: losses = [float(r['loss']) for r in csv.DictReader(f) if r['loss']]
    return {'ends': ends, 'losses': losses}


# ------------------------------------------------------------------------------------------------ the sweep
def measure(side:str, rnd:int, args:dict, data:str, out:Path) -> dict:
    "One run of `side` in a fresh process: clips/s of its timed steps, the load average before and after."
    run_dir = out / 'runs' / f"{args['preset']}_{side}_r{rnd}"
    shutil.rmtree(run_dir, ignore_errors=True)
    spec = {**args, 'side': side, 'data': data, 'out': str(run_dir)}
    load_before, t0 = os.getloadavg(), time.perf_counter()
    env = {k: v for k, v in os.environ.items() if k != 'OMP_NUM_THREADS'}
    proc = subprocess.run([sys.executable, '-m', 'benchmarks.versus_authors', '--child', json.dumps(spec)], env=env,
                          capture_output=True, text=True)
    if proc.returncode: raise RuntimeError(f"{side} round {rnd} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    (wall, cpu), w = zip(*got['ends']), args['warmup']
    timed, n = wall[-1] - wall[w - 1], len(wall) - w
    for junk in ('checkpoints', 'encoder', 'audiojepa'): shutil.rmtree(run_dir / junk, ignore_errors=True)
    return {'side': side, 'round': rnd, 'clips_per_s': BATCH_SIZE * n / timed, 'step_ms': 1e3 * timed / n,
            'cpu_ms_per_step': 1e3 * (cpu[-1] - cpu[w - 1]) / n, 'untimed_s': wall[w - 1] - wall[0], 'wall_s': time.perf_counter() - t0,
            'load_before': load_before, 'load_after': os.getloadavg(), 'losses': got['losses']}


def summarise(runs:list[dict], sides:list[str]) -> dict:
    "Per side: the median clips/s over rounds, its range, the ratio to the authors' step."
    rows = {}
    for side in sides:
        c = [r['clips_per_s'] for r in runs if r['side'] == side]
        rows[side] = {'clips_per_s': statistics.median(c), 'min': min(c), 'max': max(c), 'rounds': len(c),
                      'step_ms': statistics.median(r['step_ms'] for r in runs if r['side'] == side),
                      'cpu_ms_per_step': statistics.median(r['cpu_ms_per_step'] for r in runs if r['side'] == side)}
    if 'authors' in rows:
        for row in rows.values():
            row['vs_authors'] = row['clips_per_s'] / rows['authors']['clips_per_s']
            row['vs_authors_cpu'] = rows['authors']['cpu_ms_per_step'] / row['cpu_ms_per_step']
    return rows


def markdown(rows:dict, runs:list[dict], info:dict) -> str:
    a = info['args']
    lines = [f"# audiojepa against the authors' step, re-implemented ({a['preset']}, {info['cores']} cores, torch {info['torch']})", '',
             f"Batch {BATCH_SIZE} of 10 s crops of {a['n_files']} real 16 kHz files, 128 mels x 256 frames (128 patches), "
             f"{a['workers']} loader worker(s), {a['threads']} torch threads; {a['rounds']} alternating rounds of "
             f"{a['steps']} steps per side, the first {a['warmup']} untimed; median clips/s over rounds. Load average "
             f"(1 min) {info['load_before'][0]:.2f} before, {info['load_after'][0]:.2f} after; {info['total_s'] / 60:.1f} min in all.", '',
             "'CPU ms' is the main process's CPU time per timed step (all its threads; the loader worker apart): on a "
             "machine shared with other jobs it moves less than the wall clock.", '',
             '| side | clips/s | range over rounds | step ms | vs the authors\' step | CPU ms/step | vs theirs, CPU time |',
             '|---|---|---|---|---|---|---|']
    for side, r in rows.items():
        ratio = f"{r['vs_authors']:.2f}x" if 'vs_authors' in r else ''
        cpu = f"{r['vs_authors_cpu']:.2f}x" if 'vs_authors_cpu' in r else ''
        lines.append(f"| {SIDES[side]} | {r['clips_per_s']:.1f} | {r['min']:.1f}-{r['max']:.1f} | {r['step_ms']:.0f} | {ratio} | "
                     f"{r['cpu_ms_per_step']:.0f} | {cpu} |")
    lines += ['', '| round | side | clips/s | CPU ms/step | untimed s | load before | load after |', '|---|---|---|---|---|---|---|']
    lines += [f"| {r['round']} | {r['side']} | {r['clips_per_s']:.1f} | {r['cpu_ms_per_step']:.0f} | {r['untimed_s']:.0f} | "
              f"{r['load_before'][0]:.2f} | {r['load_after'][0]:.2f} |" for r in runs]
    return '\n'.join(lines) + '\n'


def sweep(args:dict, sides:list[str], out:Path, sound_dirs:list[str]):
    built = build_audio(out / 'audio', args['n_files'], sound_dirs)
    info = {'cores': os.cpu_count(), 'machine': platform.processor() or platform.machine(), 'torch': torch.__version__,
            'args': args, 'files': built, 'load_before': os.getloadavg()}
    runs, t0 = [], time.perf_counter()
    for rnd in range(args['rounds']):
        shift = rnd % len(sides)   # each round in another order: no side always runs first
        for side in sides[shift:] + sides[:shift]:
            runs.append(r := measure(side, rnd, args, str((out / 'audio').resolve()), out))
            print(f"round {rnd} {side:9s} {r['clips_per_s']:6.1f} clips/s ({r['step_ms']:.0f} ms/step, CPU {r['cpu_ms_per_step']:.0f} ms), untimed "
                  f"{r['untimed_s']:.0f} s, load {r['load_before'][0]:.2f} -> {r['load_after'][0]:.2f}", flush=True)
    info.update(total_s=time.perf_counter() - t0, load_after=os.getloadavg())
    rows = summarise(runs, sides)
    stem = out / f"versus_authors_{args['preset']}_t{args['threads']}"
    stem.with_suffix('.json').write_text(json.dumps({**info, 'summary': rows, 'runs': runs}, indent=1))
    stem.with_suffix('.md').write_text(md := markdown(rows, runs, info))
    print('\n' + md + f"\nwritten: {stem}.json, {stem}.md")


@dashed_call_parse
def main(out:str='benchmarks/results/versus_authors', # results folder (git-ignored); the files are built in OUT/audio
         sides:str='authors,audiojepa,compiled,cached', # comma-separated: authors, audiojepa, compiled, cached
         preset:str='tiny', # model widths of both sides
         rounds:int=3, # alternating rounds
         steps:int=200, # steps per run
         warmup:int=20, # untimed steps at the start of each run
         threads:int=2, # torch threads of both
         workers:int=1, # loader workers of both
         n_files:int=128, # real 10 s files to build
         sound_dirs:str=SOUND_DIRS, # comma-separated folders of recordings the files are made of
         child:str='', # internal: one run (JSON) in this process
        ):
    "Time audiojepa's pretraining against a re-implementation of the authors' training step, alternating rounds."
    if child:
        spec = json.loads(child)
        print(json.dumps(run_authors(spec) if spec['side'] == 'authors' else run_audiojepa(spec)))
        return
    names = [s.strip() for s in sides.split(',') if s.strip()]
    if bad := [s for s in names if s not in SIDES]: fail('versus_authors.py', f"unknown side {bad[0]!r}; expected some of {', '.join(SIDES)}")
    if not 0 < warmup < steps: fail('versus_authors.py', f"--warmup must be between 1 and --steps - 1, got {warmup}")
    args = {'preset': preset, 'rounds': rounds, 'steps': steps, 'warmup': warmup, 'threads': threads, 'workers': workers,
            'n_files': n_files}
    Path(out).mkdir(parents=True, exist_ok=True)
    try: sweep(args, names, Path(out), [d.strip() for d in sound_dirs.split(',') if d.strip()])
    except FileNotFoundError as e: fail('versus_authors.py', e)
