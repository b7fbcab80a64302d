"""Does a clip's X-ARES score depend on the clips it is batched with? X-ARES' MLP and kNN on one local task, encoded
in X-ARES' batches of 16 and one clip at a time, with the encoder's `forward` as it is (trailing zeros read as batch
padding) and as it was before (the padding encoded as audio):

    python -m experiments.xares_padding                       # the drums dev task of experiments/corpora.py, random:tiny
    python -m experiments.xares_padding --trim --max-train 60 # its clips without their trailing silence: lengths differ
    python -m experiments.xares_padding --data path/to/ROOT --encoder runs/pretrain/encoder --modes nan,before

X-ARES pads each batch with zeros to its longest clip and passes no mask, then averages all frames of a clip's
output. Each (mode, batch size) runs in an env of its own under --out (the encoder's X-ARES name does not change
with them, and X-ARES would reuse the embeddings). Writes OUT/xares_padding.json and prints the table.
"""
from __future__ import annotations
import io, json, sys, tarfile, time
from pathlib import Path

import numpy as np

from fastcore.script import store_true

from audiojepa.cli import dashed_call_parse
from audiojepa.embed import FrameEmbedder
from audiojepa.xares import run_xares

ROOT = Path(__file__).resolve().parents[1]

def encode_padding_as_audio(self, audio):
    "`FrameEmbedder.forward` before padding detection: every sample of the padded batch is audio."
    return self.encode(audio)[0]

def pooled_test_embeddings(task_dir:Path, encoder_name:str) -> np.ndarray:
    "The test clips' embeddings as X-ARES' heads see them (the mean over all frames of the stored output), in X-ARES' order."
    out = []
    for tar in sorted((task_dir / 'embeddings' / encoder_name).glob('wds-encoded-test*.tar')):
        with tarfile.open(tar) as t:
            out += [np.load(io.BytesIO(t.extractfile(m).read())).mean(0) for m in t.getmembers() if m.name.endswith('.npy')]
    return np.stack(out)

def trimmed_copy(src:Path, dst:Path, max_train:int|None=None) -> Path:
    "`src` ({train,test}/<label>/*.wav) without each file's trailing exact zeros, as 16-bit WAV; `max_train` clips per class."
    import soundfile as sf
    if (dst / '.complete').exists(): return dst
    for f in sorted(src.rglob('*.wav')):
        rel = f.relative_to(src)
        if max_train and rel.parts[0] == 'train' and len(list((dst / rel.parent).glob('*.wav'))) >= max_train: continue
        x, rate = sf.read(f, dtype='int16')
        nz = np.flatnonzero(x)
        (dst / rel.parent).mkdir(parents=True, exist_ok=True)
        sf.write(dst / rel, x[:nz[-1] + 1] if len(nz) else x[:1], rate, subtype='PCM_16')
    (dst / '.complete').touch()
    return dst

def retrain_heads(task_dir:Path):
    "Forget X-ARES' cached heads and scores (of every encoder), so that the next run fits them again on the cached embeddings."
    for pattern in ('*_score.txt', '*.ckpt', '*.pt'):
        for p in (task_dir / 'checkpoints').glob(f'*/{pattern}'): p.unlink()

@dashed_call_parse
def main(data:str=str(ROOT / 'experiments' / 'results' / 'corpora' / 'drums'), # a labelled folder (a local X-ARES task)
         encoder:str='random:tiny', # as audiojepa-xares --encoder
         out:str=str(ROOT / 'experiments' / 'results' / 'xares_padding'), # envs and the result
         batches:str='16,1', # X-ARES encoding batch sizes to compare
         modes:str='nan,zeros,before', # nan: X-ARES pads with NaN, the padding (audiojepa-xares); zeros: X-ARES' zero padding, trailing zeros read as padding (X-ARES' own runner); before: the padding encoded as audio
         trim:store_true=False, # first copy the folder without each file's trailing digital silence (clips of different lengths)
         max_train:int=None, # with --trim: at most this many training clips per class
         epochs:int=10, # X-ARES' MLP epochs (its default)
         mlp_repeats:int=1, # MLP trainings per variant on the same embeddings (the same score each time: audiojepa-xares seeds X-ARES' shuffles)
        ):
    "X-ARES' scores of one encoder on one local task at several encoding batch sizes, before and after padding detection."
    if not Path(data).is_dir(): sys.exit(f"xares_padding.py: error: {data} is not a folder (build it with python -m experiments.corpora --tasks drums)")
    out, forward, rows = Path(out), FrameEmbedder.forward, []
    if trim: data = trimmed_copy(Path(data), out / 'trimmed', max_train)
    for mode in [m.strip() for m in modes.split(',') if m.strip()]:
        FrameEmbedder.forward = encode_padding_as_audio if mode == 'before' else forward
        for b in [int(x) for x in batches.split(',') if x.strip()]:
            t0 = time.perf_counter()
            env = out / f"env-{mode}-b{b}"
            xares = lambda: run_xares(encoder, local={'task': data}, env=env, epochs=epochs, batch_size=b,
                                      batch_padding='nan' if mode == 'nan' else 'zeros')['tasks'][0]
            runs = []
            for _ in range(mlp_repeats):
                retrain_heads(env / 'task')
                runs.append(xares())
            r, mlps = runs[0], [x['mlp'] for x in runs]
            rows.append({'mode': mode, 'batch_size': b, 'mlp': float(np.mean(mlps)), 'mlp_runs': mlps,
                         'mlp_sd': float(np.std(mlps, ddof=1)) if len(mlps) > 1 else None, 'knn': r['knn'],
                         'n_test': r['n_test'], 'encoder': r['encoder'], 'encode_seconds': r['encode_seconds'],
                         'seconds': round(time.perf_counter() - t0, 1)})
            print(f"{mode:>7} batch {b:>3}: MLP {np.mean(mlps):.3f} (runs {', '.join(f'{m:.3f}' for m in mlps)})  "
                  f"kNN {r['knn']:.3f}  ({r['n_test']} test clips; encoding {r['encode_seconds']:.0f} s)", flush=True)
    FrameEmbedder.forward = forward
    result = {'data': str(data), 'encoder': encoder, 'epochs': epochs, 'mlp_repeats': mlp_repeats, 'rows': rows}
    for mode in dict.fromkeys(r['mode'] for r in rows):
        sizes = [r for r in rows if r['mode'] == mode]
        if len(sizes) > 1:
            result[f'gap_{mode}'] = {p: max(r[p] for r in sizes) - min(r[p] for r in sizes) for p in ('mlp', 'knn')}
            pooled = [pooled_test_embeddings(out / f"env-{mode}-b{r['batch_size']}" / 'task', r['encoder']) for r in sizes]
            diff = max(float(np.abs(p - pooled[0]).max()) for p in pooled[1:])
            result[f'gap_{mode}']['pooled_embedding_max_abs_diff'] = diff
            result[f'gap_{mode}']['pooled_embedding_mean_abs'] = float(np.abs(pooled[0]).mean())
            print(f"{mode}: largest gap between batch sizes: MLP {100 * result[f'gap_{mode}']['mlp']:.1f} points (mean of "
                  f"{mlp_repeats} training{'s' if mlp_repeats > 1 else ''}), kNN {100 * result[f'gap_{mode}']['knn']:.1f} points; pooled test embeddings "
                  f"differ by up to {diff:.2g} (their mean |value| {result[f'gap_{mode}']['pooled_embedding_mean_abs']:.2g})")
    out.mkdir(parents=True, exist_ok=True)
    (out / 'xares_padding.json').write_text(json.dumps(result, indent=1))
    print(f"written: {out / 'xares_padding.json'}")

