"""Embedding throughput of `AudioJEPAEncoder` as a multiple of real time (seconds of audio per second of compute).

    python -m benchmarks.embed                              # tiny and base on CPU, and on CUDA if available
    python -m benchmarks.embed --presets tiny --devices cpu --threads 2

Encoders are randomly initialised (throughput does not depend on the weights). The input is 16 kHz audio, as X-ARES
gives it, so the time includes resampling to 32 kHz, the log-mel front end and the ViT; each configuration encodes a
batch of 10 s clips and one long recording (which is cut into 10 s chunks internally).
"""
import argparse, json, time
from pathlib import Path

import torch

from audiojepa.embed import load_embedder


def sync(device):
    if device.startswith('cuda'): torch.cuda.synchronize()


def real_time_factor(encoder, audio, device, repeats):
    "Seconds of audio encoded per second of wall time (best of `repeats`, after one warm-up)."
    audio = audio.to(device)
    encoder(audio[:, :encoder.sampling_rate])   # warm-up: kernels, caches
    best = float('inf')
    for _ in range(repeats):
        sync(device); start = time.perf_counter()
        encoder(audio)
        sync(device); best = min(best, time.perf_counter() - start)
    return audio.numel() / encoder.sampling_rate / best


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--presets', nargs='+', default=['tiny', 'base'])
    parser.add_argument('--devices', nargs='+', default=['cpu'] + (['cuda'] if torch.cuda.is_available() else []))
    parser.add_argument('--threads', type=int, default=None, help='CPU threads (default: torch default)')
    parser.add_argument('--batch', type=int, default=8, help='clips of 10 s per batch')
    parser.add_argument('--long-seconds', type=float, default=120.0, help='length of the long recording')
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--out', default='benchmarks/results/embed.json')
    args = parser.parse_args()
    if args.threads: torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    clips = torch.randn(args.batch, 160_000, generator=gen) * 0.1
    long = torch.randn(1, int(args.long_seconds * 16000), generator=gen) * 0.1
    rows = []
    for device in args.devices:
        for preset in args.presets:
            encoder = load_embedder(f'random:{preset}', sampling_rate=16000).to(device)
            with torch.inference_mode():
                batch_rtf = real_time_factor(encoder, clips, device, args.repeats)
                long_rtf = real_time_factor(encoder, long, device, args.repeats)
            name = torch.cuda.get_device_name(device) if device.startswith('cuda') else f'CPU, {torch.get_num_threads()} threads'
            rows.append({'preset': preset, 'device': name, 'batch_of_10s_clips_x_real_time': round(batch_rtf, 1),
                         'long_recording_x_real_time': round(long_rtf, 1)})
            print(f"{preset:5} {name:28} {args.batch} × 10 s clips: {batch_rtf:8.1f}× real time   "
                  f"{args.long_seconds:.0f} s recording: {long_rtf:8.1f}× real time", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({'args': vars(args), 'results': rows}, indent=2))


if __name__ == '__main__':
    main()
