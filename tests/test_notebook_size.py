"Notebooks stay small: a clone, a diff and the docs build stay quick, and one figure cannot hide a megabyte."
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CAP_KB = 300   # per notebook, outputs included; the biggest are about half of it
NOTEBOOKS = sorted(p for p in (REPO / 'nbs').rglob('*.ipynb') if '.ipynb_checkpoints' not in p.parts)


def biggest_output(nb:dict) -> tuple[int, str]:
    "`(size, where)` of the largest stored output of notebook `nb`: its JSON size in bytes, and cell, id and kind."
    sizes = [(len(json.dumps(out)), f"cell {i} ({cell.get('id')}): {', '.join(out.get('data', {})) or out['output_type']}")
             for i, cell in enumerate(nb['cells']) for out in cell.get('outputs', [])]
    return max(sizes, default=(0, 'no output'))


def size_problem(path:Path, cap_kb:int=CAP_KB) -> str|None:
    "What is wrong with the size of the notebook at `path`, or None if it is within `cap_kb`."
    size = path.stat().st_size
    if size <= cap_kb * 1000: return None
    out_size, where = biggest_output(json.loads(path.read_text()))
    name = path.relative_to(REPO) if path.is_relative_to(REPO) else path
    return (f"{name} is {size // 1000} KB, over the cap of {cap_kb} KB; its biggest output is {where}, "
            f"{out_size // 1000} KB. Draw the figure smaller (a lower dpi or figsize) or re-encode it: "
            f"python tools/compact_figures.py {name}")


def test_notebooks_are_found():
    names = {p.relative_to(REPO / 'nbs').as_posix() for p in NOTEBOOKS}
    assert {'index.ipynb', '08_masking.ipynb'} <= names and any(n.startswith('tutorials/') for n in names)


@pytest.mark.parametrize('path', NOTEBOOKS, ids=lambda p: p.relative_to(REPO / 'nbs').as_posix())
def test_notebook_is_under_the_cap(path):
    problem = size_problem(path)
    assert problem is None, problem


def test_a_notebook_over_the_cap_is_named_with_its_biggest_output(tmp_path):
    cells = [{'cell_type': 'code', 'id': 'small', 'source': '1', 'outputs': [{'output_type': 'stream', 'text': 'x'}]},
             {'cell_type': 'code', 'id': 'plot', 'source': 'plt.plot()',
              'outputs': [{'output_type': 'display_data', 'data': {'image/png': 'A' * 5000, 'text/plain': 'Figure'}}]}]
    path = tmp_path / 'big.ipynb'
    path.write_text(json.dumps({'cells': cells}))
    problem = size_problem(path, cap_kb=2)
    assert problem.startswith(f"{path} is 5 KB, over the cap of 2 KB") and 'cell 1 (plot): image/png, text/plain, 5 KB' in problem
    assert size_problem(path, cap_kb=10) is None


def test_compact_figures_shrinks_a_big_figure_and_keeps_small_ones(tmp_path):
    "The remedy the failure message names: `tools/compact_figures.py`."
    import base64, io, subprocess, sys
    import numpy as np
    from PIL import Image
    noisy = np.random.default_rng(0).integers(0, 255, (300, 400, 3), dtype=np.uint8)   # a worst case for PNG
    noisy[:, :200] = noisy[:, :200] // 64 * 64                                            # and some flat colour
    png = io.BytesIO(); Image.fromarray(noisy).save(png, format='PNG')
    big, small = base64.b64encode(png.getvalue()).decode(), base64.b64encode(b'tiny').decode()
    cells = [{'cell_type': 'code', 'id': i, 'source': '', 'outputs': [{'output_type': 'display_data', 'data': {'image/png': text}}]}
             for i, text in (('big', big), ('small', small))]
    path = tmp_path / 'figs.ipynb'
    path.write_text(json.dumps({'cells': cells}))
    res = subprocess.run([sys.executable, str(REPO / 'tools/compact_figures.py'), '--max-kb', '100', str(path)],
                         capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout.count('\n') == 1 and 'cell 0 (big)' in res.stdout, res
    out = [c['outputs'][0]['data']['image/png'] for c in json.loads(path.read_text())['cells']]
    assert len(big) > 300_000 and len(out[0]) <= 100_000 and out[1] == small
    assert Image.open(io.BytesIO(base64.b64decode(out[0]))).mode == 'P'
    res = subprocess.run([sys.executable, str(REPO / 'tools/compact_figures.py'), str(tmp_path / 'none.ipynb')],
                         capture_output=True, text=True)
    assert res.returncode == 2 and res.stderr.startswith('compact_figures: error: no notebook at')
