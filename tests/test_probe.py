"Integration tests of audiojepa.probe: offline metrics, both folder layouts, the kinds of encoder, baselines, bad input."
import json, os, subprocess, sys, textwrap
from dataclasses import replace

import numpy as np
import pytest
import soundfile as sf
import torch

from audiojepa.audio import FrontendConfig
import audiojepa.embed
import audiojepa.probe
from audiojepa.embed import load_embedder
from audiojepa.models import ViTEncoder, preset, save_encoder
from audiojepa.probe import main
from audiojepa.readout import METRICS, metric_path

torch.set_num_threads(1)
RATE = 16000


def tone(freqs, seconds=0.5, seed=0):
    "A sum of sines with a little noise, float32 at 16 kHz."
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    x = sum(np.sin(2 * np.pi * f * (1 + 0.03 * rng.random()) * t) for f in freqs) + 0.05 * rng.normal(size=len(t))
    return (0.2 * x).astype(np.float32)


def write_classes(root, n_per_class):
    "ROOT/low and ROOT/high, `n_per_class` tones each."
    for label, freq in (('low', 220), ('high', 1760)):
        (root / label).mkdir(parents=True, exist_ok=True)
        for i in range(n_per_class): sf.write(root / label / f'{label}{i}.wav', tone([freq], seed=i + 100 * freq), RATE)
    return root


@pytest.fixture(scope='module')
def folds_root(tmp_path_factory):
    root = write_classes(tmp_path_factory.mktemp('folds'), 6)
    (root / 'low' / 'empty.wav').touch()           # must be skipped and reported, not stop the probe
    return root


@pytest.fixture(scope='module')
def export_dir(tmp_path_factory):
    run = tmp_path_factory.mktemp('run')
    torch.manual_seed(0)
    save_encoder(run / 'encoder', ViTEncoder(preset('tiny')['encoder']), FrontendConfig())
    return run / 'encoder'


def probe(tmp_path, **kwargs):
    "Run the CLI's function in-process and return its JSON report."
    out = tmp_path / 'report.json'
    main(out=str(out), **kwargs)
    return json.loads(out.read_text(), parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))


@pytest.mark.parametrize('hub_offline', [None, '1'])
def test_metrics_load_from_the_package_without_the_hub(hub_offline, tmp_path):
    "A fresh process with an empty Hugging Face cache and an unreachable hub loads and computes every metric."
    env = {k: v for k, v in os.environ.items() if not k.startswith('HF_')}
    env.update(HF_HOME=str(tmp_path / 'hf'), HF_ENDPOINT='http://127.0.0.1:9')
    if hub_offline: env['HF_HUB_OFFLINE'] = hub_offline
    # the script imports evaluate only (not torch): the package's metric folder is found from the package itself
    script = textwrap.dedent("""
        import json, evaluate
        from importlib.resources import files
        load = lambda name: evaluate.load(str(files('audiojepa') / 'metrics' / name / f'{name}.py'))
        scores, targets = [[0.9, 0.6], [0.2, 0.8], [0.6, 0.4]], [[1, 0], [0, 1], [0, 1]]
        out = {name: load(name).compute(predictions=scores, references=targets)
               for name in ('mean_average_precision', 'd_prime')}
        for name in ('accuracy', 'macro_f1'): out[name] = load(name).compute(predictions=[0, 1, 1], references=[0, 1, 0])
        print(json.dumps(out))""")
    res = subprocess.run([sys.executable, '-c', script], env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out['accuracy']['accuracy'] == pytest.approx(2 / 3) and out['macro_f1']['macro_f1'] == pytest.approx(2 / 3)
    assert out['mean_average_precision']['mAP'] == pytest.approx(11 / 12) and out['d_prime']['auc'] == 0.75


def test_metric_scripts_ship_with_the_package():
    from importlib.resources import files
    for name in METRICS: assert metric_path(name) == str(files('audiojepa') / 'metrics' / name / f'{name}.py')
    for name in METRICS: assert os.path.isfile(metric_path(name)), name


@pytest.mark.parametrize('encoder', ['export', 'random:tiny', 'logmel'])
def test_folds_layout_with_each_kind_of_encoder(encoder, folds_root, export_dir, tmp_path, capsys):
    spec = str(export_dir.parent) if encoder == 'export' else encoder
    report = probe(tmp_path, encoder=spec, data=str(folds_root))
    assert report['layout'] == 'folds' and report['folds'] == 5 and report['task'] == 'single-label'
    assert report['n_test'] == 12 and report['n_train'] in (9, 10)
    for name in ('linear', 'knn'): assert 0 <= report[name]['accuracy'] <= 1 and 'macro_f1' in report[name]
    assert [s['id'] for s in report['skipped']] == ['low/empty.wav'] and 'empty' in report['skipped'][0]['reason']
    if encoder == 'logmel': assert report['linear']['accuracy'] >= 0.8 and report['knn']['accuracy'] >= 0.8
    printed = capsys.readouterr().out
    assert 'linear' in printed and 'knn' in printed and 'low/empty.wav' in printed
    if encoder == 'export':      # an export written without a training record; three random baselines by default
        assert report['network'] == 'unknown' and report['training'] == {} and 'exported network: unknown' in printed
        assert report['random']['seeds'] == [0, 1, 2] and 'pretrained − random' in printed
    if encoder == 'random:tiny':   # the mean over three seeds, with their sd and each seed's metrics
        assert report['seeds'] == [0, 1, 2] and len(report['per_seed']) == 3 and 'random ×3' in printed
        for p in ('linear', 'knn'):
            per_seed = [r[p]['accuracy'] for r in report['per_seed']]
            assert report[p]['accuracy'] == pytest.approx(np.mean(per_seed))
            assert report['sd'][p]['accuracy'] == pytest.approx(np.std(per_seed, ddof=1))


def parameters(module):
    return {n: p.detach() for n, p in module.named_parameters()}


def test_random_baselines_never_start_where_pretraining_starts():
    "For run seeds and probe seeds 0..3, no randomly drawn tensor of a baseline equals the pretraining init's."
    from audiojepa.train import TrainConfig, build_frontend_config, build_model
    baselines = [parameters(load_embedder('random:tiny', seed=s).encoder) for s in range(4)]
    for run_seed in range(4):
        cfg = TrainConfig()
        cfg = replace(cfg, run=replace(cfg.run, seed=run_seed))
        model = build_model(cfg, build_frontend_config(cfg))
        for network in (model.encoder, model.target_encoder):
            init = parameters(network)
            drawn = [n for n, p in init.items() if p.numel() > 1 and p.std() > 0]   # not the constant LayerNorm weights
            assert len(drawn) > 10
            for seed, baseline in enumerate(baselines):
                assert all(baseline[n].shape == init[n].shape for n in drawn)      # the same architecture: comparable
                same = [n for n in drawn if torch.equal(baseline[n], init[n])]
                assert not same, f"probe seed {seed} repeats tensors of the run seeded {run_seed}: {same[:3]}"


@pytest.fixture(scope='module')
def small_export(tmp_path_factory):
    "An export of a non-preset architecture and front end, with the training record pretraining writes."
    path = tmp_path_factory.mktemp('small') / 'encoder'
    torch.manual_seed(0)
    encoder = ViTEncoder(replace(preset('tiny')['encoder'], n_mels=64, embed_dim=64, depth=2))
    return save_encoder(path, encoder, FrontendConfig(n_mels=64, num_frames=96, clip_seconds=1.875),
                        training={'network': 'context', 'step': 12, 'seed': 3, 'preset': 'tiny'})


def test_export_is_compared_with_random_encoders_of_its_architecture(small_export, folds_root, tmp_path, capsys, monkeypatch):
    dims, loaders = [], []
    probe_embeddings, make_loader = audiojepa.probe.probe_embeddings, audiojepa.embed.make_loader
    monkeypatch.setattr(audiojepa.probe, 'probe_embeddings', lambda train, *a, **kw: dims.append(train.clip.shape[1]) or probe_embeddings(train, *a, **kw))
    monkeypatch.setattr(audiojepa.embed, 'make_loader', lambda *a, **kw: loaders.append(1) or make_loader(*a, **kw))
    report = probe(tmp_path, encoder=str(small_export), data=str(folds_root), logmel=True)
    assert len(loaders) == 1                                  # the audio is decoded once for the five models
    assert dims == [64, 64, 64, 64, 128]                      # pretrained, 3 random of its architecture, log-mel (mean, std)
    assert report['network'] == 'context' and report['training']['step'] == 12
    rand = report['random']
    assert rand['seeds'] == [0, 1, 2] and len(rand['per_seed']) == 3 and rand['encoder'] == f'random:{small_export}'
    for p in ('linear', 'knn'):
        per_seed = np.array([r[p]['accuracy'] for r in rand['per_seed']])
        assert rand[p]['accuracy'] == pytest.approx(per_seed.mean()) and rand['sd'][p]['accuracy'] == pytest.approx(per_seed.std(ddof=1))
        assert report['gap'][p]['accuracy'] == pytest.approx(report[p]['accuracy'] - per_seed.mean())
        assert report['beats_best_random'][p]['accuracy'] == bool(report[p]['accuracy'] > per_seed.max())
    assert report['main_metric'] == 'accuracy' and set(report['logmel']) >= {'linear', 'knn'}
    printed = capsys.readouterr().out
    assert 'exported network: context (step 12, seed 3, preset tiny)' in printed
    assert 'random ×3' in printed and 'pretrained − random' in printed and 'best seed on accuracy' in printed


def test_random_seeds_zero_probes_the_export_alone(export_dir, folds_root, tmp_path):
    report = probe(tmp_path, encoder=str(export_dir), data=str(folds_root), random_seeds=0)
    assert not {'random', 'gap', 'beats_best_random', 'logmel'} & set(report) and report['linear']['accuracy'] >= 0


def write_multilabel_manifest(root, n):
    "`root/clips.csv` over n tones labelled low, high, or both (in turn)."
    rows = ['path,labels']
    for i in range(n):
        labels = [['low'], ['high'], ['low', 'high']][i % 3]
        sf.write(root / f'{i}.wav', tone([{'low': 220, 'high': 1760}[l] for l in labels], seed=i), RATE)
        rows.append(f'{i}.wav,"{",".join(labels)}"')
    (root / 'clips.csv').write_text('\n'.join(rows) + '\n')


def test_multilabel_gap_is_read_on_map(export_dir, tmp_path, capsys):
    write_multilabel_manifest(tmp_path, 9)
    report = probe(tmp_path, encoder=str(export_dir), data=str(tmp_path / 'clips.csv'), folds=3, random_seeds=2)
    assert report['main_metric'] == 'mAP' and report['random']['seeds'] == [0, 1]
    mean = np.mean([r['knn']['mAP'] for r in report['random']['per_seed']])
    assert report['gap']['knn']['mAP'] == pytest.approx(report['knn']['mAP'] - mean)
    assert 'best seed on mAP' in capsys.readouterr().out


def test_command_line_accepts_dashed_flags(folds_root, tmp_path, monkeypatch, capsys):
    "`python -m audiojepa.probe` and the `audiojepa-probe` entry point read `--random-seeds` as `--random_seeds`."
    out = tmp_path / 'cli.json'
    res = subprocess.run([sys.executable, '-m', 'audiojepa.probe', '--encoder', 'random:tiny', '--data', str(folds_root),
                          '--random-seeds', '2', '--batch-size=4', '--out', str(out)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert json.loads(out.read_text())['seeds'] == [0, 1] and 'random ×2' in res.stdout
    monkeypatch.setattr(sys, 'argv', ['audiojepa-probe', '--encoder', 'random:tiny', '--data', str(folds_root),
                                      '--random_seeds', '1', '--seed=5', '--batch-size', '16', '--out', str(out)])
    main()
    assert json.loads(out.read_text())['seeds'] == [5] and 'random ×1' in capsys.readouterr().out


def test_split_layout(tmp_path):
    root = tmp_path / 'data'
    write_classes(root / 'train', 4); write_classes(root / 'test', 2)
    report = probe(tmp_path, encoder='logmel', data=str(root), k=3)
    assert (report['layout'], report['n_train'], report['n_test'], report['folds']) == ('split', 8, 4, None)
    assert report['linear']['accuracy'] == 1.0 and np.sum(report['confusion']['knn']) == 4


def test_multilabel_manifest_reports_map_and_d_prime(tmp_path):
    write_multilabel_manifest(tmp_path, 12)
    report = probe(tmp_path, encoder='logmel', data=str(tmp_path / 'clips.csv'), folds=3)
    assert report['task'] == 'multi-label' and report['n_test'] == 12
    assert set(report['linear']) == {'mAP', 'd_prime', 'auc'} and report['knn']['mAP'] > 0.5
    assert 'confusion' not in report


def bad_input(tmp_path, capsys, **kwargs):
    with pytest.raises(SystemExit) as exit: main(**kwargs)
    assert exit.value.code == 2
    return capsys.readouterr().err


def test_mismatched_layouts_are_clear_errors(tmp_path, capsys):
    write_classes(tmp_path / 'a' / 'train', 5)
    assert "has a train/ folder but no test/ folder" in bad_input(tmp_path, capsys, encoder='logmel', data=str(tmp_path / 'a'))
    for folder in ('train', 'test', 'dogs'): write_classes(tmp_path / 'b' / folder, 5)
    assert "mixes the split folders" in bad_input(tmp_path, capsys, encoder='logmel', data=str(tmp_path / 'b'))
    (tmp_path / 'flat').mkdir(); sf.write(tmp_path / 'flat' / 'c.wav', tone([440]), RATE)
    assert "no label folders" in bad_input(tmp_path, capsys, encoder='logmel', data=str(tmp_path / 'flat'))
    write_classes(tmp_path / 'd' / 'drums', 5)       # one level too high: ROOT/drums/<label>/<files>
    assert "single label folder, drums/" in bad_input(tmp_path, capsys, encoder='logmel', data=str(tmp_path / 'd'))
    assert "does not exist" in bad_input(tmp_path, capsys, encoder='logmel', data=str(tmp_path / 'nowhere'))


def test_too_few_files_for_the_folds(tmp_path, capsys):
    root = write_classes(tmp_path / 'small', 3)
    err = bad_input(tmp_path, capsys, encoder='logmel', data=str(root))
    assert "5-fold cross-validation needs at least 5 readable clips per class" in err and "'low' (3)" in err
    # counted again after unreadable files are skipped
    root = write_classes(tmp_path / 'broken', 5)
    (root / 'high' / 'high0.wav').write_bytes(b'RIFF....not really')
    err = bad_input(tmp_path, capsys, encoder='logmel', data=str(root))
    assert "'high' (4)" in err


def test_not_an_export(tmp_path, folds_root, capsys):
    (tmp_path / 'enc').mkdir()
    err = bad_input(tmp_path, capsys, encoder=str(tmp_path / 'enc'), data=str(folds_root))
    assert 'not an exported audiojepa encoder' in err
    assert 'unknown preset' in bad_input(tmp_path, capsys, encoder='random:giant', data=str(folds_root))


def test_command_line_prints_no_traceback(tmp_path):
    res = subprocess.run([sys.executable, '-m', 'audiojepa.probe', '--encoder', 'logmel', '--data', str(tmp_path / 'no')],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 2 and 'audiojepa-probe: error:' in res.stderr and 'Traceback' not in res.stderr
