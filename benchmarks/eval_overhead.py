"""What evaluation during pretraining (the `eval:` section) costs: step time with and without its hook.

The run is the README's main job (`TrainConfig()`: `tiny`, `SyntheticSounds`, 32 two-second clips per step, one
loader worker) on `--threads` compute threads, with `eval.data` a small labelled folder of real recordings: the drum
samples Debian installs under /usr/share/lmms/samples/drums (package lmms-common), one folder per instrument
(kick, snare, hi-hat, tom, as the probe chapter sorts them), so 5-fold cross-validation of the kNN probe on the
context encoder, the defaults of `eval:`. The run is opened once (`audiojepa.train.open_run`, which builds the
`EvalHook` and decodes the folder; that one-off cost is reported apart). Then `--rounds` alternating rounds (after a
first one that warms up and is not counted) each time `--steps` training steps the way `audiojepa.loop.train_loop`
runs them (a metrics row, with its diagnostics and drift, every `run.log_every` = 10 steps) and then one evaluation
as the loop calls it (`run_hooks`). A round's step time is its mean; the result is the median over rounds of the
step time and of the evaluation time, and the overhead at `--every` (250, the default of `eval.every`) is
evaluation / (every x step): the share of a run's time the hook adds.

    python -m benchmarks.eval_overhead                        # 5 rounds of 50 steps, about 2 minutes on 2 cores
    python -m benchmarks.eval_overhead --rounds 2 --steps 10  # a smoke test

Writes OUT/eval_overhead.json and prints a summary.
"""
from __future__ import annotations
import json, platform, shutil, statistics, time
from pathlib import Path

import torch

from audiojepa.cli import dashed_call_parse, fail
from audiojepa.config import apply_overrides
from audiojepa.loop import Interval, metrics_row, run_hooks
from audiojepa.train import EvalHook, TrainConfig, open_run

DRUMS = Path('/usr/share/lmms/samples/drums')   # Debian: lmms-common
INSTRUMENTS = {'kick': ('bassdrum', 'kick'), 'snare': ('snare',), 'hihat': ('hihat',), 'tom': ('tom',)}


def drum_folder(root:Path) -> Path:
    "The LMMS drum samples as a labelled folder ROOT/<instrument>/<file> (copied; the 'nasty' ones left out)."
    if not DRUMS.is_dir(): raise FileNotFoundError(f"{DRUMS} does not exist: install the Debian package lmms-common")
    shutil.rmtree(root, ignore_errors=True)
    for label, prefixes in INSTRUMENTS.items():
        (root / label).mkdir(parents=True)
        for f in sorted(DRUMS.glob('*.ogg')):
            if f.name.startswith(prefixes) and 'nasty' not in f.name: shutil.copy(f, root / label / f.name)
    return root


def time_steps(run, start:int, steps:int) -> float:
    "Mean seconds of `steps` training steps from `start`, a metrics row every `run.log_every` steps as the loop makes it."
    interval, t0 = Interval(torch.zeros((), device=run.accelerator.device)), time.perf_counter()
    for step in range(start, start + steps):
        log = (step + 1) % run.cfg.run.log_every == 0
        out = run.train_step(step, log=log)
        interval.add(out)
        if log:
            metrics_row(run, step + 1, out, interval)
            interval = Interval(torch.zeros((), device=run.accelerator.device))
    return (time.perf_counter() - t0) / steps


@dashed_call_parse
def main(out:str='benchmarks/results/eval_overhead', # results folder (git-ignored)
         rounds:int=5, # alternating rounds of steps and an evaluation
         steps:int=50, # training steps timed per round
         every:int=250, # eval.every the overhead is computed for
         threads:int=2, # run.threads
        ):
    "Measure the step time of the main job with and without evaluation during training."
    out = Path(out)
    try: folder = drum_folder(out / 'drums')
    except FileNotFoundError as e: fail('eval_overhead.py', e)
    cfg = apply_overrides(TrainConfig(), [f'run.out={out}/run', f'run.threads={threads}', 'run.trackers=[]',
                                          'run.progress=false', f'eval.data=[{folder}]', f'eval.every={every}',
                                          f'schedule.max_steps={max(300, (rounds + 1) * steps)}'])
    shutil.rmtree(out / 'run', ignore_errors=True)
    t0 = time.perf_counter()
    run = open_run(cfg)
    opened = time.perf_counter() - t0
    hook = next(h for h in run.hooks if isinstance(h, EvalHook))
    task = hook.evaluator.tasks['drums']
    step_s, eval_s = [], []
    for r in range(rounds + 1):   # round 0 warms up the loader, the allocator and the caches, and is not counted
        step_s.append(time_steps(run, r * steps, steps))
        t0 = time.perf_counter()
        values = run_hooks(run, [hook], (r + 1) * steps)
        eval_s.append(time.perf_counter() - t0)
        print(f"round {r}{' (warm-up)' if r == 0 else ''}: step {step_s[-1] * 1000:.0f} ms, evaluation {eval_s[-1]:.2f} s, "
              f"knn accuracy {values['eval_drums_context_knn_accuracy']:.3f}", flush=True)
    step_s, eval_s = step_s[1:], eval_s[1:]
    step, evaluation = statistics.median(step_s), statistics.median(eval_s)
    result = {'rounds': rounds, 'steps': steps, 'every': every, 'threads': threads, 'clips': len(task.clips),
              'audio_seconds': sum(len(c) for c in task.clips) / run.fc.sample_rate, 'folds': len(task.splits),
              'open_run_s': opened, 'step_s': step_s, 'eval_s': eval_s, 'median_step_s': step, 'median_eval_s': evaluation,
              'step_with_eval_s': step + evaluation / every, 'overhead': evaluation / (every * step),
              'machine': platform.platform(), 'torch': torch.__version__, 'cpus': torch.get_num_threads()}
    out.mkdir(parents=True, exist_ok=True)
    (out / 'eval_overhead.json').write_text(json.dumps(result, indent=1))
    print(f"{len(task.clips)} clips ({result['audio_seconds']:.0f} s of audio), {len(task.splits)}-fold kNN on the context "
          f"encoder; opening the run (with decoding them) {opened:.1f} s\n"
          f"median step {step * 1000:.0f} ms without evaluation, {result['step_with_eval_s'] * 1000:.0f} ms with it at "
          f"every={every} (one evaluation {evaluation:.2f} s): overhead {100 * result['overhead']:.1f} %")

