"""Does pretraining beat no pretraining? K pretraining seeds against R random networks, with 95 % intervals.

    python -m experiments.learning run --recipe default --seeds 0-4 --steps 1500
    python -m experiments.learning run --recipe default --seeds 0-4 --steps 5040
    python -m experiments.learning run --recipe masks4 --seeds 0-4 --steps 1500 --threads 2 --random-seeds 10
    python -m experiments.learning run --recipe default --label lr3e-4 schedule.lr=3e-4   # a recipe of your own
    python -m experiments.learning report                                                  # the table and figure again
    python -m experiments.learning report --curves                                         # the figure's numbers, as chapter 23's cells hold them

`run` pretrains the recipe once per (seed, steps) on the corpora's unlabelled pool (`python -m experiments.corpora`
builds them; the benchmark refuses corpora that differ from their manifest), with the `eval:` hook probing the
exported encoder every `--eval-every` steps (the curve), then measures the run's own initialisation (rebuilt from its
seed) and its final export with the benchmark's one evaluation procedure (`experiments/yardstick.py`). Each run is
stored as one JSON file, RESULTS/runs/LABEL/steps_S/seed_K.json: the resolved config, the corpus digest, the threads
torch used during the run, versions, wall times, the curve, and the step-0 and final numbers. A run whose file exists
for the same config and corpus is skipped, so results accumulate across invocations; a kill loses at most the run in
progress. After the runs, the random baselines (`--random-seeds` networks per front-end kind) and the log-mel
baseline are measured into RESULTS/baselines/<family>/ where they are missing, keyed by content.

`report` (also run at the end of `run`) reads only the stored files and writes RESULTS/report.md (per recipe and steps,
per task: pretrained mean ± sd over the seeds, random mean ± sd per kind, log-mel, the difference to the stronger random
kind with its 95 % Welch interval, the paired final − step 0 interval, the verdict) and RESULTS/report.png.

Recipes are named lists of config overrides (`RECIPES`); KEY=VALUE arguments add to them (stored under `--label`).
"""
from __future__ import annotations
import csv, hashlib, json, logging, os, platform, shutil, subprocess, sys, time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from fastcore.script import Param

from audiojepa.audio import LogMel
from audiojepa.cli import InputError, cli_parser, dashed_flags, fail
from audiojepa.config import ConfigError, apply_overrides, config_to_dict
from audiojepa.loop import Hook
from audiojepa.models import load_encoder
from audiojepa.readout import encoder_features
from audiojepa.runs import RunError
from audiojepa.sources import NoAudioError
from audiojepa.train import EvalHook, TrainConfig, build_frontend_config, build_model, pretrain
from experiments.learning_report import curve_literals, curve_table, summarise, write_report
from experiments.manifest import CorpusError
from experiments.yardstick import Yardstick, baseline_family, eval_section, measure_baselines, open_corpora, write_json

PROG = 'python -m experiments.learning'
RECIPES = {
    'default': [],                                   # the library's defaults: TrainConfig(), the README's main job
    'masks4': ['model.jepa.masks_per_clip=4'],       # round 6: 4 masks per clip of the default 32 clips, 4x the rows a step
    'contrast': ['model.jepa.clip_loss=contrast',    # round 6: the contrastive clip term (InfoNCE over the batch), weight 0.1
                 'model.jepa.clip_loss_weight=0.1'],
}
FIXED = ('data.spec', 'run.out', 'run.seed', 'run.threads', 'run.stop_at', 'schedule.max_steps', 'eval.')   # set by the benchmark
UNTIMED = ('seconds', 'clips_per_s')   # the metrics.csv columns that measure time, not training


def parse_numbers(text:str, flag:str) -> list[int]:
    "'0-4' -> [0, 1, 2, 3, 4]; '1500,5040' -> [1500, 5040]; an `InputError` naming `flag` otherwise."
    out = []
    try:
        for part in str(text).split(','):
            a, _, b = part.strip().partition('-')
            out += list(range(int(a), int(b) + 1)) if b else [int(a)]
    except ValueError: raise InputError(f"{flag} {text!r}: expected numbers as 0-4 or 1,2,3") from None
    if not out or min(out) < 0: raise InputError(f"{flag} {text!r}: expected one or more numbers >= 0")
    return sorted(set(out))


def recipe_overrides(recipe:str, overrides:list, label:str|None) -> tuple:
    "(label, overrides) of a recipe and the extra KEY=VALUE overrides; the benchmark's own keys are refused."
    if recipe not in RECIPES: raise InputError(f"--recipe {recipe!r}: expected one of {', '.join(RECIPES)} (see --help)")
    fixed = [o for o in overrides if o.split('=', 1)[0].strip().startswith(FIXED)]
    if fixed: raise InputError(f"{fixed[0]}: the benchmark sets {', '.join(k.rstrip('.') for k in FIXED)} itself (see --help)")
    if label is None:
        label = recipe if not overrides else f"{recipe}+{hashlib.sha256(' '.join(overrides).encode()).hexdigest()[:8]}"
    if not label or any(c in label for c in '/\\') or label.startswith('.'): raise InputError(f"--label {label!r}: expected a plain name")
    return label, [*RECIPES[recipe], *overrides]


def run_config(overrides:list, corpora, seed:int, steps:int, threads:int, eval_every:int, out:Path) -> TrainConfig:
    "The config of one benchmark run: the defaults, the recipe's overrides, then what the benchmark fixes."
    cfg = apply_overrides(TrainConfig(), [*overrides, f'data.spec={corpora.root / "pool"}', f'run.out={out}', f'run.seed={seed}',
                                          f'schedule.max_steps={steps}', f'run.threads={threads}', 'run.trackers=[]',
                                          'run.progress=false', 'run.checkpoint_every=0'])
    return replace(cfg, eval=eval_section(corpora, eval_every, cfg.model.export))


def config_fingerprint(cfg:TrainConfig) -> str:
    """A hash of a run's config without its paths (where the corpora and the results lie; their content is the digest)
    and without `eval.every` (the curve's density changes no number of the run: training is the same with any hooks)."""
    d = config_to_dict(cfg)
    d['data']['spec'], d['run']['out'], d['eval']['data'] = 'POOL', 'RUN', [Path(p).name for p in d['eval']['data']]
    del d['eval']['every']
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


def result_path(results:Path, label:str, steps:int, seed:int) -> Path:
    return Path(results) / 'runs' / label / f'steps_{steps}' / f'seed_{seed}.json'


def is_stored(path:Path, fingerprint:str, digest:str) -> bool:
    "Whether `path` holds this run already; an `InputError` when it holds a run of another config or corpus."
    if not path.is_file(): return False
    old = json.loads(path.read_text())
    if (old.get('config_fingerprint'), old.get('corpus_digest')) == (fingerprint, digest): return True
    what = 'config' if old.get('config_fingerprint') != fingerprint else 'corpus'
    raise InputError(f"{path} holds a run of another {what} (fingerprint {old.get('config_fingerprint')}, corpus "
                     f"{str(old.get('corpus_digest'))[:12]}); give another --label or --results")


class SharedEvalHook(EvalHook):
    "The `eval:` section's hook over tasks this process decoded already (one decode for every run and baseline)."
    def __init__(self, cfg, evaluator):
        self.cfg, self.every, self.at_start, self.evaluator = cfg, cfg.every, cfg.at_start, evaluator
        self.columns = tuple(c for e in cfg.encoders for c in evaluator.columns(e))


class ThreadsSeen(Hook):
    "Records torch's CPU threads inside the run (at step 0 and at the last step), after `run.threads` set them."
    at_start = True
    def __init__(self, max_steps:int): self.every, self.seen = max_steps, []
    def __call__(self, run, step:int) -> dict:
        self.seen.append(torch.get_num_threads())
        return {}


def init_encoder(cfg:TrainConfig, fc) -> torch.nn.Module:
    "The encoder a run of `cfg` exports, at step 0: rebuilt from `run.seed` as `build_model` initialises it."
    with torch.random.fork_rng(devices=[]): model = build_model(cfg, fc)
    return (model.target_encoder if cfg.model.export == 'target' else model.encoder).eval()


def read_rows(path:Path) -> list[dict]:
    "metrics.csv as rows of numbers (empty cells left out)."
    with open(path, newline='') as f: return [{k: float(v) for k, v in r.items() if v not in ('', None)} for r in csv.DictReader(f)]


def clear_run_dir(path:Path):
    "Remove a scratch run folder a killed run left (only when it looks like one)."
    if not path.exists(): return
    if any(path.iterdir()) and not any((path / n).exists() for n in ('config.yaml', 'metrics.csv', 'checkpoints', 'encoder')):
        raise InputError(f"{path} exists and is not a run folder; remove it or give another --results")
    shutil.rmtree(path)


def versions() -> dict:
    "torch, python, numpy and audiojepa versions, the git commit of the working tree and whether it had changes (at the start)."
    import audiojepa
    git = lambda *a: subprocess.run(['git', *a], capture_output=True, text=True, cwd=Path(__file__).parent).stdout.strip()
    try: commit, dirty = git('rev-parse', 'HEAD') or None, bool(git('status', '--porcelain', '--untracked-files=no'))
    except OSError: commit, dirty = None, None
    return {'torch': torch.__version__, 'python': platform.python_version(), 'numpy': np.__version__,
            'audiojepa': audiojepa.__version__, 'git_commit': commit, 'git_dirty': dirty,
            'machine': platform.machine(), 'cpus': os.cpu_count()}


def pretrain_and_measure(cfg:TrainConfig, yardstick:Yardstick) -> dict:
    "Pretrain one run with the eval hook, then measure its step 0 and its export; what its result file stores of it."
    clear_run_dir(Path(cfg.run.out))
    threads, t0, load = ThreadsSeen(cfg.schedule.max_steps), time.time(), os.getloadavg()
    res = pretrain(replace(cfg, eval=replace(cfg.eval, data=[])), hooks=[SharedEvalHook(cfg.eval, yardstick.evaluator), threads])
    pretrain_s = time.time() - t0
    if res.stopped_by or res.step != cfg.schedule.max_steps:
        raise RunError(f"the run stopped at step {res.step} of {cfg.schedule.max_steps} ({res.stopped_by or 'early'}); nothing stored for it")
    encoder, fc = load_encoder(res.encoder_dir)
    final = yardstick.measure(encoder_features(encoder, LogMel(fc)))
    step0 = yardstick.measure(encoder_features(init_encoder(cfg, fc), LogMel(fc)))
    rows = read_rows(Path(cfg.run.out) / 'metrics.csv')
    curve = [{k: v for k, v in r.items() if k == 'step' or k.startswith('eval_')} for r in rows if any(k.startswith('eval_') for k in r)]
    return {'threads': {'asked': cfg.run.threads, 'used': sorted(set(threads.seen))},
            'seconds': {'pretrain': round(pretrain_s, 1), 'measure': round(time.time() - t0 - pretrain_s, 1)},
            'load_average': {'start': [round(x, 2) for x in load], 'end': [round(x, 2) for x in os.getloadavg()]},
            'loss': {'first': res.first_loss, 'last': res.last_loss}, 'front_end': {'mean': fc.mean, 'std': fc.std},
            'curve': curve, 'metrics': [{k: v for k, v in r.items() if not k.startswith('eval_')} for r in rows],
            'step0': step0, 'final': final}


def store_run(cfg:TrainConfig, yardstick:Yardstick, path:Path, meta:dict) -> dict:
    "Pretrain and measure one run, write its result file at once, remove its scratch folder; the result."
    t0 = time.time()
    result = {'benchmark': 'learning', 'version': 2, **meta, 'seed': cfg.run.seed, 'steps': cfg.schedule.max_steps,
              'created': datetime.now(timezone.utc).isoformat(timespec='seconds'), 'config': config_to_dict(cfg),
              'config_fingerprint': config_fingerprint(cfg), **pretrain_and_measure(cfg, yardstick)}
    result['seconds']['total'] = round(time.time() - t0, 1)
    write_json(path, result)
    shutil.rmtree(cfg.run.out, ignore_errors=True)
    return result


def summary_line(result:dict) -> str:
    "One line of a stored run: its seconds and the final split accuracy (kNN / linear) of each task."
    acc = lambda s: '/'.join(f"{100 * s['split'][p]['accuracy']:.1f}" if s['split'][p]['accuracy'] is not None else '-'
                             for p in ('knn', 'linear'))
    return (f"{result['label']} steps {result['steps']} seed {result['seed']}: {result['seconds']['pretrain']:.0f} s pretraining "
            f"(with the curve), "
            f"{result['seconds']['measure']:.0f} s measuring, threads {result['threads']['used']}; kNN/linear % "
            + ', '.join(f"{t} {acc(s)}" for t, s in result['final'].items()))


def plan(recipe, seeds, steps, corpora, results, threads, random_seeds, eval_every, tasks, label, overrides) -> dict:
    "Everything `run` needs, checked before any work: the corpora, the configs and result paths of the runs."
    for flag, value, low in (('--threads', threads, 1), ('--eval-every', eval_every, 1), ('--random-seeds', random_seeds, 0)):
        if value < low: raise InputError(f"{flag} must be at least {low}, got {value}")
    label, overrides = recipe_overrides(recipe, list(overrides or []), label)
    seeds, steps = parse_numbers(seeds, '--seeds'), parse_numbers(steps, '--steps')
    if min(steps) < 1: raise InputError(f"--steps must be at least 1, got {min(steps)}")
    corpora = open_corpora(corpora, [t.strip() for t in tasks.split(',') if t.strip()] if tasks else None)
    results = Path(results)
    runs = [(run_config(overrides, corpora, seed, n, threads, eval_every, results / 'scratch' / f'{label}-steps{n}-seed{seed}'),
             result_path(results, label, n, seed)) for n in steps for seed in seeds]
    todo = [(cfg, path) for cfg, path in runs if not is_stored(path, config_fingerprint(cfg), corpora.digest)]
    base = runs[0][0]
    meta = {'label': label, 'recipe': recipe, 'overrides': overrides, 'corpus_digest': corpora.digest, 'versions': versions(),
            'baseline_family': baseline_family(base, corpora)['key'],
            'tasks': {t: {'judged': corpora.judged[t], 'reason': corpora.reasons[t], 'grouped_cv': t in corpora.grouped}
                      for t in corpora.tasks}}
    yardstick = Yardstick(corpora, base.eval, build_frontend_config(base))
    return {'label': label, 'runs': runs, 'todo': todo, 'base': base, 'meta': meta, 'yardstick': yardstick, 'results': results}


RECIPE_HELP = 'the named override list to pretrain: ' + '; '.join(f"{k} ({' '.join(v) or 'the library defaults'})" for k, v in RECIPES.items())


def run(recipe:Param(RECIPE_HELP, str)='default',
        seeds:str='0-4', # pretraining seeds (run.seed): a range 0-4 or a list 0,2,5; one run and one result file per seed and steps
        steps:str='1500', # steps of each run (schedule.max_steps): 1500, or a list 1500,5040
        corpora:str='experiments/results/corpora', # the corpora python -m experiments.corpora built (checked against their manifest.json)
        results:str='experiments/results/learning', # the stored results: runs/LABEL/steps_S/seed_K.json, baselines/, report.md, report.png
        threads:int=2, # torch CPU threads of every run and measurement (each result records the threads torch used)
        random_seeds:int=10, # random networks per front-end kind ('own', 'default'), seeds 0, 1, ... of the baseline stream
        eval_every:int=500, # steps between the curve's evaluations during pretraining (also at step 0 and the last step)
        tasks:str=None, # comma-separated labelled tasks to measure; default every task of corpora.json
        label:str=None, # the name the runs are stored and reported under; default the recipe (+ a hash of extra overrides)
        overrides:Param("more pretraining config changes KEY=VALUE (as audiojepa-pretrain takes them), added to the recipe's",
                        str, nargs='*', opt=False)=None,
       ):
    "Pretrain a recipe at each seed and step count not stored yet, measure each run and the baselines, and write the report."
    logging.basicConfig(level=logging.WARNING, format='%(levelname)s %(name)s: %(message)s')
    logging.getLogger('audiojepa.train').setLevel(logging.INFO)   # the eval hook's line at each evaluation
    try:
        torch.set_num_threads(threads if threads >= 1 else 1)
        p = plan(recipe, seeds, steps, corpora, results, threads, random_seeds, eval_every, tasks, label, overrides)
        print(f"{p['label']}: {len(p['runs'])} runs, {len(p['runs']) - len(p['todo'])} stored already; "
              f"corpus {p['meta']['corpus_digest'][:12]}, {threads} threads", flush=True)
        for cfg, path in p['todo']:   # the runs first: each is stored, and the report rewritten, as soon as it is done
            print(summary_line(store_run(cfg, p['yardstick'], path, p['meta'])), flush=True)
            write_report(p['results'])
        measure_baselines(p['base'], p['yardstick'], p['results'] / 'baselines', random_seeds)
    except (InputError, CorpusError, ConfigError, RunError, NoAudioError) as e: fail(PROG, e)
    print(f"report: {write_report(p['results'])}", flush=True)


def report(results:str='experiments/results/learning', # the folder `run` stored its results in
           curves:bool=False, # print the figure's numbers (judged tasks) as the Python literals chapter 23's figure cells hold, not the table
          ):
    "Write RESULTS/report.md and RESULTS/report.png from the stored results only, and print the table (or the curves)."
    path = Path(results)
    if not (path / 'runs').is_dir(): fail(PROG, f"--results {path}: no stored runs there (python -m experiments.learning run ...)")
    summary = summarise(path)   # read the stored runs once, for the report and the curves alike
    text = write_report(path, summary).read_text()
    print(curve_literals(*curve_table(summary, judged_only=True)) if curves else text)


COMMANDS = {'run': run, 'report': report}


def usage() -> str:
    "The top-level help: the commands, the recipes, and each command's flags."
    recipes = '\n'.join(f"  {name:10} {' '.join(o) or '(the library defaults)'}" for name, o in RECIPES.items())
    helps = '\n'.join(cli_parser(f, prog=f'{PROG} {name}').format_help() for name, f in COMMANDS.items())
    return f"usage: {PROG} {{run,report}} [flags]\n\n{__doc__.split(chr(10) + chr(10))[0]}\n\nrecipes:\n{recipes}\n\n{helps}"


def main(argv:list|None=None):
    "`python -m experiments.learning run|report [flags]`."
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ('-h', '--help'):
        print(usage())
        return None if argv else sys.exit(2)
    if argv[0] not in COMMANDS: fail(PROG, f"unknown command {argv[0]!r}; expected run or report (see --help)")
    func = COMMANDS[argv[0]]
    return func(**vars(cli_parser(func, prog=f'{PROG} {argv[0]}').parse_intermixed_args(dashed_flags(argv[1:]))))


if __name__ == '__main__': main()
