"""The learning benchmark's one evaluation procedure, and its baselines kept by content.

Every encoder the benchmark measures (a pretraining run's own initialisation and its final export, random networks of
the same architecture, and the log-mel front end itself) is measured the same way, by `measure`:

- mean-pooled clip features (`audiojepa.readout.encoder_features` / `logmel_features`) of every clip of the corpora's
  labelled tasks, decoded once per process by an `audiojepa.readout.Evaluator`;
- on the task's fixed train/test split: the standardised kNN probe (k = 10) and the linear probe (seed 0), accuracy
  and macro-F1 (`audiojepa.readout.probe_split`, exactly what the `eval:` hook logs during pretraining);
- on tasks whose corpus has enough groups (`grouped_5fold` in corpora.json: speech), also grouped 5-fold
  cross-validation over train + test (`assign_folds(..., groups=...)`, each voice pack in one fold), the mean over folds.

The corpora are checked before use (`open_corpora`): every file against the manifest (`check_manifest`), no test file
in the pool or its task's train split (`check_disjoint`); a changed corpus is refused with a `CorpusError`.

Random baselines and the log-mel baseline are stored in `RESULTS/baselines/<family>/` where the family is a hash of
everything they depend on (`baseline_family`): the architecture and front end of the run's config, the corpus digest,
the evaluation settings and a fingerprint of the library code that embeds and probes. They are computed once and read
back by every later invocation that needs the same family.
"""
from __future__ import annotations
import csv, hashlib, json, os, time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from audiojepa.audio import LogMel
from audiojepa.embed import random_encoder
from audiojepa.readout import (EvalSection, Evaluator, assign_folds, encoder_features, logmel_features, open_eval_tasks,
                               probe_split)
from audiojepa.train import TrainConfig, build_frontend_config, preset_configs, run_source, source_norm_stats
from experiments.manifest import CorpusError, check_disjoint, check_manifest

PROBES, METRICS = ('knn', 'linear'), ('accuracy', 'macro_f1')
K, FOLDS, PROBE_SEED = 10, 5, 0   # kNN neighbours, grouped folds, the linear probe's (and the folds') seed
EVALUATION = {'probes': list(PROBES), 'metrics': list(METRICS), 'k': K, 'folds': FOLDS, 'seed': PROBE_SEED,
              'features': 'mean-pooled clip features, train-standardised kNN and linear probes'}
RANDOM_KINDS = {'own': "the run's front end with the pool's log-mel statistics (what an export carries)",
                'default': "the named front end with its own statistics (as `random:PRESET` in audiojepa-probe)"}
CODE = ('audio', 'data', 'sources', 'models', 'embed', 'readout', 'seeds')   # the library modules a measurement runs through


@dataclass
class Corpora:
    "The corpora as the benchmark uses them, checked against their manifest."
    root:Path
    tasks:list # the labelled tasks measured (folder names)
    judged:dict # task -> whether its verdict counts (corpora.json `judged`)
    reasons:dict # task -> why it is judged or not (corpora.json `judged_reason`)
    grouped:list # the tasks with grouped 5-fold cross-validation (corpora.json `grouped_5fold`)
    digest:str # the content digest of the pool and the tasks


def open_corpora(root, tasks:list|None=None) -> Corpora:
    "The corpora at `root` (the pool and `tasks`, default every task of corpora.json), checked; a `CorpusError` otherwise."
    root = Path(root)
    if not (root / 'corpora.json').is_file():
        raise CorpusError(f"{root}: no corpora.json (build the corpora with python -m experiments.corpora, or give --corpora)")
    info = json.loads((root / 'corpora.json').read_text())
    known = [t for t, v in info.items() if isinstance(v, dict) and 'judged' in v]
    tasks = known if tasks is None else list(tasks)
    unknown = [t for t in tasks if t not in known]
    if unknown: raise CorpusError(f"{root}: no task {', '.join(unknown)} in corpora.json (it has {', '.join(known)})")
    if not tasks: raise CorpusError(f"{root}: corpora.json lists no labelled task")
    digest = check_manifest(root, ['pool', *tasks])['digest']
    check_disjoint(root)
    return Corpora(root, tasks, {t: bool(info[t]['judged']) for t in tasks}, {t: info[t].get('judged_reason', '') for t in tasks},
                   [t for t in tasks if info[t].get('grouped_5fold')], digest)


def eval_section(corpora:Corpora, every:int=250, encoder:str='context') -> EvalSection:
    "The `eval:` section of the benchmark's runs: its tasks, both probes, k = 10, the exported encoder."
    return EvalSection(data=[str(corpora.root / t) for t in corpora.tasks], every=every, encoders=[encoder],
                       probes=list(PROBES), k=K)


def clip_groups(corpora:Corpora, evaluator:Evaluator, sample_rate:int) -> dict:
    "Task -> the group of each of its clips in the evaluator's order (train, then test), for the grouped tasks."
    opened, out = open_eval_tasks(evaluator.cfg, sample_rate), {}
    for name in corpora.grouped:
        task, labelled = evaluator.tasks[name], opened[name]
        if task.skipped: raise CorpusError(f"{corpora.root / name}: {task.skipped[0][0]} cannot be read ({task.skipped[0][1]})")
        with open(corpora.root / name / 'groups.csv', newline='') as f: group = {r['path']: r['group'] for r in csv.DictReader(f)}
        paths = [f'train/{i}' for i in labelled.train.ids] + [f'test/{i}' for i in labelled.test.ids]
        missing = [p for p in paths if p not in group]
        if missing: raise CorpusError(f"{corpora.root / name / 'groups.csv'} has no group for {missing[0]}")
        out[name] = np.array([group[p] for p in paths])
    return out


def probe_scores(result:dict) -> dict:
    "{probe: {metric: value}} of a `probe_split` result, the benchmark's metrics only."
    return {p: {m: float(result[p][m]) for m in METRICS} for p in PROBES}


def grouped_cv(x:np.ndarray, y:np.ndarray, groups:np.ndarray, classes:list) -> dict:
    "Grouped 5-fold cross-validation over every clip (each group in one fold): {probe: {metric: mean over the folds}}."
    fold = assign_folds(y, FOLDS, classes, seed=PROBE_SEED, groups=groups)
    per = [probe_scores(probe_split(x[fold != f], y[fold != f], x[fold == f], y[fold == f], PROBES, K, PROBE_SEED))
           for f in np.unique(fold)]   # a fold no group went to has nothing to score
    return {p: {m: float(np.mean([r[p][m] for r in per])) for m in METRICS} for p in PROBES}


class Yardstick:
    "The corpora's labelled tasks, decoded once (at first use), and the benchmark's one evaluation procedure over them."
    def __init__(self, corpora:Corpora, section:EvalSection, fc):
        self.corpora, self.section, self.fc, self._evaluator, self._groups = corpora, section, fc, None, None

    @property
    def evaluator(self) -> Evaluator:
        "The tasks in memory (decoded here the first time)."
        if self._evaluator is None:
            t0 = time.time()
            self._evaluator = Evaluator(self.section, self.fc)
            self._groups = clip_groups(self.corpora, self._evaluator, self.fc.sample_rate)
            print(f"decoded {', '.join(f'{n} {len(t.clips)}' for n, t in self._evaluator.tasks.items())} clips "
                  f"in {time.time() - t0:.0f} s", flush=True)
        return self._evaluator

    def measure(self, features) -> dict:
        "{task: {'split': {probe: {metric}}, 'cv': ... (grouped tasks only)}} of a feature function `(audio, mask) -> [B, D]`."
        out, evaluator = {}, self.evaluator
        for name, task in evaluator.tasks.items():
            x, y = evaluator.features(task, features), task.targets
            protocols = ['split'] + (['cv'] if name in self._groups else [])
            if not np.isfinite(x).all():   # a collapsed or diverged network: its numbers are missing, not zero
                out[name] = {p: {probe: {m: None for m in METRICS} for probe in PROBES} for p in protocols}
                continue
            (fit, scored), = task.splits   # the corpora's tasks have their own train/test split
            out[name] = {'split': probe_scores(probe_split(x[fit], y[fit], x[scored], y[scored], PROBES, K, PROBE_SEED))}
            if 'cv' in protocols: out[name]['cv'] = grouped_cv(x, y, self._groups[name], task.classes)
        return out


def code_fingerprint() -> str:
    "A hash of the code a measurement runs through: the library modules of `CODE` and this file."
    import audiojepa
    h = hashlib.sha256()
    for name in CODE: h.update((Path(audiojepa.__file__).parent / f'{name}.py').read_bytes())
    h.update(Path(__file__).read_bytes())
    return h.hexdigest()[:16]


def write_json(path:Path, obj) -> Path:
    "Write `obj` as JSON to `path` at once (a temporary file renamed over it): a kill leaves the old file or none."
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f'.{path.name}.{os.getpid()}.tmp')
    tmp.write_text(json.dumps(obj, indent=1, allow_nan=False))
    os.replace(tmp, path)
    return path


def named_frontend(cfg:TrainConfig):
    "The run's front end with the named setting's own statistics (no pool statistics)."
    options = {k: v for k, v in cfg.frontend.options.items() if k not in ('mean', 'std')}
    return build_frontend_config(replace(cfg, frontend=replace(cfg.frontend, options=options)))


def own_frontend(cfg:TrainConfig):
    "The run's front end with the pool's log-mel statistics, as a run of seed 0 measures them (its clips and crops)."
    fc = build_frontend_config(cfg)
    if not cfg.frontend.norm_clips or {'mean', 'std'} <= set(cfg.frontend.options): return fc
    cfg0 = replace(cfg, run=replace(cfg.run, seed=0))
    stats = source_norm_stats(run_source(cfg0, fc), fc, cfg.frontend.norm_clips)
    return replace(fc, mean=stats.mean, std=stats.std)


def random_kinds(cfg:TrainConfig) -> list:
    "The random-baseline kinds a config has: 'own' and 'default', or 'own' alone when the run measures no statistics."
    pooled = cfg.frontend.norm_clips > 0 or bool({'mean', 'std'} & set(cfg.frontend.options))
    return ['own', 'default'] if pooled else ['own']


def baseline_family(cfg:TrainConfig, corpora:Corpora) -> dict:
    "What the baselines of a run's config depend on, and its hash (`key`): architecture, front end, corpus, evaluation, code."
    what = {'encoder': asdict(preset_configs(cfg, named_frontend(cfg))['encoder']), 'frontend': asdict(cfg.frontend),
            'pool_clips': {'clip_seconds': cfg.data.clip_seconds, 'crop': cfg.data.crop, 'options': cfg.data.options},
            'corpus_digest': corpora.digest, 'tasks': corpora.tasks, 'evaluation': EVALUATION, 'code': code_fingerprint()}
    return {'key': hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()[:16], 'what': what}


def baseline_file(what:str, kind:str|None=None, seed:int|None=None) -> str:
    "The file name of a baseline in its family's folder: logmel.json, random-own-000.json, ..."
    return 'logmel.json' if what == 'logmel' else f'random-{kind}-{seed:03d}.json'


def measure_baselines(cfg:TrainConfig, yardstick:Yardstick, store:Path, random_seeds:int) -> str:
    "Measure what `store` lacks of the log-mel baseline and `random_seeds` random networks per kind; the family's key."
    family = baseline_family(cfg, yardstick.corpora)
    folder = Path(store) / family['key']
    if not (folder / 'family.json').is_file(): write_json(folder / 'family.json', family['what'])
    named, own = named_frontend(cfg), None
    config = preset_configs(cfg, named)['encoder']
    todo = [('logmel', None, None)] + [('random', k, s) for k in random_kinds(cfg) for s in range(random_seeds)]
    for what, kind, seed in todo:
        path = folder / baseline_file(what, kind, seed)
        if path.is_file(): continue
        if kind == 'own' and own is None: own = own_frontend(cfg)
        fc = own if kind == 'own' else named
        features = (logmel_features(LogMel(fc)) if what == 'logmel' else
                    encoder_features(random_encoder(config, seed), LogMel(fc)))   # weights from the baseline stream
        t0 = time.time()
        scores = yardstick.measure(features)
        write_json(path, {'baseline': what, 'kind': kind, 'seed': seed, 'kind_is': RANDOM_KINDS.get(kind), 'front_end': asdict(fc),
                          'scores': scores, 'seconds': round(time.time() - t0, 1)})
        print(f"baseline {path.stem}: {time.time() - t0:.0f} s", flush=True)
    return family['key']


def read_baselines(folder:Path) -> dict:
    "{'logmel': scores or None, 'random': {kind: [scores of each seed]}} of a family's folder."
    out = {'logmel': None, 'random': {}}
    for path in sorted(Path(folder).glob('*.json')):
        if path.name == 'family.json': continue
        b = json.loads(path.read_text())
        if b['baseline'] == 'logmel': out['logmel'] = b['scores']
        else: out['random'].setdefault(b['kind'], []).append(b['scores'])
    return out
