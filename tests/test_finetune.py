"""Fine-tuning (`audiojepa.finetune`, `audiojepa-finetune`) and continued pretraining (`audiojepa-pretrain --init-from`).

Tiny models on a few generated tones: every test takes seconds. What is checked is what the fine-tuning chapter promises:
single- and multi-label runs end to end from a labelled folder, k-fold from a metadata table's fold column, layer-wise
learning rates, a frozen encoder left bit-identical, bit-exact resume, every kind of encoder loading, and continued
pretraining starting from the weights it is given.
"""
import json, sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file

from audiojepa.authors import authors_state_dict
from audiojepa.config import config_from_dict
from audiojepa.finetune import (EncoderClassifier, FinetuneConfig, build_finetune_model, finetune, finetune_param_groups,
                                load_backbone, main as finetune_main)
from audiojepa.loop import set_schedules
from audiojepa.models import EncoderConfig, ViTEncoder, load_encoder, preset, save_encoder
from audiojepa.runs import MetricsLog
from audiojepa.train import TrainConfig, pretrain

from conftest import tone   # the shared test clip

RATE = 16000
FREQS = {'low': 220, 'mid': 660, 'high': 1760}
SMALL = {'data': {'batch_size': 4, 'clip_seconds': 1.0}, 'model': {'drop_path': 0.0},
         'schedule': {'max_steps': 4, 'warmup_steps': 1}, 'run': {'progress': False, 'log_every': 1, 'threads': 1}}


@pytest.fixture(scope='module')
def data(tmp_path_factory) -> Path:
    "ROOT/{train,test}/<label>/ of three tones, an ESC-50-like table with two folds, a multi-label manifest."
    root = tmp_path_factory.mktemp('ftdata')
    rows = ['filename,fold,target,category']
    for label, freq in FREQS.items():
        for split, n in (('train', 4), ('test', 2)):
            (root / 'split' / split / label).mkdir(parents=True)
            for i in range(n): sf.write(root / 'split' / split / label / f'{label}{i}.wav', tone(freq, seed=i + freq + (split == 'test')), RATE)
        (root / 'esc' / 'audio').mkdir(parents=True, exist_ok=True)
        for i in range(4):
            sf.write(root / 'esc' / 'audio' / f'{label}{i}.wav', tone(freq, seed=10 * i + freq), RATE)
            rows.append(f'{label}{i}.wav,{1 + i % 2},{list(FREQS).index(label)},{label}')
    (root / 'esc' / 'meta').mkdir()
    (root / 'esc' / 'meta' / 'esc50.csv').write_text('\n'.join(rows) + '\n')
    clips = sorted((root / 'split' / 'train').rglob('*.wav'))
    (root / 'multi.csv').write_text('path,labels\n' + ''.join(f"{p},{p.parent.name}{';loud' if i % 2 else ''}\n" for i, p in enumerate(clips)))
    return root


def config(encoder, train, out, **sections) -> FinetuneConfig:
    changes = {k: dict(v) for k, v in SMALL.items()}
    for section, values in sections.items(): changes.setdefault(section, {}).update(values)
    changes['model'].update(encoder=str(encoder)); changes['data'].update(train=str(train)); changes['run'].update(out=str(out))
    return config_from_dict(changes, FinetuneConfig)


@pytest.fixture(scope='module')
def export(tmp_path_factory) -> Path:
    "A tiny export (2 blocks) with the audiojepa front end at 16 kHz."
    from audiojepa.audio import frontend_config
    torch.manual_seed(0)
    enc = ViTEncoder(replace(preset('tiny')['encoder'], depth=2, n_mels=64, max_frames=64))
    fc = replace(frontend_config('audiojepa'), sample_rate=RATE, n_mels=64, hop_length=320, win_length=800, n_fft=1024)
    return save_encoder(tmp_path_factory.mktemp('export') / 'encoder', enc, fc)


def run_cli(argv, monkeypatch, capsys) -> tuple:
    monkeypatch.setattr(sys, 'argv', ['audiojepa-finetune', *map(str, argv)])
    try: finetune_main(); code = 0
    except SystemExit as e: code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_single_label_end_to_end_from_a_labelled_folder(data, export, tmp_path, monkeypatch, capsys, one_thread):
    "audiojepa-finetune on ROOT/{train,test}/<label>/: a run directory and a single-label report on the test split."
    code, out, err = run_cli(['--encoder', export, '--train', data / 'split', '--out', tmp_path / 'run', '--max-steps', 4,
                              '--batch-size', 4, '--clip-seconds', 1, 'run.progress=false', 'run.threads=1', 'run.log_every=1',
                              'task.label_smoothing=0.1', 'augment.mixup=0.5', 'augment.roll=true', 'augment.spec_time=4',
                              'augment.patch_mask=0.3'], monkeypatch, capsys)
    assert code == 0, err[-2000:]
    report = json.loads((tmp_path / 'run' / 'report.json').read_text())
    assert report['task'] == 'single-label' and report['clips'] == 6 and 0 <= report['accuracy'] <= 1 and 'macro_f1' in report
    assert (tmp_path / 'run' / 'classes.csv').read_text().split()[1:] == ['0,high,high', '1,low,low', '2,mid,mid']
    assert len(MetricsLog(tmp_path / 'run' / 'metrics.csv', 4).read()) == 4 and 'test accuracy' in out


def test_multi_label_end_to_end(data, export, tmp_path, one_thread):
    "A manifest with several labels per clip is multi-label (binary cross-entropy, mAP); a folder can be made multi-label too."
    res = finetune(config(export, data / 'multi.csv', tmp_path / 'manifest', protocol={'kind': 'holdout', 'holdout': 0.5}))
    assert res.report['task'] == 'multi-label' and {'mAP', 'd_prime', 'auc'} <= set(res.report)
    res = finetune(config('random:tiny', data / 'split', tmp_path / 'folder', task={'kind': 'multi-label'}, model={'head': 'attention'}))
    assert res.report['task'] == 'multi-label' and res.report['clips'] == 6


TREE = [('/m/04rlf', 'Music', ['/m/04szw']), ('/m/04szw', 'Musical instrument', ['/m/05r5c', '/m/07y_7']),
        ('/m/05r5c', 'Piano', []), ('/m/07y_7', 'Violin, fiddle', [])]


def test_audioset_labels_with_hlp(data, export, tmp_path, monkeypatch, one_thread):
    "AudioSet MIDs in a manifest with a class list and task.hlp=train: multi-label, and the loss sees propagated targets."
    (tmp_path / 'ontology.json').write_text(json.dumps([{'id': i, 'name': n, 'child_ids': c} for i, n, c in TREE]))
    (tmp_path / 'classes.csv').write_text('index,mid,display_name\n' + ''.join(f'{j},{i},"{n}"\n' for j, (i, n, _) in enumerate(TREE)))
    mid = {'low': '/m/05r5c', 'mid': '/m/05r5c', 'high': '/m/07y_7'}
    (tmp_path / 'as.csv').write_text('path,labels\n' + ''.join(f'{p},{mid[p.parent.name]}\n' for p in sorted((data / 'split' / 'train').rglob('*.wav'))))
    seen, real = [], torch.nn.functional.binary_cross_entropy_with_logits
    monkeypatch.setattr(torch.nn.functional, 'binary_cross_entropy_with_logits', lambda x, y: seen.append(y.clone()) or real(x, y))
    res = finetune(config(export, tmp_path / 'as.csv', tmp_path / 'run', data={'classes': str(tmp_path / 'classes.csv')},
                          task={'hlp': 'train', 'ontology': str(tmp_path / 'ontology.json')}, protocol={'kind': 'holdout', 'holdout': 0.25}))
    assert res.report['task'] == 'multi-label' and {'mAP', 'd_prime'} <= set(res.report)
    assert seen and all(bool(y[:, :2].all()) for y in seen)   # every clip is Music and Musical instrument after propagation


def test_kfold_from_a_metadata_table(data, export, tmp_path, one_thread):
    "ESC-50's layout: meta/esc50.csv with a fold column and audio/; one run per fold and their mean ± sd."
    res = finetune(config(export, data / 'esc' / 'meta' / 'esc50.csv', tmp_path / 'kfold'))
    assert sorted(p.name for p in (tmp_path / 'kfold').iterdir() if p.is_dir()) == ['fold_1', 'fold_2']
    summary = json.loads((tmp_path / 'kfold' / 'report.json').read_text())
    assert summary['runs'] == 2 and set(summary['per_run']) == {'fold_1', 'fold_2'}
    accs = [summary['per_run'][f]['accuracy'] for f in ('fold_1', 'fold_2')]
    assert summary['accuracy'] == pytest.approx(np.mean(accs)) and summary['accuracy_sd'] == pytest.approx(np.std(accs, ddof=1))
    assert json.loads((tmp_path / 'kfold' / 'fold_1' / 'report.json').read_text())['clips'] == 6   # fold 1's clips, read whole


def test_seeds_and_resume_of_a_protocol(data, export, tmp_path, one_thread):
    "protocol.seeds runs each run once per seed; with resume, finished runs are read back, not trained again."
    cfg = config(export, data / 'split', tmp_path / 'seeds', protocol={'seeds': [0, 1]})
    first = finetune(cfg)
    assert first.report['runs'] == 2 and (tmp_path / 'seeds' / 'seed_1' / 'report.json').exists()
    again = finetune(cfg, resume=True)
    assert again.report == first.report


RECIPES = Path(__file__).resolve().parents[1] / 'configs' / 'finetune'


@pytest.mark.parametrize('name', ['esc50', 'speechcommands', 'as20k', 'as2m'])
def test_each_recipe_is_a_valid_config_that_says_what_it_follows(name):
    "configs/finetune/NAME.yaml: every key a FinetuneConfig key, the settings runnable, its comment citing the recipe and the data layout."
    from audiojepa.finetune import check_finetune_config, resolve_finetune_config
    path = RECIPES / f'{name}.yaml'
    cfg, _ = resolve_finetune_config(str(path), {'model.encoder': 'random:tiny', 'data.train': 'data'})
    check_finetune_config(cfg)
    comment = ' '.join(l for l in path.read_text().splitlines() if l.startswith('#'))
    assert '# Data:' in path.read_text() and 'lr' in comment and 'epochs' in comment and f'--config configs/finetune/{name}.yaml' in comment
    assert cfg.task.kind == ('multi-label' if name.startswith('as') else 'single-label') and cfg.run.mixed_precision == 'bf16'


@pytest.mark.parametrize('name,train', [('esc50', 'esc/meta/esc50.csv'), ('speechcommands', 'split')])
def test_a_single_label_recipe_runs_on_its_layout(name, train, data, export, tmp_path, monkeypatch, capsys, one_thread):
    "The ESC-50 recipe on a table with a fold column (one run per fold), Speech Commands' on ROOT/{train,test}/<word>/: shortened, they run."
    code, out, err = run_cli(['--config', RECIPES / f'{name}.yaml', '--encoder', export, '--train', data / train, '--out', tmp_path / 'run',
                              '--max-steps', 2, '--batch-size', 4, '--clip-seconds', 1, 'schedule.warmup_steps=1', 'data.num_workers=0',
                              'run.mixed_precision=no', 'run.progress=false', 'run.threads=1'], monkeypatch, capsys)
    assert code == 0, err[-2000:]
    report = json.loads((tmp_path / 'run' / 'report.json').read_text())
    assert report['task'] == 'single-label' and report.get('runs', 1) == (2 if name == 'esc50' else 1)


def test_a_tagger_fine_tunes_on_a_labelled_folder(data, tmp_path, one_thread):
    "model.encoder=cnn6: the tagger, built for the folder's classes, trained whole by the same loop; a tagger cannot be frozen."
    from audiojepa.finetune import FinetuneError
    res = finetune(config('cnn6', data / 'split', tmp_path / 'cnn6', model={'options': {'width': 0.125}}))
    assert res.step == 4 and res.report['task'] == 'single-label' and res.report['clips'] == 6
    with pytest.raises(FinetuneError, match='cnn6 is trained whole'):
        finetune(config('cnn6', data / 'split', tmp_path / 'frozen', model={'options': {'width': 0.125}, 'freeze': True}))


def test_layer_decay_gives_each_layer_its_learning_rate(export):
    "Block i of L learns at lr * decay^(L + 1 - i), the patch embedding at lr * decay^(L + 1), the head at lr."
    cfg = config(export, 'unused', 'unused', model={'layer_decay': 0.5})
    model = build_finetune_model(cfg, 3)
    opt = torch.optim.AdamW(finetune_param_groups(model, 0.5))
    set_schedules(opt, 1, cfg.schedule)   # the first step after the warm-up: the peak rate
    lr = {}
    for group in opt.param_groups:
        for p in group['params']: lr[next(n for n, q in model.named_parameters() if q is p)] = group['lr']
    peak, depth = cfg.schedule.lr, 2
    assert lr['head.1.weight'] == pytest.approx(peak) and lr['encoder.norm.weight'] == pytest.approx(peak)
    for i in range(depth): assert lr[f'encoder.blocks.{i}.attn.qkv.weight'] == pytest.approx(peak * 0.5 ** (depth - i))
    assert lr['encoder.patch_embed.proj.weight'] == pytest.approx(peak * 0.5 ** (depth + 1))
    decay = {n: g['weight_decay'] for g in opt.param_groups for n, q in model.named_parameters() if any(q is p for p in g['params'])}
    assert decay['encoder.blocks.0.norm1.weight'] == 0 and decay['encoder.blocks.0.attn.qkv.weight'] == cfg.schedule.weight_decay


def test_frozen_mode_leaves_the_encoder_bit_identical(data, export, tmp_path, one_thread):
    "model.freeze: the head learns, every encoder weight stays as exported, bit for bit."
    finetune(config(export, data / 'split', tmp_path / 'frozen', model={'freeze': True}, schedule={'lr': 1e-2}))
    state = load_file(next((tmp_path / 'frozen' / 'checkpoints').glob('step_*/model.safetensors')))
    exported = load_encoder(export)[0].state_dict()
    for k, v in exported.items(): assert torch.equal(state[f'encoder.{k}'], v), k
    head = build_finetune_model(config(export, 'x', 'x', model={'freeze': True}), 3).head.state_dict()
    assert not torch.equal(state['head.1.weight'], head['1.weight'])


def test_resume_is_bit_exact(data, export, tmp_path, one_thread):
    "Stopped at step 2 and resumed: the same losses and the same weights as one straight run."
    straight = config(export, data / 'split', tmp_path / 'straight', augment={'mixup': 0.4, 'roll': True, 'spec_time': 4}, model={'drop_path': 0.1})
    finetune(straight)
    halves = replace(straight, run=replace(straight.run, out=str(tmp_path / 'halves'), stop_at=2))
    assert finetune(halves).step == 2
    from audiojepa.finetune import resolve_finetune_config
    cfg, ckpt = resolve_finetune_config(flags={'run.out': str(tmp_path / 'halves')}, resume='auto')
    assert ckpt is not None and finetune(cfg, ckpt).step == 4
    losses = lambda d: [r['loss'] for r in MetricsLog(tmp_path / d / 'metrics.csv', 4).read()]
    assert losses('straight') == losses('halves')
    a, b = (load_file(next((tmp_path / d / 'checkpoints').glob('step_000004/model.safetensors'))) for d in ('straight', 'halves'))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_online_evaluation_changes_nothing_of_training(data, export, tmp_path, one_thread):
    "data.eval_every: test_accuracy and test_macro_f1 columns every 2 steps, and the same losses as without them."
    plain = finetune(config(export, data / 'split', tmp_path / 'plain'))
    scored = finetune(config(export, data / 'split', tmp_path / 'scored', data={'eval_every': 2}))
    rows = MetricsLog(tmp_path / 'scored' / 'metrics.csv', 4, ('step', 'loss', 'lr', 'clips_per_s', 'seconds', 'test_accuracy', 'test_macro_f1')).read()
    assert [r['step'] for r in rows if r.get('test_accuracy') is not None] == [2, 4]
    assert [r['test_accuracy'] for r in rows if r['step'] == 4] == [scored.report['accuracy']]
    assert plain.first_loss == scored.first_loss and plain.last_loss == scored.last_loss


def authors_stand_in(path:Path) -> Path:
    "A checkpoint in the authors' released layout (`encoder.` and `target_encoder.` keys), tiny."
    torch.manual_seed(1)
    enc = ViTEncoder(EncoderConfig(n_mels=128, max_frames=256, embed_dim=64, depth=2, num_heads=1, positions='learned', final_norm_eps=1e-6))
    weights = authors_state_dict(enc)
    torch.save({'state_dict': {**{f'encoder.{k}': v for k, v in weights.items()}, **{f'target_encoder.{k}': v for k, v in weights.items()}},
                'global_step': 5}, path)
    return path


def test_every_kind_of_encoder_loads(export, tmp_path):
    "An export (or its run directory), random:tiny, random:DIR and an authors'-layout checkpoint all become a classifier."
    authors = authors_stand_in(tmp_path / 'JEPA.ckpt')
    for spec in (export, export.parent, 'random:tiny', f'random:{export}', authors):
        model = build_finetune_model(config(spec, 'x', 'x'), 3)
        assert isinstance(model, EncoderClassifier)
        assert model.eval()(torch.randn(2, model.sample_rate)).shape == (2, 3)
    exported = load_encoder(export)[0].state_dict()
    loaded = build_finetune_model(config(export, 'x', 'x'), 3).encoder.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in exported.items())
    a, b = load_backbone(f'random:{export}', seed=0)[0], load_backbone(f'random:{export}', seed=1)[0]
    assert not torch.equal(a.blocks[0].attn.qkv.weight, b.blocks[0].attn.qkv.weight)   # seeds are different random inits


def test_init_from_starts_pretraining_from_the_given_weights(tmp_path, one_thread):
    "--init-from: encoder and target start as the export, the predictor as any run's; its first-step loss is the export's."
    common = {'data': {'spec': 'synthetic:16', 'batch_size': 4, 'clip_seconds': 1.0, 'num_workers': 0}, 'frontend': {'norm_clips': 8},
              'schedule': {'max_steps': 2, 'warmup_steps': 1}, 'run': {'log_every': 1, 'trackers': [], 'progress': False, 'threads': 1}}
    nested = lambda out, **model: config_from_dict({**common, 'model': model, 'run': {**common['run'], 'out': str(tmp_path / out)}}, TrainConfig)
    first = pretrain(nested('first'))
    export = first.encoder_dir
    continued = pretrain(nested('continued', init_from=str(export)))
    # the same run from scratch, its encoders set by hand to the export's weights: the same first loss, bit for bit
    from audiojepa.train import open_run
    from audiojepa.loop import train_loop
    by_hand = nested('by_hand')
    front = json.loads((export / 'config.json').read_text())['frontend']   # the statistics the export was trained with
    by_hand = replace(by_hand, frontend=replace(by_hand.frontend, options={'mean': front['mean'], 'std': front['std']}))
    run = open_run(by_hand)
    weights = load_encoder(export)[0].state_dict()
    run.core.encoder.load_state_dict(weights); run.core.target_encoder.load_state_dict(weights)
    train_loop(run); run.accelerator.end_training()
    assert continued.first_loss == run.state.first_loss
    assert continued.first_loss != first.first_loss
    assert json.loads((continued.encoder_dir / 'config.json').read_text())['training']['init_from'] == str(export)
