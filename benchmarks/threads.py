"""How many torch threads the pretraining loop should compute on: `run.threads` measured with real files and synthetic sounds.

`audiojepa.train.pretrain` computes on `run.threads` threads (set by `audiojepa.runs.cpu_threads`); 0 (the default)
means OMP_NUM_THREADS if set, else the cores per process. Until issue 23 the rule subtracted the data workers
(`data.num_workers`), so one loader worker on a 2-core machine left the loop one thread; this script's measurements
changed that rule. It runs the real loop (`pretrain(apply_overrides(TrainConfig(), [...]))`) on the setting of issue 23: `tiny`, 10 s clips at 16 kHz, the torchaudio log-mel front end with 128 mels and 256 frames (128
patches), `model.jepa.var_cov_weight=0`, batch 32, no trackers, no progress bar, a checkpoint only at the end,
`frontend.norm_clips=0` (raw log-mel: the statistics pass costs time and changes nothing that is timed). For each
loader {real 16 kHz WAV files, `SyntheticSounds`} x `data.num_workers` {0, 1} x `run.threads` {0 = the default rule,
1, 2} it runs `--steps` steps in a fresh process (so no thread setting leaks from one run into the next), logging
every `--log-every` steps; the result of a run is the median `clips_per_s` of its metrics.csv rows after the first
(the first interval holds the loader's start-up), as benchmarks/pretrain_cpu.sh takes it. `--rounds` alternating
rounds (each round in a rotated order) let load from other processes hit every setting alike; a setting's result is
the median over rounds, with the smallest and largest round next to it. Each run's wall time (process start to exit:
imports, start-up, the final checkpoint and export included), `pretrain`'s own seconds, the CPU seconds of the
process and its loader workers, and the threads it computed on are recorded too. The runs see no OMP_NUM_THREADS
(it is removed from their environment), so `run.threads=0` is the cores per process (the same as `run.threads=2` on
a 2-core machine).

The real files are built once by this script into OUT/audio (default benchmarks/results/threads/audio, git-ignored):
`--n-files` mono 16-bit 16 kHz WAV files of 10 s, each a seeded sequence of the recordings Debian installs under
/usr/share/lmms/samples and /usr/share/sounds (packages lmms-common and sound-theme-freedesktop), decoded and
resampled with `audiojepa.audio.load_audio`; a folder already built with the same settings is reused.

`--profile` times instead the parts of the library's own logged step, for the same config (opened with
`audiojepa.train.open_run`, `data.num_workers=0`), at `--profile-threads` (1 and 2): `PretrainRun.train_step` and
the run's hooks (`audiojepa.train.DiagnosticsHook`), as the loop runs them, under `torch.profiler`, each part read from the label the library puts on it
(`audiojepa.train.STEP_PARTS`): the batch (read, crop, collate, masks: the loader's work, on the main thread without
workers), the front end (LogMel), the target pass (`AudioJEPA.targets` and the target gather), the context pass
(encoder on the visible patches), the predictor, the loss, the diagnostics of `diagnostics=True` (std, effective rank,
oracle losses), backward, gradient clipping, the AdamW step, the EMA update (`update_target`), then the diagnostics
hook's forward with `diagnostics=True` (std, effective rank, oracle losses) and `drift_from_init`, on
`diagnostics.clips` clips (8 of 32) every `diagnostics.every` steps. The same step is also timed without the profiler, to show what the
profiler adds. The heaviest operators of a step, and what the gathers and index ops of the masks cost in all (forward
and backward), are printed and saved.

    python -m benchmarks.threads              # the full measurement: 12 settings x 3 rounds of 20 steps, 9-10 min on 2 idle cores
    python -m benchmarks.threads --profile    # the step's parts at 1 and 2 threads (under half a minute)
    python -m benchmarks.threads --rounds 1 --steps 4 --log-every 2 --loaders synthetic --workers 1   # a smoke test

Each run is about 5 s of start-up (imports, loader, the final checkpoint) plus its steps (0.35-0.65 s each at batch
32), so `--rounds` and `--steps` set the time: 12 x rounds x (5 s + steps x 0.5 s). The steps with diagnostics
(`diagnostics.every`, set to `--log-every`) are 1 in 5 here, twice the default's share (1 in 10); `--profile` shows
what they cost.

Writes OUT/threads.json and OUT/threads.md (or OUT/profile.json and OUT/profile.md); each run keeps its metrics.csv
and config.yaml under OUT/runs/ (its checkpoint and encoder export are deleted).
"""
from __future__ import annotations
import contextlib, csv, json, os, platform, resource, shutil, statistics, subprocess, sys, time, warnings
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from fastcore.script import store_true

from audiojepa.audio import load_audio
from audiojepa.cli import dashed_call_parse, fail
from audiojepa.config import apply_overrides
from audiojepa.sources import find_audio_files
from audiojepa.loop import run_hooks
from audiojepa.train import STEP_PARTS, TrainConfig, open_run, pretrain

SOUND_DIRS = '/usr/share/lmms/samples,/usr/share/sounds'   # Debian: lmms-common, sound-theme-freedesktop
SAMPLE_RATE, CLIP_SECONDS = 16000, 10.0
# issue 23's front end: torchaudio MelSpectrogram + log, 16 kHz, 128 mels, 256 frames of 10 s (16 x 8 = 128 patches)
FRONTEND = {'kind': 'torchaudio', 'sample_rate': SAMPLE_RATE, 'n_mels': 128, 'hop_length': 625, 'win_length': 2048,
            'n_fft': 2048, 'num_frames': 256, 'f_max': 8000}
LOADER_NAMES = {'files': 'real 16 kHz files', 'synthetic': 'SyntheticSounds'}


def overrides(spec:str, workers:int, threads:int, steps:int, log_every:int, batch_size:int, out:Path) -> list[str]:
    "The `apply_overrides` strings of one run."
    return [f'data.spec={spec}', f'data.clip_seconds={CLIP_SECONDS}', f'data.num_workers={workers}',
            f'data.batch_size={batch_size}', 'model.preset=tiny', 'model.jepa.var_cov_weight=0',
            *(f'frontend.options.{k}={v}' for k, v in FRONTEND.items()), 'frontend.norm_clips=0',
            f'run.threads={threads}', 'run.trackers=[]', 'run.progress=false', 'run.checkpoint_every=0',
            f'run.log_every={log_every}', f'diagnostics.every={log_every}', f'schedule.max_steps={steps}', f'run.out={out}']


# ---------------------------------------------------------------------------------------------------------- the files
def build_audio(folder:Path, n_files:int, sound_dirs:list[str], seed:int=0) -> dict:
    "`n_files` 10 s 16 kHz mono WAVs in `folder`, each a seeded sequence of the recordings under `sound_dirs`; reused when built alike."
    dirs = [d for d in sound_dirs if Path(d).is_dir()]
    paths = [p for d in dirs for p in find_audio_files(d)]
    settings = {'n_files': n_files, 'seconds': CLIP_SECONDS, 'sample_rate': SAMPLE_RATE, 'seed': seed, 'sound_dirs': dirs,
                'recordings_found': len(paths)}
    info_path = folder / 'build.json'
    if info_path.is_file():
        info = json.loads(info_path.read_text())
        if {k: info.get(k) for k in settings} == settings and len(list(folder.glob('*.wav'))) == n_files: return info
    if not paths:
        raise FileNotFoundError(f"no recordings found under {', '.join(sound_dirs)}: install Debian's lmms-common and "
                                f"sound-theme-freedesktop (apt-get install lmms-common sound-theme-freedesktop), "
                                f"or name folders of audio files with --sound-dirs")
    recordings, unusable = [], 0
    for p in paths:
        try: wav = load_audio(p, SAMPLE_RATE)
        except Exception: unusable += 1; continue     # what libsndfile cannot decode (find_audio_files skips .ds patches)
        if len(wav) < SAMPLE_RATE // 20 or wav.abs().max() < 1e-4: unusable += 1; continue   # under 50 ms, or silent
        recordings.append(wav)
    if not recordings: raise FileNotFoundError(f"none of the {len(paths)} audio files under {', '.join(dirs)} is usable audio")
    shutil.rmtree(folder, ignore_errors=True); folder.mkdir(parents=True)
    rng, n = np.random.default_rng(seed), round(CLIP_SECONDS * SAMPLE_RATE)
    for k in range(n_files):
        parts, length = [], 0
        while length < n:   # recordings one after another, each at a random gain, until the clip is full
            wav = recordings[rng.integers(len(recordings))]
            parts.append(wav * float(10 ** (rng.uniform(-12, 0) / 20) / max(float(wav.abs().max()), 1e-6)))
            length += len(wav)
        clip = torch.cat(parts)[:n].clamp(-1, 1)
        sf.write(folder / f'clip_{k:04d}.wav', clip.numpy(), SAMPLE_RATE, subtype='PCM_16')
    info = {**settings, 'recordings_used': len(recordings), 'unusable': unusable}
    info_path.write_text(json.dumps(info, indent=1))
    return info


# ------------------------------------------------------------------------------------------------ one run (child)
def child_run(spec:dict) -> dict:
    "One pretraining run in this process (started by `measure`): the run's own numbers, printed as the last line of JSON."
    result = pretrain(apply_overrides(TrainConfig(), spec['overrides']))
    return {'pretrain_s': result.seconds, 'steps': result.step, 'clips': result.clips, 'torch_threads': torch.get_num_threads()}


def median_clips_per_s(metrics:Path) -> tuple[float, list[float]]:
    "Median `clips_per_s` of the metrics.csv rows after the first (as benchmarks/pretrain_cpu.sh), and those rows' values."
    rows = [float(r['clips_per_s']) for r in csv.DictReader(open(metrics))][1:]
    if not rows: raise ValueError(f"{metrics} has fewer than two rows: raise --steps or lower --log-every")
    return statistics.median(rows), rows


def measure(loader:str, workers:int, threads:int, rnd:int, args:dict, spec:str, out:Path) -> dict:
    "Run one setting in a fresh process; its median clips/s, wall and CPU time, threads used."
    run_dir = out / 'runs' / f'{loader}_w{workers}_t{threads}_r{rnd}'
    shutil.rmtree(run_dir, ignore_errors=True)
    env = {k: v for k, v in os.environ.items() if k != 'OMP_NUM_THREADS'}   # threads=0 is then the cores per process
    ov = overrides(spec, workers, threads, args['steps'], args['log_every'], args['batch_size'], run_dir)
    load_before, before = os.getloadavg()[0], resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, '--child', json.dumps({'overrides': ov})], env=env,
                          capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode:
        raise RuntimeError(f"run {run_dir.name} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    own = json.loads(proc.stdout.strip().splitlines()[-1])
    median, rows = median_clips_per_s(run_dir / 'metrics.csv')
    for junk in ('checkpoints', 'encoder'): shutil.rmtree(run_dir / junk, ignore_errors=True)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return {'loader': loader, 'workers': workers, 'threads': threads, 'round': rnd, 'clips_per_s': median,
            'rows_clips_per_s': rows, 'wall_s': wall, 'cpu_s': cpu, 'cpu_s_per_clip': cpu / max(own['clips'], 1),
            'load_before': load_before, 'load_after': os.getloadavg()[0], **own}


def summarise(runs:list[dict]) -> list[dict]:
    "One row per (loader, workers, threads): median over rounds of the run medians, their range, median wall and CPU time."
    keys = sorted({(r['loader'], r['workers'], r['threads']) for r in runs}, key=lambda k: (list(LOADER_NAMES).index(k[0]), k[1], k[2]))
    rows = []
    for loader, workers, threads in keys:
        rs = [r for r in runs if (r['loader'], r['workers'], r['threads']) == (loader, workers, threads)]
        c = [r['clips_per_s'] for r in rs]
        rows.append({'loader': loader, 'workers': workers, 'threads': threads,
                     'torch_threads': sorted({r['torch_threads'] for r in rs}), 'rounds': len(rs),
                     'clips_per_s': statistics.median(c), 'clips_per_s_min': min(c), 'clips_per_s_max': max(c),
                     'wall_s': statistics.median(r['wall_s'] for r in rs), 'pretrain_s': statistics.median(r['pretrain_s'] for r in rs),
                     'cpu_s_per_clip': statistics.median(r['cpu_s_per_clip'] for r in rs)})
    for row in rows:   # against the default rule's run of the same loader and workers
        default = next((d for d in rows if (d['loader'], d['workers'], d['threads']) == (row['loader'], row['workers'], 0)), None)
        row['vs_default'] = None if default is None else row['clips_per_s'] / default['clips_per_s']
    return rows


def markdown(rows:list[dict], info:dict) -> str:
    lines = [f"# run.threads on {info['cores']} cores ({info['machine']}, torch {info['torch']})", '',
             f"tiny, batch {info['args']['batch_size']} of 10 s 16 kHz clips, 128 mels x 256 frames (128 patches), "
             f"var_cov_weight=0; {info['args']['steps']} steps per run, logged every {info['args']['log_every']}; "
             f"median over {info['args']['rounds']} rounds of each run's median clips/s (metrics.csv rows after the first). "
             f"threads 0 = the default rule (the cores per process). Load average {info['load_before']:.2f} before, "
             f"{info['load_after']:.2f} after; {info['total_s'] / 60:.1f} min in all.", '',
             '| loader | workers | run.threads | torch threads | clips/s | range over rounds | vs default | wall s | pretrain s | CPU ms/clip |',
             '|---|---|---|---|---|---|---|---|---|---|']
    for r in rows:
        lines.append(f"| {LOADER_NAMES[r['loader']]} | {r['workers']} | {r['threads'] or '0 (rule)'} | "
                     f"{','.join(map(str, r['torch_threads']))} | {r['clips_per_s']:.1f} | {r['clips_per_s_min']:.1f}-{r['clips_per_s_max']:.1f} | "
                     f"{'' if r['vs_default'] is None else format(r['vs_default'], '.2f') + 'x'} | {r['wall_s']:.1f} | {r['pretrain_s']:.1f} | "
                     f"{1e3 * r['cpu_s_per_clip']:.1f} |")
    return '\n'.join(lines) + '\n'


def sweep(args:dict, out:Path, loaders:list[str], workers:list[int], threads:list[int], sound_dirs:list[str]):
    specs = {}
    if 'files' in loaders:
        built = build_audio(out / 'audio', args['n_files'], sound_dirs)
        print(f"real files: {built['n_files']} x 10 s at 16 kHz in {out / 'audio'}, from {built['recordings_used']} "
              f"recordings under {', '.join(built['sound_dirs'])}", flush=True)
        specs['files'] = str((out / 'audio').resolve())
    if 'synthetic' in loaders: specs['synthetic'] = 'synthetic'
    combos = [(l, w, t) for l in loaders for w in workers for t in threads]
    info = {'cores': os.cpu_count(), 'machine': platform.processor() or platform.machine(), 'torch': torch.__version__,
            'python': platform.python_version(), 'omp_num_threads_removed': os.environ.get('OMP_NUM_THREADS'),
            'args': args, 'load_before': os.getloadavg()[0]}
    print(f"{len(combos)} settings x {args['rounds']} rounds, {args['steps']} steps each; load average {info['load_before']:.2f}", flush=True)
    runs, t0 = [], time.perf_counter()
    for rnd in range(args['rounds']):
        shift = rnd * len(combos) // max(args['rounds'], 1)   # each round in another order: no setting always runs first
        for loader, w, t in combos[shift:] + combos[:shift]:
            r = measure(loader, w, t, rnd, args, specs[loader], out)
            runs.append(r)
            print(f"round {rnd} {loader:9s} workers {w} threads {t} ({r['torch_threads']} used): {r['clips_per_s']:6.1f} clips/s, "
                  f"wall {r['wall_s']:5.1f} s, load {r['load_after']:.2f}", flush=True)
    info.update(total_s=time.perf_counter() - t0, load_after=os.getloadavg()[0])
    rows = summarise(runs)
    (out / 'threads.json').write_text(json.dumps({**info, 'summary': rows, 'runs': runs}, indent=1))
    (out / 'threads.md').write_text(md := markdown(rows, info))
    print('\n' + md + f"\nwritten: {out / 'threads.json'}, {out / 'threads.md'}")


# ------------------------------------------------------------------------------------------------------- profile
LOGGED_ONLY = ('diagnostics', 'drift from init')   # the parts only the diagnostics hook runs (1 step in diagnostics.every)
MASK_OPS = ('gather', 'index', 'scatter', 'repeat_interleave', 'take_along')   # operator names of the mask gathers


def logged_step(run, step:int, threads:int, profile:bool) -> tuple:
    "`(profile or None, wall ms)` of one logged step of `run` at `threads` threads, as the loop runs it: `train_step`, the hooks."
    torch.set_num_threads(threads)
    with warnings.catch_warnings():
        warnings.filterwarnings('ignore', '.*Profiler clears events')   # each profile is read on its own
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) if profile else contextlib.nullcontext() as prof:
            t0 = time.perf_counter()
            run.train_step(step, log=True)
            run_hooks(run, run.hooks, step)
            ms = 1e3 * (time.perf_counter() - t0)
    return prof, ms


def part_ms(prof) -> dict:
    "Wall ms of each part of the step (`audiojepa.train.STEP_PARTS`, the library's profiler labels) in one profile."
    ms = {a.key: a.cpu_time_total / 1e3 for a in prof.key_averages() if a.key in STEP_PARTS}
    if missing := [p for p in STEP_PARTS if p not in ms]:
        raise RuntimeError(f"the step recorded no profiler label {missing}: audiojepa.train.STEP_PARTS and the labels disagree")
    return ms


def operators(profs:list, top:int) -> dict:
    "Per step (mean over `profs`): the `top` heaviest operators by self CPU time, the mask gathers' and all operators' total."
    totals = {}
    for prof in profs:
        for a in prof.key_averages():
            if a.key in STEP_PARTS: continue
            calls, us = totals.get(a.key, (0, 0.0))
            totals[a.key] = (calls + a.count, us + a.self_cpu_time_total)
    rows = [{'op': k, 'calls': c / len(profs), 'self_ms': us / len(profs) / 1e3} for k, (c, us) in totals.items()]
    rows.sort(key=lambda r: r['self_ms'], reverse=True)
    return {'top': rows[:top], 'total_self_ms': sum(r['self_ms'] for r in rows),
            'mask_gathers': [r for r in rows if r['op'].startswith('aten::') and any(m in r['op'] for m in MASK_OPS)]}


def profile_markdown(med:dict, ops:dict, args:dict, loader:str, bs:int) -> str:
    "The tables of `--profile`: the parts of a logged step per thread count, then each count's heaviest operators."
    threads, log_every = list(med), TrainConfig().diagnostics.every   # the default: diagnostics and drift on 1 step in 10
    lines = [f"# One training step's parts, {os.cpu_count()} cores, torch {torch.__version__}", '',
             f"tiny, batch {bs} of 10 s 16 kHz clips ({LOADER_NAMES[loader]}), 128 mels x 256 frames, var_cov_weight=0. "
             f"The library's own logged step (`PretrainRun.train_step` and the diagnostics hook, no loader worker) under "
             f"torch.profiler, each part the wall ms of its label (`audiojepa.train.STEP_PARTS`) on the main thread; "
             f"median of {args['profile_steps']} steps (alternating thread counts). 'share' is of the sum of the parts; "
             f"'per step' counts the diagnostics and drift from init once every {log_every} steps (diagnostics.every's "
             f"default), the batch only when the loader has no worker. The last row is the same step timed without "
             f"the profiler (what the profiler adds).", '',
             '| part | ' + ' | '.join(f'{t} thr ms | share | per step ms' for t in threads) + ' |',
             '|---|' + '---|---|---|' * len(threads)]
    totals = {t: sum(med[t][p] for p in STEP_PARTS) for t in threads}
    for p in STEP_PARTS:
        lines.append(f"| {p} | " + ' | '.join(f"{med[t][p]:.1f} | {100 * med[t][p] / totals[t]:.1f}% | "
                                               f"{med[t][p] / log_every if p in LOGGED_ONLY else med[t][p]:.1f}" for t in threads) + ' |')
    for name, key in (('sum of the parts', None), ('logged step, profiled', 'profiled step'), ('logged step, no profiler', 'step')):
        lines.append(f"| {name} | " + ' | '.join(f"{totals[t] if key is None else med[t][key]:.1f} | |" for t in threads) + ' |')
    for t in threads:
        unlogged = sum(med[t][p] for p in STEP_PARTS if p not in LOGGED_ONLY and p != 'batch')
        per = unlogged + sum(med[t][p] for p in LOGGED_ONLY) / log_every
        lines.append(f"\n{t} thread(s): logged step {totals[t]:.0f} ms; an average step {per:.0f} ms with a loader worker "
                     f"({1e3 * bs / per:.0f} clips/s), {per + med[t]['batch']:.0f} ms without ({1e3 * bs / (per + med[t]['batch']):.0f} clips/s)")
    for t in threads:
        lines += ['', f"## torch.profiler, a logged step at {t} thread(s): heaviest operators (self CPU ms per step)", '',
                  '| operator | calls | self ms |', '|---|---|---|']
        lines += [f"| {o['op']} | {o['calls']:g} | {o['self_ms']:.1f} |" for o in ops[t]['top']]
        g = ops[t]['mask_gathers']
        lines += ['', f"mask gathers and index ops in all (forward and backward): {sum(o['self_ms'] for o in g):.1f} ms of "
                  f"{ops[t]['total_self_ms']:.0f} ms self CPU: " + ', '.join(f"{o['op']} {o['self_ms']:.1f}" for o in g[:8])]
    return '\n'.join(lines) + '\n'


def profile_step(args:dict, out:Path, loader:str, threads:list[int], sound_dirs:list[str]):
    "Profile the parts of the library's logged step at each of `threads` (alternating); print and save the tables."
    spec = 'synthetic'
    if loader == 'files':
        build_audio(out / 'audio', args['n_files'], sound_dirs)
        spec = str((out / 'audio').resolve())
    run_dir, n = out / 'profile_run', args['profile_steps']
    shutil.rmtree(run_dir, ignore_errors=True)
    steps = len(threads) * (1 + 2 * n)   # a warm-up step per thread count, then a profiled and a plain step per round
    run = open_run(apply_overrides(TrainConfig(), overrides(spec, 0, threads[0], steps, args['log_every'], args['batch_size'], run_dir)))
    run.model.train()
    timings = {t: {p: [] for p in (*STEP_PARTS, 'profiled step', 'step')} for t in threads}
    profs, step = {t: [] for t in threads}, 0
    for t in threads: logged_step(run, step, t, False); step += 1   # warm-up at each thread count
    for _ in range(n):
        for t in threads:   # alternating, so load hits each thread count alike
            prof, ms = logged_step(run, step, t, True)
            for p, v in (*part_ms(prof).items(), ('profiled step', ms)): timings[t][p].append(v)
            profs[t].append(prof)
            timings[t]['step'].append(logged_step(run, step + 1, t, False)[1])
            step += 2
    shutil.rmtree(run_dir, ignore_errors=True)   # config.yaml and an empty metrics.csv: nothing was logged
    med = {t: {p: statistics.median(v) for p, v in timings[t].items()} for t in threads}
    ops = {t: operators(profs[t], args['top_ops']) for t in threads}
    md = profile_markdown(med, ops, args, loader, run.cfg.data.batch_size)
    (out / 'profile.json').write_text(json.dumps({'args': args, 'loader': loader, 'cores': os.cpu_count(), 'torch': torch.__version__,
                                                  'median_ms': med, 'all_ms': timings, 'profiler': ops}, indent=1))
    (out / 'profile.md').write_text(md)
    print(md + f"\nwritten: {out / 'profile.json'}, {out / 'profile.md'}")


@dashed_call_parse
def main(out:str='benchmarks/results/threads', # results folder (git-ignored); the real files are built in OUT/audio
         loaders:str='files,synthetic', # comma-separated: 'files' (real 16 kHz WAVs) and/or 'synthetic' (SyntheticSounds)
         workers:str='0,1', # comma-separated data.num_workers values
         threads:str='0,1,2', # comma-separated run.threads values (0: the default rule)
         rounds:int=3, # alternating rounds of every setting
         steps:int=20, # optimiser steps per run (schedule.max_steps)
         log_every:int=5, # steps between metrics.csv rows (run.log_every); the first row is left out
         batch_size:int=32, # clips per step (data.batch_size)
         n_files:int=128, # real files to build (10 s each)
         sound_dirs:str=SOUND_DIRS, # comma-separated folders of recordings the real files are made of
         profile:store_true=False, # time the parts of one step instead of the sweep
         profile_threads:str='1,2', # --profile: comma-separated thread counts
         profile_steps:int=5, # --profile: timed steps per thread count
         profile_loader:str='files', # --profile: 'files' or 'synthetic' (what the batch part reads)
         top_ops:int=15, # --profile: operators listed from torch.profiler
         child:str='', # internal: run one pretraining run (JSON) in this process and print its numbers
        ):
    "Measure `run.threads` of the pretraining loop with real files and SyntheticSounds (or profile its step: --profile)."
    if child:
        print(json.dumps(child_run(json.loads(child))))
        return
    ints = lambda s: [int(x) for x in s.split(',') if x.strip()]
    names = [l.strip() for l in loaders.split(',') if l.strip()]
    if bad := [l for l in names + [profile_loader] if l not in LOADER_NAMES]: fail('threads.py', f"unknown loader {bad[0]!r}; expected files or synthetic")
    if steps < 2 * log_every: fail('threads.py', f"--steps {steps} gives fewer than two metrics rows at --log-every {log_every}")
    out = Path(out)
    args = {'rounds': rounds, 'steps': steps, 'log_every': log_every, 'batch_size': batch_size, 'n_files': n_files,
            'profile_steps': profile_steps, 'top_ops': top_ops}
    dirs = [d.strip() for d in sound_dirs.split(',') if d.strip()]
    out.mkdir(parents=True, exist_ok=True)
    try:
        if profile: profile_step(args, out, profile_loader, ints(profile_threads), dirs)
        else: sweep(args, out, names, ints(workers), ints(threads), dirs)
    except FileNotFoundError as e: fail('threads.py', e)
