"""Re-encode the large PNG figures stored in notebooks as palette PNGs, so that the notebooks stay small:

    python tools/compact_figures.py                         # every notebook under nbs/
    python tools/compact_figures.py nbs/08_masking.ipynb    # some of them
    python tools/compact_figures.py --max-kb 60 nbs/17_embed.ipynb

A figure stored over `--max-kb` (its base64 text, as the notebook holds it) is laid on white and reduced to a palette
of 256 colours, then 128, then 64, written with PNG optimisation, until it fits; one that does not fit even at 64
colours is also scaled down until it does (fewer colours turn the black of the text into a colour of the plot).
Smaller figures are left as they are. `tests/test_notebook_size.py` caps the size of each notebook; this script is one
remedy when a re-executed notebook goes over it, the other is a lower `dpi` or `figsize` in the figure's cell. Look at
the figures it changed before committing them.
"""
import argparse, base64, io, json, sys
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
# from the most faithful encoding to the smallest: median cut keeps smooth colour maps best, the octree is smaller
TRIES = [(256, Image.Quantize.MEDIANCUT), (256, Image.Quantize.FASTOCTREE), (128, Image.Quantize.MEDIANCUT),
         (64, Image.Quantize.MEDIANCUT)]


def palette_png(image:Image.Image, colours:int, method, scale:float=1.0) -> bytes:
    "`image` on white, scaled by `scale`, as an optimised PNG of at most `colours` colours."
    rgba = image.convert('RGBA')
    flat = Image.new('RGBA', rgba.size, (255, 255, 255, 255))
    flat.alpha_composite(rgba)
    rgb = flat.convert('RGB')
    if scale != 1.0: rgb = rgb.resize((round(rgb.width * scale), round(rgb.height * scale)), Image.LANCZOS)
    out = io.BytesIO()
    rgb.quantize(colors=colours, method=method, dither=Image.Dither.NONE).save(out, format='PNG', optimize=True)
    return out.getvalue()


def compact_png(text:str, max_bytes:int) -> str:
    "The base64 PNG `text` re-encoded to at most `max_bytes` of base64 if it is bigger (the first of `TRIES` that fits)."
    if len(text) <= max_bytes: return text
    image = Image.open(io.BytesIO(base64.b64decode(text)))
    scale = 1.0
    while True:
        for colours, method in TRIES:
            encoded = base64.b64encode(palette_png(image, colours, method, scale)).decode()
            if len(encoded) <= max_bytes: return encoded if len(encoded) < len(text) else text
        scale *= 0.85


def compact_notebook(path:Path, max_bytes:int) -> list[str]:
    "Compact the big PNG outputs of the notebook at `path` in place; one line per figure changed."
    nb = json.loads(path.read_text())
    name = path.resolve().relative_to(ROOT) if path.resolve().is_relative_to(ROOT) else path
    changed = []
    for i, cell in enumerate(nb['cells']):
        for output in cell.get('outputs', []):
            data = output.get('data', {})
            if 'image/png' not in data: continue
            text = data['image/png'] if isinstance(data['image/png'], str) else ''.join(data['image/png'])
            new = compact_png(text.strip(), max_bytes)
            if new != text.strip():
                data['image/png'] = new + ('\n' if text.endswith('\n') else '')
                changed.append(f"{name} cell {i} ({cell.get('id')}): {len(text) // 1000} KB -> {len(new) // 1000} KB")
    if changed: path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + '\n')
    return changed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('notebooks', nargs='*', type=Path, help='notebooks to compact (default: every notebook under nbs/)')
    parser.add_argument('--max-kb', type=int, default=100, help='largest figure kept as it is, in KB of base64 text')
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted(p for p in (ROOT / 'nbs').rglob('*.ipynb') if '.ipynb_checkpoints' not in p.parts)
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:   # before any notebook is changed
        print(f"compact_figures: error: no notebook at {', '.join(missing)}", file=sys.stderr)
        sys.exit(2)
    for path in paths:
        for line in compact_notebook(path, args.max_kb * 1000): print(line)


if __name__ == '__main__': main()
