"""The learning benchmark (experiments/learning.py) end to end on tiny corpora made here, its interval arithmetic
against hand-computed cases, a changed corpus refused, and identical metrics at the same seed and threads."""
import csv, json, math
from pathlib import Path

import pytest
import soundfile as sf

from audiojepa.synthetic import SyntheticSounds
from audiojepa.train import pretrain
from experiments import learning, stats
from experiments.learning_report import contrast_table, contrasts, curve_table, summarise
from experiments.manifest import write_manifest
from experiments.yardstick import open_corpora

RATE = 32000
# a tiny run: 1 s clips of the tiny preset, batch 4, no loader workers, 4 clips for the log-mel statistics
TINY = ['data.clip_seconds=1', 'data.batch_size=4', 'data.num_workers=0', 'frontend.norm_clips=4',
        'schedule.warmup_steps=1', 'run.log_every=1']


def write_clips(folder:Path, n:int, seed:int, labelled:bool=True) -> list[str]:
    "`n` SyntheticSounds clips of 0.5-1 s (3 classes) under `folder` (in <label>/ when `labelled`); their paths."
    synth = SyntheticSounds(n_clips=n, families=('harmonic', 'noise_band', 'click_train'), clip_seconds=1.0,
                            min_seconds=0.5, seed=seed, sample_rate=RATE)
    paths = []
    for i in range(n):
        item = synth[i]
        label = synth.classes[int(item['target'].argmax())] if labelled else 'clips'
        (folder / label).mkdir(parents=True, exist_ok=True)
        sf.write(folder / label / f'{i:03d}.wav', item['audio'][~item['padding_mask']].numpy(), RATE, subtype='PCM_16')
        paths.append(f'{label}/{i:03d}.wav')
    return paths


def make_task(root:Path, name:str, seed:int, groups:int) -> dict:
    """ROOT/NAME/{train,test}/<label>/*.wav (12 + 6 clips) and its groups.csv: with 6 `groups`, three clips of the three
    classes per group (as a voice says every phrase), 4 in train and 2 in test; with 2, one group per split."""
    rows = [(f'{split}/{p}', f'{split}{i // 3 if groups > 2 else 0}') for split, n, s in (('train', 12, seed), ('test', 6, seed + 1))
            for i, p in enumerate(write_clips(root / name / split, n, s))]
    with open(root / name / 'groups.csv', 'w', newline='') as f: csv.writer(f).writerows([('path', 'group'), *rows])
    return {'judged': True, 'judged_reason': 'made by the test', 'grouped_5fold': groups >= 5, 'groups': groups}


@pytest.fixture
def corpora(tmp_path) -> Path:
    "A pool of 16 clips and two tasks: `voices` (judged, 6 groups: grouped 5-fold CV) and `tones` (not judged)."
    root = tmp_path / 'corpora'
    write_clips(root / 'pool/synth', 16, seed=100, labelled=False)
    info = {'voices': make_task(root, 'voices', 1, groups=6), 'tones': make_task(root, 'tones', 3, groups=2)}
    info['tones'].update(judged=False, judged_reason='one group per split')
    (root / 'corpora.json').write_text(json.dumps({**info, 'sample_rate': RATE}))
    write_manifest(root, ['pool', 'voices', 'tones'])
    return root


def cli(corpora:Path, results:Path, *extra) -> list[str]:
    return ['run', '--corpora', str(corpora), '--results', str(results), '--seeds', '0-1', '--steps', '4', '--eval-every', '2',
            '--random-seeds', '3', '--threads', '1', '--label', 'tiny', *extra, *TINY]


def test_run_stores_skips_and_reports(corpora, tmp_path, capsys):
    "Two seeds and the baselines stored; a second invocation measures nothing again; the report from the files alone."
    results = tmp_path / 'results'
    learning.main(cli(corpora, results))
    files = sorted(results.glob('runs/tiny/steps_4/seed_*.json'))
    assert [f.name for f in files] == ['seed_0.json', 'seed_1.json']
    r = json.loads(files[0].read_text())
    assert r['threads'] == {'asked': 1, 'used': [1]} and r['steps'] == 4 and r['config']['run']['seed'] == 0
    assert r['corpus_digest'] == open_corpora(corpora).digest and r['versions']['torch']
    assert [row['step'] for row in r['curve']] == [0, 2, 4]
    assert set(r['final']) == {'voices', 'tones'} and set(r['final']['voices']) == {'split', 'cv'} and set(r['final']['tones']) == {'split'}
    # the hook's numbers at step 0 and the last step are the one procedure's on the rebuilt init and on the export
    for when, row in (('step0', r['curve'][0]), ('final', r['curve'][-1])):
        for p in ('knn', 'linear'):
            assert r[when]['voices']['split'][p]['accuracy'] == pytest.approx(row[f'eval_voices_context_{p}_accuracy'], abs=1e-12)
    family = results / 'baselines' / r['baseline_family']
    assert sorted(p.name for p in family.glob('*.json')) == ['family.json', 'logmel.json'] + \
        [f'random-{k}-{s:03d}.json' for k in ('default', 'own') for s in range(3)]
    assert not any((results / 'scratch').iterdir())
    stamps = {p: p.stat().st_mtime_ns for p in results.rglob('*.json')}
    capsys.readouterr()
    learning.main(cli(corpora, results, '--eval-every', '3'))   # another curve density is the same run
    assert '2 stored already' in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in results.rglob('*.json')} == stamps          # nothing measured again
    (results / 'report.md').unlink(); (results / 'report.png').unlink()
    learning.main(['report', '--results', str(results)])
    text = (results / 'report.md').read_text()
    assert '## tiny, 4 steps' in text and 'grouped 5-fold CV' in text and 'tones (not judged)' in text
    assert (results / 'report.png').stat().st_size > 1000
    g, = summarise(results)
    row = next(x for x in g['rows'] if (x['task'], x['protocol'], x['probe'], x['metric']) == ('voices', 'split', 'knn', 'accuracy'))
    assert row['pretrained']['n'] == 2 and all(v['n'] == 3 for v in row['random'].values()) and row['verdict'] in stats.VERDICTS
    # --curves prints the judged tasks' curves as literals that evaluate to curve_table's numbers
    capsys.readouterr()
    learning.main(['report', '--results', str(results), '--curves'])
    literals = {}
    exec(capsys.readouterr().out, {}, literals)
    assert (literals['CURVES'], literals['REFERENCES']) == curve_table([g], judged_only=True)
    assert list(literals['CURVES']['tiny, 4 steps (K = 2)']) == ['voices knn', 'voices linear']   # tones is not judged
    assert [step for step, mean, sd in literals['CURVES']['tiny, 4 steps (K = 2)']['voices knn']] == [0, 2, 4]


def test_a_changed_corpus_is_refused(corpora, tmp_path, capsys):
    "One changed test file: the run stops before any work with one line on stderr and exit status 2."
    victim = next((corpora / 'voices/test').rglob('*.wav'))
    audio, rate = sf.read(victim)
    sf.write(victim, audio[::-1], rate, subtype='PCM_16')
    with pytest.raises(SystemExit) as e: learning.main(cli(corpora, tmp_path / 'results'))
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count('\n') == 1 and 'changed after the corpus was built' in err
    assert not (tmp_path / 'results').exists()


@pytest.mark.parametrize('argv, message', [
    (['run', '--recipe', 'nope'], "--recipe 'nope'"), (['run', '--seeds', 'a-b'], '--seeds'),
    (['run', 'run.seed=3'], 'the benchmark sets'), (['run', '--random-seeds', '-1'], '--random-seeds'),
    (['walk'], 'unknown command')])
def test_bad_input_is_one_line(argv, message, corpora, tmp_path, capsys):
    where = ['--corpora', str(corpora), '--results', str(tmp_path / 'r')] if argv[0] == 'run' else []
    with pytest.raises(SystemExit) as e: learning.main([*argv, *where])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count('\n') == 1 and message in err, err
    assert not (tmp_path / 'r').exists()


def test_help_names_seeds_steps_recipes_and_results(capsys):
    learning.main(['--help'])
    out = capsys.readouterr().out
    for word in ('--seeds', '--steps', '--results', '--random-seeds', 'masks4', 'contrast', 'model.jepa.masks_per_clip=4'): assert word in out


def test_same_seed_and_threads_give_identical_metrics(corpora, tmp_path):
    "Two runs of the benchmark's config at one seed and one thread count: metrics.csv identical but for the timings."
    c = open_corpora(corpora)
    rows = []
    for name in ('a', 'b'):
        cfg = learning.run_config([*TINY], c, seed=3, steps=3, threads=1, eval_every=2, out=tmp_path / name)
        pretrain(cfg)   # the `eval:` section with the corpora's tasks: its columns are compared too
        rows.append([{k: v for k, v in r.items() if k not in learning.UNTIMED} for r in learning.read_rows(tmp_path / name / 'metrics.csv')])
    assert rows[0] == rows[1] and any(k.startswith('eval_voices') for k in rows[0][0])


# --------------------------------------------------------------------------------------------------- the statistics
def test_t_quantiles_are_the_tables():
    "Two-sided 95 % points of Student's t from the printed tables (and the normal limit)."
    for df, t in ((1, 12.7062), (2, 4.3027), (4, 2.7764), (10, 2.2281), (30, 2.0423)):
        assert stats.t_quantile(0.975, df) == pytest.approx(t, abs=1e-4)
    assert stats.t_quantile(0.975, 1e7) == pytest.approx(1.95996, abs=1e-4)
    assert stats.t_quantile(0.025, 4) == pytest.approx(-2.7764, abs=1e-4)
    assert stats.t_cdf(0.0, 3.3) == pytest.approx(0.5) and stats.t_cdf(1.0, 1) == pytest.approx(0.75)   # Cauchy: 1/2 + atan(1)/pi


def test_welch_interval_by_hand():
    """a = 0.70, 0.72, 0.74 and b = 0.60, 0.62, 0.64: difference 0.10, both variances 0.0004, se = sqrt(2 * 0.0004 / 3)
    = 0.016330; equal sizes and variances make the Welch df 2 (n - 1) = 4, t(0.975, 4) = 2.7764: half-width 0.045339."""
    iv = stats.welch_interval([0.70, 0.72, 0.74], [0.60, 0.62, 0.64])
    assert iv['difference'] == pytest.approx(0.10) and iv['se'] == pytest.approx(math.sqrt(2 * 0.0004 / 3))
    assert iv['df'] == pytest.approx(4.0) and iv['half_width'] == pytest.approx(0.045339, abs=1e-6)
    assert (iv['low'], iv['high']) == (pytest.approx(0.054661, abs=1e-6), pytest.approx(0.145339, abs=1e-6))
    assert stats.verdict(iv) == 'gain' and stats.verdict(stats.welch_interval([0.60, 0.62, 0.64], [0.70, 0.72, 0.74])) == 'loss'
    # unequal variances: va/na = 0.0004/3, vb/nb = 0.00025/5, df = (va/na + vb/nb)^2 / ((va/na)^2 / 2 + (vb/nb)^2 / 4) = 3.5328
    iv = stats.welch_interval([0.70, 0.72, 0.74], [0.60, 0.61, 0.62, 0.63, 0.64])
    assert iv['df'] == pytest.approx(3.5328, abs=1e-4) and iv['difference'] == pytest.approx(0.10)
    assert stats.verdict(stats.welch_interval([0.70, 0.75, 0.80], [0.68, 0.74, 0.79])) == 'tie (inconclusive)'
    assert stats.welch_interval([0.7], [0.6, 0.65]) is None and stats.verdict(None) == 'not resolvable (one seed)'


def test_prediction_interval_by_hand():
    """One run at 0.70 against 0.60, 0.62, 0.64 (mean 0.62, sd 0.02): difference 0.08, se = 0.02 · sqrt(1 + 1/3)
    = 0.023094 on 2 df, t(0.975, 2) = 4.3027: half-width 0.099365, so the interval [−0.019365, +0.179365] holds zero."""
    iv = stats.prediction_interval(0.70, [0.60, 0.62, 0.64])
    assert iv['difference'] == pytest.approx(0.08) and iv['se'] == pytest.approx(0.02 * math.sqrt(4 / 3)) and iv['df'] == 2
    assert (iv['low'], iv['high']) == (pytest.approx(-0.019365, abs=1e-6), pytest.approx(0.179365, abs=1e-6))
    assert stats.verdict(iv) == 'tie (inconclusive)' and stats.verdict(stats.prediction_interval(0.80, [0.60, 0.62, 0.64])) == 'gain'
    # wider than the Welch interval of the sample's mean against a mean of the same spread: one run is one draw
    assert iv['half_width'] > stats.welch_interval([0.68, 0.70, 0.72], [0.60, 0.62, 0.64])['half_width']
    assert stats.prediction_interval(0.7, [0.6]) is None
    assert stats.prediction_summary(0.70, 0.62, 0.02, 3) == pytest.approx(iv)   # the same from the sample's summary


def test_paired_interval_by_hand():
    "Differences 0.05, 0.03, 0.04, 0.06, 0.02: mean 0.04, sd 0.015811, se 0.0070711, t(0.975, 4) = 2.7764: 0.04 ± 0.019632."
    iv = stats.paired_interval([0.75, 0.73, 0.74, 0.76, 0.72], [0.70] * 5)
    assert iv['difference'] == pytest.approx(0.04) and iv['df'] == 4
    assert iv['half_width'] == pytest.approx(0.019632, abs=1e-6) and iv['low'] == pytest.approx(0.020368, abs=1e-6)
    assert stats.mean_sd([0.1, 0.2, 0.3]) == {'mean': pytest.approx(0.2), 'sd': pytest.approx(0.1), 'n': 3}


def fake_group(label:str, steps:int, finals:list, judged:bool=True) -> dict:
    "A `summarise` entry with one task ('drums', split, linear, accuracy) measured at `finals` over seeds."
    runs = [{'final': {'drums': {'split': {'linear': {'accuracy': f}}}}} for f in finals]
    row = {'task': 'drums', 'protocol': 'split', 'probe': 'linear', 'metric': 'accuracy', 'judged': judged}
    return {'label': label, 'steps': steps, 'runs': runs, 'rows': [row]}


def test_recipes_and_run_lengths_are_contrasted():
    "masks4 against default at the same steps; default at 5,040 steps against itself at 1,500; a lone label is not contrasted."
    summary = [fake_group('default', 1500, [0.60, 0.62, 0.64]), fake_group('masks4', 1500, [0.70, 0.72, 0.74]),
               fake_group('default', 5040, [0.61, 0.60, 0.65]), fake_group('lr3e-4', 300, [0.5, 0.6])]
    pairs = contrasts(summary)
    assert [(c['a'], c['b']) for c in pairs] == [(('default', 5040), ('default', 1500)), (('masks4', 1500), ('default', 1500))]
    masks4 = pairs[1]['rows'][0]
    assert masks4['difference'] == stats.welch_interval([0.70, 0.72, 0.74], [0.60, 0.62, 0.64]) and masks4['verdict'] == 'gain'
    assert pairs[0]['rows'][0]['verdict'] == 'tie (inconclusive)'
    assert 'A better' in '\n'.join(contrast_table(pairs))
    assert contrasts([fake_group('default', 1500, [0.6, 0.7], judged=False), fake_group('x', 1500, [0.8, 0.9], judged=False)])[0]['rows'] == []
    # one seed has no interval: however large the difference, it is not called a tie, a gain or a loss
    lone, = contrasts([fake_group('default', 1500, [0.60, 0.62, 0.64]), fake_group('default', 15000, [0.95])])
    assert lone['rows'][0]['difference'] is None and lone['rows'][0]['verdict'] == 'not resolvable (one seed)'
    assert '| – | not resolvable (one seed) |' in '\n'.join(contrast_table([lone]))
