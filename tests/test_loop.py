"The training loop every trainer shares: its curves, its hooks (which must not change training), and configs of earlier versions."
import csv, json, random
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from audiojepa.config import apply_overrides
from audiojepa.loop import Hook, ScheduleSection, ema_at, lr_at
from audiojepa.runs import MARKER, find_checkpoint
from audiojepa.train import TrainConfig, pretrain, resolve_config

SMALL = ['data.spec=synthetic:16', 'data.clip_seconds=1', 'data.batch_size=4', 'data.num_workers=0', 'frontend.norm_clips=4',
         'schedule.max_steps=6', 'schedule.warmup_steps=2', 'run.log_every=2', 'run.checkpoint_every=3', 'run.trackers=[]',
         'run.progress=false', 'run.threads=1']


def rows(run_dir:Path) -> list[dict]:
    with open(run_dir / 'metrics.csv') as f: return list(csv.DictReader(f))


def test_ema_schedule_rises_on_a_cosine():
    cfg = ScheduleSection(max_steps=100, ema_start=0.99, ema_end=1.0)
    values = [ema_at(s, cfg) for s in range(101)]
    assert all(b >= a for a, b in zip(values, values[1:]))
    assert values[0] == pytest.approx(0.99) and values[50] == pytest.approx(0.995) and ema_at(500, cfg) == 1.0


def test_lr_curves_reach_their_ends():
    cosine = ScheduleSection(max_steps=50, warmup_steps=5, lr=1e-3, min_lr=1e-5)
    assert lr_at(4, cosine) == pytest.approx(1e-3) and lr_at(50, cosine) == pytest.approx(1e-5)
    flat = ScheduleSection(max_steps=50, warmup_steps=5, lr_curve='constant', lr=1e-3)
    assert lr_at(0, flat) == pytest.approx(2e-4) and lr_at(49, flat) == 1e-3


class Meddler(Hook):
    "A hook that draws from every generator and leaves the model in eval mode: the loop must undo both."
    every, at_start, columns = 3, True, ('meddled',)
    def __init__(self): self.calls = []
    def __call__(self, run, step):
        self.calls.append(step)
        run.model.eval()
        return {'meddled': float(torch.rand(()) + np.random.rand() + random.random())}


def test_a_hook_does_not_change_training(tmp_path):
    plain = pretrain(apply_overrides(TrainConfig(), SMALL + [f'run.out={tmp_path}/plain']))
    hook = Meddler()
    hooked = pretrain(apply_overrides(TrainConfig(), SMALL + [f'run.out={tmp_path}/hooked']), hooks=[hook])
    assert hook.calls == [0, 3, 6] and (plain.first_loss, plain.last_loss) == (hooked.first_loss, hooked.last_loss)
    a, b = rows(tmp_path / 'plain'), rows(tmp_path / 'hooked')
    logged = [r for r in b if r['loss']]
    assert [r['step'] for r in b] == ['0', '2', '3', '4', '6'] and [r['step'] for r in logged] == ['2', '4', '6']
    skip = {'seconds', 'clips_per_s'}
    assert [{k: v for k, v in r.items() if k not in skip} for r in a] == \
           [{k: v for k, v in r.items() if k not in skip | {'meddled'}} for r in logged]
    assert all(r['meddled'] for r in b if r['step'] in ('0', '3', '6'))
    for name in ('model.safetensors', 'optimizer.bin'):
        assert (tmp_path / 'plain/checkpoints/step_000006' / name).read_bytes() == \
               (tmp_path / 'hooked/checkpoints/step_000006' / name).read_bytes()


def test_a_resumed_run_continues_the_hook_rows(tmp_path):
    cfg = apply_overrides(TrainConfig(), SMALL + [f'run.out={tmp_path}/run'])
    pretrain(apply_overrides(cfg, ['run.stop_at=3']), hooks=[Meddler()])
    assert [r['step'] for r in rows(tmp_path / 'run')] == ['0', '2', '3']
    hook = Meddler()
    pretrain(cfg, checkpoint=find_checkpoint(tmp_path / 'run'), hooks=[hook])
    assert hook.calls == [6]                                   # no second step-0 call on a resumed run
    assert [r['step'] for r in rows(tmp_path / 'run')] == ['0', '2', '3', '4', '6']


def test_a_saved_config_of_an_earlier_version_resumes(tmp_path, caplog):
    "A checkpoint whose config.yaml has the keys where an earlier version had them (model.jepa.ema_*, run.export)."
    cfg = apply_overrides(TrainConfig(), SMALL + [f'run.out={tmp_path}/run', 'schedule.ema_start=0.99', 'model.export=target'])
    pretrain(apply_overrides(cfg, ['run.stop_at=3']))
    checkpoint = find_checkpoint(tmp_path / 'run')
    saved = yaml.safe_load((checkpoint / 'config.yaml').read_text())
    saved['model']['jepa'].update(ema_start=saved['schedule'].pop('ema_start'), ema_end=saved['schedule'].pop('ema_end'))
    saved['run']['export'] = saved['model'].pop('export')
    (checkpoint / 'config.yaml').write_text(yaml.safe_dump(saved, sort_keys=False))
    marker = json.loads((checkpoint / MARKER).read_text())           # the old file as it was sealed
    marker['files']['config.yaml'] = (checkpoint / 'config.yaml').stat().st_size
    (checkpoint / MARKER).write_text(json.dumps(marker))
    resumed, found = resolve_config(flags={'run.out': str(tmp_path / 'run')}, resume='auto')
    assert found == checkpoint and (resumed.schedule.ema_start, resumed.model.export) == (0.99, 'target')
    assert 'config key run.export is now model.export' in caplog.text
    result = pretrain(resumed, found)
    assert result.step == 6 and (tmp_path / 'run/encoder/model.safetensors').is_file()
