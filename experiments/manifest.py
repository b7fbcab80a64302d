"""The content manifest of the corpora `experiments/corpora.py` builds, and the checks a benchmark runs on them before use.

ROOT/manifest.json holds the sha256, size and mtime (ns) of every WAV and TASK/groups.csv under the task folders of
ROOT (paths relative to ROOT), per task the number of WAVs, their bytes and a digest, and the corpus digest:

- `check_manifest(root, tasks=None, full=False)` raises a `CorpusError` naming the first missing, extra or changed
  file; by default it re-hashes only the files whose size or mtime differ from the manifest's, `full=True` all of them;
- `corpus_digest(root, tasks=None)` is the digest of those tasks once checked (a cache key that follows the content);
- `check_disjoint(root)` raises when a test file's bytes are in the pool or in its own task's train split.

A task's folder is ROOT/TASK with `train/` and `test/` splits; the pretraining pool is ROOT/pool.
"""
import hashlib, json
from collections import Counter, defaultdict
from pathlib import Path

MANIFEST = 'manifest.json'

class CorpusError(ValueError):
    "The corpus on disk is not the one its manifest describes, or a test file's bytes are in the pool or its task's train split."

def _sha256(path:Path) -> str:
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''): h.update(block)
    return h.hexdigest()

def _described(root:Path, tasks) -> dict:
    "{path relative to ROOT: path} of the files a manifest describes: every WAV and groups.csv of the tasks' folders."
    out = {}
    for t in tasks:
        for f in sorted((root / t).rglob('*')):
            if f.is_file() and (f.suffix.lower() == '.wav' or f == root / t / 'groups.csv'): out[f.relative_to(root).as_posix()] = f
    return out

def _digest(lines) -> str: return hashlib.sha256(''.join(f'{a} {b}\n' for a, b in sorted(lines)).encode()).hexdigest()

def _task_totals(files:dict) -> dict:
    by = defaultdict(dict)
    for rel, e in files.items(): by[rel.split('/')[0]][rel] = e
    return {t: {'files': sum(r.endswith('.wav') for r in fs), 'bytes': sum(e['size'] for r, e in fs.items() if r.endswith('.wav')),
                'digest': _digest((r, e['sha256']) for r, e in fs.items())} for t, fs in sorted(by.items())}

def write_manifest(root, # ROOT of the corpora
                   tasks, # the names of the folders of ROOT that are tasks (those present are described)
                   rehash=(), # tasks whose files are hashed anew (those just built)
                  ) -> dict: # the manifest written
    "ROOT/manifest.json: sha256, size and mtime of every WAV and groups.csv (paths relative to ROOT), per-task totals and digests, the corpus digest."
    root = Path(root); path = root / MANIFEST
    old = json.loads(path.read_text())['files'] if path.exists() else {}
    files = {}
    for rel, f in _described(root, [t for t in tasks if (root / t).is_dir()]).items():
        st, o = f.stat(), old.get(rel)
        keep = o and rel.split('/')[0] not in rehash and (o['size'], o['mtime_ns']) == (st.st_size, st.st_mtime_ns)
        files[rel] = {'sha256': o['sha256'] if keep else _sha256(f), 'size': st.st_size, 'mtime_ns': st.st_mtime_ns}
    tasks = _task_totals(files)
    manifest = {'version': 1, 'digest': _digest((t, v['digest']) for t, v in tasks.items()), 'tasks': tasks, 'files': files}
    tmp = path.with_suffix('.tmp'); tmp.write_text(json.dumps(manifest, indent=0)); tmp.replace(path)
    return manifest

def check_manifest(root, # ROOT of the corpora
                   tasks=None, # the tasks to check (None: every task the manifest describes)
                   full:bool=False, # hash every file; by default only those whose size or mtime differ from the manifest's
                  ) -> dict: # {'digest', 'tasks': per-task totals, 'files': the manifest's entries of those tasks}
    "Check that the files of `tasks` are the ones ROOT/manifest.json describes; a `CorpusError` names the first missing, extra or changed file."
    root, path = Path(root), Path(root) / MANIFEST
    if not path.is_file(): raise CorpusError(f'{root}: no {MANIFEST} (build the corpora with python -m experiments.corpora)')
    try: m = json.loads(path.read_text()); recorded_tasks = m['tasks']; files = m['files']
    except (ValueError, KeyError, TypeError) as e: raise CorpusError(f'{path} is not a corpora manifest ({e})') from None
    tasks = list(recorded_tasks) if tasks is None else list(tasks)
    unknown = [t for t in tasks if t not in recorded_tasks]
    if unknown: raise CorpusError(f'{path} describes no task {", ".join(unknown)} (it has {", ".join(recorded_tasks)})')
    recorded = {rel: e for rel, e in files.items() if rel.split('/')[0] in tasks}
    on_disk = _described(root, tasks)
    missing, extra = sorted(set(recorded) - set(on_disk)), sorted(set(on_disk) - set(recorded))
    if missing: raise CorpusError(f'{root}: {missing[0]} is missing ({len(missing)} files of {MANIFEST} are)')
    if extra: raise CorpusError(f'{root}: {extra[0]} is not in {MANIFEST} ({len(extra)} such files): the corpus changed after it was built')
    for rel in sorted(recorded):
        e, st = recorded[rel], on_disk[rel].stat()
        if not full and (st.st_size, st.st_mtime_ns) == (e['size'], e['mtime_ns']): continue
        if st.st_size != e['size'] or _sha256(on_disk[rel]) != e['sha256']:
            raise CorpusError(f'{root}: {rel} changed after the corpus was built (its sha256 is not the one in {MANIFEST})')
    totals = {t: recorded_tasks[t] for t in tasks}
    return {'digest': _digest((t, v['digest']) for t, v in totals.items()), 'tasks': totals, 'files': recorded}

def corpus_digest(root, # ROOT of the corpora
                  tasks=None, # the tasks it covers (None: every task the manifest describes)
                 ) -> str: # sha256 hex digest
    "One digest of the content of `tasks` (their WAVs and groups.csv), after `check_manifest` found them unchanged."
    return check_manifest(root, tasks)['digest']

def check_disjoint(root, # ROOT of the corpora
                  ) -> dict: # {'test_files', 'pool_files', 'train_files'}
    "Check that no test file's bytes are in the pool or in its own task's train split; a `CorpusError` names the first pair."
    files = check_manifest(root)['files']
    by_hash = defaultdict(list)
    for rel, e in sorted(files.items()):
        if rel.endswith('.wav'): by_hash[e['sha256']].append(rel)
    split = lambda rel: 'pool' if rel.startswith('pool/') else rel.split('/')[1]
    for test in sorted(r for r in files if r.endswith('.wav') and split(r) == 'test'):
        same = [r for r in by_hash[files[test]['sha256']] if split(r) == 'pool' or (split(r) == 'train' and r.split('/')[0] == test.split('/')[0])]
        if same: raise CorpusError(f'{root}: {same[0]} has the bytes of the test file {test}')
    count = Counter(split(r) for r in files if r.endswith('.wav'))
    return {'test_files': count['test'], 'pool_files': count['pool'], 'train_files': count['train']}
