"`run.compile`: a compiled pretraining run gives the eager run's losses, its checkpoints resume eagerly and the other way round, and a backend that fails leaves the run eager with one warning."
import csv, logging, shutil
from pathlib import Path

import pytest
import torch

from audiojepa.config import apply_overrides
from audiojepa.train import TrainConfig, pretrain

# small enough to compile quickly: one block each, 1 s clips (18 patches), 4 clips, half the patches to predict at
# every step (one shape: one compilation; benchmarks/versus_authors.py runs the default masks, whose sizes change)
TINY = ['data.spec=synthetic:32', 'data.clip_seconds=1', 'data.batch_size=4', 'data.num_workers=0', 'frontend.norm_clips=8',
        'model.encoder.depth=1', 'model.predictor.depth=1', 'masking.options.ratio=0.5', 'schedule.max_steps=20', 'schedule.warmup_steps=2',
        'run.log_every=1', 'run.checkpoint_every=10', 'run.trackers=[]', 'run.progress=false', 'run.threads=1']


def run(out:Path, *extra:str, checkpoint=None):
    "Pretrain `TINY` (with `extra` overrides) into `out`, from `checkpoint` if given; the losses of its metrics.csv."
    pretrain(apply_overrides(TrainConfig(), TINY + [f'run.out={out}', *extra]), checkpoint=checkpoint)
    with open(out / 'metrics.csv') as f: return [float(r['loss']) for r in csv.DictReader(f)]


def test_compiled_run_matches_eager_and_checkpoints_cross(tmp_path):
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    eager = run(tmp_path / 'eager')
    compiled = run(tmp_path / 'compiled', 'run.compile=true')
    assert torch._dynamo.utils.counters['stats']['unique_graphs'] >= 1   # it did compile
    assert len(eager) == len(compiled) == 20
    assert max(abs(a - b) for a, b in zip(eager, compiled)) < 1e-4, (eager, compiled)
    # the compiled run's step-10 checkpoint, resumed without compiling, and the eager run's, resumed compiled
    for source, flag in (('compiled', 'run.compile=false'), ('eager', 'run.compile=true')):
        copy = shutil.copytree(tmp_path / source, tmp_path / f'{source}_resumed')
        resumed = run(copy, flag, checkpoint=copy / 'checkpoints' / 'step_000010')
        assert len(resumed) == 20 and resumed[:10] == (compiled if source == 'compiled' else eager)[:10]
        assert max(abs(a - b) for a, b in zip(eager[10:], resumed[10:])) < 1e-4, (source, eager, resumed)


def test_failing_compiler_falls_back_with_one_warning(tmp_path, monkeypatch, caplog):
    def no_compiler(*args, **kwargs): raise RuntimeError('no C++ compiler found')
    short = ['schedule.max_steps=3', 'run.checkpoint_every=0']
    eager = run(tmp_path / 'eager', *short)
    monkeypatch.setattr(torch, 'compile', no_compiler)
    with caplog.at_level(logging.WARNING):
        fallen_back = run(tmp_path / 'fallback', *short, 'run.compile=true')
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and 'run.compile' in r.getMessage()]
    assert len(warnings) == 1 and 'no C++ compiler found' in warnings[0] and 'goes on uncompiled' in warnings[0], warnings
    assert fallen_back == eager   # eager, to the bit
