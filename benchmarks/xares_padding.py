"""Does a clip's X-ARES score depend on the clips it is batched with? X-ARES' MLP and kNN on one local task, encoded
in X-ARES' batches of 16 and one clip at a time, with the encoder's `forward` as it is (trailing zeros read as batch
padding) and as it was before (the padding encoded as audio):

    python benchmarks/xares_padding.py                       # the drums dev task of benchmarks/corpora.py, random:tiny
    python benchmarks/xares_padding.py --data path/to/ROOT --encoder runs/pretrain/encoder --modes detect

X-ARES pads each batch with zeros to its longest clip and passes no mask, then averages all frames of a clip's
output. Each (mode, batch size) runs in an env of its own under --out (the encoder's X-ARES name does not change
with them, and X-ARES would reuse the embeddings). Writes OUT/xares_padding.json and prints the table.
"""
from __future__ import annotations
import json, sys, time
from pathlib import Path

from audiojepa.cli import dashed_call_parse
from audiojepa.embed import FrameEmbedder
from audiojepa.xares import run_xares

ROOT = Path(__file__).resolve().parents[1]

def encode_padding_as_audio(self, audio):
    "`FrameEmbedder.forward` before padding detection: every sample of the padded batch is audio."
    return self.encode(audio)[0]

@dashed_call_parse
def main(data:str=str(ROOT / 'benchmarks' / 'results' / 'corpora' / 'drums'), # a labelled folder (a local X-ARES task)
         encoder:str='random:tiny', # as audiojepa-xares --encoder
         out:str=str(ROOT / 'benchmarks' / 'results' / 'xares_padding'), # envs and the result
         batches:str='16,1', # X-ARES encoding batch sizes to compare
         modes:str='detect,before', # before: padding encoded as audio; detect: trailing zeros read as padding (now)
         epochs:int=10, # X-ARES' MLP epochs (its default)
        ):
    "X-ARES' scores of one encoder on one local task at several encoding batch sizes, before and after padding detection."
    if not Path(data).is_dir(): sys.exit(f"xares_padding.py: error: {data} is not a folder (build it with benchmarks/corpora.py --tasks drums)")
    out, forward, rows = Path(out), FrameEmbedder.forward, []
    for mode in [m.strip() for m in modes.split(',') if m.strip()]:
        FrameEmbedder.forward = encode_padding_as_audio if mode == 'before' else forward
        for b in [int(x) for x in batches.split(',') if x.strip()]:
            t0 = time.perf_counter()
            report = run_xares(encoder, local={'task': data}, env=out / f"env-{mode}-b{b}", epochs=epochs, batch_size=b)
            r = report['tasks'][0]
            rows.append({'mode': mode, 'batch_size': b, 'mlp': r['mlp'], 'knn': r['knn'], 'n_test': r['n_test'],
                         'encode_seconds': r['encode_seconds'], 'seconds': round(time.perf_counter() - t0, 1)})
            print(f"{mode:>7} batch {b:>3}: MLP {r['mlp']:.3f}  kNN {r['knn']:.3f}  ({r['n_test']} test clips; "
                  f"encoding {r['encode_seconds']:.0f} s)", flush=True)
    FrameEmbedder.forward = forward
    result = {'data': data, 'encoder': encoder, 'epochs': epochs, 'rows': rows}
    for mode in {r['mode'] for r in rows}:
        sizes = [r for r in rows if r['mode'] == mode]
        if len(sizes) > 1:
            result[f'gap_{mode}'] = {p: max(r[p] for r in sizes) - min(r[p] for r in sizes) for p in ('mlp', 'knn')}
            print(f"{mode}: largest gap between batch sizes: MLP {100 * result[f'gap_{mode}']['mlp']:.1f} points, "
                  f"kNN {100 * result[f'gap_{mode}']['knn']:.1f} points")
    out.mkdir(parents=True, exist_ok=True)
    (out / 'xares_padding.json').write_text(json.dumps(result, indent=1))
    print(f"written: {out / 'xares_padding.json'}")

