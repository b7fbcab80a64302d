"Integration tests of audiojepa.embed: exports, long audio, X-ARES, and the audiojepa-embed command line."
import subprocess, sys
from dataclasses import replace

import numpy as np
import pytest
import soundfile as sf
import torch

from audiojepa.audio import FrontendConfig
from audiojepa.embed import AudioJEPAEncoder, ENCODER_ENV, Embeddings, export_training, load_embedder, main
from audiojepa.models import ViTEncoder, preset, save_encoder

torch.set_num_threads(1)


def export(path, frames=512):
    "A randomly initialised tiny encoder, exported the way pretraining exports it, for clips of `frames` frames."
    torch.manual_seed(0)
    encoder = ViTEncoder(replace(preset('tiny')['encoder'], max_frames=frames))
    return save_encoder(path, encoder, FrontendConfig(clip_seconds=frames * 625 / 32000, num_frames=frames))


@pytest.fixture(scope='module')
def export_dir(tmp_path_factory):
    "A 10 s (512-frame) export inside a run directory (run/encoder/)."
    return export(tmp_path_factory.mktemp('run') / 'encoder')


@pytest.fixture(scope='module')
def labelled_folder(tmp_path_factory):
    "Two classes of short tones at 16 kHz, plus an empty file in one class."
    root = tmp_path_factory.mktemp('tones')
    rng = np.random.default_rng(0)
    t = np.arange(8000) / 16000
    for label, freq in (('low', 220), ('high', 1760)):
        (root / label).mkdir()
        for i in range(3):
            sf.write(root / label / f'{i}.wav', (0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.normal(size=len(t))).astype(np.float32), 16000)
    (root / 'low' / 'empty.wav').touch()
    return root


@pytest.mark.parametrize('frames', [512, 96])   # 10 s clips (the paper), 1.875 s clips (the main job)
def test_ten_minutes_give_the_right_number_of_frames(frames, tmp_path):
    encoder = AudioJEPAEncoder.from_pretrained(export(tmp_path / 'encoder', frames), chunks_per_batch=8)
    frames = encoder(torch.randn(1, 16000 * 600))
    assert encoder.hop_size_in_ms == 312.5
    assert frames.shape == (1, round(600_000 / encoder.hop_size_in_ms), 128) == (1, 1920, 128)
    assert torch.isfinite(frames).all()


def test_frames_follow_duration_within_one_frame(export_dir):
    encoder = AudioJEPAEncoder.from_pretrained(export_dir)
    for seconds in (0.5, 2.7, 9.99, 10.0, 14.2, 31.0):
        n = encoder(torch.randn(1, int(seconds * 16000))).shape[1]
        assert abs(n - seconds * 1000 / encoder.hop_size_in_ms) <= 1, (seconds, n)


def test_chunking_does_not_change_frames(export_dir):
    "Frames of a long clip do not depend on how many chunks are encoded together."
    wav = torch.randn(1, 16000 * 35)
    one = AudioJEPAEncoder.from_pretrained(export_dir, chunks_per_batch=1)(wav)
    many = AudioJEPAEncoder.from_pretrained(export_dir, chunks_per_batch=16)(wav)
    torch.testing.assert_close(one, many, atol=1e-4, rtol=1e-4)


def test_xares_checker_accepts_the_export(export_dir, monkeypatch):
    pytest.importorskip('xares')
    from xares.audio_encoder_checker import check_audio_encoder
    from xares.utils import attr_from_py_path
    assert check_audio_encoder(AudioJEPAEncoder.from_pretrained(export_dir))
    # how `python -m xares.run audiojepa/embed.py ...` finds and builds the encoder
    monkeypatch.setenv(ENCODER_ENV, str(export_dir.parent))
    encoder_class = attr_from_py_path('audiojepa/embed.py', endswith='Encoder')
    assert encoder_class is AudioJEPAEncoder
    encoder = encoder_class()
    assert check_audio_encoder(encoder) and encoder.sampling_rate == 16000


def test_not_an_export_is_a_clear_error(tmp_path):
    (tmp_path / 'config.json').write_text('{"hello": 1}')
    (tmp_path / 'model.safetensors').write_bytes(b'')
    with pytest.raises(ValueError, match='not an audiojepa encoder config'): load_embedder(tmp_path)
    with pytest.raises(ValueError, match='not an exported audiojepa encoder'): load_embedder(tmp_path.parent)


def test_embed_cli_writes_clip_and_frame_embeddings(export_dir, labelled_folder, tmp_path, capsys):
    out = tmp_path / 'emb.npz'
    main(encoder=str(export_dir.parent), data=str(labelled_folder), out=str(out), pool='meanmax', frames=True)
    emb = Embeddings.load(out)
    assert len(emb.ids) == 6 and emb.clip.shape == (6, 256)
    assert sorted(emb.classes) == ['high', 'low'] and emb.targets.shape == (6, 2) and (emb.targets.sum(1) == 1).all()
    assert all(f.shape == (2, 128) for f in emb.frames)       # 0.5 s: two frames of 312.5 ms
    assert [s[0] for s in emb.skipped] == ['low/empty.wav']
    assert 'low/empty.wav' in capsys.readouterr().out
    with np.load(out, allow_pickle=False) as z: assert z['ids'].dtype.kind == 'U'


def test_embed_cli_accepts_dashed_flags(labelled_folder, tmp_path, monkeypatch, capsys):
    "The `audiojepa-embed` entry point reads `--batch-size` as `--batch_size`, and random weights take `--seed`."
    outs = [tmp_path / 'a.npz', tmp_path / 'b.npz']
    for out, seed in zip(outs, ('1', '2')):
        monkeypatch.setattr(sys, 'argv', ['audiojepa-embed', '--encoder', 'random:tiny', '--data', str(labelled_folder),
                                          '--out', str(out), '--batch-size', '2', '--num-workers=0', '--frames', '--seed', seed])
        main()
    a, b = Embeddings.load(outs[0]), Embeddings.load(outs[1])
    assert a.clip.shape == (6, 128) and a.frames is not None and not np.allclose(a.clip, b.clip)
    assert '6 clips' in capsys.readouterr().out


def test_random_weights_of_an_export(export_dir):
    "`random:DIR`: the export's architecture and front end, random weights from the baseline stream; its training record."
    untrained, trained = load_embedder(f'random:{export_dir.parent}', seed=0), AudioJEPAEncoder.from_pretrained(export_dir)
    assert untrained.encoder.config == trained.encoder.config and untrained.logmel.config == trained.logmel.config
    assert not torch.equal(untrained.encoder.patch_embed.proj.weight, trained.encoder.patch_embed.proj.weight)
    assert export_training(export_dir) == {}


@pytest.mark.parametrize('args, message', [
    (dict(encoder='nowhere', data='synthetic', out='x.npz'), 'does not exist'),
    (dict(encoder='logmel', data='synthetic'), 'missing --out'),
    (dict(encoder='logmel', data='synthetic', out='x.pkl'), 'must be an .npz file'),
    (dict(encoder='logmel', data='no/such/folder', out='x.npz'), 'does not exist'),
])
def test_embed_cli_bad_input_is_one_line(args, message, capsys):
    with pytest.raises(SystemExit) as exit: main(**args)
    assert exit.value.code == 2 and message in capsys.readouterr().err


def test_embed_command_line_prints_no_traceback(tmp_path):
    res = subprocess.run([sys.executable, '-m', 'audiojepa.embed', '--encoder', str(tmp_path), '--data', 'synthetic',
                          '--out', str(tmp_path / 'x.npz')], capture_output=True, text=True, timeout=300)
    assert res.returncode == 2 and 'not an exported audiojepa encoder' in res.stderr and 'Traceback' not in res.stderr


@pytest.mark.parametrize('layers, width', [('last', 128), ('4', 128), ('1,3', 256), ('all', 4 * 128), ('all:mean', 128), ('2,4:mean', 128)])
def test_layer_choice_sets_the_width(export_dir, layers, width):
    "`all` concatenates every block (n_layers × dim), `:mean` averages them (dim); `output_dim` says so, as X-ARES reads it."
    encoder = AudioJEPAEncoder.from_pretrained(export_dir, layers=layers)
    frames = encoder(torch.randn(2, 16000 * 3))
    assert encoder.output_dim == width and frames.shape == (2, 10, width)


def test_layers_read_the_blocks(export_dir):
    "Block 4's output is layer-normalised without the final LayerNorm's affine part, which 'last' (the encoder's output) has."
    wav = torch.randn(1, 16000 * 2)
    four, every = (AudioJEPAEncoder.from_pretrained(export_dir, layers=l)(wav) for l in ('4', 'all'))
    torch.testing.assert_close(every[..., 3 * 128:], four)
    trained = AudioJEPAEncoder.from_pretrained(export_dir)
    with torch.no_grad(): trained.encoder.norm.weight.mul_(2.0); trained.encoder.norm.bias.add_(0.5)   # as if it had learned
    torch.testing.assert_close(trained(wav), four * 2.0 + 0.5, atol=1e-4, rtol=1e-4)
    mean = AudioJEPAEncoder.from_pretrained(export_dir, layers='all:mean')(wav)
    torch.testing.assert_close(mean, every.view(1, -1, 4, 128).mean(2), atol=1e-5, rtol=1e-5)


def test_xares_checker_accepts_other_layers(export_dir, monkeypatch):
    pytest.importorskip('xares')
    from xares.audio_encoder_checker import check_audio_encoder
    assert check_audio_encoder(AudioJEPAEncoder.from_pretrained(export_dir, layers='all', frames_per_column=4))
    monkeypatch.setenv(ENCODER_ENV, str(export_dir))
    monkeypatch.setenv('AUDIOJEPA_LAYERS', 'all')
    monkeypatch.setenv('AUDIOJEPA_FRAMES_PER_COLUMN', '2')
    built = AudioJEPAEncoder()                                   # as X-ARES builds it, from the environment
    assert (built.output_dim, built.hop_size_in_ms) == (4 * 128, 156.25) and check_audio_encoder(built)


@pytest.mark.parametrize('per_column', [2, 4, 8])
def test_finer_frames_by_shifted_encodings(export_dir, per_column):
    "R frames per column: R encodings shifted by a column / R, interleaved; every R-th frame is the plain one."
    plain = AudioJEPAEncoder.from_pretrained(export_dir)
    fine = AudioJEPAEncoder.from_pretrained(export_dir, frames_per_column=per_column)
    wav = torch.randn(2, int(16000 * 4.1))
    frames, mask = fine.encode(wav)
    coarse, _ = plain.encode(wav)
    assert fine.hop_size_in_ms == 312.5 / per_column and not mask.any()
    assert abs(frames.shape[1] - 4100 / fine.hop_size_in_ms) <= per_column
    torch.testing.assert_close(frames[:, ::per_column], coarse, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match='frames_per_column 3: a column of patches is 5000 samples at 16000 Hz'):
        AudioJEPAEncoder.from_pretrained(export_dir, frames_per_column=3)
    # one frame per column shifts nothing: input rates whose column is no whole number of samples stay as they were
    cd = AudioJEPAEncoder.from_pretrained(export_dir, sampling_rate=44100)   # a column: 13781.25 samples
    assert cd.encode(torch.randn(1, 44100 * 2))[0].shape == (1, 7, 128)
    with pytest.raises(ValueError, match='frames_per_column 2: a column of patches is 13781.2 samples at 44100 Hz'):
        AudioJEPAEncoder.from_pretrained(export_dir, sampling_rate=44100, frames_per_column=2)


def test_embed_cli_layers_and_frames(export_dir, labelled_folder, tmp_path):
    out = tmp_path / 'e.npz'
    main(encoder=str(export_dir), data=str(labelled_folder), out=str(out), layers='all', frames_per_column=2, frames=True)
    emb = Embeddings.load(out)
    assert emb.clip.shape == (6, 4 * 128) and emb.hop_size_in_ms == 156.25
    assert all(f.shape == (4, 4 * 128) for f in emb.frames)    # 0.5 s: columns starting at 0, 156, 312 and 469 ms
