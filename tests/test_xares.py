"Integration tests of audiojepa-xares: a private X-ARES task from generated audio through X-ARES' own pipeline, offline; its caches; bad input."
import json, os, subprocess, sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip('xares', reason="X-ARES is the 'xares' extra (pip install -e '.[xares]')")

from audiojepa.xares import main, suite_tasks

RATE = 16000


def clip(label:str, rng) -> np.ndarray:
    "A tone (150-300 Hz) or a noise burst of 0.3-1.2 s: two classes a log-mel tells apart, of different lengths."
    t = np.arange(int(rng.uniform(0.3, 1.2) * RATE)) / RATE
    x = 0.3 * np.sin(2 * np.pi * rng.uniform(150, 300) * t) if label == 'tone' else 0.2 * rng.standard_normal(len(t))
    return x.astype(np.float32)


def write_split_folder(root:Path, n_train:int=16, n_test:int=6, seed:int=0) -> Path:
    rng = np.random.default_rng(seed)
    for split, n in (('train', n_train), ('test', n_test)):
        for label in ('tone', 'noise'):
            (root / split / label).mkdir(parents=True)
            for i in range(n): sf.write(root / split / label / f'{label}{i}.wav', clip(label, rng), RATE)
    return root


def xares_cli(*args, env=None):
    "audiojepa-xares as a user runs it, in a process of its own (no network is needed or used)."
    return subprocess.run([sys.executable, '-c', 'from audiojepa.xares import main; main()', *args], capture_output=True,
                          text=True, timeout=600, env={**os.environ, 'HF_HUB_OFFLINE': '1', 'OMP_NUM_THREADS': '2'})


@pytest.fixture(scope='module')
def toy(tmp_path_factory):
    return write_split_folder(tmp_path_factory.mktemp('data') / 'toy')


def test_local_task_through_xares_pipeline(toy, tmp_path):
    "X-ARES encodes the private task, trains its MLP and runs its kNN; the table holds both; a second run reuses the encoding."
    env, out = tmp_path / 'env', tmp_path / 'results' / 'xares.json'
    args = ('--encoder', 'random:tiny', '--local', f'toy={toy}', '--env', str(env), '--out', str(out), '--epochs', '30')
    first = xares_cli(*args)
    assert first.returncode == 0, first.stderr[-3000:]
    report = json.loads(out.read_text())
    (row,) = report['tasks']
    assert report['complete'] and row['task'] == 'toy' and row['encoded'] == 'now'
    assert (row['n_test'], row['weight'], row['metric']) == (12, 12, 'accuracy')
    assert 0 <= row['mlp'] <= 1 and 0 <= row['knn'] <= 1
    assert row['mlp'] > 0.5, row                       # two balanced classes: chance is 0.5
    assert report['weighted_mean']['all'] == {'mlp': row['mlp'], 'knn': row['knn']}
    assert report['weighted_mean']['public'] is None   # a local task is private
    table = out.with_suffix('.md').read_text()
    assert f"| toy | {row['mlp']:.3f} | {row['knn']:.3f} | accuracy | 12 | 12 | local |" in table
    # X-ARES' layout: the audio tars with its ready flag, the embeddings under the encoder's own name
    task_dir = env / 'toy'
    assert {p.name for p in task_dir.glob('*.tar')} == {'train-000000.tar', 'valid-000000.tar', 'test-000000.tar'}
    assert (task_dir / '.audio_tar_ready').exists()
    encoded = sorted((task_dir / 'embeddings' / row['encoder']).glob('wds-encoded-*.tar'))
    assert len(encoded) == 3 and (task_dir / 'embeddings' / row['encoder'] / '.encoded_tar_ready').exists()
    stamps = {p: p.stat().st_mtime_ns for p in [*encoded, *task_dir.glob('*.tar')]}

    second = xares_cli(*args)
    assert second.returncode == 0, second.stderr[-3000:]
    (again,) = json.loads(out.read_text())['tasks']
    assert again['encoded'] == 'cached' and (again['mlp'], again['knn']) == (row['mlp'], row['knn'])
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps          # neither the tars nor the embeddings were rewritten

    # other head settings: the scores X-ARES cached are not served for them, the embeddings still are
    third = xares_cli(*args[:-1], '5')
    assert third.returncode == 0, third.stderr[-3000:]
    (other,) = json.loads(out.read_text())['tasks']
    assert other['encoded'] == 'cached' and {p: p.stat().st_mtime_ns for p in encoded} == {p: stamps[p] for p in encoded}
    assert json.loads((task_dir / 'checkpoints' / row['encoder'] / 'audiojepa_settings.json').read_text())['epochs'] == 5


def test_another_encoder_gets_its_own_embeddings(toy, tmp_path):
    "X-ARES keys its caches by the encoder's class name; two random inits must not share them."
    from audiojepa.xares import run_xares
    env = tmp_path / 'env'
    names = [run_xares('random:tiny', local={'toy': toy}, env=env, epochs=2, seed=s)['tasks'][0]['encoder'] for s in (0, 1)]
    assert names[0] != names[1]
    assert all((env / 'toy' / 'embeddings' / n / '.encoded_tar_ready').exists() for n in names)


def one_line_error(capsys, monkeypatch, *argv) -> str:
    monkeypatch.setattr(sys, 'argv', ['audiojepa-xares', *argv])
    with pytest.raises(SystemExit) as exit: main()
    err = capsys.readouterr().err.strip()
    assert exit.value.code == 2 and len(err.splitlines()) == 1, err
    return err


def test_bad_input_is_one_line(toy, tmp_path, capsys, monkeypatch):
    env = tmp_path / 'env'
    one = tmp_path / 'one'
    (one / 'tone').mkdir(parents=True)
    for i in range(3): sf.write(one / 'tone' / f'{i}.wav', clip('tone', np.random.default_rng(i)), RATE)
    err = one_line_error(capsys, monkeypatch, '--encoder', 'random:tiny', '--local', f'one={one}', '--env', str(env))
    assert str(one) in err and 'single label folder' in err

    broken = tmp_path / 'broken'
    write_split_folder(broken, n_train=3, n_test=2)
    (broken / 'test' / 'noise' / 'garbage.wav').write_bytes(b'RIFF not really a wave file')
    err = one_line_error(capsys, monkeypatch, '--encoder', 'random:tiny', '--local', f'broken={broken}', '--env', str(env))
    assert f"cannot read {broken / 'test' / 'noise' / 'garbage.wav'}" in err
    assert not any(env.iterdir())                      # no task, no partial task left behind

    err = one_line_error(capsys, monkeypatch, '--encoder', 'random:tiny', '--tasks', 'esc50,no_such_task', '--env', str(env))
    assert "X-ARES has no task 'no_such_task'" in err and 'esc50' in err
    err = one_line_error(capsys, monkeypatch, '--encoder', 'random:tiny', '--local', str(toy))
    assert 'expected NAME=FOLDER' in err
    err = one_line_error(capsys, monkeypatch, '--encoder', 'random:huge', '--local', f'toy={toy}', '--env', str(env))
    assert 'unknown preset' in err
    err = one_line_error(capsys, monkeypatch, '--encoder', 'random:tiny', '--local', f'toy={toy}', '--out', str(tmp_path / 'x.txt'))
    assert '--out must be a .json file' in err
    assert not (tmp_path / 'x.txt').exists() and not any(env.iterdir())


def test_suite_tasks_are_xares_own():
    "The names --tasks takes are X-ARES' task files; 'all' is every one of them."
    tasks = suite_tasks()
    assert {'esc50', 'gtzan', 'speechcommandsv1', 'vocalsound'} <= set(tasks)
    assert all(path.startswith('tasks/') and path.endswith('_task.py') for path in tasks.values())
