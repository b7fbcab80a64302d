"""CPU embedding throughput, PyTorch against onnxruntime, of the same encoder with its front end (seconds of audio per
second of compute, "× real time").

    python -m benchmarks.onnx_throughput                          # tiny and base, 1 and 2 threads
    python -m benchmarks.onnx_throughput --presets tiny --threads 1 --repeats 5

Each preset is randomly initialised (throughput does not depend on the weights), exported with
`audiojepa.export.export_onnx` (16 kHz input, as X-ARES gives it: resampling, the log-mel front end, chunking and the
ViT are all in the graph) and timed against `AudioJEPAEncoder.encode` on the same input: a batch of 10 s clips and one
long recording. Both get the same number of intra-op threads (`torch.set_num_threads`, onnxruntime's
`intra_op_num_threads`, one inter-op thread each). Each figure is the best of `--repeats` runs after one warm-up, the
runs of the two engines interleaved, so that other load on the machine slows both alike; the largest difference
between their embeddings is reported beside it. Needs `pip install -e ".[onnx]"`.
"""
import argparse, json, os, tempfile, time
from pathlib import Path

import numpy as np
import torch

from audiojepa.embed import load_embedder
from audiojepa.export import export_onnx


def timed(run, repeats:int) -> float:
    "Best wall time of `run()` over `repeats` calls."
    best = float('inf')
    for _ in range(repeats):
        start = time.perf_counter(); run(); best = min(best, time.perf_counter() - start)
    return best


def compare(embedder, session, audio:torch.Tensor, repeats:int) -> dict:
    "× real time of torch and onnxruntime on `audio` [B, T] (16 kHz), and the largest difference of their embeddings."
    feed = {'audio': audio.numpy(), 'lengths': np.full(len(audio), audio.shape[1], dtype=np.int64)}
    with torch.inference_mode():
        frames, _ = embedder.encode(audio)                                # warm-up, and the reference
        onnx, _ = session.run(None, feed)
        torch_s, onnx_s = float('inf'), float('inf')
        for _ in range(repeats):                                          # interleaved: both see the same load
            torch_s = min(torch_s, timed(lambda: embedder.encode(audio), 1))
            onnx_s = min(onnx_s, timed(lambda: session.run(None, feed), 1))
    seconds = audio.numel() / 16000
    return {'torch_x_real_time': round(seconds / torch_s, 1), 'onnxruntime_x_real_time': round(seconds / onnx_s, 1),
            'onnxruntime_over_torch': round(torch_s / onnx_s, 2), 'max_abs_difference': float(np.abs(onnx - frames.numpy()).max())}


def main():
    import onnxruntime
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--presets', nargs='+', default=['tiny', 'base'])
    parser.add_argument('--threads', nargs='+', type=int, default=[1, 2])
    parser.add_argument('--batch', type=int, default=8, help='clips of 10 s per batch')
    parser.add_argument('--long-seconds', type=float, default=60.0, help='length of the long recording')
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--out', default='benchmarks/results/onnx_throughput.json')
    args = parser.parse_args()
    gen = torch.Generator().manual_seed(0)
    inputs = {f'{args.batch} × 10 s': torch.randn(args.batch, 160_000, generator=gen) * 0.1,
              f'1 × {args.long_seconds:g} s': torch.randn(1, int(args.long_seconds * 16000), generator=gen) * 0.1}
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for preset in args.presets:
            embedder = load_embedder(f'random:{preset}', sampling_rate=16000)
            path = export_onnx(embedder, Path(work) / f'{preset}.onnx')
            for threads in args.threads:
                torch.set_num_threads(threads)
                options = onnxruntime.SessionOptions()
                options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
                session = onnxruntime.InferenceSession(str(path), options, providers=['CPUExecutionProvider'])
                for name, audio in inputs.items():
                    row = {'preset': preset, 'threads': threads, 'input': name, **compare(embedder, session, audio, args.repeats)}
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    machine = {'cpus': os.cpu_count(), 'load_average': os.getloadavg(), 'torch': torch.__version__, 'onnxruntime': onnxruntime.__version__}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({'args': vars(args), 'machine': machine, 'results': rows}, indent=2))
    print(f"| preset | threads | input | torch (× real time) | onnxruntime (× real time) | onnxruntime / torch | max abs difference |")
    print('| --- | ---: | --- | ---: | ---: | ---: | ---: |')
    for r in rows:
        print(f"| {r['preset']} | {r['threads']} | {r['input']} | {r['torch_x_real_time']} | {r['onnxruntime_x_real_time']} | "
              f"{r['onnxruntime_over_torch']} | {r['max_abs_difference']:.1e} |")
    print(f"machine: {machine}")


if __name__ == '__main__':
    main()
