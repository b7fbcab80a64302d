"""Fine-tuned from the pretrained encoder vs fine-tuned from random init, with the frozen probe beside them, on the dev tasks.

    python -m experiments.finetune_bench                      # pretrain once on the pool, then 3 tasks x 3 modes x 3 seeds
    python -m experiments.finetune_bench --tasks speech --seeds 0,1 --steps 100
    python -m experiments.finetune_bench --encoder runs/pretrain/encoder   # an export of your own, no pretraining

Data: `--corpora` as `python -m experiments.corpora` builds it: `pool/**.wav` (unlabelled, pretraining) and one folder
per dev task, `TASK/{train,test}/<label>/*.wav` (judged: music, drums, speech; see its corpora.json).

What it does:
1. The encoder: `--encoder DIR`, else OUT/pretrain/encoder when it exists, else `audiojepa-pretrain`'s defaults (the
   tiny preset, the `audiojepa` front end with the pool's log-mel statistics, 2 s clips, batch 32) on the pool for
   `--pretrain-steps` steps into OUT/pretrain.
2. Per task, mode and seed, one `audiojepa.finetune` run on the task's fixed split (protocol `split`), all with the same
   data, clip length, batch, steps, warm-up and cosine:
   - `pretrained`: the export fine-tuned whole (AdamW, lr `--lr`, layer decay 0.75, drop path 0.1, weight decay 0.05);
   - `random`: the same architecture and front end with random weights (`random:EXPORT`, the baseline stream of the
     seed: seeds 0, 1, 2 are three random inits), fine-tuned with the same recipe;
   - `frozen`: the export frozen, the head alone trained (the linear probe trained the same way), lr `--probe-lr`.
   The runs go seed by seed (every task and mode with seed 0, then seed 1, ...). Each run's report.json stays in
   OUT/runs/TASK/MODE/seed_S; a run whose report exists is not run again (results
   accumulate over invocations), and OUT/results.json is rewritten from every report found.
3. The table: per task and mode, test accuracy mean ± sd over seeds, and the differences pretrained - random and
   pretrained - frozen with a 95 % Welch interval (`experiments.stats.welch_interval`, the learning benchmark's).
"""
from __future__ import annotations
import json, platform, time
from pathlib import Path

import numpy as np
import torch
from audiojepa.cli import dashed_call_parse

from audiojepa.finetune import FinetuneConfig, finetune
from audiojepa.config import config_from_dict
from audiojepa.train import TrainConfig, pretrain
from experiments.stats import welch_interval

MODES = ('pretrained', 'random', 'frozen')


def log(*a): print('[finetune_bench]', *a, flush=True)


def pretrained_encoder(corpora:Path, out:Path, steps:int, threads:int) -> Path:
    "The export to fine-tune: OUT/pretrain/encoder, pretrained on the pool first if it is not there."
    run = out / 'pretrain'
    if (run / 'encoder' / 'config.json').exists(): return run / 'encoder'
    cfg = config_from_dict({'data': {'spec': str(corpora / 'pool')}, 'schedule': {'max_steps': steps},
                            'run': {'out': str(run), 'threads': threads, 'trackers': [], 'progress': False,
                                    'checkpoint_every': 250, 'log_every': 25}}, TrainConfig)
    t0 = time.time()
    log(f'pretraining {steps} steps on {corpora / "pool"}'); res = pretrain(cfg)
    log(f'pretrained in {time.time() - t0:.0f}s: {res.summary()}')
    return run / 'encoder'


def run_config(task_dir:Path, encoder:Path, mode:str, seed:int, out:Path, args:dict) -> FinetuneConfig:
    "The fine-tuning config of one (task, mode, seed)."
    frozen = mode == 'frozen'
    return config_from_dict({
        'model': {'encoder': f'random:{encoder}' if mode == 'random' else str(encoder), 'freeze': frozen,
                  'layer_decay': 0.75, 'drop_path': 0.1},
        'data': {'train': str(task_dir), 'batch_size': args['batch_size'], 'clip_seconds': args['clip_seconds']},
        'augment': {'mixup': 0.0, 'spec_time': 8, 'spec_freq': 8},
        'schedule': {'max_steps': args['steps'], 'warmup_steps': args['steps'] // 10,
                     'lr': args['probe_lr'] if frozen else args['lr'], 'min_lr': 1e-6, 'weight_decay': 0.05, 'weight_decay_end': None},
        'protocol': {'kind': 'split'},
        'run': {'out': str(out), 'seed': seed, 'threads': args['threads'], 'trackers': [], 'progress': False, 'log_every': 50}},
        FinetuneConfig)


def collect(out:Path, tasks:list) -> dict:
    "Every report under OUT/runs, summarised per task and mode, with the differences between modes."
    results = {}
    for task in tasks:
        per_mode = {}
        for mode in MODES:
            reps = {int(p.parent.name.removeprefix('seed_')): json.loads(p.read_text())
                    for p in sorted((out / 'runs' / task / mode).glob('seed_*/report.json'))}
            if reps: per_mode[mode] = {'seeds': sorted(reps), 'accuracy': [reps[s]['accuracy'] for s in sorted(reps)],
                                       'macro_f1': [reps[s]['macro_f1'] for s in sorted(reps)]}
        diffs = {f'pretrained-{m}': welch_interval(per_mode['pretrained']['accuracy'], per_mode[m]['accuracy'])
                 for m in ('random', 'frozen') if m in per_mode and 'pretrained' in per_mode
                 and min(len(per_mode[m]['accuracy']), len(per_mode['pretrained']['accuracy'])) > 1}
        results[task] = {'modes': per_mode, 'differences': diffs}
    return results


def table(results:dict) -> str:
    pct = lambda v: f"{100 * np.mean(v):.1f} ± {100 * np.std(v, ddof=1):.1f}" if len(v) > 1 else f"{100 * v[0]:.1f}"
    ci = lambda d: f"{100 * d['difference']:+.1f} [{100 * d['low']:+.1f}, {100 * d['high']:+.1f}]"
    rows = ['| task | pretrained, fine-tuned | random init, fine-tuned | frozen probe | pretrained − random (95 % Welch) | pretrained − frozen |',
            '|---|---|---|---|---|---|']
    for task, r in results.items():
        m, d = r['modes'], r['differences']
        cell = lambda k: pct(m[k]['accuracy']) + f" (n={len(m[k]['accuracy'])})" if k in m else '–'
        rows.append(f"| {task} | {cell('pretrained')} | {cell('random')} | {cell('frozen')} | "
                    f"{ci(d['pretrained-random']) if 'pretrained-random' in d else '–'} | "
                    f"{ci(d['pretrained-frozen']) if 'pretrained-frozen' in d else '–'} |")
    return '\n'.join(rows)


@dashed_call_parse
def main(corpora:str='experiments/results/corpora', # built by `python -m experiments.corpora`
         out:str='experiments/results/finetune_bench', # results folder
         encoder:str=None, # an export to fine-tune; default: OUT/pretrain/encoder, pretrained first if absent
         tasks:str='music,drums,speech', # dev tasks (folders of --corpora)
         modes:str=','.join(MODES),
         seeds:str='0,1,2', # fine-tuning seeds (random init: the seed of the random weights too)
         pretrain_steps:int=1000, # steps of the pretraining when it is done here
         steps:int=300, # fine-tuning steps per run
         batch_size:int=32,
         clip_seconds:float=2.0,
         lr:float=5e-4, # fine-tuning peak learning rate (pretrained and random)
         probe_lr:float=5e-3, # the frozen probe's peak learning rate
         threads:int=2):
    "Fine-tune pretrained and random-init encoders and the frozen probe on the dev tasks; write results.json and a table."
    t_start = time.time()
    corpora, out = Path(corpora), Path(out)
    torch.set_num_threads(threads)
    export = Path(encoder) if encoder else pretrained_encoder(corpora, out, pretrain_steps, threads)
    task_list, seed_list = tasks.split(','), [int(s) for s in seeds.split(',')]
    args = dict(batch_size=batch_size, clip_seconds=clip_seconds, steps=steps, lr=lr, probe_lr=probe_lr, threads=threads)
    for seed in seed_list:   # seed by seed: an interrupted benchmark has every task and mode at the same count
        for task in task_list:
            for mode in modes.split(','):
                run = out / 'runs' / task / mode / f'seed_{seed}'
                if (run / 'report.json').exists(): continue
                if run.exists(): import shutil; shutil.rmtree(run)   # an interrupted run starts again
                t0 = time.time()
                res = finetune(run_config(corpora / task, export, mode, seed, run, args))
                log(f"{task} {mode} seed {seed}: accuracy {res.report['accuracy']:.4f} in {time.time() - t0:.0f}s")
    results = collect(out, task_list)
    summary = {'encoder': str(export), 'settings': args, 'tasks': results, 'table': table(results),
               'machine': f'{platform.machine()}, {threads} torch threads', 'seconds_this_invocation': round(time.time() - t_start)}
    (out / 'results.json').write_text(json.dumps(summary, indent=1))
    print(summary['table'])
