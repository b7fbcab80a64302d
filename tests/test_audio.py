"""File-heavy checks of audiojepa.audio: every format libsndfile writes here, bad files, and the Kaldi match on real audio.

Each test writes its own files to tmp_path. The real-recording checks read the freedesktop sound theme
(Debian package `sound-theme-freedesktop`) and skip when it is not installed.
"""
import io
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.nn.functional as F
from torchaudio.compliance.kaldi import fbank

from audiojepa.audio import (AudioDecodeError, FrontendConfig, LogMel, compute_norm_stats, crop_or_pad,
                             frontend_config, load_audio)

SOUNDS = Path('/usr/share/sounds/freedesktop/stereo')
RATE = 32000


def tone(freq:float, rate:int, seconds:float, channels:int=1) -> np.ndarray:
    "A sine at `freq` in every channel, channel c scaled by (c+1)/channels, shape [T, C]."
    t = np.arange(int(rate * seconds)) / rate
    wave = 0.5 * np.sin(2 * np.pi * freq * t)
    return np.stack([wave * (c + 1) / channels for c in range(channels)], axis=1).astype('float32')


def peak_hz(wav:torch.Tensor, rate:int=RATE) -> float:
    spectrum = torch.fft.rfft(wav * torch.hann_window(len(wav))).abs()
    return spectrum.argmax().item() * rate / len(wav)


FORMATS = [  # (extension, format, subtype, sample rate, channels, lossless)
    ('wav', 'WAV', 'PCM_16', 44100, 2, True),
    ('wav', 'WAV', 'PCM_24', 22050, 1, True),
    ('wav', 'WAV', 'FLOAT', 32000, 1, True),
    ('wav', 'WAV', 'PCM_U8', 8000, 1, True),
    ('flac', 'FLAC', 'PCM_24', 96000, 6, True),
    ('aiff', 'AIFF', 'PCM_16', 48000, 2, True),
    ('ogg', 'OGG', 'VORBIS', 44100, 2, False),
    ('opus', 'OGG', 'OPUS', 48000, 2, False),
    ('mp3', 'MP3', 'MPEG_LAYER_III', 44100, 2, False),
]


@pytest.mark.parametrize('ext,fmt,subtype,rate,channels,lossless', FORMATS, ids=[f'{f[2]}-{f[3]}Hz-{f[4]}ch' for f in FORMATS])
def test_formats_decode_to_mono_32k(tmp_path, ext, fmt, subtype, rate, channels, lossless):
    if subtype not in sf.available_subtypes(fmt): pytest.skip(f'libsndfile here cannot write {fmt}/{subtype}')
    audio = tone(1000, rate, 1.5, channels)
    path = tmp_path / f'tone.{ext}'
    sf.write(path, audio, rate, format=fmt, subtype=subtype)
    from_path, from_bytes = load_audio(path), load_audio(path.read_bytes())
    with open(path, 'rb') as f: from_file = load_audio(f)
    assert from_path.dtype == torch.float32 and from_path.ndim == 1
    # lossy codecs add encoder delay/padding; lossless files keep the exact duration
    expected = int(1.5 * RATE)
    assert abs(len(from_path) - expected) <= (1 if lossless else 0.1 * expected)
    torch.testing.assert_close(from_bytes, from_path); torch.testing.assert_close(from_file, from_path)
    assert abs(peak_hz(from_path) - 1000) < 5
    # downmix is the channel mean: gains (c+1)/C average to (C+1)/(2C)
    middle = from_path[len(from_path) // 4: 3 * len(from_path) // 4]
    assert abs(middle.abs().max().item() - 0.5 * (channels + 1) / (2 * channels)) < (0.01 if lossless else 0.06)


def test_sample_rate_argument(tmp_path):
    sf.write(tmp_path / 'a.wav', tone(440, 48000, 1.0), 48000)
    for rate in (16000, 32000, 48000):
        wav = load_audio(tmp_path / 'a.wav', sample_rate=rate)
        assert len(wav) == rate and abs(peak_hz(wav, rate) - 440) < 2


def test_wav_content_survives_resampling(tmp_path):
    "A 32 kHz float file comes back sample-exact; a 64 kHz one matches its torchaudio resampling."
    audio = (np.random.default_rng(0).standard_normal(32000) * 0.1).astype('float32')
    sf.write(tmp_path / 'same.wav', audio, 32000, subtype='FLOAT')
    torch.testing.assert_close(load_audio(tmp_path / 'same.wav'), torch.from_numpy(audio))
    audio64 = np.repeat(audio, 2)
    sf.write(tmp_path / 'double.wav', audio64, 64000, subtype='FLOAT')
    import torchaudio
    torch.testing.assert_close(load_audio(tmp_path / 'double.wav'),
                               torchaudio.functional.resample(torch.from_numpy(audio64), 64000, 32000))


def bad_files(tmp: Path) -> dict[str, tuple[Path, str]]:
    "Deliberately broken files, each with the start of the reason load_audio must give."
    files = {}
    def add(name, data, reason):
        (tmp / name).write_bytes(data); files[name] = (tmp / name, reason)
    def encoded(audio, rate, **kw):
        buf = io.BytesIO(); sf.write(buf, audio, rate, **kw); return buf.getvalue()
    add('empty.wav', b'', 'empty file')
    add('zero_length.wav', encoded(np.zeros((0, 1), 'float32'), 16000, format='WAV'), 'zero-length')
    add('text.wav', b'just some notes, definitely not a RIFF header\n' * 50, 'not audio')
    add('random_bytes.flac', np.random.default_rng(0).bytes(5000), 'not audio')
    wav = encoded(tone(440, 16000, 1.0), 16000, format='WAV')
    add('truncated.wav', wav[:len(wav) // 2], 'truncated')
    add('header_only.wav', wav[:30], 'corrupt or truncated header')
    aiff = encoded(tone(440, 16000, 1.0), 16000, format='AIFF')
    add('truncated.aiff', aiff[:len(aiff) // 2], 'truncated')
    flac = encoded(tone(440, 16000, 2.0), 16000, format='FLAC')
    add('truncated.flac', flac[:len(flac) // 2], 'truncated')
    nan = tone(440, 16000, 0.5); nan[100] = np.nan
    add('nan.wav', encoded(nan, 16000, format='WAV', subtype='FLOAT'), 'samples contain NaN or Inf')
    inf = tone(440, 16000, 0.5); inf[5] = np.inf
    add('inf.wav', encoded(inf, 16000, format='WAV', subtype='DOUBLE'), 'samples contain NaN or Inf')
    if 'MPEG_LAYER_III' in sf.available_subtypes('MP3'):
        mp3 = encoded(tone(440, 44100, 2.0, 2), 44100, format='MP3')
        add('truncated.mp3', mp3[:len(mp3) // 2], 'truncated')
    files['missing.wav'] = (tmp / 'missing.wav', 'unreadable: no such file')
    (tmp / 'a_folder.wav').mkdir(); files['a_folder.wav'] = (tmp / 'a_folder.wav', 'unreadable: is a directory')
    return files


def test_bad_files_raise_clear_errors(tmp_path):
    for name, (path, reason) in bad_files(tmp_path).items():
        with pytest.raises(AudioDecodeError) as info: load_audio(path)
        assert info.value.reason.startswith(reason), f'{name}: {info.value.reason!r}'
        assert str(path) in str(info.value) and isinstance(info.value, ValueError)
        if path.is_file():  # the same reason from bytes, named by their size
            with pytest.raises(AudioDecodeError) as info: load_audio(path.read_bytes())
            assert info.value.reason.startswith(reason)


def test_streamed_wav_header_is_not_truncation(tmp_path):
    "Streaming writers leave the RIFF and data sizes at 0xFFFFFFFF; such a file is complete audio."
    buf = io.BytesIO(); sf.write(buf, tone(440, 16000, 1.0), 16000, format='WAV', subtype='PCM_16')
    data = bytearray(buf.getvalue())
    data[4:8] = b'\xff\xff\xff\xff'
    pos = data.index(b'data'); data[pos + 4:pos + 8] = b'\xff\xff\xff\xff'
    assert len(load_audio(bytes(data), sample_rate=16000)) == 16000


def test_crop_or_pad_modes():
    wav = torch.arange(100.)
    seen = {int(crop_or_pad(wav, 10, 'random', torch.Generator().manual_seed(s))[0][0]) for s in range(50)}
    assert len(seen) > 20 and min(seen) >= 0 and max(seen) <= 90
    for mode in ('random', 'center', 'start'):
        clip, mask = crop_or_pad(wav[:7], 10, mode)
        assert clip.shape == (10,) and mask.tolist() == [False] * 7 + [True] * 3 and clip[7:].eq(0).all()
    full, mask = crop_or_pad(wav, 30, 'full')
    assert full.shape == (120,) and torch.equal(full[:100], wav) and mask.sum() == 20
    stereo, mask = crop_or_pad(torch.ones(2, 5), 8, 'start')
    assert stereo.shape == (2, 8) and mask.shape == (8,)


def per_clip_fbank(wav:torch.Tensor, cfg:FrontendConfig) -> torch.Tensor:
    ref = fbank((wav - wav.mean())[None], **cfg.kaldi_kwargs())
    return F.pad(ref, (0, 0, 0, max(0, cfg.num_frames - ref.shape[0]))).float()


def resolved_max_diff(a, b, ref):
    "Max |a - b| over bins within 1e-5 of their frame's strongest bin: below that float32 rounding dominates."
    keep = ref > ref.max(dim=1, keepdim=True).values - 11.5
    return (a - b).abs()[keep].max().item()


@pytest.mark.parametrize('name,window', [('audiojepa', 'hanning'), ('audiojepa', 'povey'), ('audiomae', 'hanning')])
def test_kaldi_kind_matches_fbank_on_noise(name, window):
    cfg = frontend_config({**frontend_config(name).to_dict(), 'window': window, 'mean': 0.0, 'std': 1.0, 'std_scale': 1.0})
    g = torch.Generator().manual_seed(1)
    # several loudness levels, and a DC offset that the mean removal must take away
    wav = torch.randn(4, cfg.clip_samples, generator=g) * torch.tensor([[1e-3], [0.1], [1.0], [0.3]]) + 0.2
    mel, _ = LogMel(cfg)(wav)
    for clip, spec in zip(wav, mel):
        ref32, ref64 = per_clip_fbank(clip, cfg)[:cfg.num_frames], per_clip_fbank(clip.double(), cfg)[:cfg.num_frames]
        assert resolved_max_diff(spec, ref32, ref64) < 2e-4
        # in the faintest bins (a 512-point FFT's lowest filters) float32 rounding puts Kaldi itself ~1e-3 off float64
        assert (spec - ref32).abs().max() < 2e-3


@pytest.mark.skipif(not SOUNDS.exists(), reason='needs the Debian package sound-theme-freedesktop')
def test_kaldi_kind_matches_fbank_on_real_recordings():
    frontend = LogMel('audiojepa')
    files = sorted(SOUNDS.glob('*.oga'))
    assert len(files) > 10
    checked = 0
    for path in files:
        wav = load_audio(path)
        if len(wav) < frontend.config.win_length: continue
        wav = wav[:frontend.config.clip_samples]
        mel, _ = frontend(wav[None])
        ref32, ref64 = per_clip_fbank(wav, frontend.config), per_clip_fbank(wav.double(), frontend.config)
        assert resolved_max_diff(mel[0], ref32, ref64) < 2e-4, path.name
        # no worse than Kaldi's own float32 rounding, measured against float64
        assert resolved_max_diff(mel[0], ref64, ref64) <= 2 * resolved_max_diff(ref32, ref64, ref64) + 1e-5, path.name
        checked += 1
    assert checked > 10


def test_padding_mask_gives_the_unpadded_spectrogram():
    frontend = LogMel('audiojepa')
    g = torch.Generator().manual_seed(2)
    lengths = [320000, 200000, 50000, 1000]
    batch, masks = zip(*[crop_or_pad(torch.randn(n, generator=g) * 0.1 + 0.05, 320000, 'start') for n in lengths])
    mel, frame_mask = frontend(torch.stack(batch), torch.stack(masks))
    assert mel.shape == (4, 512, 96) and frame_mask.shape == (4, 512)
    for n, clip, spec, fmask in zip(lengths, batch, mel, frame_mask):
        whole = max(0, (n - 1562) // 625 + 1)   # frames entirely inside the real audio
        if whole: torch.testing.assert_close(spec[:whole], per_clip_fbank(clip[:n], frontend.config)[:whole], atol=2e-4, rtol=0)
        assert not fmask[:whole].any() and fmask[whole + 2:].all()
    assert frame_mask[0].sum() == 2   # a full clip: only the two frames Kaldi does not compute


def test_torchaudio_kind_is_melspectrogram_plus_log():
    import torchaudio
    cfg = frontend_config({**frontend_config('audiojepa').to_dict(), 'kind': 'torchaudio', 'remove_mean': False})
    wav = torch.randn(2, cfg.clip_samples) * 0.1
    mel, _ = LogMel(cfg)(wav)
    spec = torchaudio.transforms.MelSpectrogram(cfg.sample_rate, n_fft=cfg.n_fft, win_length=cfg.win_length,
                                                hop_length=cfg.hop_length, f_min=cfg.f_min, n_mels=cfg.n_mels)(wav)
    torch.testing.assert_close(mel, spec.clamp_min(1.1920929e-07).log().transpose(1, 2)[:, :512])


def test_long_input_gives_frames_per_started_clip():
    frontend = LogMel('audiojepa')
    wav, mask = crop_or_pad(torch.randn(25 * RATE) * 0.1, 10 * RATE, 'full')
    mel, frame_mask = frontend(wav[None], mask[None])
    assert mel.shape == (1, 3 * 512, 96) and frontend.num_frames(len(wav)) == 1536
    assert frame_mask[0, :1270].any().item() is False and frame_mask[0, 1290:].all()


def test_compute_norm_stats_on_data_items():
    g = torch.Generator().manual_seed(3)
    items = []
    for i, scale in enumerate([0.01, 0.1, 1.0]):
        wav, mask = crop_or_pad(torch.randn(int(RATE * 4), generator=g) * scale, 10 * RATE, 'start')
        items.append({'audio': wav, 'padding_mask': mask, 'id': f'clip{i}'})
    items.append({'id': 'broken.wav', 'error': 'empty file (0 bytes)'})
    stats = compute_norm_stats(items, 'audiojepa')
    frontend = LogMel(stats)
    values = torch.cat([m[~f] for m, f in (frontend(it['audio'], it['padding_mask']) for it in items[:3])])
    assert abs(values.mean().item()) < 1e-3 and abs(values.std().item() - 1) < 1e-2
    assert stats.std_scale == 1.0 and frontend_config('audiojepa').mean == 0.0
    with pytest.raises(ValueError, match='no audio'): compute_norm_stats([items[-1]])


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')
def test_gpu_matches_cpu():
    frontend = LogMel('audiojepa')
    wav, mask = crop_or_pad(torch.randn(7 * RATE) * 0.1, 10 * RATE, 'start')
    wav, mask = wav.expand(8, -1).contiguous(), mask.expand(8, -1).contiguous()
    cpu, cpu_mask = frontend(wav, mask)
    gpu, gpu_mask = frontend.cuda()(wav.cuda(), mask.cuda())
    assert gpu.device.type == 'cuda'
    torch.testing.assert_close(gpu.cpu(), cpu, atol=2e-3, rtol=0)
    assert torch.equal(gpu_mask.cpu(), cpu_mask)


def test_float32_under_autocast():
    "Mixed-precision training must not push the front end into bfloat16: the quiet bins would be lost."
    frontend = LogMel('audiojepa')
    wav = torch.randn(2, 3 * RATE) * 0.1
    with torch.autocast('cpu', dtype=torch.bfloat16):
        mel, _ = frontend(wav)
    assert mel.dtype == torch.float32
    torch.testing.assert_close(mel, frontend(wav)[0])
