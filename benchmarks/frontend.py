"""Throughput of the audio front end: decoding, and log-mel spectrograms, in 10 s clips per second.

    python -m benchmarks.frontend [--threads 2] [--batch-size 64] [--n-files 24] [--rounds 5]

Measures, on synthetic 10 s clips written to a temporary folder:
- decode+resample+crop: `load_audio` + `crop_or_pad` on FLAC (44.1 kHz stereo, resampled to 32 kHz) and on WAV
  (32 kHz mono, no resampling), one file at a time as a data worker does;
- the batched front end: `LogMel('audiojepa')` on a `[B, 320000]` batch, kaldi and torchaudio kinds;
- the official way: `torchaudio.compliance.kaldi.fbank` called once per clip, as the Audio-JEPA and AudioMAE data
  workers do, plus padding to 512 frames.
Each number is the best of `--rounds` rounds (the machine is shared). Prints a table; the numbers in nbs/02_audio.ipynb come from a run of this script.
"""
import math, tempfile, time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torch.nn.functional as F
from audiojepa.cli import dashed_call_parse
from torchaudio.compliance.kaldi import fbank

from audiojepa.audio import LogMel, crop_or_pad, frontend_config, load_audio


def clips_per_second(fn, n_clips:int, rounds:int, min_seconds:float=0.5) -> float:
    "Best of `rounds` timings of `fn` (which handles `n_clips` clips): the machine is shared, the best round is the least disturbed."
    fn()  # warm-up: kernels, caches, allocator
    best = 0.0
    for _ in range(rounds):
        runs, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < min_seconds or runs < 1:
            fn(); runs += 1
        best = max(best, n_clips * runs / elapsed)
    return best


def write_clips(folder:Path, n_files:int, seed:int=0) -> dict[str, list[Path]]:
    "10 s of noisy tones per file, as FLAC 44.1 kHz stereo and WAV 32 kHz mono."
    rng = np.random.default_rng(seed)
    files = {'flac 44.1k stereo': [], 'wav 32k mono': []}
    for i in range(n_files):
        for key, rate, channels, fmt in [('flac 44.1k stereo', 44100, 2, 'FLAC'), ('wav 32k mono', 32000, 1, 'WAV')]:
            t = np.arange(10 * rate) / rate
            audio = 0.3 * np.sin(2 * np.pi * rng.uniform(100, 4000) * t)[:, None] + 0.05 * rng.standard_normal((t.size, channels))
            path = folder / f'clip{i}.{fmt.lower()}'
            sf.write(path, audio.astype('float32'), rate, format=fmt, subtype='PCM_16')
            files[key].append(path)
    return files


@dashed_call_parse
def main(threads:int=2, # torch threads (the project's CI machine has 2 cores)
         batch_size:int=64, # clips per front-end batch
         n_files:int=24, # files written per format for the decoding benchmark
         rounds:int=5, # timing rounds per measurement; the best is reported
        ):
    torch.set_num_threads(threads)
    cfg = frontend_config('audiojepa')
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for key, paths in write_clips(Path(tmp), n_files).items():
            gen = torch.Generator().manual_seed(0)
            decode = lambda: [crop_or_pad(load_audio(p, cfg.sample_rate), cfg.clip_samples, 'random', gen) for p in paths]
            rows.append((f'decode+resample+crop, {key}', clips_per_second(decode, len(paths), rounds)))

    wav = torch.randn(batch_size, cfg.clip_samples) * 0.1
    mask = torch.zeros_like(wav, dtype=torch.bool)
    with torch.inference_mode():
        for kind in ('kaldi', 'torchaudio'):
            frontend = LogMel(frontend_config({**cfg.to_dict(), 'kind': kind}))
            rows.append((f'LogMel batched ({kind}), B={batch_size}', clips_per_second(lambda: frontend(wav, mask), batch_size, rounds)))

        def per_clip():
            for clip in wav:
                spec = fbank((clip - clip.mean())[None], **cfg.kaldi_kwargs())
                F.pad(spec, (0, 0, 0, cfg.num_frames - spec.shape[0]))
        rows.append(('kaldi.fbank per clip (official)', clips_per_second(per_clip, batch_size, rounds)))

    print(f'torch {torch.__version__}, {threads} thread(s), 10 s clips at {cfg.sample_rate} Hz, front end {cfg.name!r}')
    for name, rate in rows: print(f'{name:<45} {rate:9.1f} clips/s')
