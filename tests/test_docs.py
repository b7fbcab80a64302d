"""The notebooks are the source: the exported library must match them, and the docs pipeline must accept them.

Both checks run on a copy of the repository so that the working tree is never rewritten by a test.
"""
import json, shutil, subprocess, sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def repo_copy(tmp_path_factory):
    dst = tmp_path_factory.mktemp("repo") / "audiojepa"
    # Notebooks read the AudioSet metadata from ../shared, as they do in a checkout.
    if (ROOT.parent / "shared").exists(): (dst.parent / "shared").symlink_to(ROOT.parent / "shared")
    # benchmarks/results holds the (git-ignored, gigabytes) corpora and benchmark outputs where they were built
    ignore = shutil.ignore_patterns(".git", ".venv", "venv", "_proc", "_docs", "__pycache__", "*.egg-info", "runs", "results")
    shutil.copytree(ROOT, dst, ignore=ignore, symlinks=True)
    return dst


def _run(args, cwd):
    res = subprocess.run(args, cwd=cwd, capture_output=True, text=True)
    assert res.returncode == 0, f"{args} failed:\n{res.stdout}\n{res.stderr}"
    return res


def test_notebooks_name_their_kernel():
    "JupyterLab opens every chapter without asking for a kernel: each notebook names the python3 kernelspec."
    for nb in sorted((ROOT / "nbs").glob("*.ipynb")):
        kernel = json.loads(nb.read_text())["metadata"].get("kernelspec", {})
        assert kernel.get("name") == "python3" and kernel.get("language") == "python", nb.name


def test_export_matches_notebooks(repo_copy):
    "`nbdev_export` on a clean checkout must change nothing: the committed modules are what the notebooks say."
    _run([sys.executable, "-c", "from nbdev.doclinks import nbdev_export; nbdev_export.__wrapped__()"], repo_copy)
    stale = [p.name for p in sorted((ROOT / "audiojepa").glob("*.py"))
             if (repo_copy / "audiojepa" / p.name).read_text() != p.read_text()]
    missing = sorted({p.name for p in (repo_copy / "audiojepa").glob("*.py")} - {p.name for p in (ROOT / "audiojepa").glob("*.py")})
    assert not stale and not missing, f"run nbdev_export and commit: stale {stale}, missing {missing}"


def test_docs_processing(repo_copy):
    "The step before Quarto (what `nbdev_docs` runs first) must process every notebook without error."
    code = ("import nbdev.quarto as q; from nbdev.serve import proc_nbs; "
            "q.refresh_quarto_yml(); q.nbdev_sidebar.__wrapped__(); proc_nbs(n_workers=0)")
    _run([sys.executable, "-c", code], repo_copy)
    proc = repo_copy / "_proc"
    nbs = sorted(p.relative_to(ROOT / "nbs") for p in (ROOT / "nbs").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
    assert nbs, "no notebooks found"
    for nb in nbs:
        assert (proc / nb).exists(), f"docs processing produced nothing for {nb}"
