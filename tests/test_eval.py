"Evaluation during pretraining (the `eval:` section): its rows, training unchanged by it, resumes, and its numbers against the export's."
import csv, os, subprocess, sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audiojepa.audio import LogMel
from audiojepa.config import apply_overrides
from audiojepa.embed import AudioJEPAEncoder, embed_source
from audiojepa.models import load_encoder
from audiojepa.probe import run_probe
from audiojepa.readout import Evaluator, encoder_features, probe_split
from audiojepa.runs import find_checkpoint
from audiojepa.synthetic import SyntheticSounds
from audiojepa.train import TrainConfig, pretrain

# six steps of four 1 s clips of the tiny preset, checkpoints at 3 and 6, one thread, no trackers (as in test_loop)
SMALL = ['data.spec=synthetic:16', 'data.clip_seconds=1', 'data.batch_size=4', 'data.num_workers=0', 'frontend.norm_clips=4',
         'schedule.max_steps=6', 'schedule.warmup_steps=2', 'run.log_every=2', 'run.checkpoint_every=3', 'run.trackers=[]',
         'run.progress=false', 'run.threads=1']
UNTIMED = ('seconds', 'clips_per_s')


def rows(run_dir:Path) -> list[dict]:
    with open(run_dir / 'metrics.csv') as f: return list(csv.DictReader(f))


def write_labelled(root:Path, n:int, seed:int, families=('harmonic', 'noise_band', 'click_train')) -> Path:
    "`n` SyntheticSounds clips of 0.5 to 1 s as ROOT/<family>/<i>.wav."
    synth = SyntheticSounds(n_clips=n, families=families, clip_seconds=1.0, min_seconds=0.5, seed=seed)
    for i in range(n):
        item = synth[i]
        label = synth.classes[int(item['target'].argmax())]
        (root / label).mkdir(parents=True, exist_ok=True)
        sf.write(root / label / f'{i}.wav', item['audio'][~item['padding_mask']].numpy(), synth.sample_rate)
    return root


@pytest.fixture(scope='module')
def tasks(tmp_path_factory) -> dict:
    "A fixed split (`pairs`: 3 classes, 12 + 6 clips) and a folder for 2-fold cross-validation (`folded`: 3 classes, 12 clips)."
    d = tmp_path_factory.mktemp('eval')
    write_labelled(d / 'pairs/train', 12, seed=1); write_labelled(d / 'pairs/test', 6, seed=2)
    return {'pairs': d / 'pairs', 'folded': write_labelled(d / 'folded', 12, seed=3)}


def evaluated(tasks, *extra) -> list[str]:
    return [f"eval.data=[{tasks['pairs']},{tasks['folded']}]", 'eval.folds=2', 'eval.probes=[knn,linear]', *extra]


def test_eval_rows_at_start_every_and_end_and_training_unchanged(tasks, tmp_path):
    "Eval columns at step 0, every `eval.every` steps and the last; the training itself to the bit as without `eval:`."
    plain = pretrain(apply_overrides(TrainConfig(), SMALL + [f'run.out={tmp_path}/plain']))
    cfg = apply_overrides(TrainConfig(), SMALL + [f'run.out={tmp_path}/eval', 'eval.every=4', 'eval.encoders=[context,target]']
                          + evaluated(tasks))
    hooked = pretrain(cfg)
    a, b = rows(tmp_path / 'plain'), rows(tmp_path / 'eval')
    column = 'eval_pairs_context_knn_accuracy'
    assert [r['step'] for r in b if r[column]] == ['0', '4', '6']
    names = [c for c in b[0] if c.startswith('eval_')]
    assert names == [f'eval_{t}_{e}_{p}_{m}' for e in ('context', 'target') for t in ('pairs', 'folded')
                     for p in ('knn', 'linear') for m in ('accuracy', 'macro_f1')]
    assert all(0 <= float(r[c]) <= 1 for r in b if r[column] for c in names)
    # the non-evaluation columns of the logged rows are those of the run without evaluation
    same = lambda r: {k: v for k, v in r.items() if k not in UNTIMED and not k.startswith('eval_')}
    assert [same(r) for r in b if r['loss']] == [same(r) for r in a]
    assert (plain.first_loss, plain.last_loss) == (hooked.first_loss, hooked.last_loss)
    for name in ('model.safetensors', 'optimizer.bin'):
        assert (tmp_path / 'plain/checkpoints/step_000006' / name).read_bytes() == \
               (tmp_path / 'eval/checkpoints/step_000006' / name).read_bytes()


def test_a_resumed_run_continues_the_eval_rows(tasks, tmp_path):
    cfg = apply_overrides(TrainConfig(), SMALL + [f'run.out={tmp_path}/run', 'eval.every=2'] + evaluated(tasks))
    pretrain(apply_overrides(cfg, ['run.stop_at=3']))
    column = 'eval_folded_context_knn_accuracy'
    assert [r['step'] for r in rows(tmp_path / 'run') if r[column]] == ['0', '2']
    pretrain(cfg, checkpoint=find_checkpoint(tmp_path / 'run'))
    assert [r['step'] for r in rows(tmp_path / 'run') if r[column]] == ['0', '2', '4', '6']   # no second step 0


def test_a_run_resumed_without_eval_keeps_the_earlier_values(tasks, tmp_path):
    cfg = apply_overrides(TrainConfig(), SMALL + [f'run.out={tmp_path}/run', 'eval.every=2'] + evaluated(tasks))
    pretrain(apply_overrides(cfg, ['run.stop_at=3']))
    pretrain(apply_overrides(cfg, ['eval.data=[]']), checkpoint=find_checkpoint(tmp_path / 'run'))
    column = 'eval_pairs_context_knn_accuracy'
    assert [r['step'] for r in rows(tmp_path / 'run') if r[column]] == ['0', '2']
    assert [r['step'] for r in rows(tmp_path / 'run') if r['loss']] == ['2', '3', '4', '6']   # 3: where the first invocation stopped


def test_the_hook_measures_the_export_as_the_probe_does(tasks, tmp_path):
    "The last eval row equals `probe_split` on `encoder_features` of the export; `audiojepa-probe` finds the same."
    cfg = apply_overrides(TrainConfig(), SMALL + [f'run.out={tmp_path}/run', 'eval.every=3'] + evaluated(tasks))
    pretrain(cfg)
    last = rows(tmp_path / 'run')[-1]
    assert last['step'] == '6'
    encoder, fc = load_encoder(tmp_path / 'run/encoder')
    evaluator = Evaluator(cfg.eval, fc)
    features = encoder_features(encoder, LogMel(fc))
    # the fixed split by hand: fit on the 12 training clips, score the 6 test clips
    pairs = evaluator.tasks['pairs']
    x = evaluator.features(pairs, features)
    (fit, scored), = pairs.splits
    by_hand = probe_split(x[fit], pairs.targets[fit], x[scored], pairs.targets[scored], ['knn', 'linear'])
    for p in ('knn', 'linear'):
        for m in ('accuracy', 'macro_f1'): assert float(last[f'eval_pairs_context_{p}_{m}']) == by_hand[p][m], (p, m)
    # the folds by the evaluator, as logged
    assert {k: float(v) for k, v in last.items() if k.startswith('eval_folded')} == \
           {k: v for k, v in evaluator.evaluate(features, 'context').items() if k.startswith('eval_folded')}
    # audiojepa-probe on the export: the same clip embeddings, the same numbers
    embedder = AudioJEPAEncoder.from_pretrained(tmp_path / 'run/encoder', sampling_rate=None)
    emb = embed_source(embedder, tasks['pairs'] / 'train', progress=False)
    assert np.allclose(emb.clip, x[fit], atol=1e-5), np.abs(emb.clip - x[fit]).max()
    for name in ('pairs', 'folded'):
        report = run_probe(str(tmp_path / 'run/encoder'), tasks[name], folds=2, random_seeds=0)
        for p in ('knn', 'linear'):
            assert report[p]['accuracy'] == pytest.approx(float(last[f'eval_{name}_context_{p}_accuracy']), abs=1e-9), (name, p)


def launch_two(tmp_path:Path, *args) -> subprocess.CompletedProcess:
    "`audiojepa-pretrain ARGS` on two CPU processes joined over gloo, as test_train launches them."
    return subprocess.run([sys.executable, '-m', 'accelerate.commands.launch', '--multi_gpu', '--num_processes', '2',
                           '--num_machines', '1', '--mixed_precision', 'no', '--dynamo_backend', 'no', '-m', 'audiojepa.train',
                           '--out', str(tmp_path / 'run'), *SMALL, *args],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONWARNINGS': 'ignore', 'CUDA_VISIBLE_DEVICES': ''})


def test_two_processes_evaluate_on_the_main_one(tasks, tmp_path):
    "Under a two-process launch the main process evaluates and logs once; bad eval data stops both before training."
    res = launch_two(tmp_path, f"eval.data=[{tasks['pairs']}]", 'eval.every=2')
    assert res.returncode == 0, res.stderr[-3000:]
    assert [r['step'] for r in rows(tmp_path / 'run') if r['eval_pairs_context_knn_accuracy']] == ['0', '2', '4', '6']
    assert res.stderr.count('eval step 2:') == 1
    bad = launch_two(tmp_path / 'bad', f"eval.data=[{tmp_path}/nowhere]")
    assert bad.returncode != 0 and bad.stderr.count('audiojepa-pretrain: error: eval.data:') == 1, bad.stderr[-3000:]
    assert not (tmp_path / 'bad/run/metrics.csv').exists()
