"""Runs that survive faults: killed while writing, a full disk, one process of two failing, files that vanish after listing.

A kill is simulated in-process by raising `Killed`, a `BaseException` that no `except Exception` stops, so no cleanup
runs, as after `kill -9`; `benchmarks/faults.py` kills real processes at random moments.
"""
import csv, errno, os, re, shutil, socket, subprocess, sys
from pathlib import Path

import pytest
import webdataset as wds
from accelerate import Accelerator

from audiojepa import runs, train
from audiojepa.synthetic import SyntheticSounds
from audiojepa.models import load_encoder
from audiojepa.config import apply_overrides
from audiojepa.runs import MARKER, checkpoint_problem, find_checkpoint, resume_checkpoint
from audiojepa.train import TrainConfig, main, pretrain
from test_train import ENV, SMALL, same_state, write_good_clips

# 6 steps, a checkpoint every 2: the faults below strike the second one (step 4)
RUN = SMALL + ['data.spec=synthetic:16', 'data.batch_size=4', 'schedule.max_steps=6', 'run.checkpoint_every=2',
               'model.encoder.drop_path=0.1']

class Killed(BaseException): "The process dies here."

def config(out:Path, *extra) -> TrainConfig: return apply_overrides(TrainConfig(), RUN + [f'run.out={out}', *extra])

def leftovers(run:Path) -> list[str]: return sorted(p.name for p in run.rglob('*') if p.suffix in ('.tmp', '.old'))

@pytest.fixture(scope='module')
def reference(tmp_path_factory) -> Path:
    "The run done in one go."
    run = tmp_path_factory.mktemp('reference') / 'run'
    pretrain(config(run))
    return run

def die(monkeypatch, point:str):
    "Make the run die at `point` of its step-4 checkpoint."
    if point == 'state written, no marker':
        real = Accelerator.save_state
        def save_state(self, output_dir=None, **kw):
            real(self, output_dir, **kw)
            if 'step_000004' in str(output_dir): raise Killed
        monkeypatch.setattr(Accelerator, 'save_state', save_state)
    else:   # a rename of `seal_dir`: the checkpoint's (marker written, flushed), or the export's (the old one moved aside)
        name = {'marker written, not renamed': 'step_000004.tmp', 'old export moved aside': 'encoder.tmp'}[point]
        real, renames = Path.rename, []
        def rename(self, target):
            renames.append(self.name)
            if self.name == name and 'step_000004.tmp' in renames: raise Killed
            return real(self, target)
        monkeypatch.setattr(Path, 'rename', rename)

@pytest.mark.parametrize('point', ['state written, no marker', 'marker written, not renamed', 'old export moved aside'])
def test_killed_while_writing(point, reference, tmp_path, monkeypatch):
    "Whatever moment the kill strikes, `--resume auto` takes a complete checkpoint and ends identical to the run done in one go."
    run = tmp_path / 'run'
    with monkeypatch.context() as m:
        die(m, point)
        with pytest.raises(Killed): pretrain(config(run))
    assert leftovers(run)                                      # the kill left a temporary folder ...
    expected = 'step_000004' if point == 'old export moved aside' else 'step_000002'
    assert find_checkpoint(run).name == expected               # ... which is never taken for a checkpoint
    assert resume_checkpoint('auto', run).name == expected
    result = pretrain(config(run), checkpoint=resume_checkpoint('auto', run))
    assert result.step == 6 and leftovers(run) == []
    same_state(reference / 'checkpoints/step_000006', run / 'checkpoints/step_000006')
    assert (reference / 'encoder/model.safetensors').read_bytes() == (run / 'encoder/model.safetensors').read_bytes()

def full_disk(monkeypatch, how:str):
    "Make the disk full for the step-4 checkpoint: seen before writing, or met while writing (with or without an errno)."
    real_usage, real_save, real_export, full = runs.shutil.disk_usage, Accelerator.save_state, train.export_encoder, []
    def disk_usage(path):
        usage = real_usage(path)
        return usage._replace(free=0) if full else usage
    def save_state(self, output_dir=None, **kw):
        if 'step_000004' in str(output_dir) and how != 'before writing':
            Path(output_dir).mkdir(parents=True)
            (Path(output_dir) / 'model.safetensors').write_bytes(b'\0' * 1000)    # what fitted
            full.append(True)
            if how == 'ENOSPC while writing': raise OSError(errno.ENOSPC, 'No space left on device')
            raise RuntimeError('[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534')   # torch.save's way
        return real_save(self, output_dir, **kw)
    def export_and_fill(*args, **kw):   # 'before writing': the disk fills up right after step 2's checkpoint and export
        path = real_export(*args, **kw)
        full.append(True)
        return path
    monkeypatch.setattr(runs.shutil, 'disk_usage', disk_usage)
    if how == 'before writing': monkeypatch.setattr(train, 'export_encoder', export_and_fill)
    else: monkeypatch.setattr(Accelerator, 'save_state', save_state)

@pytest.mark.parametrize('how', ['ENOSPC while writing', 'a full disk, no errno', 'before writing'])
def test_full_disk(how, tmp_path, monkeypatch, capsys):
    "One clear error naming the checkpoint and the space it needs; the previous checkpoint and export stay usable."
    run = tmp_path / 'run'
    with monkeypatch.context() as m:
        full_disk(m, how)
        m.setattr(sys, 'argv', ['audiojepa-pretrain', '--out', str(run), *RUN])
        with pytest.raises(SystemExit) as exit_info: main()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f'audiojepa-pretrain: error: not enough disk space to write {run}/checkpoints/step_000004: '
                              f'it needs about '), err[-1]
    needed = float(re.search(r'it needs about ([\d.]+) MB', err[-1])[1]) * 1e6
    written = sum(p.stat().st_size for d in ('checkpoints/step_000002', 'encoder') for p in (run / d).rglob('*') if p.is_file())
    assert written <= needed <= 1.3 * written                  # the estimate: the state's tensors, the export, 1 MB
    assert 'Traceback' not in '\n'.join(err)
    assert sorted(p.name for p in (run / 'checkpoints').iterdir()) == ['step_000002'] and leftovers(run) == []
    assert checkpoint_problem(run / 'checkpoints/step_000002') is None
    assert load_encoder(run / 'encoder')[0] is not None
    # space freed, the run goes on from step 2
    result = pretrain(config(run), checkpoint=resume_checkpoint('auto', run))
    assert result.step == 6 and leftovers(run) == []

# ---------------------------------------------------------------- one process of two fails

DRIVER = '''
import errno, os, sys, time
from accelerate import Accelerator
from audiojepa import train
failure, rank = sys.argv.pop(1), int(os.environ['RANK'])
get_item, save_state = train.StepItems.__getitem__, Accelerator.save_state
def failing_item(self, key):
    if rank == 1 and key[0] >= 2:
        if failure == 'data error': raise OSError(errno.EIO, 'Input/output error', 'clip3.wav')
        if failure == 'data gone': self.source.read = lambda i: open('/gone/' + self.source.ids[i], 'rb')   # its mount went away
    return get_item(self, key)
def failing_save(self, output_dir=None, **kw):
    if rank == 0 and 'step_000004' in str(output_dir): raise OSError(errno.ENOSPC, 'No space left on device')
    return save_state(self, output_dir, **kw)
train.StepItems.__getitem__, Accelerator.save_state = failing_item, failing_save
if failure == 'disk full, slow peer' and rank == 1:   # rank 1 is inside its write when rank 0 removes the folder
    import torch
    torch_save = torch.save
    def slow_save(obj, f, *args, **kw):
        if 'step_000004.tmp' in str(f): time.sleep(3)
        return torch_save(obj, f, *args, **kw)
    torch.save = slow_save
sys.exit(train.main())
'''

def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]

@pytest.mark.parametrize('failure, message', [('data error', 'OSError: [Errno 5] Input/output error'),
                                              ('data gone', 'process 1 of 2: no readable audio'),
                                              ('disk full', 'not enough disk space to write'),
                                              ('disk full, slow peer', 'not enough disk space to write')])
def test_one_process_fails(failure, message, tmp_path):
    """Two processes joined over gloo, started as a cluster scheduler starts them (no launcher to stop the others): when
    one fails, both exit non-zero in bounded time, the failure is printed once, and the other says in one line why it stops."""
    (tmp_path / 'driver.py').write_text(DRIVER)
    write_good_clips(tmp_path / 'clips', 16)
    env = {**ENV, 'CUDA_VISIBLE_DEVICES': '', 'MASTER_ADDR': '127.0.0.1', 'MASTER_PORT': str(free_port()),
           'WORLD_SIZE': '2', 'LOCAL_WORLD_SIZE': '2'}
    args = [sys.executable, str(tmp_path / 'driver.py'), failure, '--out', str(tmp_path / 'run'), '--data', str(tmp_path / 'clips'),
            '--max-steps', '6', '--batch-size', '4', '--checkpoint-every', '2', *SMALL]
    procs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env={**env, 'RANK': str(r), 'LOCAL_RANK': str(r)}) for r in range(2)]
    try: outputs = [p.communicate(timeout=180)[0] for p in procs]
    finally:
        for p in procs: p.kill()
    failing = 0 if failure.startswith('disk full') else 1
    assert all(p.returncode != 0 for p in procs), [(p.returncode, o[-3000:]) for p, o in zip(procs, outputs)]
    assert '\n'.join(outputs).count(message) == 1, outputs
    survivor = outputs[1 - failing]
    assert survivor.count('lost contact with another process') == 1 and 'Traceback' not in survivor, survivor

# ---------------------------------------------------------------- files that vanish after listing

def write_shards(folder:Path, shards:int, per_shard:int):
    folder.mkdir(parents=True)
    synth = SyntheticSounds(n_clips=shards * per_shard, clip_seconds=1.0, seed=7)
    for s in range(shards):
        with wds.TarWriter(str(folder / f'shard-{s}.tar')) as sink:
            for j in range(per_shard):
                sink.write({'__key__': f'clip{s * per_shard + j}', 'wav': wav_bytes(synth[s * per_shard + j]['audio'])})

def wav_bytes(audio) -> bytes:
    import io, soundfile as sf
    buf = io.BytesIO(); sf.write(buf, audio.numpy(), 32000, format='WAV'); return buf.getvalue()

def skipped(run:Path) -> dict:
    with open(run / 'skipped.csv') as f: return {r['id']: r['reason'] for r in csv.DictReader(f)}

@pytest.mark.parametrize('kind', ['folder', 'shards'])
def test_files_that_vanish_after_listing_are_skipped_and_listed(kind, tmp_path, monkeypatch):
    data = tmp_path / 'data'
    if kind == 'folder': write_good_clips(data, 8); spec = str(data)
    else: write_shards(data, 4, 3); spec = str(data / 'shard-{0..3}.tar')
    real_open = train.run_source
    def listed_then_changed(cfg, fc):
        source = real_open(cfg, fc)                            # the files are listed here
        if kind == 'folder':
            (data / 'clip3.wav').unlink()
            (data / 'clip5.wav').write_bytes((data / 'clip5.wav').read_bytes()[:100])    # rewritten, cut short
        else: (data / 'shard-1.tar').unlink()
        return source
    monkeypatch.setattr(train, 'run_source', listed_then_changed)
    result = pretrain(apply_overrides(TrainConfig(), SMALL + [f'data.spec={spec}', f'run.out={tmp_path}/run', 'data.batch_size=4',
                                                              'schedule.max_steps=4']))
    assert result.step == 4
    if kind == 'folder':
        assert set(skipped(tmp_path / 'run')) == {'clip3.wav', 'clip5.wav'}
        assert skipped(tmp_path / 'run')['clip3.wav'] == 'unreadable: no such file'
    else:
        assert list(skipped(tmp_path / 'run')) == [str(data / 'shard-1.tar')]
        assert skipped(tmp_path / 'run')[str(data / 'shard-1.tar')].startswith('unreadable shard after 0 samples')

def test_stream_resume_is_exact(tmp_path):
    "Shards read front to back: a run stopped in its second pass resumes at the right batch and ends as the run done in one go."
    write_shards(tmp_path / 'shards', 4, 4)                    # 16 clips: 4 batches a pass
    common = SMALL + [f'data.spec={tmp_path}/shards/shard-{{0..3}}.tar', 'data.batch_size=4', 'schedule.max_steps=7',
                      'run.checkpoint_every=0', 'model.encoder.drop_path=0.1']
    pretrain(apply_overrides(TrainConfig(), common + [f'run.out={tmp_path}/one_go']))
    halves = apply_overrides(TrainConfig(), common + [f'run.out={tmp_path}/halves'])
    assert pretrain(apply_overrides(halves, ['run.stop_at=5'])).step == 5
    assert pretrain(halves, checkpoint=resume_checkpoint('auto', tmp_path / 'halves')).step == 7
    same_state(tmp_path / 'one_go/checkpoints/step_000007', tmp_path / 'halves/checkpoints/step_000007')

# ---------------------------------------------------------------- every file a command writes: whole or not at all

def fills_the_disk(path_at:int=0):
    "A writer that writes part of its file (its argument `path_at`), then finds the disk full (ENOSPC), as `full_disk` strikes a checkpoint."
    def write(*args, **kwargs):
        Path(str(args[path_at])).write_bytes(b'\0' * 1000)             # what fitted
        raise OSError(errno.ENOSPC, 'No space left on device')
    return write

def command(main, argv, monkeypatch, capsys) -> tuple:
    "Exit status and stderr lines of a console script's `main` run with `argv`."
    monkeypatch.setattr(sys, 'argv', ['prog', *map(str, argv)])
    with pytest.raises(SystemExit) as exit_info: main()
    return exit_info.value.code, capsys.readouterr().err.strip().splitlines()

def left_behind(folder:Path) -> list: return sorted(p.name for p in folder.iterdir() if 'partial' in p.name or p.suffix in ('.tmp', '.old'))

@pytest.fixture(scope='module')
def tiny_export(tmp_path_factory) -> Path:
    import torch
    from audiojepa.models import ViTEncoder, preset, save_encoder
    torch.manual_seed(0)
    return save_encoder(tmp_path_factory.mktemp('tiny') / 'encoder', ViTEncoder(preset('tiny')['encoder']))

@pytest.mark.parametrize('how', ['ENOSPC while writing', 'before writing'])
def test_embeddings_on_a_full_disk(how, tmp_path, monkeypatch, capsys):
    "`audiojepa-embed` on a disk that fills up: one line, the .npz already there unchanged, no temporary file."
    import numpy as np
    from audiojepa import embed, runs as runs_module
    out = tmp_path / 'e.npz'
    out.write_bytes(b'embeddings of an earlier run')
    if how == 'before writing':
        real_usage = runs_module.shutil.disk_usage
        monkeypatch.setattr(runs_module.shutil, 'disk_usage', lambda p: real_usage(p)._replace(free=0))
    else: monkeypatch.setattr(np, 'savez', fills_the_disk())
    code, err = command(embed.main, ['--encoder', 'logmel', '--data', 'synthetic:4', '--out', out], monkeypatch, capsys)
    assert code == 2 and err[-1].startswith(f'audiojepa-embed: error: not enough disk space to write {out}: it needs about ')
    assert 'Nothing was written there' in err[-1] and 'Traceback' not in '\n'.join(err)
    assert out.read_bytes() == b'embeddings of an earlier run' and left_behind(tmp_path) == []

def test_convert_and_export_on_a_full_disk(tiny_export, tmp_path, monkeypatch, capsys):
    "An export (`audiojepa-convert`, `audiojepa-export --out`), an ONNX graph and a push that meet a full disk leave nothing half-written."
    import torch
    from audiojepa import convert, export, models
    from audiojepa.authors import authors_state_dict
    from audiojepa.models import EncoderConfig, ViTEncoder
    vit = ViTEncoder(EncoderConfig(n_mels=128, max_frames=256, embed_dim=64, depth=1, num_heads=1, positions='learned', final_norm_eps=1e-6))
    torch.save({'state_dict': {f'target_encoder.{k}': v for k, v in authors_state_dict(vit).items()}}, tmp_path / 'JEPA.ckpt')
    with monkeypatch.context() as m:
        m.setattr(models, 'save_file', fills_the_disk(path_at=1))   # safetensors' writer, save_file(state, path), as `save_encoder` calls it
        for main, argv, target in ((convert.main, [tmp_path / 'JEPA.ckpt', tmp_path / 'converted'], tmp_path / 'converted'),
                                   (export.main, [tiny_export, '--out', tmp_path / 'exported'], tmp_path / 'exported')):
            code, err = command(main, argv, m, capsys)
            assert code == 2 and f'not enough disk space to write {target}' in err[-1] and len(err) == 1, err
            assert not target.exists() and left_behind(tmp_path) == []
        calls = []
        api = type('Api', (), {'__getattr__': lambda self, name: lambda *a, **k: calls.append(name)})()
        with pytest.raises(runs.RunError, match='not enough disk space'): export.push_to_hub(str(tiny_export), 'someone/tiny', api=api)
        assert calls == []                                               # staging failed: nothing was sent
    pytest.importorskip('onnxruntime', reason="onnxruntime is the 'onnx' extra (pip install -e '.[onnx]'; '.[dev]' holds it too)")
    with monkeypatch.context() as m:
        m.setattr(torch.onnx.ONNXProgram, 'save', fills_the_disk(path_at=1))   # program.save(path)
        code, err = command(export.main, [tiny_export, '--onnx', tmp_path / 'm.onnx'], m, capsys)
    assert code == 2 and f'not enough disk space to write {tmp_path}/m.onnx' in err[-1]
    assert not (tmp_path / 'm.onnx').exists() and left_behind(tmp_path) == []
