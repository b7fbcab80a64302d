"""`kill -9` at random moments: does `--resume auto` finish every run, with the weights of a run never interrupted?

    python -m benchmarks.faults                        # 20 trials of a tiny run, a few minutes on 2 CPU cores
    python -m benchmarks.faults --trials 5 --max-steps 12

First the run is done once without interruption (the reference, timed start-up included). Each trial then starts
`audiojepa-pretrain` in a fresh run directory as its own process group, kills the whole group (the training process
and its data-loader worker) with SIGKILL after a time drawn uniformly between 0 and the reference's wall time, so
kills land in start-up, in steps, in checkpoint writes and in encoder exports, and runs `--resume auto` in the same
directory until the command ends. A trial *survived* when that command exits 0 at the last step. Its result is
*identical* when every file of its final checkpoint (model with the EMA target, optimiser state, RNG states, trainer
state) and of its exported encoder has the bytes of the reference's, and its metrics.csv has the reference's loss at
every step, each step once. Both are measured on the CPU, where the same steps give the same bits.

Writes `trials.json` and `summary.md` to --out (default benchmarks/results/faults, git-ignored) and exits 1 unless
every trial survived with identical results.
"""
import argparse, csv, json, os, random, shutil, signal, subprocess, sys, time
from pathlib import Path

from audiojepa.runs import MARKER, find_checkpoint

REPO = Path(__file__).resolve().parents[1]
# runs start in their own folders (so that every run's config says `out: run`): the package comes from this checkout
ENV = {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONWARNINGS': 'ignore', 'CUDA_VISIBLE_DEVICES': '',
       'PYTHONPATH': os.pathsep.join([str(REPO), *filter(None, [os.environ.get('PYTHONPATH')])])}


def run_args(args) -> list[str]:
    "The command line of the run (in `run/` of the working folder): tiny preset, 1 s synthetic clips, a data-loader worker, drop path (so the RNG matters)."
    return [sys.executable, '-m', 'audiojepa.train', '--out', 'run', '--max-steps', str(args.max_steps),
            '--batch-size', '4', '--checkpoint-every', str(args.checkpoint_every), 'data.spec=synthetic:32',
            'data.clip_seconds=1', 'data.num_workers=1', 'schedule.warmup_steps=2', 'run.log_every=1',
            'run.keep_checkpoints=2', 'run.trackers=[]', 'run.progress=false', 'run.threads=1',
            'model.encoder.drop_path=0.1']


def run_files(run:Path, max_steps:int) -> dict[str, bytes]:
    "Every file of the final checkpoint and of the export, by path relative to the run directory."
    folders = [run / f'checkpoints/step_{max_steps:06d}', run / 'encoder']
    return {str(p.relative_to(run)): p.read_bytes() for f in folders if f.is_dir() for p in sorted(f.rglob('*')) if p.is_file()}


def losses(run:Path) -> list[tuple[str, str]]:
    if not (run / 'metrics.csv').is_file(): return []
    with open(run / 'metrics.csv', newline='') as f: return [(r['step'], r['loss']) for r in csv.DictReader(f)]


def on_disk(run:Path) -> dict:
    "What a kill left: the checkpoint `--resume auto` can take, temporary folders, and any step folder without a marker."
    ckpts = run / 'checkpoints'
    found = find_checkpoint(run) if run.is_dir() else None
    return {'checkpoint': found.name if found else None,
            'temporary': sorted(p.name for p in [*run.glob('*.tmp'), *run.glob('*.old'), *ckpts.glob('*.tmp'), *ckpts.glob('*.old')]),
            'unmarked': sorted(p.name for p in ckpts.glob('step_*') if p.suffix == '' and not (p / MARKER).is_file())}


def trial(i:int, kill_at:float, args, reference:dict, ref_losses:list) -> dict:
    home = Path(args.out) / f'trial_{i:02d}'
    home.mkdir()
    run = home / 'run'
    proc = subprocess.Popen(run_args(args), cwd=home, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV,
                            start_new_session=True)
    try: proc.wait(timeout=kill_at); killed = False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)    # the whole group: a preempted machine takes the loader workers too
        proc.wait(); killed = True
    left = on_disk(run)
    t0 = time.time()
    res = subprocess.run(run_args(args) + ['--resume', 'auto'], cwd=home, capture_output=True, text=True, env=ENV,
                         timeout=args.timeout)
    files = run_files(run, args.max_steps)
    differ = sorted(k for k in reference.keys() | files.keys() if reference.get(k) != files.get(k))
    row = {'trial': i, 'kill_at_s': round(kill_at, 2), 'killed': killed, **left, 'resume_rc': res.returncode,
           'resume_s': round(time.time() - t0, 1), 'survived': res.returncode == 0 and f'step {args.max_steps}/' in res.stdout,
           'files_differ': differ, 'losses_identical': losses(run) == ref_losses}
    row['identical'] = row['survived'] and not differ and row['losses_identical']
    if not row['survived']: row['stderr_tail'] = res.stderr[-2000:]
    if row['identical'] and not args.keep: shutil.rmtree(home)
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--trials', type=int, default=20)
    parser.add_argument('--max-steps', type=int, default=30)
    parser.add_argument('--checkpoint-every', type=int, default=2)
    parser.add_argument('--seed', type=int, default=0, help='seeds the kill times')
    parser.add_argument('--timeout', type=float, default=600, help='seconds a resumed run may take')
    parser.add_argument('--keep', action='store_true', help='keep the run directories of identical trials too')
    parser.add_argument('--out', default='benchmarks/results/faults')
    args = parser.parse_args()
    out = Path(args.out); shutil.rmtree(out, ignore_errors=True); out.mkdir(parents=True)

    t0 = time.time()
    (out / 'reference').mkdir()
    subprocess.run(run_args(args), cwd=out / 'reference', check=True, capture_output=True, env=ENV)
    wall = time.time() - t0
    reference, ref_losses = run_files(out / 'reference/run', args.max_steps), losses(out / 'reference/run')
    print(f"reference: {args.max_steps} steps in {wall:.1f} s wall (start-up included); kills drawn in [0, {wall:.1f}] s", flush=True)

    rng, rows = random.Random(args.seed), []
    for i in range(args.trials):
        row = trial(i, rng.uniform(0, wall), args, reference, ref_losses)
        rows.append(row)
        where = ('finished before the kill' if not row['killed'] else
                 f"left {row['checkpoint'] or 'no checkpoint'}" + (f" + {', '.join(row['temporary'])}" if row['temporary'] else ''))
        print(f"trial {i:2d}: kill at {row['kill_at_s']:5.2f} s, {where}; resume exit {row['resume_rc']}, "
              f"{'identical' if row['identical'] else 'DIFFERENT: ' + ', '.join(row['files_differ'] or ['losses'])}", flush=True)

    survived, identical = sum(r['survived'] for r in rows), sum(r['identical'] for r in rows)
    mid_write = sum(bool(r['temporary']) for r in rows)
    unmarked = sum(bool(r['unmarked']) for r in rows)
    summary = (f"{survived}/{len(rows)} trials finished after `kill -9` + `--resume auto`; {identical}/{len(rows)} ended "
               f"bit-identical to the uninterrupted run (final checkpoint, export, losses). {mid_write} kills left a "
               f"temporary folder (killed while writing), {unmarked} left a step folder without its marker. "
               f"Reference: {args.max_steps} steps, {wall:.1f} s wall; benchmark {time.time() - t0:.0f} s.")
    print(summary)
    (out / 'trials.json').write_text(json.dumps({'args': vars(args), 'reference_wall_s': round(wall, 2), 'trials': rows}, indent=1))
    (out / 'summary.md').write_text(summary + '\n')
    sys.exit(0 if identical == len(rows) else 1)


if __name__ == '__main__': main()
