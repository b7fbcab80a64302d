"""How fast `SyntheticSounds` renders clips, and how hard its labels are for a probe on raw log-mel statistics.

    python -m benchmarks.synthetic_sounds [--n-clips 1800] [--seconds 10]

Speed: milliseconds to render one clip (10 s at 32 kHz by default) in one thread.
Difficulty: a linear (logistic-regression) probe and a nearest-centroid probe on the per-mel-bin mean and std of the
`audiojepa` log-mel spectrogram (time averaged away), trained on 80% of the clips, accuracy on the other 20%.
For contrast, the same linear probe on features that keep some of the time axis (std of frame-to-frame differences and
autocorrelation at a few lags, per mel bin) shows how much of the label lives in temporal structure.
"""
import argparse
import time

import torch

from audiojepa.audio import LogMel
from audiojepa.synthetic import SyntheticSounds


def render_ms(source, n):
    source[0]  # first call builds the noise banks
    start = time.perf_counter()
    for i in range(n): source.render(i)
    return (time.perf_counter() - start) / n * 1000


def features(source, batch=100):
    frontend, stats, temporal = LogMel('audiojepa'), [], []
    with torch.no_grad():
        for lo in range(0, len(source), batch):
            wav = torch.stack([source[i]['audio'] for i in range(lo, min(lo + batch, len(source)))])
            mel, _ = frontend(wav)  # [B, N, F]
            stats.append(torch.cat([mel.mean(1), mel.std(1)], 1))
            centred = mel - mel.mean(1, keepdim=True)
            lags = [(centred[:, k:] * centred[:, :-k]).mean(1) / centred.var(1).clamp_min(1e-6) for k in (2, 8, 32)]
            temporal.append(torch.cat([mel.diff(dim=1).std(1), *lags], 1))
    return torch.cat(stats), torch.cat(temporal)


def linear_probe(x_train, y_train, x_test, y_test, n_classes, weight_decay=1e-3):
    mean, std = x_train.mean(0), x_train.std(0) + 1e-6
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    model = torch.nn.Linear(x_train.shape[1], n_classes)
    opt = torch.optim.LBFGS(model.parameters(), max_iter=500)

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x_train), y_train) + weight_decay * model.weight.square().sum()
        loss.backward()
        return loss

    opt.step(closure)
    centroids = torch.stack([x_train[y_train == k].mean(0) for k in range(n_classes)])
    with torch.no_grad():
        return ((model(x_test).argmax(1) == y_test).float().mean().item(),
                (torch.cdist(x_test, centroids).argmin(1) == y_test).float().mean().item())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--n-clips', type=int, default=1800)
    parser.add_argument('--seconds', type=float, default=10.0)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    source = SyntheticSounds(n_clips=args.n_clips, clip_seconds=args.seconds, seed=args.seed)
    ms = render_ms(source, min(200, args.n_clips))
    print(f"render: {ms:.2f} ms per {args.seconds:g} s clip at {source.sample_rate} Hz (1 thread)")
    torch.set_num_threads(2)
    stats, temporal = features(source)
    labels = torch.tensor([i % len(source.classes) for i in range(len(source))])
    n_train = int(0.8 * len(source))
    for name, x in [('log-mel mean+std', stats), ('log-mel mean+std + temporal', torch.cat([stats, temporal], 1))]:
        linear, centroid = linear_probe(x[:n_train], labels[:n_train], x[n_train:], labels[n_train:], len(source.classes))
        print(f"{name:>28}: linear probe {linear:.1%}, nearest centroid {centroid:.1%} "
              f"(chance {1 / len(source.classes):.1%}, {len(source) - n_train} test clips)")


if __name__ == '__main__':
    main()
