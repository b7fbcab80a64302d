"""Benchmark `audiojepa.hlp.HLP.propagate`: against the authors' formula, and at AudioSet scale.

    python -m benchmarks.hlp [--reps 5] [--data ../shared/data/audioset] [--skip-authors]

1. AudioSet scale: 2,040,000 x 527 bool labels (the balanced training set tiled), propagated into a new array, into a
   new torch tensor and in place; median wall time of `--reps` runs and the peak extra memory (tracemalloc sees numpy's
   allocations; the process's peak RSS is reported too, so this part runs first).
2. The balanced training set (22,160 x 527), binary labels and continuous float32 scores in [0, 1]: the authors'
   `(Y[:, :, None] * T).max(1)` (their `hierarchical_label_propagation.HLP.propagate`, in chunks of 1,000 clips, since
   the whole set does not fit in 24 GB) against `propagate` with the `paper` policy: outputs must be identical.

Needs the AudioSet metadata in ../shared/data/audioset (or --data) and, for part 2, the dev requirement
`hierarchical-label-propagation`. Writes benchmarks/results/hlp.json.
"""
import argparse
import json
import resource
import statistics
import time
import tracemalloc
from pathlib import Path

import numpy as np
import torch

from audiojepa.hlp import HLP, read_segments

ROOT = Path(__file__).resolve().parents[1]
N_AUDIOSET = 2_040_000


def median_seconds(fn, reps, setup=lambda: None):
    "Median wall time of `fn()` over `reps` runs, `setup()` untimed before each."
    times = []
    for _ in range(reps):
        setup()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def audioset_scale(hlp, labels, reps):
    "Propagate 2.04 M x 527 bool labels: new array, new tensor, in place; time and peak extra memory."
    big = np.empty((N_AUDIOSET, labels.shape[1]), dtype=bool)
    for start in range(0, N_AUDIOSET, len(labels)):
        big[start:start + len(labels)] = labels[:N_AUDIOSET - start]
    expected = hlp.propagate(labels)
    size_mb = big.nbytes / 2**20
    rss_before = peak_rss_mb()

    tracemalloc.start()
    out = hlp.propagate(big)
    extra_mb = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    assert all(np.array_equal(out[s:s + len(labels)], expected[:N_AUDIOSET - s]) for s in (0, len(labels) * 40))
    del out
    rss_extra_mb = peak_rss_mb() - rss_before

    new_array, new_array_all = median_seconds(lambda: hlp.propagate(big), reps)
    tensor = torch.from_numpy(big)
    new_tensor, new_tensor_all = median_seconds(lambda: hlp.propagate(tensor), reps)
    work = np.empty_like(big)
    in_place, in_place_all = median_seconds(lambda: hlp.propagate(work, inplace=True), reps, lambda: np.copyto(work, big))
    assert np.array_equal(work[:len(labels)], expected)
    return {'shape': list(big.shape), 'label_matrix_mb': round(size_mb, 1),
            'new_array_s': round(new_array, 3), 'new_array_runs_s': [round(t, 3) for t in new_array_all],
            'new_tensor_s': round(new_tensor, 3), 'new_tensor_runs_s': [round(t, 3) for t in new_tensor_all],
            'inplace_s': round(in_place, 3), 'inplace_runs_s': [round(t, 3) for t in in_place_all],
            'peak_extra_mb_tracemalloc': round(extra_mb, 1), 'peak_extra_x_label_matrix': round(extra_mb / size_mb, 2),
            'peak_rss_growth_mb': round(rss_extra_mb, 1)}


def against_authors(hlp, labels, reps, chunk=1000):
    "The authors' propagate (chunks of `chunk` clips) and ours on the same binary labels and float scores."
    from hierarchical_label_propagation import HLP as AuthorsHLP
    authors = AuthorsHLP()  # their packaged HLP_lookup_table.pt
    assert torch.equal(authors.get_HLP_lookup_table(), hlp.matrix), 'paper policy differs from the authors\' table'
    scores = torch.rand(labels.shape, generator=torch.Generator().manual_seed(0))
    results = {}
    for kind, y in (('binary', torch.from_numpy(labels)), ('continuous', scores)):
        start = time.perf_counter()
        theirs = torch.cat([authors.propagate(y[s:s + chunk]) for s in range(0, len(y), chunk)])
        authors_s = time.perf_counter() - start
        ours, _ = median_seconds(lambda: hlp.propagate(y), reps)
        identical = torch.equal(hlp.propagate(y), theirs)
        results[kind] = {'shape': list(y.shape), 'dtype': str(y.dtype), 'authors_s': round(authors_s, 3),
                         'ours_s': round(ours, 4), 'speedup': round(authors_s / ours), 'identical': identical}
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--data', type=Path, default=ROOT.parent/'shared'/'data'/'audioset', help='AudioSet metadata folder')
    parser.add_argument('--reps', type=int, default=5, help='timed repetitions of our propagate')
    parser.add_argument('--skip-authors', action='store_true', help='skip the comparison with the authors\' formula')
    args = parser.parse_args()

    hlp = HLP.from_audioset(args.data/'ontology.json', args.data/'class_labels_indices.csv', policy='paper')
    _, labels = read_segments(args.data/'balanced_train_segments.csv', hlp.vocab)
    results = {'torch_threads': torch.get_num_threads(), 'audioset_scale': audioset_scale(hlp, labels, args.reps)}
    print(json.dumps(results, indent=1), flush=True)
    if not args.skip_authors:
        results['balanced_vs_authors'] = against_authors(hlp, labels, args.reps)
        print(json.dumps(results['balanced_vs_authors'], indent=1))
    out = ROOT/'benchmarks'/'results'/'hlp.json'
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    print(f'wrote {out.relative_to(ROOT)}')


if __name__ == '__main__':
    main()
