"""Does pretraining learn? Probe the encoder along a pretraining run and compare it with its own random init.

    python -m experiments.learning                                   # defaults: 15 min of pretraining on the pool
    python -m experiments.learning --budget-minutes 5 --tasks drums,speech
    python -m experiments.learning --max-steps 300 --probe-every 100 model.preset=small schedule.lr=5e-4
    python -m experiments.learning --config configs/tiny_cpu.yaml masking.name=multiblock

Data: `--corpora` as `python -m experiments.corpora` builds it: `pool/**.wav` (unlabelled, pretraining) and one folder per dev
task, `TASK/{train,test}/<label>/*.wav`. Each task's clips are decoded once, at the start, and kept in memory.

What it does:
1. The run's config: the library's defaults (`TrainConfig()`), then `--config FILE`, then the dotted `KEY=VALUE`
   overrides exactly as `audiojepa-pretrain` takes them; `data.spec` is the pool (an override may change it).
2. Budget -> steps. The cosine schedules need `schedule.max_steps` up front, so a short calibration run (the same
   config, `--calibration-steps` steps, in a scratch folder that is deleted afterwards) measures the steady
   rate r (steps/s, from the `seconds` column of metrics.csv, start-up left out) and the cost o of one
   invocation (start-up + final checkpoint = wall time - steps / r). Then max_steps is the largest S with
   S <= r * (budget - o * segments(S)), segments(S) = ceil(S / probe_every) invocations (8 by default).
   `--max-steps N` (or a `schedule.max_steps=N` override) skips the calibration.
3. Baselines, once: `--random-seeds` random inits of the run's encoder architecture (`model.preset` + `model.encoder`
   changes) from `audiojepa.embed.random_encoder` (a seed stream that is never a pretraining seed), on two front ends:
   the run's own, with the pool's log-mel statistics as the export has them ('own'), and the named front end with its
   own statistics, as `audiojepa-probe --encoder random:PRESET` has it ('default'; the same as 'own' when the run
   measures no statistics). Each kind is reported as mean ± sd and best seed; the baseline to beat is the best network
   of both. A random network's result is kept in `--baseline-cache` under a key of everything it depends on
   (architecture, front end, seed, the task's clips, probe settings, the library code), so reruns probe it once.
   And the log-mel front end itself (mean+std pooling).
4. Step 0 (the run's own init) is probed, then pretraining runs in segments: `run.stop_at` = the next probe step, each
   segment resuming from the previous one's checkpoint (bit-exact resume, one schedule); after each segment the
   exported encoder (`OUT/run/encoder`) is probed on every task: linear and kNN accuracy on the fixed train/test split
   of mean-pooled clip embeddings (`audiojepa.probe.probe_embeddings`), with the run's metrics.csv row of that step.
5. Writes OUT/learning.json (rewritten after every probe point, so an interrupted run leaves its curve so far),
   OUT/learning.png and prints a table. Acceptance, per judged task (`--judge`, default music, drums, language; the
   other tasks are reported): the final encoder beats the best random init (either kind) by >= `--margin` (3 points)
   in linear AND kNN accuracy. Whether each curve rises (Spearman correlation of accuracy with the step) is reported.

6. `--xares` (off by default: it costs X-ARES' own encoding of every task per encoder): X-ARES' MLP and kNN, its own
   pipeline through `audiojepa.xares` with each task as a local private task (in OUT/xares_env, written once), for the
   final export and `--xares-random-seeds` random inits of it, next to the probe's numbers (`result['xares']`).

OUT/run is the pretraining run (its metrics.csv, config.yaml, last checkpoint and encoder export); OUT/run and
OUT/calibration are removed first when they exist.
"""
from __future__ import annotations
import copy, csv, hashlib, json, logging, math, os, platform, shutil, subprocess, sys, time
from dataclasses import asdict, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from fastcore.script import Param, store_true
from safetensors.torch import load_file

from audiojepa.cli import dashed_call_parse
from audiojepa.sources import FolderSource, NoAudioError
from audiojepa.embed import AudioJEPAEncoder, Embeddings, FrameEmbedder, LogMelBaseline, pool_frames, random_encoder, random_like
from audiojepa.probe import json_safe, probe_embeddings
from audiojepa.config import ConfigError, config_to_dict
from audiojepa.runs import RunError, find_checkpoint
from audiojepa.train import (TrainConfig, build_frontend_config, build_model, pretrain, resolve_config, run_source,
                             source_norm_stats)

ROOT = Path(__file__).resolve().parents[1]
TASKS = ('music', 'drums', 'speech', 'language', 'env')   # the dev tasks experiments/corpora.py builds (env is optional)
PROBES = ('linear', 'knn')
log = logging.getLogger('learning')


# ---------------------------------------------------------------------------------------------------------------- data
def compact(wav:torch.Tensor) -> torch.Tensor:
    "`wav` as int16 (x 32768) when that is exact, as 16-bit WAV files decode: half the memory of float32, same values."
    q = wav * 32768
    return q.to(torch.int16) if q.abs().max() <= 32767 and torch.equal(q, q.round()) else wav

def as_float(wav:torch.Tensor) -> torch.Tensor: return wav.float() / 32768 if wav.dtype == torch.int16 else wav

def decode_split(folder:Path, sample_rate:int, classes:list|None=None) -> dict:
    "Every clip of `folder/<label>/*`, decoded once: waveforms (1-D, see `compact`), one-hot targets, ids, skipped files."
    source = FolderSource(folder, labels='dirs', classes=classes, sample_rate=sample_rate, crop='full')
    audio, targets, ids, skipped = [], [], [], []
    for i in range(len(source)):
        item = source[i]
        if 'error' in item: skipped.append((item['id'], item['error'])); continue
        audio.append(compact(item['audio'][~item['padding_mask']].contiguous()))
        targets.append(item['target'].numpy())
        ids.append(item['id'])
    if not audio: raise SystemExit(f"learning.py: error: no readable audio in {folder}")
    return {'audio': audio, 'targets': np.stack(targets).astype(np.float32), 'ids': ids, 'classes': source.classes,
            'skipped': skipped}

def load_task(root:Path, sample_rate:int) -> dict:
    "A dev task `root/{train,test}/<label>/*` decoded into memory (test classes in the training split's order)."
    for split in ('train', 'test'):
        if not (root / split).is_dir(): raise SystemExit(f"learning.py: error: {root / split} does not exist")
    train = decode_split(root / 'train', sample_rate)
    test = decode_split(root / 'test', sample_rate, classes=train['classes'])
    return {'name': root.name, 'train': train, 'test': test}

def find_tasks(corpora:Path, tasks:str|None) -> list[Path]:
    "The task folders asked for; by default those of `TASKS` that exist."
    if tasks:
        names = [t.strip() for t in tasks.split(',') if t.strip()]
        missing = [n for n in names if not (corpora / n / 'train').is_dir()]
        if missing: raise SystemExit(f"learning.py: error: no task folder {', '.join(str(corpora / n / 'train') for n in missing)}")
    else:
        names = [n for n in TASKS if (corpora / n / 'train').is_dir()]
        if not names: raise SystemExit(f"learning.py: error: none of the tasks {', '.join(TASKS)} under {corpora} "
                                       f"(build them with python -m experiments.corpora, or give --corpora)")
    return [corpora / n for n in names]


# ------------------------------------------------------------------------------------------------------------ probing
@torch.inference_mode()
def embed_clips(embedder:FrameEmbedder, audio:list, pool:str, batch_size:int=64) -> np.ndarray:
    "Pooled clip embeddings [N, D] of waveforms of any lengths (batched by length, returned in the input order)."
    order = sorted(range(len(audio)), key=lambda i: len(audio[i]))
    out = [None] * len(audio)
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        n = max(len(audio[i]) for i in idx)
        wav, pad = torch.zeros(len(idx), n), torch.ones(len(idx), n, dtype=torch.bool)
        for row, i in enumerate(idx): wav[row, :len(audio[i])], pad[row, :len(audio[i])] = as_float(audio[i]), False
        frames, mask = embedder.encode(wav, pad)
        for i, e in zip(idx, pool_frames(frames, mask, pool).float().cpu().numpy()): out[i] = e
    return np.stack(out)

def probe_task(embedder:FrameEmbedder, task:dict, pool:str='mean', k:int=10, seed:int=0, batch_size:int=64) -> dict:
    "Linear and kNN probe of `embedder` on a decoded task: accuracies, the other metrics, seconds."
    t0 = time.perf_counter()
    embedder.chunks_per_batch = max(embedder.chunks_per_batch, batch_size)
    emb = {s: Embeddings(ids=task[s]['ids'], clip=embed_clips(embedder, task[s]['audio'], pool, batch_size),
                         targets=task[s]['targets'], classes=task[s]['classes']) for s in ('train', 'test')}
    t1 = time.perf_counter()
    report = probe_embeddings(emb['train'], emb['test'], k=k, seed=seed)
    t2 = time.perf_counter()
    return {'linear': report['linear']['accuracy'], 'knn': report['knn']['accuracy'],
            'metrics': {p: report[p] for p in PROBES}, 'embed_seconds': round(t1 - t0, 2),
            'probe_seconds': round(t2 - t1, 2)}

DEVICE = 'cuda' if torch.cuda.is_available() else 'cpu'   # where probing embeds (pretraining: wherever Accelerate puts it)

def probe_all(embedder:FrameEmbedder, tasks:list, **kw) -> dict:
    "`probe_task` of every decoded task."
    embedder.eval().to(DEVICE)
    return {t['name']: probe_task(embedder, t, **kw) for t in tasks}


# -------------------------------------------------------------------------------------------------------- encoders
def init_encoder(cfg:TrainConfig, fc, seed:int) -> AudioJEPAEncoder:
    "The encoder a run of `cfg` with `run.seed=seed` starts from (built by `build_model`, as `pretrain` builds it)."
    with torch.random.fork_rng():
        model = build_model(replace(cfg, run=replace(cfg.run, seed=seed)), fc)
    encoder = model.target_encoder if cfg.model.export == 'target' else model.encoder
    return AudioJEPAEncoder(encoder.eval(), fc, sampling_rate=None)

RANDOM_KINDS = {'own': "the run's front end, with the pool's log-mel statistics (what the export carries)",
                'default': "the named front end's own statistics, as `random:PRESET` (audiojepa-probe) has them"}

def baseline_frontend(cfg:TrainConfig, fc, kind:str):
    "The front end of a random baseline of `kind` (see `RANDOM_KINDS`)."
    if kind == 'own': return fc
    named = build_frontend_config(replace(cfg, frontend=replace(cfg.frontend, options={
        k: v for k, v in cfg.frontend.options.items() if k not in ('mean', 'std')})))
    return replace(fc, mean=named.mean, std=named.std)

def random_baseline(cfg:TrainConfig, fc, seed:int, kind:str='own') -> tuple: # (AudioJEPAEncoder, how its weights were drawn)
    "Random baseline `seed` (0, 1, ...): the run's encoder architecture with untrained weights, on the front end of `kind`."
    config = init_encoder(cfg, fc, cfg.run.seed).encoder.config
    return (AudioJEPAEncoder(random_encoder(config, seed), baseline_frontend(cfg, fc, kind), sampling_rate=None),
            f'audiojepa.embed.random_encoder(config, seed={seed}), front end: {kind}')

def library_fingerprint() -> str:
    "A hash of the library code a baseline's numbers depend on (front end, models, embedding, probes)."
    h = hashlib.sha1()
    for name in ('audio', 'models', 'embed', 'probe', 'data'): h.update((ROOT / 'audiojepa' / f'{name}.py').read_bytes())
    return h.hexdigest()[:16]

def baseline_key(embedder:AudioJEPAEncoder, seed:int, task:dict, probe_kw:dict) -> str:
    "What a random baseline's probe result depends on: architecture, front end, seed, the task's clips, probe settings, code."
    ids = hashlib.sha1('\n'.join(task['train']['ids'] + ['|'] + task['test']['ids']).encode()).hexdigest()
    what = {'encoder': asdict(embedder.encoder.config), 'frontend': asdict(embedder.logmel.config), 'seed': seed,
            'task': task['name'], 'clips': ids, 'probe': probe_kw, 'code': library_fingerprint()}
    return hashlib.sha1(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()

def probe_random(cfg:TrainConfig, fc, seed:int, kind:str, tasks:list, cache:Path|None, **probe_kw) -> dict:
    "`probe_all` of random baseline (`seed`, `kind`), each task's result read from `cache` when an identical one is there."
    embedder, how = random_baseline(cfg, fc, seed, kind)
    out, todo = {}, []
    for task in tasks:
        path = None if cache is None else cache / f"{baseline_key(embedder, seed, task, probe_kw)}.json"
        if path is not None and path.is_file(): out[task['name']] = {**json.loads(path.read_text()), 'cached': True}
        else: todo.append((task, path))
    if todo:
        fresh = probe_all(embedder, [t for t, _ in todo], **probe_kw)
        for task, path in todo:
            out[task['name']] = fresh[task['name']]
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix('.tmp'); tmp.write_text(json.dumps(json_safe(fresh[task['name']]))); os.replace(tmp, path)
    return {name: {'seed': seed, 'kind': kind, 'weights': how, **r} for name, r in out.items()}

def checkpoint_encoder(checkpoint:Path, which:str, like:AudioJEPAEncoder) -> AudioJEPAEncoder:
    "The 'context' or 'target' encoder of a checkpoint (its model.safetensors), with the front end of `like`."
    prefix = 'encoder.' if which == 'context' else 'target_encoder.'
    state = load_file(str(Path(checkpoint) / 'model.safetensors'))
    encoder = copy.deepcopy(like.encoder)
    encoder.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})
    return AudioJEPAEncoder(encoder.eval(), like.logmel.config, sampling_rate=None)

def resolve_norm_stats(cfg:TrainConfig) -> TrainConfig:
    "With `frontend.norm_clips`, measure the log-mel mean/std once (as `pretrain` would) and fix them in the config."
    if not cfg.frontend.norm_clips or {'mean', 'std'} <= set(cfg.frontend.options): return cfg
    fc = build_frontend_config(cfg)
    source = run_source(cfg, fc)
    stats = source_norm_stats(source, fc, cfg.frontend.norm_clips)   # the clips pretrain measures
    return replace(cfg, frontend=replace(cfg.frontend, options={**cfg.frontend.options, 'mean': stats.mean, 'std': stats.std}))


# -------------------------------------------------------------------------------------------------- budget -> steps
def read_metrics(run_dir:Path) -> list[dict]:
    "Rows of a run's metrics.csv, numbers as floats (empty and non-numeric cells left out)."
    path = Path(run_dir) / 'metrics.csv'
    if not path.is_file(): return []
    rows = []
    with open(path, newline='') as f:
        for r in csv.DictReader(f):
            row = {}
            for key, value in r.items():
                try: row[key] = float(value)
                except (TypeError, ValueError): pass
            rows.append(row)
    return rows

def steady_rate(rows:list[dict]) -> float:
    "Steps per second between the first and the last logged row (the start-up before the first row left out)."
    if len(rows) < 2: raise ValueError("calibration logged fewer than 2 rows of metrics.csv; raise --calibration-steps")
    (s0, t0), (s1, t1) = (rows[0]['step'], rows[0]['seconds']), (rows[-1]['step'], rows[-1]['seconds'])
    if s1 <= s0 or t1 <= t0: raise ValueError(f"cannot measure a rate from steps {s0}->{s1}, seconds {t0}->{t1}")
    return (s1 - s0) / (t1 - t0)

def n_points(steps:int, probe_every:int|None, points:int=8) -> int:
    "Pretraining segments (probe points after step 0) of a run of `steps` steps."
    return points if probe_every is None else math.ceil(steps / probe_every)

def budget_to_steps(budget_s:float, # wall-clock seconds of pretraining
                    rate:float, # steady steps per second
                    overhead_s:float, # seconds every invocation costs besides its steps (start-up, last checkpoint)
                    probe_every:int|None=None, # steps per segment; None: `points` segments
                    points:int=8, # segments when `probe_every` is None
                   ) -> int:
    "The largest step count S whose segments fit the budget: S / rate + overhead * segments(S) <= budget (0 if none)."
    fits = lambda s: s / rate + max(0.0, overhead_s) * n_points(s, probe_every, points) <= budget_s
    lo, hi = 0, max(1, math.floor(budget_s * rate))
    while lo < hi:   # fits is monotone: more steps never need fewer segments
        mid = (lo + hi + 1) // 2
        if fits(mid): lo = mid
        else: hi = mid - 1
    return lo

def probe_schedule(max_steps:int, probe_every:int|None, points:int=8) -> list[int]:
    "Probe steps: 0, every `probe_every` steps (default: `points` equal segments), and `max_steps`."
    every = probe_every or max(1, math.ceil(max_steps / points))
    return sorted({0, *range(every, max_steps, every), max_steps})

def calibrate(cfg:TrainConfig, scratch:Path, steps:int=25) -> dict:
    "Time `steps` steps of `cfg` in `scratch` (then removed): steady steps/s and the fixed cost of one invocation."
    shutil.rmtree(scratch, ignore_errors=True)
    cal = replace(cfg, run=replace(cfg.run, out=str(scratch), stop_at=steps, checkpoint_every=0, keep_checkpoints=1,
                                   log_every=max(1, steps // 5)),
                  schedule=replace(cfg.schedule, max_steps=max(cfg.schedule.max_steps, steps)))
    t0 = time.perf_counter()
    result = pretrain(cal)
    wall = time.perf_counter() - t0
    rows = read_metrics(scratch)
    shutil.rmtree(scratch, ignore_errors=True)
    if result.stopped_by: raise KeyboardInterrupt(f"calibration stopped by {result.stopped_by}")
    rate = steady_rate(rows)
    return {'steps': steps, 'wall_seconds': round(wall, 2), 'steps_per_second': round(rate, 4),
            'overhead_seconds': round(max(0.0, wall - steps / rate), 2)}


# --------------------------------------------------------------------------------------------------------- verdict
def spearman(x, y) -> float:
    "Spearman rank correlation (ties get their mean rank); nan when either side is constant or has < 2 points."
    def ranks(v):
        v = np.asarray(v, dtype=float)
        order = np.argsort(v, kind='stable')
        r = np.empty(len(v)); r[order] = np.arange(len(v), dtype=float)
        for value in np.unique(v): r[v == value] = r[v == value].mean()
        return r
    if len(x) < 2: return float('nan')
    rx, ry = ranks(x), ranks(y)
    if rx.std() == 0 or ry.std() == 0: return float('nan')
    return float(np.corrcoef(rx, ry)[0, 1])

def summarise_random(points:list[dict]) -> dict:
    "Random-init baseline over seeds: per probe the values, mean, sd, best and its seed."
    out = {'seeds': [p['seed'] for p in points]}
    for probe in PROBES:
        values = np.array([p[probe] for p in points])
        best = int(values.argmax())
        out[probe] = {'values': values.tolist(), 'mean': float(values.mean()),
                      'sd': float(values.std(ddof=1)) if len(values) > 1 else 0.0,
                      'best': float(values[best]), 'best_seed': points[best]['seed']}
    return out

def strongest_random(summaries:dict, # kind -> `summarise_random` of the task
                    ) -> dict:
    "The random baseline to beat, per probe: the best network over every kind and seed (and which it was)."
    out = {'seeds': [], 'kinds': sorted(summaries)}
    for probe in PROBES:
        kind = max(summaries, key=lambda k: summaries[k][probe]['best'])
        best = summaries[kind][probe]
        out[probe] = {'best': best['best'], 'best_seed': best['best_seed'], 'best_kind': kind,
                      'mean': max(s[probe]['mean'] for s in summaries.values())}
    return out

def task_verdict(curve:list[dict], # probe points in step order, each with 'step', 'linear', 'knn'
                 random:dict, # the baseline to beat: `summarise_random` or `strongest_random` of the task
                 margin:float=0.03, # accuracy the final encoder must gain over the best random init
                 n_test:int|None=None, # test clips, for the standard error of an accuracy
                ) -> dict:
    "Final − best random init per probe, whether each curve rises, and PASS (the final encoder beats the best random init by `margin` on both probes) or FAIL."
    steps = [p['step'] for p in curve]
    out = {'margin': margin}
    # binomial standard error of one accuracy on the test set: margins well below ~2 SE are noise
    if n_test: out['accuracy_se'] = {p: math.sqrt(max(curve[-1][p] * (1 - curve[-1][p]), 1e-12) / n_test) for p in PROBES}
    for probe in PROBES:
        acc = [p[probe] for p in curve]
        rho = spearman(steps, acc)
        out[probe] = {'first': acc[0], 'final': acc[-1], 'best_random': random[probe]['best'],
                      'final_minus_best_random': acc[-1] - random[probe]['best'],
                      'final_minus_random_mean': acc[-1] - random[probe]['mean'],
                      'final_minus_first': acc[-1] - acc[0], 'spearman': rho,
                      'rises': bool(len(acc) > 1 and rho > 0 and acc[-1] > acc[0])}
    out['beats_random'] = all(out[p]['final_minus_best_random'] >= margin - 1e-9 for p in PROBES)
    out['rises'] = all(out[p]['rises'] for p in PROBES)
    out['pass'] = out['beats_random']
    return out


# ---------------------------------------------------------------------------------------------------------- report
def machine_info() -> dict:
    def git(*args):
        try: return subprocess.run(['git', *args], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError): return None
    status = git('status', '--porcelain', '--untracked-files=no')
    return {'cpu_count': os.cpu_count(), 'cores_available': len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else None,
            'torch': torch.__version__, 'torch_threads': torch.get_num_threads(),
            'omp_num_threads': os.environ.get('OMP_NUM_THREADS'), 'python': platform.python_version(),
            'platform': platform.platform(), 'cuda': torch.cuda.get_device_name() if torch.cuda.is_available() else None,
            'load_average_start': [round(x, 2) for x in os.getloadavg()],
            'git_commit': git('rev-parse', 'HEAD'), 'git_dirty': None if status is None else bool(status)}

def pct(x) -> str: return '   -' if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:4.1f}"

def format_summary(result:dict) -> str:
    "The printed table: per task the init, the final encoder, the baselines (random inits per front-end kind), the margin over the strongest and the verdict."
    lines = [f"{'task':8} {'probe':6} {'step0':>6} {'final':>6} {'random own':>15} {'random default':>15} {'best':>6} "
             f"{'logmel':>6} {'Δbest':>6} {'ρ':>5}  verdict"]
    spread = lambda r, probe: '-' if r is None else f"{pct(r[probe]['mean'])} ± {pct(r[probe]['sd']).strip()}"
    for name, task in result['tasks'].items():
        if not task.get('curve') or 'verdict' not in task: continue
        v, b = task['verdict'], task['baselines']
        for i, probe in enumerate(PROBES):
            p = v[probe]
            rho = '    -' if p['spearman'] is None or math.isnan(p['spearman']) else f"{p['spearman']:+5.2f}"
            verdict = ('' if v.get('judged', True) else '(reported) ') + ('PASS' if v['pass'] else 'FAIL') \
                      + ('' if v['beats_random'] else f" (< best random + {100 * v['margin']:.0f})") if i == 0 else ''
            lines.append(f"{name if i == 0 else '':8} {probe:6} {pct(p['first']):>6} {pct(p['final']):>6} "
                         f"{spread(b.get('random'), probe):>15} {spread(b.get('random_default'), probe):>15} "
                         f"{pct(p['best_random']):>6} {pct(b['logmel'][probe]):>6} {100 * p['final_minus_best_random']:+6.1f} "
                         f"{rho}  {verdict}")
    return '\n'.join(lines)

def format_curves(result:dict) -> str:
    "Per task the accuracy (%) at each probe step, with the run's loss and target rank there."
    lines = []
    for name, task in result['tasks'].items():
        curve = task.get('curve', [])
        other = next((p['other']['encoder'][:3] for p in curve if 'other' in p), None)
        lines.append(f"{name}: {'step':>6} {'linear':>7} {'knn':>6} {'loss':>8} {'t_rank':>7} {'p_rank':>7}"
                     + (f" {other + ' lin':>8} {other + ' knn':>8}" if other else ''))
        for p in curve:
            d = p.get('diagnostics', {})
            num = lambda k, f: f"{d[k]:{f}}" if k in d else '-'
            lines.append(f"{'':{len(name) + 1}} {p['step']:>6} {pct(p['linear']):>7} {pct(p['knn']):>6} "
                         f"{num('loss', '.4f'):>8} {num('target_rank', '.1f'):>7} {num('pred_rank', '.1f'):>7}"
                         + (f" {pct(p['other']['linear']):>8} {pct(p['other']['knn']):>8}" if 'other' in p else ''))
    return '\n'.join(lines)

def plot(result:dict, path:Path):
    "One panel per task (accuracy vs step, random-init bands, log-mel lines) and one of the run's loss and target rank."
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    names = [n for n, t in result['tasks'].items() if t.get('curve')]
    fig, axes = plt.subplots(1, len(names) + 1, figsize=(4.2 * (len(names) + 1), 3.6), squeeze=False)
    colours = {'linear': 'C0', 'knn': 'C1'}
    for ax, name in zip(axes[0], names):
        task = result['tasks'][name]
        steps = [p['step'] for p in task['curve']]
        for probe in PROBES:
            c = colours[probe]
            rnd = task['baselines']['random'][probe]
            ax.axhspan(rnd['mean'] - rnd['sd'], rnd['mean'] + rnd['sd'], color=c, alpha=0.15, lw=0)
            ax.axhline(rnd['mean'], color=c, lw=0.8, ls=':', label=f'random init {probe} (mean ± sd)')
            if 'random_best' in task['baselines']:
                ax.axhline(task['baselines']['random_best'][probe]['best'], color=c, lw=0.8, ls='--', label=f'best random init {probe}')
            ax.axhline(task['baselines']['logmel'][probe], color=c, lw=1, ls='-.', label=f'log-mel {probe}')
            ax.plot(steps, [p[probe] for p in task['curve']], 'o-', color=c, ms=4, label=f'pretrained {probe}')
            if any('other' in p for p in task['curve']):
                other = [p['other'] for p in task['curve'] if 'other' in p][0]['encoder']
                ax.plot(steps, [p['other'][probe] if 'other' in p else np.nan for p in task['curve']], 'x--', color=c,
                        ms=4, lw=0.8, alpha=0.7, label=f'{other} encoder {probe}')
        v = task.get('verdict')
        ax.set_title(f"{name}" + (f": {'PASS' if v['pass'] else 'FAIL'}" if v else ''))
        ax.set_xlabel('step'); ax.set_ylabel('accuracy'); ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc='lower center', ncol=min(len(labels), 8), fontsize=7, frameon=False)
    ax = axes[0][-1]
    rows = read_metrics(Path(result['run_dir']))
    if rows:
        ax.plot([r['step'] for r in rows], [r.get('loss', np.nan) for r in rows], color='k', lw=1, label='loss')
        ax.set_ylabel('loss'); ax.set_xlabel('step')
        if any('target_rank' in r for r in rows):
            ax2 = ax.twinx()
            ax2.plot([r['step'] for r in rows], [r.get('target_rank', np.nan) for r in rows], color='C3', lw=1)
            ax2.set_ylabel('target rank', color='C3')
    ax.set_title('run diagnostics')
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ------------------------------------------------------------------------------------------------------------ X-ARES
def xares_scores(encoder_dir:Path, # the final export
                 task_dirs:list, # dev task folders TASK/{train,test}/<label>/
                 env:Path, # X-ARES' env_root: the tasks' tars (written once) and every encoder's embeddings and heads
                 random_seeds:int=1, # random inits of the export's architecture and front end (audiojepa.embed.random_like)
                 epochs:int=10, # X-ARES' MLP epochs (its default)
                 run=None, # `audiojepa.xares.run_xares` (a test passes a stand-in)
                ) -> dict: # {task: {'final': {'mlp', 'knn'}, 'random': mean {'mlp', 'knn'}, 'random_per_seed': [...], 'n_test'}}
    "X-ARES' own MLP and kNN on the dev tasks (as local private tasks) for the final export and random inits of it."
    if run is None: from audiojepa.xares import run_xares as run
    local = {d.name: d for d in task_dirs}
    final = AudioJEPAEncoder.from_pretrained(encoder_dir)          # X-ARES' input rate for this project's encoders: 16 kHz
    reports = [run(final, local=local, env=env, epochs=epochs)] + \
              [run(random_like(final, s), local=local, env=env, epochs=epochs) for s in range(random_seeds)]
    out = {}
    for name in local:
        final_row, *random_rows = [next(r for r in rep['tasks'] if r['task'] == name) for rep in reports]
        scores = lambda row: {p: row[p] for p in ('mlp', 'knn')}
        out[name] = {'final': scores(final_row), 'n_test': final_row['n_test'], 'encoder': final_row['encoder'],
                     'random': {p: float(np.mean([r[p] for r in random_rows])) for p in ('mlp', 'knn')} if random_rows else None,
                     'random_per_seed': [{'seed': s, **scores(r)} for s, r in enumerate(random_rows)]}
    return out

def format_xares(result:dict) -> str:
    "X-ARES' MLP / kNN next to the probe's linear / kNN accuracy: the final encoder and the mean of the random inits."
    lines = [f"{'task':8} {'':12} {'final':>13} {'random mean':>13}   (X-ARES: MLP / kNN; audiojepa-probe: linear / kNN)"]
    for name, x in result.get('xares', {}).items():
        task = result['tasks'].get(name, {})
        rnd = task.get('baselines', {}).get('random')
        last = task['curve'][-1] if task.get('curve') else None
        pair = lambda a, b: f"{pct(a)} / {pct(b)}"
        lines.append(f"{name:8} {'X-ARES':12} {pair(x['final']['mlp'], x['final']['knn']):>13} "
                     f"{pair(x['random']['mlp'], x['random']['knn']) if x['random'] else '-':>13}")
        lines.append(f"{'':8} {'probe':12} {pair(last['linear'], last['knn']) if last else '-':>13} "
                     f"{pair(rnd['linear']['mean'], rnd['knn']['mean']) if rnd else '-':>13}")
    return '\n'.join(lines)


# ------------------------------------------------------------------------------------------------------------- main
def clear_dir(path:Path):
    "Remove a benchmark-owned run folder left by an earlier run (only if it looks like one)."
    if path.exists():
        if not ((path / 'config.yaml').exists() or (path / 'checkpoints').exists() or (path / 'metrics.csv').exists()):
            raise SystemExit(f"learning.py: error: {path} exists and is not a run directory; choose another --out")
        shutil.rmtree(path)

@dashed_call_parse
def main(corpora:str='experiments/results/corpora', # the folder experiments/corpora.py builds: pool/ and one folder per task
         tasks:str=None, # comma-separated task folders to probe; default: those of music,drums,speech,language,env present
         budget_minutes:float=15, # wall-clock minutes of pretraining (probing not counted) turned into schedule.max_steps
         max_steps:int=None, # use this schedule.max_steps instead of calibrating the budget
         probe_every:int=None, # steps between probe points; default: max_steps / 8 (8 points after step 0)
         out:str='experiments/results/learning', # results: learning.json, learning.png, the run in run/
         random_seeds:int=5, # random-init baselines of the run's architecture per front-end kind (seeds 0, 1, ... of the baseline stream)
         judge:str='music,drums,language', # tasks the acceptance judges; the others are reported
         baseline_cache:str='experiments/results/baseline_cache', # random baselines' probe results, reused when nothing they depend on changed ('' for none)
         threads:int=None, # torch CPU threads for pretraining and probing; default: the library's choice
         config:str=None, # YAML config file of the pretraining run (only the keys it changes), as audiojepa-pretrain --config
         calibration_steps:int=25, # steps of the calibration run that measures steps/s
         margin:float=0.03, # acceptance: accuracy the final encoder must gain over the best random init
         k:int=10, # neighbours of the kNN probe
         batch_size:int=64, # clips per embedding batch when probing
         probe_context:store_true=False, # also probe the encoder that is not exported (the context encoder, by default)
         xares:store_true=False, # also score the final export and random inits with X-ARES' own MLP and kNN (slow: X-ARES encodes every task)
         xares_random_seeds:int=1, # random inits X-ARES scores with --xares
         overrides:Param("pretraining config changes KEY=VALUE as audiojepa-pretrain takes them, e.g. model.preset=small "
                         "data.clip_seconds=10", str, nargs='*', opt=False)=None,
        ):
    "Pretrain on the pool under a wall-clock budget, probing the encoder along the way against random inits and log-mel."
    logging.basicConfig(level=logging.WARNING, format='%(levelname)s %(name)s: %(message)s')
    t_start = time.perf_counter()
    corpora, out = Path(corpora), Path(out)
    overrides = list(overrides or [])
    task_dirs = find_tasks(corpora, tasks)
    if threads: torch.set_num_threads(threads)
    machine = machine_info()

    # the run's config: defaults < --config < benchmark settings < overrides; the run directory is always OUT/run
    flags = {'data.spec': str(corpora / 'pool'), 'run.trackers': '[]', 'run.progress': 'false', 'run.checkpoint_every': 0,
             'run.threads': threads}
    try: cfg, _ = resolve_config(config, flags, overrides)
    except (ConfigError, RunError) as e: raise SystemExit(f"learning.py: error: {e}") from None
    if cfg.data.spec == flags['data.spec'] and not (corpora / 'corpora.json').is_file():
        print(f"learning.py: warning: no {corpora / 'corpora.json'}: the corpora may be incomplete", file=sys.stderr)
    if cfg.data.spec == flags['data.spec'] and not (corpora / 'pool').is_dir():
        raise SystemExit(f"learning.py: error: no pretraining pool {corpora / 'pool'} (build it with python -m experiments.corpora)")
    run_dir = out / 'run'
    cfg = replace(cfg, run=replace(cfg.run, out=str(run_dir), stop_at=0))
    out.mkdir(parents=True, exist_ok=True)
    clear_dir(run_dir); clear_dir(out / 'calibration')
    cfg = resolve_norm_stats(cfg)
    fc = build_frontend_config(cfg)

    # budget -> steps
    fixed = max_steps or (cfg.schedule.max_steps if any(o.split('=', 1)[0].strip() == 'schedule.max_steps' for o in overrides) else None)
    calibration = None
    if fixed is None:
        print(f"calibrating: {calibration_steps} steps ...", flush=True)
        try: calibration = calibrate(cfg, out / 'calibration', calibration_steps)
        except (ConfigError, RunError, NoAudioError, ValueError) as e: raise SystemExit(f"learning.py: error: calibration: {e}") from None
        fixed = budget_to_steps(budget_minutes * 60, calibration['steps_per_second'], calibration['overhead_seconds'], probe_every)
        calibration.update(budget_seconds=budget_minutes * 60, max_steps=fixed)
        print(f"calibration: {calibration['steps_per_second']:.2f} steps/s, {calibration['overhead_seconds']:.1f} s per "
              f"invocation -> max_steps {fixed} for {budget_minutes:g} min", flush=True)
        if fixed < 1: raise SystemExit("learning.py: error: the budget does not cover one step; raise --budget-minutes")
    cfg = replace(cfg, schedule=replace(cfg.schedule, max_steps=fixed))
    steps = probe_schedule(fixed, probe_every)

    result = {'benchmark': 'learning', 'version': 1, 'created': datetime.now(timezone.utc).isoformat(timespec='seconds'),
              'complete': False, 'args': {'corpora': str(corpora), 'tasks': [p.name for p in task_dirs],
              'budget_minutes': budget_minutes, 'max_steps': max_steps, 'probe_every': probe_every, 'out': str(out),
              'random_seeds': random_seeds, 'judge': judge, 'baseline_cache': baseline_cache, 'threads': threads, 'config': config, 'overrides': overrides,
              'calibration_steps': calibration_steps, 'margin': margin, 'k': k, 'probe_context': probe_context,
              'xares': xares, 'xares_random_seeds': xares_random_seeds},
              'config': config_to_dict(cfg), 'machine': machine, 'calibration': calibration,
              'schedule': {'max_steps': fixed, 'probe_every': probe_every or (steps[1] if len(steps) > 1 else fixed),
                           'probe_steps': steps},
              'run_dir': str(run_dir), 'seconds': {}, 'tasks': {}}
    def save():
        result['seconds']['total'] = round(time.perf_counter() - t_start, 1)
        (out / 'learning.json').write_text(json.dumps(json_safe(result), indent=1))

    # decode every task once
    t0 = time.perf_counter()
    tasks_data = []
    for d in task_dirs:
        task = load_task(d, fc.sample_rate)
        tasks_data.append(task)
        mb = sum(a.numel() * a.element_size() for s in ('train', 'test') for a in task[s]['audio']) / 2**20
        result['tasks'][task['name']] = {
            'classes': task['train']['classes'], 'n_train': len(task['train']['ids']), 'n_test': len(task['test']['ids']),
            'skipped': [f"{i}: {r}" for s in ('train', 'test') for i, r in task[s]['skipped']], 'audio_mb': round(mb, 1),
            'curve': [], 'baselines': {}}
        print(f"{task['name']}: {len(task['train']['ids'])} train / {len(task['test']['ids'])} test clips, "
              f"{len(task['train']['classes'])} classes, {mb:.0f} MB decoded", flush=True)
    result['seconds']['decode'] = round(time.perf_counter() - t0, 1)
    probe_kw = dict(k=k, batch_size=batch_size)

    # baselines: random inits of the run's architecture on both kinds of front end, and the log-mel front end
    t0 = time.perf_counter()
    kinds = ['own'] + (['default'] if baseline_frontend(cfg, fc, 'default') != fc else [])   # one kind without statistics
    cache = Path(baseline_cache) if baseline_cache else None
    random_points = {t['name']: {k: [] for k in kinds} for t in tasks_data}
    for kind in kinds:
        for seed in range(random_seeds):
            for name, r in probe_random(cfg, fc, seed, kind, tasks_data, cache, **probe_kw).items():
                random_points[name][kind].append(r)
    logmel = probe_all(LogMelBaseline(fc, sampling_rate=None), tasks_data, pool='meanstd', **probe_kw)
    for name, task in result['tasks'].items():
        if random_seeds:
            summaries = {k: {**summarise_random(random_points[name][k]), 'front_end': RANDOM_KINDS[k],
                             'points': random_points[name][k]} for k in kinds}
            task['baselines']['random'] = summaries['own']
            if 'default' in summaries: task['baselines']['random_default'] = summaries['default']
            task['baselines']['random_best'] = strongest_random(summaries)
        task['baselines']['logmel'] = logmel[name]
    result['seconds']['baselines'] = round(time.perf_counter() - t0, 1)
    cached = sum(p.get('cached', False) for t in random_points.values() for k in t.values() for p in k)
    print(f"baselines: {random_seeds} random inits x {len(kinds)} front ends ({cached} of "
          f"{random_seeds * len(kinds) * len(tasks_data)} probes from the cache) + log-mel in "
          f"{result['seconds']['baselines']:.0f} s", flush=True)

    # the curve: step 0 is the run's own init, then one pretraining segment per probe point
    pretrain_s, probe_s, stopped = 0.0, [], None
    other = 'context' if cfg.model.export == 'target' else 'target'
    for i, step in enumerate(steps):
        if step == 0: embedder = init_encoder(cfg, fc, cfg.run.seed)
        else:
            t0 = time.perf_counter()
            try: res = pretrain(replace(cfg, run=replace(cfg.run, stop_at=step)), checkpoint=find_checkpoint(run_dir))
            except (ConfigError, RunError, NoAudioError) as e:   # e.g. the pool vanished: keep the curve so far
                stopped = f"{type(e).__name__}: {str(e).strip().splitlines()[-1] if str(e).strip() else ''}"
                break
            finally: pretrain_s += time.perf_counter() - t0
            if res.stopped_by or res.step != step:
                stopped = res.stopped_by or f'pretraining ended at step {res.step}, not {step}'
                break
            embedder = AudioJEPAEncoder.from_pretrained(res.encoder_dir, sampling_rate=None)
        t0 = time.perf_counter()
        probes = probe_all(embedder, tasks_data, **probe_kw)
        if probe_context:   # at step 0 both encoders are the init
            others = probes if step == 0 else probe_all(checkpoint_encoder(find_checkpoint(run_dir), other, embedder),
                                                        tasks_data, **probe_kw)
            for name, r in probes.items(): r['other'] = {'encoder': other, **others[name]}
        probe_s.append(time.perf_counter() - t0)
        diag = next((r for r in read_metrics(run_dir) if int(r.get('step', -1)) == step), {}) if step else {}
        diag = {key: v for key, v in diag.items() if key != 'step'}
        for name, r in probes.items():
            result['tasks'][name]['curve'].append({'step': step, 'pretrain_seconds': round(pretrain_s, 1), **r,
                                                   'diagnostics': diag})
        result['seconds'].update(pretrain=round(pretrain_s, 1), probe=round(sum(probe_s), 1),
                                 probe_per_point=round(float(np.mean(probe_s)), 1))
        save()
        print(f"step {step:>6}/{fixed}  pretrain {pretrain_s:6.0f} s  probe {probe_s[-1]:5.1f} s  " +
              '  '.join(f"{n} {pct(r['linear'])}/{pct(r['knn'])}" for n, r in probes.items()) +
              (f"  loss {diag['loss']:.4f}" if 'loss' in diag else '') +
              (f"  target_rank {diag['target_rank']:.1f}" if 'target_rank' in diag else ''), flush=True)

    if xares and stopped is None and (run_dir / 'encoder').is_dir():
        t0 = time.perf_counter()
        print(f"X-ARES: final export and {xares_random_seeds} random inits on {len(task_dirs)} tasks ...", flush=True)
        result['xares'] = xares_scores(run_dir / 'encoder', task_dirs, out / 'xares_env', xares_random_seeds)
        result['seconds']['xares'] = round(time.perf_counter() - t0, 1)
        save()

    judged = [t.strip() for t in judge.split(',') if t.strip()]
    for name, task in result['tasks'].items():
        if task['curve'] and 'random_best' in task['baselines']:
            task['verdict'] = {**task_verdict(task['curve'], task['baselines']['random_best'], margin, task['n_test']),
                               'judged': name in judged}
    verdicts = {n: t['verdict']['pass'] for n, t in result['tasks'].items() if t.get('verdict', {}).get('judged')}
    result.update(complete=stopped is None, stopped=stopped,
                  acceptance={'rule': f"on {', '.join(judged)}: the final encoder beats the best of {random_seeds} random inits "
                                      f"x {len(kinds)} front ends by >= {100 * margin:.0f} points in linear and kNN accuracy",
                              'per_task': verdicts, 'all_pass': bool(verdicts) and all(verdicts.values())})
    result['machine']['load_average_end'] = [round(x, 2) for x in os.getloadavg()]
    save()
    try: plot(result, out / 'learning.png')
    except Exception as e: print(f"learning.py: warning: no figure ({type(e).__name__}: {e})", file=sys.stderr)
    print()
    print(format_curves(result))
    print()
    print(format_summary(result))
    if 'xares' in result: print('\n' + format_xares(result))
    print(f"\npretraining {fixed} steps: {pretrain_s:.0f} s; probing {len(probe_s)} points: {sum(probe_s):.0f} s "
          f"({np.mean(probe_s):.1f} s each); total {time.perf_counter() - t_start:.0f} s")
    print(f"written: {out / 'learning.json'}, {out / 'learning.png'}")
    if stopped:
        print(f"learning.py: stopped early ({stopped}); the results cover the points probed", file=sys.stderr)
        sys.exit(1)
