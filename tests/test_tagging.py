"Integration tests of audiojepa.tagging: every model trains and overfits, HLP in the loop, metrics, exact resume, the command line."
import io, json, os, subprocess, sys, tarfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file

import audiojepa.finetune as finetune
import audiojepa.streams
import audiojepa.tagging as tagging
from audiojepa.audio import FrontendConfig
from audiojepa.data import open_source
from audiojepa.hlp import HLP, Ontology, Vocabulary
from audiojepa.models import ViTEncoder, preset, save_encoder
from audiojepa.runs import MetricsLog
from audiojepa.taggers import LabelledClips
from audiojepa.tagging import (TagConfig, build_tagger, hlp_evaluation, tag_config, tagging_metrics, train_tagger)

torch.set_num_threads(1)
RATE = 32000
ROOT = Path(__file__).resolve().parents[1]
# Music > Musical instrument > Keyboard (musical) > Piano, and Musical instrument > Bowed string instrument > Violin
TREE = [('/m/04rlf', 'Music', ['/m/04szw']), ('/m/04szw', 'Musical instrument', ['/m/05148p4', '/m/0l14_3']),
        ('/m/05148p4', 'Keyboard (musical)', ['/m/05r5c']), ('/m/05r5c', 'Piano', []),
        ('/m/0l14_3', 'Bowed string instrument', ['/m/07y_7']), ('/m/07y_7', 'Violin, fiddle', [])]
PIANO, VIOLIN, KEYBOARD = '/m/05r5c', '/m/07y_7', '/m/05148p4'


def tone(freq, seconds, seed):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.3 * np.sin(2 * np.pi * freq * t) + 0.02 * rng.normal(size=len(t))).astype(np.float32)


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    "Piano clips are low tones, violin clips high ones; parents given in some clips only, as in AudioSet."
    root = tmp_path_factory.mktemp('tagdata')
    (root / 'ontology.json').write_text(json.dumps([{'id': i, 'name': n, 'child_ids': c} for i, n, c in TREE]))
    (root / 'classes.csv').write_text('index,mid,display_name\n' + ''.join(f'{j},{i},"{n}"\n' for j, (i, n, _) in enumerate(TREE)))
    rows = []
    for k in range(8):
        piano = k % 2 == 0
        sf.write(root / f'c{k}.wav', tone(220 if piano else 1760, 1.0, k), RATE)
        labels = [PIANO if piano else VIOLIN] + ([KEYBOARD] if piano and k % 4 == 0 else [])
        rows.append(f"c{k}.wav,{';'.join(labels)}")
    (root / 'train.csv').write_text('path,labels\n' + '\n'.join(rows) + '\n')
    sf.write(root / 'long.wav', np.concatenate([tone(220, 1.0, 50), tone(220, 1.5, 51)]), RATE)   # two windows and a half
    (root / 'test.csv').write_text('path,labels\nc0.wav,/m/05r5c\nc1.wav,/m/07y_7;/m/0unknown\nlong.wav,/m/05r5c\n')
    return root


def config(data, out, **changes):
    "A tagging config for `data`; `changes` by their short names, placed where `TagConfig.RENAMED` says they live."
    keys = {'train': str(data / 'train.csv'), 'classes': str(data / 'classes.csv'), 'ontology': str(data / 'ontology.json'),
            'batch_size': 4, 'clip_seconds': 1.0, 'out': str(out), 'progress': False, 'log_every': 1, **changes}
    nested = {}
    for key, value in keys.items():
        section, name = TagConfig.RENAMED[key].split('.')
        nested.setdefault(section, {})[name] = value
    return tag_config(nested)


# SpecAugment off: a stripe over a pure tone's bin would hide the only thing there is to learn
MODELS = [('cnn6', {'width': 0.125, 'spec_augment': False}, 1.0), ('convnext_femto', {'spec_augment': False}, 2.0),
          ('passt', {'arch': 'small', 'embed_dim': 64, 'depth': 1, 'num_heads': 2, 'spec_augment': False}, 1.0)]


@pytest.mark.parametrize('model,options,seconds', MODELS, ids=[m[0] for m in MODELS])
def test_each_model_overfits_a_tiny_batch(model, options, seconds):
    "Sixty Adam steps on the same four clips (dropout on) bring every architecture's training loss well down."
    torch.manual_seed(0)
    net = build_tagger(model, 3, options, clip_seconds=seconds).train()
    x = torch.stack([torch.from_numpy(tone(f, seconds, i)) for i, f in enumerate((220, 440, 880, 1760))])
    y = torch.tensor([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 1]], dtype=torch.float)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    losses = []
    for _ in range(60):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(net(x), y)
        opt.zero_grad(); loss.backward(); opt.step(); losses.append(loss.item())
    assert np.mean(losses[-5:]) < 0.6 * losses[0], losses[::10]


def test_encoder_model_trains_its_head_only(data, tmp_path):
    "encoder:DIR: a linear head on a frozen export; one step of the loop changes the head and nothing else."
    torch.manual_seed(0)
    enc = ViTEncoder(replace(preset('tiny')['encoder'], max_frames=64))
    export = save_encoder(tmp_path / 'enc', enc, FrontendConfig(clip_seconds=64 * 625 / 32000, num_frames=64))
    res = train_tagger(config(data, tmp_path / 'run', model=f'encoder:{export}', max_steps=1))
    state = load_file(next((tmp_path / 'run' / 'checkpoints').glob('step_*/model.safetensors')))
    assert res.step == 1 and {k.split('.')[0] for k in state} == {'embedder', 'head'}
    before = {k: v for k, v in enc.state_dict().items()}
    for k, v in state.items():
        if k.startswith('embedder.encoder.'): torch.testing.assert_close(v, before[k[len('embedder.encoder.'):]])


def test_hlp_targets_are_the_propagated_labels(data, tmp_path, monkeypatch):
    "With hlp='train' (mixup off) the loss sees exactly HLP.propagate of each batch's labels; with 'none' the labels."
    seen = []
    # the step is the fine-tuning loop's (`audiojepa.finetune.FinetuneRun`): its loss sees the targets
    real = finetune.F.binary_cross_entropy_with_logits
    monkeypatch.setattr(finetune.F, 'binary_cross_entropy_with_logits', lambda x, y: seen.append(y.clone()) or real(x, y))
    onto = Ontology.from_json(data / 'ontology.json')
    hlp = HLP.from_ontology(onto, Vocabulary.from_csv(data / 'classes.csv'))
    raw = LabelledClips(open_source(data / 'train.csv'), hlp.vocab).targets
    for mode in ('none', 'train'):
        seen.clear()
        train_tagger(config(data, tmp_path / mode, model='cnn6', model_options={'width': 0.125}, hlp=mode, mixup=0,
                            sampler='random', batch_size=8, max_steps=1))
        got = seen[0].numpy().astype(bool)
        rows = {tuple(r) for r in got}
        want = hlp.propagate(raw) if mode == 'train' else raw
        assert rows == {tuple(r) for r in want}
        if mode == 'train': assert got[:, 0].all()   # every clip is Music after propagation


def test_metrics_match_sklearn():
    from sklearn.metrics import average_precision_score, roc_auc_score
    from scipy.stats import norm
    rng = np.random.default_rng(0)
    y = rng.random((60, 5)) < 0.3
    s = rng.random((60, 5)) + y * 0.5
    m = tagging_metrics(s, y)
    ap = [average_precision_score(y[:, c], s[:, c]) for c in range(5)]
    auc = np.mean([roc_auc_score(y[:, c], s[:, c]) for c in range(5)])
    np.testing.assert_allclose([m['per_class'][str(c)] for c in range(5)], ap)
    np.testing.assert_allclose([m['map'], m['auc'], m['d_prime']], [np.mean(ap), auc, np.sqrt(2) * norm.ppf(auc)])


def test_hlp_evaluation_lists_changed_classes(data):
    onto = Ontology.from_json(data / 'ontology.json')
    hlp = HLP.from_ontology(onto, Vocabulary.from_csv(data / 'classes.csv'))
    y = np.zeros((4, 6), bool); y[[0, 1], 3] = True; y[[2, 3], 5] = True; y[0, 2] = True
    s = np.random.default_rng(0).random((4, 6))
    r = hlp_evaluation(s, y, hlp)
    assert set(r['hlp_changed_classes']) == {'Music', 'Musical instrument', 'Keyboard (musical)', 'Bowed string instrument'}
    kb = r['hlp_changed_classes']['Keyboard (musical)']
    assert (kb['positives'], kb['positives_propagated']) == (1, 2)
    assert kb['ap_difference'] == pytest.approx(r['per_class_propagated']['Keyboard (musical)'] - r['per_class']['Keyboard (musical)'])
    np.testing.assert_allclose(r['map_propagated'], tagging_metrics(s, hlp.propagate(y), hlp.vocab.names)['map'])


def test_resume_is_exact(data, tmp_path):
    "Stopped at step 2 and resumed, a run ends bit-identical to one that never stopped (mixup, SpecAugment, dropout on)."
    changes = dict(model='cnn6', model_options={'width': 0.125}, hlp='train', max_steps=4, checkpoint_every=2)
    train_tagger(config(data, tmp_path / 'straight', **changes))
    train_tagger(config(data, tmp_path / 'resumed', stop_at=2, **changes))
    cfg, ckpt = tagging.resolve_tag_config(flags={'run.out': str(tmp_path / 'resumed')}, resume='auto')
    assert ckpt.name == 'step_000002'
    train_tagger(cfg, ckpt)
    a = load_file(tmp_path / 'straight' / 'checkpoints' / 'step_000004' / 'model.safetensors')
    b = load_file(tmp_path / 'resumed' / 'checkpoints' / 'step_000004' / 'model.safetensors')
    for k in a: assert torch.equal(a[k], b[k]), k
    la = [r['loss'] for r in MetricsLog(tmp_path / 'straight' / 'metrics.csv', 4, tagging.TAG_METRICS).read()]
    lb = [r['loss'] for r in MetricsLog(tmp_path / 'resumed' / 'metrics.csv', 4, tagging.TAG_METRICS).read()]
    assert la == lb and len(la) == 4


def run_cli(*args, cwd):
    env = {**os.environ, 'PYTHONPATH': str(ROOT), 'OMP_NUM_THREADS': '1'}
    return subprocess.run([sys.executable, '-m', 'audiojepa.tagging', *args], capture_output=True, text=True, cwd=cwd, env=env)


def test_cli_report_and_bad_input(data, tmp_path):
    "`python -m audiojepa.tagging`: bad clips skipped with one reason each and listed; report.json on both label sets."
    (data / 'bad.wav').write_bytes(b'not audio')
    rows = [l.split(',', 1) for l in (data / 'train.csv').read_text().splitlines()[1:]]
    (tmp_path / 'train.csv').write_text('path,labels\n' + ''.join(f'{data / p},{l}\n' for p, l in rows) +
                                        f'{data}/bad.wav,/m/05r5c\n{data}/c0.wav,/m/0unknown\n{data}/c1.wav,\n')
    r = run_cli('--model', 'cnn6', '--train', str(tmp_path / 'train.csv'), '--test', str(data / 'test.csv'), '--hlp', 'train',
                '--out', str(tmp_path / 'run'), '--classes', str(data / 'classes.csv'), '--ontology', str(data / 'ontology.json'),
                '--max-steps', '8', '--batch-size', '4', '--clip-seconds', '1', 'model.options={width: 0.125}',
                'data.sampler=random', 'run.progress=false', cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert 'unknown MID /m/0unknown' in r.stderr and 'no labels' in r.stderr
    assert '/m/0unknown' in r.stderr and 'not classes of the model' in r.stderr   # the test clip keeps its known label
    skipped = (tmp_path / 'run' / 'skipped.csv').read_text()
    assert all(s in skipped for s in ('bad.wav', 'unknown MID', 'no labels'))
    rep = json.loads((tmp_path / 'run' / 'report.json').read_text())
    assert {'map', 'map_propagated', 'd_prime', 'per_class'} <= set(rep) and rep['clips'] == 3
    assert set(rep['hlp_changed_classes']) >= {'Music', 'Keyboard (musical)'}


def test_cli_nothing_usable_is_one_clear_error(data, tmp_path):
    (tmp_path / 'train.csv').write_text(f'path,labels\n{data}/c0.wav,/m/0unknown\n{data}/c1.wav,\n')
    r = run_cli('--model', 'cnn6', '--train', str(tmp_path / 'train.csv'), '--out', str(tmp_path / 'run'),
                '--classes', str(data / 'classes.csv'), cwd=tmp_path)
    assert r.returncode == 2 and 'audiojepa-tag: error: ' in r.stderr and 'no usable clip in 2' in r.stderr and 'c0.wav: unknown MID' in r.stderr, r.stderr[-1000:]
    assert 'Traceback' not in r.stderr



def write_shard(path, samples):
    "A webdataset tar: per sample its audio member (FLAC or WAV) and, unless labels is None, a json member {'labels': [...]}."
    def add(tar, name, data):
        info = tarfile.TarInfo(name); info.size = len(data); tar.addfile(info, io.BytesIO(data))
    with tarfile.open(path, 'w') as tar:
        for key, wav, fmt, labels in samples:
            buf = io.BytesIO(); sf.write(buf, wav, RATE, format=fmt)
            add(tar, f'{key}.{fmt.lower()}', buf.getvalue())
            if labels is not None: add(tar, f'{key}.json', json.dumps({'labels': labels}).encode())


@pytest.fixture(scope='module')
def shards(data):
    "Two training shards of piano and violin tones (one clip with an unknown MID, one without labels) and a test shard."
    root = data / 'shards'
    root.mkdir()
    for s in range(2):
        samples = []
        for j in range(4):
            k = 4 * s + j
            piano = k % 2 == 0
            labels = [PIANO if piano else VIOLIN] + ([KEYBOARD] if piano and k % 4 == 0 else [])
            samples.append((f'clip{k}', tone(220 if piano else 1760, 1.0, k), 'FLAC' if j % 2 else 'WAV', labels))
        samples.append((f'odd{s}', tone(440, 1.0, 90 + s), 'FLAC', ['/m/0unknown'] if s == 0 else None))
        write_shard(root / f'train-{s:03d}.tar', samples)
    write_shard(root / 'test-000.tar', [('t0', tone(220, 1.0, 60), 'FLAC', [PIANO]),
                                        ('t1', tone(1760, 1.0, 61), 'WAV', [VIOLIN, '/m/0unknown']),
                                        ('t2', tone(220, 2.5, 62), 'FLAC', [PIANO, KEYBOARD])])
    return root


def test_cli_trains_and_tests_on_webdataset_shards(data, shards, tmp_path):
    "Shards stream: the sampler falls back to the stream's order with one line saying so; skips listed; every test clip scored."
    r = run_cli('--model', 'cnn6', '--train', str(shards / 'train-{000..001}.tar'), '--test', str(shards / 'test-000.tar'),
                '--hlp', 'train', '--out', str(tmp_path / 'run'), '--classes', str(data / 'classes.csv'),
                '--ontology', str(data / 'ontology.json'), '--max-steps', '5', '--batch-size', '4', '--clip-seconds', '1',
                'model_options={width: 0.125}', 'progress=false', cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert 'config key model_options is now model.options' in r.stderr   # keys of earlier versions still read
    assert 'is streamed: no balanced or weighted sampler' in r.stderr and '256-clip shuffle buffer' in r.stderr
    assert 'trained step 5/5' in r.stdout   # an epoch is three batches (ten samples): the stream goes round
    skipped = (tmp_path / 'run' / 'skipped.csv').read_text()
    assert 'train-000.tar:odd0,unknown MID /m/0unknown' in skipped and 'train-001.tar:odd1,no labels' in skipped
    assert 'sampler: random' in (tmp_path / 'run' / 'config.yaml').read_text()
    rep = json.loads((tmp_path / 'run' / 'report.json').read_text())
    assert {'map', 'map_propagated', 'd_prime', 'per_class'} <= set(rep) and rep['clips'] == 3 and rep['skipped'] == []
    assert 'not a class of the model, dropped' in r.stderr   # t1 keeps its Violin label
    r = run_cli('--model', 'cnn6', '--train', str(shards / 'train-{000..001}.tar'), '--out', str(tmp_path / 'bal'),
                '--classes', str(data / 'classes.csv'), 'data.sampler=balanced', cwd=tmp_path)
    assert r.returncode == 2 and 'data.sampler=balanced needs random access' in r.stderr and 'Traceback' not in r.stderr


def test_resume_on_shards_is_exact(data, shards, tmp_path):
    "Stopped mid-epoch (step 4 of three-batch epochs) and resumed, a run on shards ends as one that never stopped."
    changes = dict(train=str(shards / 'train-*.tar'), model='cnn6', model_options={'width': 0.125}, hlp='train',
                   max_steps=5, checkpoint_every=4, shuffle_buffer=3)
    train_tagger(config(data, tmp_path / 'straight', **changes))
    train_tagger(config(data, tmp_path / 'resumed', stop_at=4, **changes))
    state = json.loads((tmp_path / 'resumed' / 'checkpoints' / 'step_000004' / 'trainer_state.json').read_text())
    assert state['positions'] == [[1, 1]]   # epoch 1, one batch of it used
    cfg, ckpt = tagging.resolve_tag_config(flags={'run.out': str(tmp_path / 'resumed')}, resume='auto')
    res = train_tagger(cfg, ckpt)
    assert res.step == 5
    a = load_file(tmp_path / 'straight' / 'checkpoints' / 'step_000005' / 'model.safetensors')
    b = load_file(tmp_path / 'resumed' / 'checkpoints' / 'step_000005' / 'model.safetensors')
    for k in a: assert torch.equal(a[k], b[k]), k


def test_shards_are_scanned_once_per_run(data, shards, tmp_path, monkeypatch):
    "Without a class list the training shards are scanned once, for the vocabulary; not by the stream, a resumed run or the test."
    for s in range(2):
        write_shard(tmp_path / f'train-{s:03d}.tar', [(f'clip{k}', tone(220 if k % 2 == 0 else 1760, 1.0, k), 'WAV',
                                                       [PIANO, KEYBOARD] if k % 2 == 0 else [VIOLIN]) for k in range(3 * s, 3 * s + 3)])
    scans, real = [], audiojepa.streams._tar_samples
    def counting(url, wanted=lambda ext: True):
        if not wanted('wav'): scans.append(Path(url).name)   # a read of the label members alone: a scan for class names
        return real(url, wanted)
    monkeypatch.setattr(audiojepa.streams, '_tar_samples', counting)
    changes = dict(train=str(tmp_path / 'train-*.tar'), test=str(shards / 'test-000.tar'), classes=None, model='cnn6',
                   model_options={'width': 0.125}, hlp='train', max_steps=3)
    train_tagger(config(data, tmp_path / 'run', stop_at=2, **changes))
    assert sorted(scans) == ['train-000.tar', 'train-001.tar']
    assert Vocabulary.from_csv(tmp_path / 'run' / 'classes.csv').mids == (KEYBOARD, PIANO, VIOLIN)
    scans.clear()
    cfg, ckpt = tagging.resolve_tag_config(flags={'run.out': str(tmp_path / 'run')}, resume='auto')
    res = train_tagger(cfg, ckpt)
    assert res.step == 3 and res.report['clips'] == 3 and scans == []


def test_trains_and_tests_from_panns_hdf5(data, tmp_path):
    "A PANNs HDF5 (audio_name, int16 waveform, bool target) for training; AudioSet segments CSV + HDF5 beside it for testing."
    import h5py
    vocab = Vocabulary.from_csv(data / 'classes.csv')
    clips = [(k % 2 == 0, tone(220 if k % 2 == 0 else 1760, 1.0, k)) for k in range(6)]
    with h5py.File(tmp_path / 'train.h5', 'w') as f:
        f['audio_name'] = np.array([f'Y{k:011d}.wav'.encode() for k in range(6)])
        f['waveform'] = np.stack([(w * 32767).astype(np.int16) for _, w in clips])
        f['target'] = np.array([[vocab.mids[c] == (PIANO if piano else VIOLIN) for c in range(len(vocab))] for piano, _ in clips])
        f.attrs['sample_rate'] = RATE
    test = tmp_path / 'test'
    test.mkdir()
    (test / 'class_labels_indices.csv').write_text((data / 'classes.csv').read_text())
    ytids = ['testclip000', 'testclip001']
    (test / 'eval_segments.csv').write_text('# Segments csv\n# num_ytids=2\n# YTID, start_seconds, end_seconds, positive_labels\n'
                                            f'{ytids[0]}, 0.000, 1.000, "{PIANO},{KEYBOARD}"\n{ytids[1]}, 0.000, 1.000, "{VIOLIN}"\n')
    with h5py.File(test / 'eval_segments.h5', 'w') as f:
        f['audio_name'] = np.array([f'Y{y}.wav'.encode() for y in ytids])
        f['waveform'] = np.stack([(tone(f, 1.0, 70 + i) * 32767).astype(np.int16) for i, f in enumerate((220, 1760))])
    res = train_tagger(config(data, tmp_path / 'run', train=str(tmp_path / 'train.h5'), test=str(test / 'eval_segments.csv'),
                              model='cnn6', model_options={'width': 0.125}, hlp='train', max_steps=2))
    rep = json.loads((tmp_path / 'run' / 'report.json').read_text())
    assert res.step == 2 and rep['clips'] == 2 and {'map', 'map_propagated'} <= set(rep)
    assert rep['per_class_propagated'].keys() >= {'Music', 'Piano', 'Violin, fiddle'}

def test_an_audioset_training_csv_brings_its_class_list_and_ontology(data, tmp_path, monkeypatch):
    "No --classes, no --ontology: both beside the training segments CSV (`audioset_file`'s rule), nothing downloaded; gone, one error."
    import re
    cache = tmp_path / 'cache'
    monkeypatch.setenv('AUDIOJEPA_CACHE', str(cache))
    monkeypatch.setattr('urllib.request.urlretrieve', lambda *a, **k: pytest.fail('nothing may be downloaded'))
    aset = tmp_path / 'aset'
    (aset / 'train').mkdir(parents=True)   # the audio folder, found by the CSV's name
    (aset / 'class_labels_indices.csv').write_text((data / 'classes.csv').read_text())
    (aset / 'ontology.json').write_text((data / 'ontology.json').read_text())
    ytids = [f'clip{k:07d}' for k in range(4)]
    for k, y in enumerate(ytids): sf.write(aset / 'train' / f'{y}.wav', tone(220 if k % 2 == 0 else 1760, 1.0, k), RATE)
    (aset / 'train.csv').write_text('# Segments csv\n# YTID, start_seconds, end_seconds, positive_labels\n' +
                                    ''.join(f'{y}, 0.000, 1.000, "{PIANO if k % 2 == 0 else VIOLIN}"\n' for k, y in enumerate(ytids)))
    cfg = tag_config({'data': {'train': str(aset / 'train.csv'), 'batch_size': 2, 'clip_seconds': 1.0}, 'hlp': {'mode': 'train'},
                      'model': {'name': 'cnn6', 'options': {'width': 0.125}}, 'schedule': {'max_steps': 1},
                      'run': {'out': str(tmp_path / 'run'), 'progress': False}})
    assert train_tagger(cfg).step == 1
    assert Vocabulary.from_csv(tmp_path / 'run' / 'classes.csv').mids == tuple(m for m, _, _ in TREE)   # the whole class list
    (aset / 'ontology.json').unlink()
    with pytest.raises(tagging.TagError, match=re.escape(f"no ontology.json: not given (--ontology), not beside {aset / 'train.csv'}, "
                                                         f"not in the cache {cache / 'audioset'}; download it from")):
        train_tagger(replace(cfg, run=replace(cfg.run, out=str(tmp_path / 'run2'))))
    assert not (tmp_path / 'run2').exists()


@pytest.mark.parametrize('name', ['cnn6', 'convnext_femto', 'passt', 'encoder'])
def test_gpu_recipes_are_valid_configs(name):
    "configs/tagging/*.yaml hold only TagConfig keys (none of an earlier version), and the model's public recipe stays their base."
    import yaml
    changes = yaml.safe_load((ROOT / 'configs' / 'tagging' / f'{name}.yaml').read_text())
    assert set(changes) <= {'model', 'data', 'hlp', 'optim', 'schedule', 'run'}
    cfg = tag_config(changes)
    assert cfg.data.clip_seconds == 10.0 and cfg.schedule.max_steps >= 100000
    assert cfg.data.sampler == ('weighted' if cfg.model.name == 'passt' else 'balanced')


def test_sigterm_saves_a_checkpoint_and_resume_auto_finishes(data, tmp_path):
    "SIGTERM finishes the step and seals a checkpoint (exit 143); `--resume auto` then completes the run and its report."
    import signal, time
    args = ['--model', 'cnn6', '--train', str(data / 'train.csv'), '--out', str(tmp_path / 'run'), '--classes',
            str(data / 'classes.csv'), '--ontology', str(data / 'ontology.json'), '--batch-size', '2', '--clip-seconds', '1',
            '--max-steps', '400', 'model.options={width: 0.125}', 'run.log_every=1', 'run.progress=false']
    env = {**os.environ, 'PYTHONPATH': str(ROOT), 'OMP_NUM_THREADS': '1'}
    proc = subprocess.Popen([sys.executable, '-m', 'audiojepa.tagging', *args], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = tmp_path / 'run' / 'metrics.csv'
    deadline = time.time() + 120
    while time.time() < deadline and not (metrics.exists() and len(metrics.read_text().splitlines()) > 2): time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM and 'stopped by SIGTERM' in out, err[-2000:]
    done = list((tmp_path / 'run' / 'checkpoints').glob('step_*/complete.json'))
    assert len(done) == 1
    step = int(done[0].parent.name.split('_')[1])
    assert 0 < step < 400
    r = run_cli(*args[:-5], '--max-steps', str(step + 2), '--resume', 'auto', 'model.options={width: 0.125}', 'run.progress=false', cwd=tmp_path)
    assert r.returncode == 0 and f'trained step {step + 2}/{step + 2}' in r.stdout, r.stderr[-2000:]


def test_published_passt_builds_offline():
    "hear21passt's passt_deit_bd_p16_384 (DeiT-B shaped, distilled) builds without weights and tags a clip."
    torch.manual_seed(0)
    net = build_tagger('passt', 527, {}, clip_seconds=1.0).eval()
    assert 85e6 < sum(p.numel() for p in net.parameters()) < 88e6
    with torch.no_grad(): assert net(torch.randn(1, RATE)).shape == (1, 527)


def test_cli_shards_with_nothing_usable_are_one_clear_error(data, tmp_path):
    "Given a class list, unlabelled and unknown-MID shards are read once, every sample skipped, and the run stops with one line."
    write_shard(tmp_path / 'bad-000.tar', [('a', tone(220, 1.0, 70), 'WAV', None), ('b', tone(220, 1.0, 71), 'FLAC', ['/m/0unknown'])])
    r = run_cli('--model', 'cnn6', '--train', str(tmp_path / 'bad-000.tar'), '--out', str(tmp_path / 'run'),
                '--classes', str(data / 'classes.csv'), '--max-steps', '2', cwd=tmp_path)
    assert r.returncode == 2 and 'audiojepa-tag: error:' in r.stderr, r.stderr[-1000:]
    assert 'no labels' in r.stderr and 'unknown MID /m/0unknown' in r.stderr, r.stderr[-1000:]
    assert f"in WebDatasetSource(['{tmp_path / 'bad-000.tar'}'])" in r.stderr, r.stderr[-1000:]   # the data, not a wrapper class
    assert 'Traceback' not in r.stderr
