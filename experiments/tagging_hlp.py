"""Offline reproduction of the HLP paper's effect on real audio: instrument mixtures rendered with fluidsynth.

    python -m experiments.tagging_hlp                     # render, train 3 models x {none, train}, ~25 min on 2 CPU cores
    python -m experiments.tagging_hlp --quick             # a smoke test of the whole pipeline, ~2 min
    python -m experiments.tagging_hlp --steps 3 --seeds 0,1,2   # 3x the steps, 3 training seeds: gains as mean ± sd, ~50 min

Needs the Debian packages fluidsynth, fluid-soundfont-gm, timgm6mb-soundfont, musescore-general-soundfont-small and
AudioSet's ontology.json (`--ontology`, else the cached official file: see `audiojepa.audioset.audioset_file`).

The data: 26 instrument classes of AudioSet (Piano, Electric piano, Hammond organ, Acoustic / Electric / Bass guitar,
Violin, Cello, Harp, Trumpet, Trombone, Saxophone, Clarinet, Flute, Accordion, Marimba, ...) played by General MIDI
programs. Single notes are rendered from the training SoundFonts (FluidR3_GM, TimGM6mb) and, for the test set, from
another SoundFont (MuseScore_General_Lite), then mixed into 2 s clips of 1-3 notes of different classes. The label
vocabulary is those classes and all their ontology ancestors (Keyboard (musical), Organ, Guitar, Plucked string
instrument, Bowed string instrument, Brass instrument, Wind instrument, Mallet percussion, Percussion, Musical
instrument, Music). A clip's leaf labels are always given; each ancestor is given only in a fraction of the clips
(drawn per ancestor class between 10 % and 50 %), as AudioSet's annotators often left parents out. The test set is
labelled the same way ("original", what an AudioSet evaluation set looks like) and with full ancestry
("propagated"; checked equal to HLP of the original labels).

Each model is trained with the public recipe's sampler, SpecAugment and optimiser, scaled to the CPU budget (2 s
clips, batch 16, a few hundred steps, no mixup; PaSST is a 4-block, 192-wide PaSST from scratch at lr 5e-4 instead of the published
ImageNet-initialised DeiT-B at 2e-5), once with `hlp='none'` and once with `hlp='train'` per training seed
(`--seeds`; the pair shares the initialisation and data order, so gains are paired by seed). Results go to
experiments/results/tagging_hlp/results.json (seed means, each seed under `per_seed`, gains with their sd) and
results.png.
"""
from __future__ import annotations
import csv, json, platform, shutil, time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from fastcore.script import call_parse, store_true

from audiojepa.audioset import audioset_file
from audiojepa.hlp import HLP, Ontology, Vocabulary
from audiojepa.taggers import build_tagger, write_class_labels
from audiojepa.tagging import tag_config, train_tagger

from .corpora import is_silent, program_range, soundfont_path
from .soundfonts import Note, fluidsynth_available, render_notes


SR, CLIP_SECONDS = 32000, 2.0
# AudioSet class -> General MIDI programs that play it
INSTRUMENTS = {'Piano': (0, 1), 'Electric piano': (4, 5), 'Harpsichord': (6,), 'Hammond organ': (16, 17),
               'Accordion': (21,), 'Harmonica': (22,), 'Glockenspiel': (9,), 'Vibraphone': (11,),
               'Marimba, xylophone': (12, 13), 'Acoustic guitar': (24, 25), 'Electric guitar': (26, 27, 29),
               'Bass guitar': (33, 34), 'Violin, fiddle': (40,), 'Cello': (42,), 'Double bass': (43,), 'Harp': (46,),
               'Sitar': (104,), 'Banjo': (105,), 'Trumpet': (56,), 'Trombone': (57,), 'French horn': (60,),
               'Saxophone': (65, 66), 'Oboe': (68,), 'Clarinet': (71,), 'Flute': (73,), 'Bagpipes': (109,)}
TRAIN_SOUNDFONTS, TEST_SOUNDFONTS = ('FluidR3_GM', 'TimGM6mb'), ('MuseScore_General_Lite',)
# the CPU-scaled recipes: (model, model options, config changes). Mixup is off: it pays over hundreds of epochs; in a
# first run with the recipes' mixup (1.0, 1.0, 0.3), CNN6 was at chance level (mAP 0.12) after 80 steps.
RUNS = {'cnn6': ('cnn6', {}, {'schedule': dict(max_steps=80)}),
        'convnext_femto': ('convnext_femto', {}, {'schedule': dict(max_steps=200)}),
        'passt_small': ('passt', dict(arch='small', embed_dim=192, depth=4, num_heads=3, s_patchout_t=4, s_patchout_f=2),
                        {'schedule': dict(max_steps=80, lr=5e-4, warmup_steps=20)})}

def log(*a): print('[tagging_hlp]', *a, flush=True)

def render_pool(soundfonts, per_class:int, seed:int) -> dict:
    "class name -> list of single-note clips (float32, CLIP_SECONDS), rendered from `soundfonts`."
    pool = {name: [] for name in INSTRUMENTS}
    for sf_name in soundfonts:
        path = soundfont_path(sf_name)
        if path is None: raise SystemExit(f'SoundFont {sf_name} is not installed (see the docstring)')
        notes, owners = [], []
        for k, (name, programs) in enumerate(INSTRUMENTS.items()):
            rng = np.random.default_rng([seed, k, len(sf_name)])
            for j in range(per_class):
                prog = programs[j % len(programs)]
                lo, hi = program_range(prog)
                notes.append(Note(0, prog, int(rng.integers(lo, hi + 1)), int(rng.choice([64, 88, 112])),
                                  float(rng.choice([0.6, 1.0, 1.5]))))
                owners.append(name)
        for name, wav in zip(owners, render_notes(path, notes, clip_seconds=CLIP_SECONDS, sample_rate=SR)):
            if not is_silent(wav, SR): pool[name].append(wav.astype(np.float32))
    empty = [n for n, w in pool.items() if not w]
    if empty: raise SystemExit(f'no audible note rendered for {empty}')
    return pool

def mixtures(pool:dict, n:int, seed:int) -> tuple[list, list]:
    "n clips of 1-3 notes of different classes: (waveforms, leaf class names of each)."
    rng, names, waves, labels = np.random.default_rng(seed), list(pool), [], []
    L = int(CLIP_SECONDS * SR)
    for _ in range(n):
        k = int(rng.choice([1, 2, 3], p=[0.4, 0.35, 0.25]))
        chosen = sorted(rng.choice(len(names), size=k, replace=False).tolist())
        mix = np.zeros(L, np.float32)
        for c in chosen:
            note = pool[names[c]][int(rng.integers(len(pool[names[c]])))]
            shift = int(rng.integers(0, int(0.4 * SR)))
            mix[shift:] += float(rng.uniform(0.5, 1.0)) * note[:L - shift] / (np.abs(note).max() + 1e-9)
        waves.append(mix * float(rng.uniform(0.3, 0.9)) / (np.abs(mix).max() + 1e-9))
        labels.append([names[c] for c in chosen])
    return waves, labels

def write_set(folder:Path, name:str, waves, label_sets:list) -> Path:
    "WAV files and a `path,labels` manifest of MIDs separated by ';'."
    (folder / name).mkdir(parents=True, exist_ok=True)
    rows = []
    for i, (w, mids) in enumerate(zip(waves, label_sets)):
        rel = f'{name}/{i:05d}.wav'
        sf.write(folder / rel, w, SR, subtype='PCM_16')
        rows.append((rel, ';'.join(mids)))
    return write_manifest(folder / f'{name}.csv', rows)

def write_manifest(path:Path, rows) -> Path:
    with open(path, 'w', newline='') as f:
        w = csv.writer(f); w.writerow(['path', 'labels']); w.writerows(rows)
    return path

def build_data(out:Path, onto:Ontology, n_train:int, n_test:int, per_class:int, seed:int=0) -> dict:
    "Render and label the train and test sets; returns the manifests and the class list."
    leaves = {name: onto.mid_of(name) for name in INSTRUMENTS}
    ancestors = sorted({a for m in leaves.values() for a in onto.ancestors(m)})   # Piano is also Electric piano's parent
    mids = sorted(set(leaves.values()) | set(ancestors), key=lambda m: (onto.depth(m), onto.name(m)))
    keep_rate = dict(zip(ancestors, np.random.default_rng([seed, 7]).uniform(0.1, 0.5, len(ancestors))))
    def audioset_like(names, rng):
        given = [leaves[n] for n in names]
        full = sorted({a for m in given for a in onto.ancestors(m)} - set(given))
        return given + [a for a in full if rng.random() < keep_rate[a]]
    def full_ancestry(names):
        given = [leaves[n] for n in names]
        return given + sorted({a for m in given for a in onto.ancestors(m)} - set(given))
    t0 = time.time()
    train_pool, test_pool = render_pool(TRAIN_SOUNDFONTS, per_class, seed), render_pool(TEST_SOUNDFONTS, per_class, seed + 1)
    log(f'rendered {sum(map(len, train_pool.values()))} training and {sum(map(len, test_pool.values()))} test notes '
        f'in {time.time() - t0:.0f}s')
    tr_w, tr_l = mixtures(train_pool, n_train, seed + 2)
    te_w, te_l = mixtures(test_pool, n_test, seed + 3)
    rng_tr, rng_te = np.random.default_rng([seed, 8]), np.random.default_rng([seed, 9])
    out.mkdir(parents=True, exist_ok=True)
    classes = write_class_labels(out / 'classes.csv', Vocabulary.from_ontology(onto, mids))
    return {'train': write_set(out, 'train', tr_w, [audioset_like(l, rng_tr) for l in tr_l]),
            'test': write_set(out, 'test', te_w, [audioset_like(l, rng_te) for l in te_l]),
            'test_full': write_manifest(out / 'test_full.csv', [(f'test/{i:05d}.wav', ';'.join(full_ancestry(l)))
                                                               for i, l in enumerate(te_l)]),
            'classes': classes, 'n_leaves': len(leaves), 'n_ancestors': len(set(ancestors) - set(leaves.values())), 'keep_rate':
            {onto.name(a): round(float(r), 3) for a, r in keep_rate.items()}}

def label_stats(manifest:Path, vocab:Vocabulary) -> np.ndarray:
    with open(manifest) as f: rows = list(csv.DictReader(f))
    Y = np.zeros((len(rows), len(vocab)), bool)
    for i, r in enumerate(rows): Y[i, [vocab.index(m) for m in r['labels'].split(';')]] = True
    return Y

def seed_mean(per_seed:list) -> dict:
    "Mean over training seeds of every number of the per-seed results (the per-seed results kept under `per_seed`)."
    mean = {k: float(np.mean([r[k] for r in per_seed])) for k in ('map', 'map_propagated', 'map_propagated_hlp_scores',
                                                                  'd_prime', 'd_prime_propagated', 'seconds')}
    return {**mean, 'steps': per_seed[0]['steps'], 'per_seed': per_seed,
            'ancestor_ap': {n: float(np.mean([r['ancestor_ap'][n] for r in per_seed])) for n in per_seed[0]['ancestor_ap']}}

def figure(results:dict, path:Path):
    import matplotlib; matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    models = list(results['runs'])
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2), sharey=True)
    for ax, key, title in zip(axes, ('map', 'map_propagated'), ('original test labels', 'propagated test labels')):
        x = np.arange(len(models))
        for k, (hlp, colour) in enumerate((('none', '#999999'), ('train', '#1f77b4'))):
            vals = [results['runs'][m][hlp][key] for m in models]
            ax.bar(x + (k - 0.5) * 0.38, vals, 0.38, label=f'hlp={hlp}', color=colour)
            for xi, v in zip(x, vals): ax.text(xi + (k - 0.5) * 0.38, v + 0.005, f'{v:.3f}', ha='center', fontsize=7)
        ax.set_xticks(x, models); ax.set_title(title); ax.set_ylabel('mAP')
    axes[0].legend(loc='lower right', fontsize=8)
    fig.tight_layout(); fig.savefig(path, dpi=80); plt.close(fig)

def train_pair(key:str, data:dict, vocab:Vocabulary, onto_path:Path, out:Path, train_seeds:list, threads:int,
               steps:float, quick:bool) -> dict:
    "Train model `key` with hlp='none' and hlp='train', once per training seed: {mode: seed means with `per_seed`}."
    model, options, changes = RUNS[key]
    schedule = {k: round(v * steps) if k in ('max_steps', 'warmup_steps') else v for k, v in changes['schedule'].items()}
    if quick: schedule['max_steps'] = 3
    runs = {}
    for mode in ('none', 'train'):
        per_seed = []
        for s in train_seeds:
            run_dir = out / 'runs' / (f'{key}_{mode}' if len(train_seeds) == 1 else f'{key}_{mode}_seed{s}')
            if run_dir.exists(): shutil.rmtree(run_dir)   # a fresh run each time
            cfg = tag_config({'model': {'name': model, 'options': options}, 'schedule': schedule,
                              'data': {'train': str(data['train']), 'test': str(data['test']), 'classes': str(data['classes']),
                                       'ontology': str(onto_path), 'mixup': 0.0, 'batch_size': 16,
                                       'clip_seconds': CLIP_SECONDS, 'eval_window': CLIP_SECONDS},
                              'hlp': {'mode': mode, 'policy': 'all-ancestors'},
                              'run': {'seed': s, 'out': str(run_dir), 'log_every': 10, 'threads': threads, 'progress': False}})
            t0 = time.time()
            res = train_tagger(cfg)
            if res.report is None: raise SystemExit(f'{key} hlp={mode} stopped at step {res.step} ({res.stopped_by}): no report')
            rep = res.report
            per_seed.append({
                'seed': s, 'map': rep['map'], 'map_propagated': rep['map_propagated'],
                'map_propagated_hlp_scores': rep['map_propagated_hlp_scores'], 'd_prime': rep['d_prime'],
                'd_prime_propagated': rep['d_prime_propagated'], 'steps': cfg.schedule.max_steps,
                'seconds': round(time.time() - t0, 1), 'first_loss': res.first_loss, 'last_loss': res.last_loss,
                'ancestor_ap': {n: v['ap_propagated'] for n, v in rep['hlp_changed_classes'].items()}})
            log(f"{key} hlp={mode} seed {s}: mAP {rep['map']:.4f} / propagated {rep['map_propagated']:.4f} "
                f"(HLP on scores {rep['map_propagated_hlp_scores']:.4f}) in {time.time() - t0:.0f}s")
        runs[mode] = seed_mean(per_seed)
    return runs

def add_gains(run:dict):
    "The gains of hlp='train' over hlp='none', paired by seed (the same initialisation and data order with and without HLP)."
    diffs = {k: np.array([t[k] - n[k] for n, t in zip(run['none']['per_seed'], run['train']['per_seed'])])
             for k in ('map', 'map_propagated')}
    run['gain'] = {k: float(d.mean()) for k, d in diffs.items()}
    run['gain_sd'] = {k: float(d.std(ddof=1)) if len(d) > 1 else None for k, d in diffs.items()}
    run['gain_per_seed'] = {k: [round(float(x), 4) for x in d] for k, d in diffs.items()}

@call_parse
def main(out:str='experiments/results/tagging_hlp', # results folder (rendered data under data/)
         ontology:str=None, # AudioSet's ontology.json; default: the cached official file (see audiojepa.audioset.audioset_file)
         n_train:int=1000, n_test:int=400, # mixtures
         per_class:int=16, # notes rendered per class and SoundFont
         seed:int=0, # seed of the rendered data (notes, mixtures, which ancestors are listed)
         seeds:str=None, # training seeds, comma-separated (e.g. 0,1,2): each model is trained once per seed; default: --seed
         models:str='cnn6,convnext_femto,passt_small', # comma-separated keys of RUNS
         threads:int=2,
         steps:float=1.0, # multiplies every run's max_steps (and warm-up)
         quick:store_true=False): # a smoke test: tiny data, a few steps
    "Render the instrument mixtures, train each model with and without HLP, write results.json and results.png."
    t_start = time.time()
    if not fluidsynth_available(): raise SystemExit('fluidsynth is not installed')
    torch.set_num_threads(threads)
    try: onto_path = audioset_file('ontology.json', ontology, None, '--ontology')
    except FileNotFoundError as e: raise SystemExit(f'tagging_hlp: error: {e}') from None
    onto = Ontology.from_json(onto_path)
    out = Path(out)
    if quick: out, n_train, n_test, per_class = out.with_name(out.name + '_quick'), 48, 24, 2
    data = build_data(out / 'data', onto, n_train, n_test, per_class, seed)
    vocab = Vocabulary.from_csv(data['classes'])
    hlp = HLP.from_ontology(onto, vocab, 'all-ancestors')
    test_orig, test_full = label_stats(data['test'], vocab), label_stats(data['test_full'], vocab)
    assert (hlp.propagate(test_orig) == test_full).all(), 'full ancestry must equal the propagated test labels'
    train_Y = label_stats(data['train'], vocab)
    log(f'{len(vocab)} classes ({data["n_leaves"]} instruments + {data["n_ancestors"]} ancestors); labels per training clip '
        f'{train_Y.sum(1).mean():.2f}, after HLP {hlp.propagate(train_Y).sum(1).mean():.2f}')
    # random scores: a class's expected AP is its share of positive clips
    chance = {k: float(Y[:, Y.any(0)].mean(0).mean()) for k, Y in (('map', test_orig), ('map_propagated', test_full))}
    train_seeds = [int(x) for x in seeds.split(',')] if seeds else [seed]
    results = {'classes': len(vocab), 'n_train': n_train, 'n_test': n_test, 'policy': 'all-ancestors', 'chance': chance,
               'keep_rate': data['keep_rate'], 'clip_seconds': CLIP_SECONDS, 'seed': seed,
               'machine': f'{platform.machine()}, {torch.get_num_threads()} torch threads', 'train_seeds': train_seeds, 'runs': {}}
    for key in models.split(','):
        run = results['runs'][key] = train_pair(key, data, vocab, onto_path, out, train_seeds, threads, steps, quick)
        run['parameters'] = sum(p.numel() for p in build_tagger(RUNS[key][0], len(vocab), RUNS[key][1], CLIP_SECONDS).parameters())
        add_gains(run)
    results['seconds'] = round(time.time() - t_start, 1)
    (out / 'results.json').write_text(json.dumps(results, indent=1))
    figure(results, out / 'results.png')
    log(f'wrote {out / "results.json"} and results.png in {results["seconds"]:.0f}s')
    log(f'wrote {out / "results.json"} and results.png in {results["seconds"]:.0f}s')
