"Integration tests of `audiojepa.train`: the pretraining command line, checkpoints, exact resume, preemption, two processes."
import csv, json, os, re, shutil, signal, subprocess, sys, time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file

from audiojepa.synthetic import SyntheticSounds
from audiojepa.models import load_encoder
from audiojepa.config import apply_overrides, config_to_dict, load_config, read_config_file
from audiojepa.data import StepBatches, StepCollator, StepItems, StepMasks
from audiojepa.masking import RandomPatchMask
from audiojepa.train import TrainConfig, main, pretrain, resolve_config

REPO = Path(__file__).resolve().parents[1]
LMMS_SAMPLES = Path('/usr/share/lmms/samples')   # Debian package lmms-common: real instrument and drum recordings
# small and quick: 1 s clips of the tiny preset, one CPU thread, no TensorBoard unless a test wants it
SMALL = ['data.clip_seconds=1', 'data.num_workers=0', 'schedule.warmup_steps=2', 'run.log_every=1',
         'run.trackers=[]', 'run.progress=false', 'run.threads=1']
ENV = {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONWARNINGS': 'ignore'}

def cli(*args, timeout=240, **kw) -> subprocess.CompletedProcess:
    "Run `audiojepa-pretrain ARGS` in a fresh process."
    return subprocess.run([sys.executable, '-m', 'audiojepa.train', *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=ENV, **kw)

def rows(run:Path) -> list[dict]:
    with open(run / 'metrics.csv') as f: return list(csv.DictReader(f))

def write_good_clips(folder:Path, n:int, seconds:float=1.5):
    folder.mkdir(parents=True, exist_ok=True)
    synth = SyntheticSounds(n_clips=n, clip_seconds=seconds, seed=7)
    for i in range(n): sf.write(folder / f'clip{i}.wav', synth[i]['audio'].numpy(), 32000)

def same_state(a:Path, b:Path):
    "Assert two checkpoints hold identical model (+ EMA target) weights and optimiser state."
    wa, wb = load_file(a / 'model.safetensors'), load_file(b / 'model.safetensors')
    assert wa.keys() == wb.keys()
    for k in wa: assert torch.equal(wa[k], wb[k]), k
    oa, ob = (torch.load(p / 'optimizer.bin', weights_only=True) for p in (a, b))
    for i, s in oa['state'].items():
        for k, v in s.items(): assert torch.equal(v, ob['state'][i][k]), (i, k)

def test_config_files():
    "configs/tiny_cpu.yaml is every default written out, key for key; the other configs load."
    assert read_config_file(REPO / 'configs/tiny_cpu.yaml') == config_to_dict(TrainConfig())   # every key, not just the values
    assert load_config(REPO / 'configs/tiny_cpu.yaml', TrainConfig) == TrainConfig()
    base = load_config(REPO / 'configs/paper.yaml', TrainConfig)
    assert (base.model.preset, base.data.clip_seconds, base.run.mixed_precision) == ('base', 10.0, 'bf16')
    # the paper's recipe stays as published whatever the defaults become
    assert (base.frontend.norm_clips, base.model.jepa.var_cov_weight, base.model.export) == (0, 0.0, 'target')
    assert (base.model.jepa.target_norm, base.model.jepa.average_last_k, base.model.jepa.masks_per_clip,
            base.model.jepa.target_view) == ('layernorm', 1, 1, 'full')
    for path in (REPO / 'configs').glob('*.yaml'): load_config(path, TrainConfig)

def test_authors_current_recipe_runs(tmp_path):
    "configs/authors_current.yaml: their front end, ViT-B with rotary positions, the 4 x 768 predictor; three steps train and export."
    cfg = load_config(REPO / 'configs/authors_current.yaml', TrainConfig)
    assert (cfg.frontend.name, cfg.frontend.norm_clips, cfg.model.preset, cfg.model.encoder['positions']) == ('audiojepa-ae16k', 0, 'base', 'rope')
    assert (cfg.model.predictor['depth'], cfg.model.predictor['embed_dim'], cfg.schedule.warmup_steps, cfg.data.batch_size * 8) == (4, 768, 2000, 512)
    assert cfg.masking.options['ratio'] == [0.4, 0.6]
    # its data and widths cut to a CPU test (a ViT-B run writes a 1.7 GB checkpoint): the recipe's front end, positions, norms,
    # predictor depth, masks, objective and schedule run as they are; 1 s: 32 frames of 39 ms, 2 x 8 patches
    small = apply_overrides(cfg, SMALL + [f'run.out={tmp_path}/run', 'data.spec=synthetic:4', 'data.options={}', 'data.batch_size=2',
                                          'schedule.max_steps=3', 'run.mixed_precision=no', 'run.checkpoint_every=0',
                                          'model.encoder.embed_dim=128', 'model.encoder.depth=2', 'model.encoder.num_heads=2',
                                          'model.predictor.embed_dim=128', 'model.predictor.num_heads=2'])
    result = pretrain(small)
    assert result.step == 3 and all(np.isfinite(float(r['loss'])) for r in rows(tmp_path / 'run'))
    encoder, frontend = load_encoder(result.encoder_dir)
    assert (frontend.name, frontend.sample_rate, frontend.n_mels, encoder.config.positions, encoder.config.block_norm_eps) == \
        ('audiojepa-ae16k', 16000, 128, 'rope', 1e-5)
    assert result.encoder_dir.joinpath('config.json').read_text().count('"network": "context"') == 1

def test_authors_current_cites_every_value():
    "Every value of configs/authors_current.yaml names its source in its comment, one of the sources its header lists."
    text = (REPO / 'configs/authors_current.yaml').read_text()
    sources = set(re.findall(r'^#   (\[\w+\])', text, re.M))
    assert sources == {'[issue]', '[authors]', '[convert]', '[audio]', '[paper]', '[here]'}
    values = [line for line in text.splitlines() if re.match(r'\s*\w+:\s*[^#\s]', line)]   # `key: value`, not `key:` of a mapping
    assert len(values) >= 30                                           # the pattern finds them
    uncited = [line for line in values if not any(s in line.partition('#')[2] for s in sources)]
    assert not uncited, uncited

def test_cli_synthetic(tmp_path):
    "The command line end to end: run directory, metrics, checkpoints, TensorBoard, the encoder loads."
    run = tmp_path / 'run'
    res = cli('--out', run, '--max-steps', 6, '--batch-size', 4, '--checkpoint-every', 3, '--seed', 3,
              *SMALL, 'data.spec=synthetic:16', 'run.log_every=2', 'diagnostics.every=2', 'run.trackers=[tensorboard]')
    assert res.returncode == 0, res.stderr
    summary = res.stdout.strip().splitlines()[-1]
    assert summary.startswith('pretrained step 6/6') and summary.endswith(f'encoder exported to {run}/encoder'), summary
    assert 'Traceback' not in res.stderr
    assert sorted(p.name for p in (run / 'checkpoints').iterdir()) == ['step_000003', 'step_000006']
    metrics = rows(run)
    assert [int(r['step']) for r in metrics] == [2, 4, 6]
    assert {'loss', 'lr', 'clips_per_s', 'target_std', 'pred_rank', 'pred_loss', 'oracle_clip_pos', 'var_cov',
            'dist_init', 'cka_init'} <= set(metrics[0])
    assert all(float(r['clips_per_s']) > 0 for r in metrics)
    # the exported (context) encoder moves away from its initialisation, and the oracles are real numbers
    assert 0 < float(metrics[0]['dist_init']) < float(metrics[-1]['dist_init'])
    assert all(0 < float(r['oracle_clip_pos']) < float(r['oracle_global']) for r in metrics)
    cfg = load_config(run / 'config.yaml', TrainConfig)
    assert (cfg.schedule.max_steps, cfg.data.batch_size, cfg.run.seed) == (6, 4, 3)
    assert list((run / 'audiojepa').rglob('events.out.tfevents.*'))
    assert (run / 'skipped.csv').read_text().splitlines() == ['id,reason']
    encoder, frontend = load_encoder(run / 'encoder')
    assert frontend.clip_seconds == 1.0 and encoder.config.embed_dim == 128
    assert frontend.std != 1.0                                             # standardised with the data's statistics
    training = json.loads((run / 'encoder' / 'config.json').read_text())['training']
    assert training == {'network': 'context', 'step': 6, 'max_steps': 6, 'seed': 3, 'preset': 'tiny'}

@pytest.mark.skipif(not LMMS_SAMPLES.is_dir(), reason='needs the lmms-common package (apt-get install lmms-common)')
def test_cli_real_recordings(tmp_path):
    "A folder of real recordings of several formats, rates and channel counts."
    data = tmp_path / 'recordings'
    picked = sorted(p for p in LMMS_SAMPLES.rglob('*') if p.suffix in ('.ogg', '.wav', '.flac'))[::25][:12]
    for p in picked:
        (data / p.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(p, data / p.parent.name / p.name)
    run = tmp_path / 'run'
    res = cli('--data', data, '--out', run, '--max-steps', 3, '--batch-size', 4, *SMALL, 'data.clip_seconds=2')
    assert res.returncode == 0, res.stderr
    assert (run / 'skipped.csv').read_text().splitlines() == ['id,reason']
    assert [int(r['step']) for r in rows(run)] == [1, 2, 3]
    load_encoder(run / 'encoder')

def test_bad_files_are_skipped_and_listed(tmp_path):
    data = tmp_path / 'mixed'
    write_good_clips(data, 6)
    (data / 'empty.wav').write_bytes(b'')
    (data / 'notes.wav').write_text('not audio at all')
    (data / 'cut.flac').write_bytes((data / 'clip0.wav').read_bytes()[:300])
    run = tmp_path / 'run'
    cfg = apply_overrides(TrainConfig(), SMALL + [f'data.spec={data}', f'run.out={run}', 'data.batch_size=4',
                                                  'schedule.max_steps=4'])
    result = pretrain(cfg)
    assert result.step == 4
    with open(run / 'skipped.csv') as f: skipped = {r['id']: r['reason'] for r in csv.DictReader(f)}
    assert set(skipped) == {'empty.wav', 'notes.wav', 'cut.flac'}
    assert all(skipped.values())

BAD_INPUTS = {
    'config key typo': (['schedule.lrr=1e-3'], "did you mean 'schedule.lr'"),
    'override syntax': (['schedule.lr'], 'is not KEY=VALUE'),
    'missing data': (['--data', 'no/such/folder'], "does not exist"),
    'empty folder': (['--data', '{tmp}/empty'], 'no audio files under'),
    'only bad files': (['--data', '{tmp}/bad'], 'no readable audio'),
    'batch larger than data': (['--data', 'synthetic:4', '--batch-size', '8'], 'a step needs 8 clips'),
    'nothing to resume': (['--resume', '{tmp}/empty'], 'no checkpoint there'),
    'config file typo': (['--config', '{tmp}/typo.yaml'], "did you mean 'model.preset'"),
    'unknown preset': (['--preset', 'huge'], "expected one of ['base', 'large', 'small', 'tiny']"),
    'unknown mask': (['masking.name=blocks'], "masking.name: unknown mask 'blocks'; expected one of random, multiblock"),
    'mask option typo': (['masking.options.ratios=0.5'], "masking.options: unknown option 'ratios'; valid keys for 'random': ratio"),
    'bad mask value': (['masking.options.ratio=1.5'], 'masking.options: ratio must be a number or (min, max) range'),
}

@pytest.mark.parametrize('case', BAD_INPUTS)
def test_bad_input_is_one_clear_message(case, tmp_path, monkeypatch, capsys):
    (tmp_path / 'empty').mkdir()
    (tmp_path / 'bad').mkdir()
    (tmp_path / 'bad/broken.wav').write_text('not audio')
    (tmp_path / 'typo.yaml').write_text('model:\n  presett: small\n')
    args, expected = BAD_INPUTS[case]
    argv = [a.format(tmp=tmp_path) for a in args] + ['--out', str(tmp_path / 'run')] + SMALL
    monkeypatch.setattr(sys, 'argv', ['audiojepa-pretrain', *argv])
    with pytest.raises(SystemExit) as exit_info: main()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith('audiojepa-pretrain: error: ') and expected in err[-1], err

class _Clips(torch.utils.data.Dataset):
    def __len__(self): return 16
    def __getitem__(self, i): return {'audio': torch.full((8,), float(i)), 'padding_mask': torch.zeros(8, dtype=torch.bool), 'id': str(i)}

def _step_masks(num_workers:int, seed:int=1, process_index:int=0) -> list:
    "Target masks of micro-steps 3.. through a DataLoader of `num_workers` workers, as training reads a map-style source."
    sampler = StepBatches(16, 4, seed, start=3)
    loader = torch.utils.data.DataLoader(StepItems(_Clips(), sampler), batch_sampler=sampler, num_workers=num_workers,
                                         collate_fn=StepCollator(StepMasks(RandomPatchMask(), (32, 6), seed, process_index)))
    return [(b['micro_step'], b['target_idx']) for b, _ in zip(loader, range(4))]

def test_step_masks_depend_on_seed_step_and_process_not_workers():
    one = _step_masks(0)
    assert [s for s, _ in one] == [3, 4, 5, 6]
    assert all(torch.equal(a, b) for (_, a), (_, b) in zip(one, _step_masks(0)))              # reproducible
    assert all(torch.equal(a, b) for (_, a), (_, b) in zip(one, _step_masks(2)))              # whatever the workers
    assert not torch.equal(one[0][1], one[1][1])                                               # steps differ
    assert not torch.equal(one[0][1], _step_masks(0, seed=2)[0][1])                            # seeds differ
    assert not torch.equal(one[0][1], _step_masks(0, process_index=1)[0][1])                   # processes differ

def test_bad_input_in_a_real_process(tmp_path):
    "The same from the shell: exit status 2, one line, no traceback; an existing run is not overwritten."
    res = cli('--out', tmp_path / 'run', *SMALL, 'optim.lrr=1')
    assert res.returncode == 2 and 'Traceback' not in res.stderr
    assert res.stderr.strip().splitlines() == [
        "audiojepa-pretrain: error: unknown config key 'optim.lrr' (did you mean 'schedule.lr'?); "
        "valid keys of 'optim': betas, eps, grad_clip, grad_accum"]

def test_resume_is_bit_exact(tmp_path):
    "A run stopped at a checkpoint and resumed ends identical to the run done in one go."
    common = SMALL + ['data.spec=synthetic:24', 'data.batch_size=4', 'schedule.max_steps=8', 'run.checkpoint_every=0',
                      'model.encoder.drop_path=0.1']     # drop path: the per-step generator must be restored too
    pretrain(apply_overrides(TrainConfig(), common + [f'run.out={tmp_path}/one_go']))
    first = pretrain(apply_overrides(TrainConfig(), common + [f'run.out={tmp_path}/halves', 'run.stop_at=3']))
    assert first.step == 3 and (tmp_path / 'halves/checkpoints/step_000003').is_dir()
    res = cli('--out', tmp_path / 'halves', '--resume', 'auto')   # the config comes from the checkpoint
    assert res.returncode == 0, res.stderr
    assert 'resuming from' in res.stderr and 'pretrained step 8/8' in res.stdout
    same_state(tmp_path / 'one_go/checkpoints/step_000008', tmp_path / 'halves/checkpoints/step_000008')
    assert [r['loss'] for r in rows(tmp_path / 'one_go')] == [r['loss'] for r in rows(tmp_path / 'halves')]
    # an existing run is never overwritten by accident
    again = cli('--out', tmp_path / 'halves')
    assert again.returncode == 2 and 'already holds a run' in again.stderr

def test_preemption_then_resume(tmp_path):
    "SIGTERM mid-run saves a checkpoint and exits 143; --resume auto finishes identical to an uninterrupted run."
    common = SMALL + ['data.spec=synthetic:24', 'data.batch_size=4', 'schedule.max_steps=100', 'run.checkpoint_every=0']
    run = tmp_path / 'run'
    proc = subprocess.Popen([sys.executable, '-m', 'audiojepa.train', '--out', str(run), *common],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    deadline = time.time() + 600   # generous: on a loaded machine the first steps can take minutes
    while time.time() < deadline and not ((run / 'metrics.csv').is_file() and len(rows(run)) >= 3): time.sleep(0.2)
    assert (run / 'metrics.csv').is_file() and len(rows(run)) >= 3, 'no third row in 600 s'   # else SIGTERM could land before the handler
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert 'SIGTERM received' in err and 'stopped by SIGTERM at step' in out
    stopped = int(out.split('stopped by SIGTERM at step ')[1].split('/')[0])
    assert 3 <= stopped < 100
    assert (run / f'checkpoints/step_{stopped:06d}/trainer_state.json').is_file()
    res = cli('--out', run, '--resume', 'auto')
    assert res.returncode == 0, res.stderr
    pretrain(apply_overrides(TrainConfig(), common + [f'run.out={tmp_path}/reference']))
    same_state(tmp_path / 'reference/checkpoints/step_000100', run / 'checkpoints/step_000100')
    assert [r['step'] for r in rows(run)] == [str(s) for s in range(1, 101)]

def test_two_processes(tmp_path):
    "Two CPU processes (gloo): they split each step, only the main process writes, the encoder loads."
    run = tmp_path / 'run'
    res = subprocess.run([sys.executable, '-m', 'accelerate.commands.launch', '--multi_gpu', '--num_processes', '2',
                          '--num_machines', '1', '--mixed_precision', 'no', '--dynamo_backend', 'no',
                          '-m', 'audiojepa.train', '--out', str(run), '--max-steps', '4', '--batch-size', '4',
                          '--checkpoint-every', '2', *SMALL, 'data.spec=synthetic:32', 'run.trackers=[tensorboard]'],
                         capture_output=True, text=True, timeout=240, env={**ENV, 'CUDA_VISIBLE_DEVICES': ''})
    assert res.returncode == 0, res.stderr
    assert res.stdout.count('pretrained step 4/4') == 1                       # one summary, from the main process
    assert [int(r['step']) for r in rows(run)] == [1, 2, 3, 4]                  # each step logged once
    assert float(rows(run)[-1]['epoch']) == 1.0             # 4 steps x 2 processes x 4 clips = all 32 clips once
    assert all(float(r['clips_per_s']) > 0 for r in rows(run))
    ckpt = run / 'checkpoints/step_000004'
    assert sorted(p.name for p in ckpt.glob('random_states_*')) == ['random_states_0.pkl', 'random_states_1.pkl']
    assert len(list((run / 'audiojepa').rglob('events.out.tfevents.*'))) == 1
    assert not list(run.rglob('*.tmp'))
    state = (ckpt / 'trainer_state.json').read_text()
    assert '"num_processes": 2' in state
    encoder, _ = load_encoder(run / 'encoder')
    assert encoder(torch.zeros(1, 48, 96)).shape == (1, 18, 128)


def test_data_flag_replaces_the_config_files_source_with_its_options():
    "`--config paper.yaml --data FOLDER`: the file's `audio_dir` belongs to its AudioSet source, not to FOLDER."
    config = str(REPO / 'configs' / 'paper.yaml')
    cfg, _ = resolve_config(config, {'data.spec': 'synthetic'})
    assert cfg.data.spec == 'synthetic' and cfg.data.options == {} and cfg.model.preset == 'base'
    kept, _ = resolve_config(config, {})
    assert kept.data.options == {'audio_dir': 'data/audioset/unbalanced'}
    again, _ = resolve_config(config, {'data.spec': 'x.csv'}, ['data.options.audio_dir=clips'])
    assert again.data.options == {'audio_dir': 'clips'}

def test_rotary_positions_train_resume_and_export(tmp_path):
    "`positions: rope` (encoder and predictor): trains, resumes bit-exactly from its own config, exports and reloads as trained."
    common = SMALL + ['data.spec=synthetic:16', 'data.batch_size=4', 'schedule.max_steps=6', 'run.checkpoint_every=0',
                      'model.encoder.positions=rope', 'model.predictor.positions=rope']
    done = pretrain(apply_overrides(TrainConfig(), common + [f'run.out={tmp_path}/one_go']))
    losses = [float(r['loss']) for r in rows(tmp_path / 'one_go')]
    assert done.step == 6 and all(np.isfinite(losses)) and losses[-1] < losses[0]
    pretrain(apply_overrides(TrainConfig(), common + [f'run.out={tmp_path}/halves', 'run.stop_at=3']))
    res = cli('--out', tmp_path / 'halves', '--resume', 'auto')   # positions come back from the checkpoint's config
    assert res.returncode == 0, res.stderr
    same_state(tmp_path / 'one_go/checkpoints/step_000006', tmp_path / 'halves/checkpoints/step_000006')
    assert [r['loss'] for r in rows(tmp_path / 'one_go')] == [r['loss'] for r in rows(tmp_path / 'halves')]
    weights = load_file(tmp_path / 'one_go/checkpoints/step_000006/model.safetensors')
    assert not [k for k in weights if 'position' in k]              # rotary positions are computed, never stored
    encoder, front = load_encoder(tmp_path / 'one_go/encoder')
    assert (encoder.config.positions, type(encoder.blocks[0]).__name__) == ('rope', 'RotaryBlock')
    exported = {k: v for k, v in weights.items() if k.startswith('encoder.')}   # model.export: the context encoder
    assert {f'encoder.{k}' for k in encoder.state_dict()} == set(exported)
    for k, v in encoder.state_dict().items(): assert torch.equal(v, exported[f'encoder.{k}']), k
