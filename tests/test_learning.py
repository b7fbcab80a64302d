"Cheap checks of experiments/learning.py: budget -> steps, the probe schedule, the verdict and the printed table (the experiment itself is not a test)."
import math

import numpy as np
import pytest

from experiments import learning


def test_budget_to_steps():
    "The largest step count whose steps and per-invocation costs fit the budget."
    assert learning.budget_to_steps(60, rate=4.0, overhead_s=0) == 240
    # 8 segments of 2 s each leave 44 s of steps
    assert learning.budget_to_steps(60, rate=4.0, overhead_s=2.0) == 176
    # with a fixed probe interval the number of segments follows the steps: 10 s per segment of 20 steps
    steps = learning.budget_to_steps(60, rate=4.0, overhead_s=5.0, probe_every=20)
    assert steps / 4 + 5 * math.ceil(steps / 20) <= 60 < (steps + 1) / 4 + 5 * math.ceil((steps + 1) / 20)
    assert learning.budget_to_steps(10, rate=1.0, overhead_s=5.0) == 0   # the overheads alone exceed the budget


def test_steady_rate_leaves_out_startup():
    rows = [{'step': 5, 'seconds': 10.0}, {'step': 15, 'seconds': 12.5}, {'step': 25, 'seconds': 15.0}]
    assert learning.steady_rate(rows) == pytest.approx(4.0)
    with pytest.raises(ValueError): learning.steady_rate(rows[:1])


def test_probe_schedule():
    assert learning.probe_schedule(60, 20) == [0, 20, 40, 60]
    assert learning.probe_schedule(50, 20) == [0, 20, 40, 50]      # the last step is always a point
    assert learning.probe_schedule(232, None) == [0, 29, 58, 87, 116, 145, 174, 203, 232]
    assert learning.probe_schedule(3, None) == [0, 1, 2, 3]


def test_spearman():
    assert learning.spearman([0, 1, 2, 3], [0.1, 0.2, 0.3, 0.4]) == pytest.approx(1.0)
    assert learning.spearman([0, 1, 2, 3], [0.4, 0.3, 0.2, 0.1]) == pytest.approx(-1.0)
    assert learning.spearman([0, 1, 2], [0.5, 0.5, 0.6]) == pytest.approx(np.corrcoef([0, 1, 2], [0.5, 0.5, 2])[0, 1])
    assert math.isnan(learning.spearman([0, 1, 2], [0.3, 0.3, 0.3]))


def random_baseline(linear, knn):
    points = [{'seed': s, 'linear': l, 'knn': k} for s, (l, k) in enumerate(zip(linear, knn))]
    return learning.summarise_random(points)


def curve(linear, knn, every=10):
    return [{'step': i * every, 'linear': l, 'knn': k} for i, (l, k) in enumerate(zip(linear, knn))]


def test_summarise_random():
    r = random_baseline([0.6, 0.66, 0.63], [0.5, 0.58, 0.55])
    assert r['linear']['best'] == 0.66 and r['linear']['best_seed'] == 1 and r['knn']['best'] == 0.58
    assert r['linear']['mean'] == pytest.approx(0.63) and r['linear']['sd'] == pytest.approx(0.03)


def test_verdict_pass_and_fail():
    rnd = random_baseline([0.6, 0.66, 0.63], [0.5, 0.58, 0.55])
    good = learning.task_verdict(curve([0.62, 0.68, 0.72, 0.75], [0.55, 0.6, 0.62, 0.64]), rnd, n_test=400)
    assert good['pass'] and good['rises'] and good['beats_random']
    assert good['linear']['final_minus_best_random'] == pytest.approx(0.09)
    assert good['accuracy_se']['linear'] == pytest.approx(math.sqrt(0.75 * 0.25 / 400))
    # the drums numbers: pretraining made the encoder worse than its random init
    worse = learning.task_verdict(curve([0.658, 0.6, 0.55, 0.535], [0.58, 0.52, 0.5, 0.486]), rnd)
    assert not worse['pass'] and not worse['rises'] and not worse['beats_random']
    # rising, but kNN ends only 2 points above the best random init (the margin is 3)
    close = learning.task_verdict(curve([0.6, 0.7, 0.75], [0.5, 0.55, 0.60]), rnd)
    assert close['rises'] and not close['beats_random'] and not close['pass']
    assert learning.task_verdict(curve([0.6, 0.7, 0.75], [0.5, 0.55, 0.62]), rnd)['pass']           # +4 clears 3 points
    assert not learning.task_verdict(curve([0.6, 0.7, 0.75], [0.5, 0.55, 0.62]), rnd, margin=0.05)['pass']
    # far above random but falling along the run: it passes (the rule is about the final encoder); the fall is reported
    falling = learning.task_verdict(curve([0.9, 0.85, 0.8], [0.8, 0.75, 0.7]), rnd)
    assert falling['beats_random'] and not falling['rises'] and falling['pass']


def test_strongest_random_is_the_best_network_of_every_kind():
    own = random_baseline([0.6, 0.66, 0.63], [0.5, 0.58, 0.55])
    default = random_baseline([0.7, 0.62, 0.61], [0.4, 0.45, 0.41])
    best = learning.strongest_random({'own': own, 'default': default})
    assert (best['linear']['best'], best['linear']['best_kind'], best['linear']['best_seed']) == (0.7, 'default', 0)
    assert (best['knn']['best'], best['knn']['best_kind'], best['knn']['best_seed']) == (0.58, 'own', 1)
    v = learning.task_verdict(curve([0.6, 0.72], [0.5, 0.62]), best)
    assert v['linear']['final_minus_best_random'] == pytest.approx(0.02) and not v['pass']


def test_baseline_front_ends():
    "'own' is the run's front end with the pool's statistics; 'default' the named setting's statistics (random:PRESET)."
    from dataclasses import replace
    from audiojepa.train import TrainConfig, build_frontend_config
    cfg = TrainConfig()
    cfg = replace(cfg, frontend=replace(cfg.frontend, options={'mean': -3.0, 'std': 2.5, 'n_mels': 128}))
    fc = build_frontend_config(cfg)
    assert learning.baseline_frontend(cfg, fc, 'own') == fc
    default = learning.baseline_frontend(cfg, fc, 'default')
    assert (default.mean, default.std, default.n_mels) == (0.0, 1.0, 128)
    assert replace(default, mean=-3.0, std=2.5) == fc


def test_random_baselines_are_probed_once(tmp_path, monkeypatch):
    "A random network's probe result comes from the cache when nothing it depends on changed."
    from dataclasses import replace
    from audiojepa.train import TrainConfig, build_frontend_config
    cfg = TrainConfig()
    cfg = replace(cfg, frontend=replace(cfg.frontend, options={'mean': -3.0, 'std': 2.5}))   # statistics of a pool
    fc = build_frontend_config(cfg)
    task = {'name': 't', 'train': {'ids': ['a', 'b']}, 'test': {'ids': ['c']}}
    calls = []
    def fake_probe_all(embedder, tasks, **kw):
        calls.append([t['name'] for t in tasks])
        return {t['name']: {'linear': 0.5, 'knn': float(embedder.encoder.blocks[0].attn.qkv.weight[0, 0].detach())} for t in tasks}
    monkeypatch.setattr(learning, 'probe_all', fake_probe_all)
    first = learning.probe_random(cfg, fc, 0, 'own', [task], tmp_path, k=10)
    again = learning.probe_random(cfg, fc, 0, 'own', [task], tmp_path, k=10)
    assert len(calls) == 1 and again['t']['cached'] and again['t']['knn'] == first['t']['knn']
    learning.probe_random(cfg, fc, 1, 'own', [task], tmp_path, k=10)                    # another seed
    learning.probe_random(cfg, fc, 0, 'default', [task], tmp_path, k=10)                # another front end
    learning.probe_random(cfg, fc, 0, 'own', [{**task, 'test': {'ids': ['d']}}], tmp_path, k=10)   # other clips
    learning.probe_random(cfg, fc, 0, 'own', [task], tmp_path, k=5)                     # other probe settings
    assert len(calls) == 5


def test_summary_table():
    rnd = random_baseline([0.6, 0.66, 0.63], [0.5, 0.58, 0.55])
    points = curve([0.62, 0.75], [0.55, 0.64])
    points[1]['diagnostics'] = {'loss': 0.3, 'target_rank': 40.0, 'pred_rank': 5.0}
    task = {'curve': points, 'baselines': {'random': rnd, 'logmel': {'linear': 0.7, 'knn': 0.6}}}
    task['verdict'] = {**learning.task_verdict(points, rnd), 'judged': True}
    result = {'tasks': {'drums': task}}
    table = learning.format_summary(result)
    assert 'drums' in table and 'PASS' in table and '+9.0' in table
    assert '0.3000' in learning.format_curves(result)


def test_command_line_mixes_flags_and_overrides():
    "The benchmark reads its command line as audiojepa-pretrain does, with --probe-context a switch."
    from audiojepa.cli import cli_parser, dashed_flags
    argv = ['model.preset=small', '--max-steps', '60', '--probe_context', 'schedule.lr=5e-4', '--out=x']
    args = cli_parser(learning.main).parse_intermixed_args(dashed_flags(argv))
    assert (args.max_steps, args.probe_context, args.out) == (60, True, 'x')
    assert args.overrides == ['model.preset=small', 'schedule.lr=5e-4']


def test_compact_is_exact():
    import torch
    pcm = torch.randint(-32768, 32767, (1000,)).float() / 32768            # what a 16-bit WAV decodes to
    assert learning.compact(pcm).dtype == torch.int16 and torch.equal(learning.as_float(learning.compact(pcm)), pcm)
    other = torch.rand(1000) - 0.5                                          # not on the 16-bit grid: kept as is
    assert learning.compact(other) is other and learning.as_float(other) is other


def test_xares_scores_pair_the_final_export_with_random_inits(tmp_path):
    "--xares: X-ARES scores the final export first, then random inits of its architecture and front end (a stand-in for run_xares)."
    import torch
    from audiojepa.audio import FrontendConfig
    from audiojepa.embed import random_like
    from audiojepa.models import ViTEncoder, preset, save_encoder
    export = save_encoder(tmp_path / 'encoder', ViTEncoder(preset('tiny')['encoder']), FrontendConfig(mean=-4.0, std=3.0))
    seen = []
    def fake_run_xares(embedder, local, env, epochs):
        seen.append(embedder)
        return {'tasks': [{'task': n, 'mlp': 0.9 if len(seen) == 1 else 0.2 * len(seen), 'knn': 0.5, 'n_test': 7,
                           'encoder': f'E{len(seen)}'} for n in local]}
    dirs = [tmp_path / 'music', tmp_path / 'drums']
    scores = learning.xares_scores(export, dirs, tmp_path / 'env', random_seeds=2, run=fake_run_xares)
    assert len(seen) == 3 and all(e.sampling_rate == 16000 for e in seen)                   # X-ARES' rate
    weights = lambda e: torch.cat([p.flatten() for p in e.encoder.parameters()])
    assert torch.equal(weights(seen[0]), weights(learning.AudioJEPAEncoder.from_pretrained(export)))
    assert torch.equal(weights(seen[2]), weights(random_like(seen[0], 1)))
    assert seen[1].logmel.config == seen[0].logmel.config                                    # the export's front end
    assert scores['drums']['final'] == {'mlp': 0.9, 'knn': 0.5} and scores['drums']['n_test'] == 7
    assert scores['music']['random'] == {'mlp': pytest.approx(0.5), 'knn': 0.5}              # mean of 0.4 and 0.6
    assert [r['seed'] for r in scores['music']['random_per_seed']] == [0, 1]
    rnd = random_baseline([0.6, 0.66, 0.63], [0.5, 0.58, 0.55])
    result = {'tasks': {'music': {'curve': curve([0.62, 0.75], [0.55, 0.64]), 'baselines': {'random': rnd}}}, 'xares': scores}
    table = learning.format_xares(result)
    assert '90.0 / 50.0' in table and '50.0 / 50.0' in table and '75.0 / 64.0' in table and '63.0 / 54.3' in table
    from audiojepa.cli import cli_parser, dashed_flags
    args = cli_parser(learning.main).parse_intermixed_args(dashed_flags(['--xares', '--xares-random-seeds', '2']))
    assert args.xares and args.xares_random_seeds == 2
    assert not cli_parser(learning.main).parse_intermixed_args([]).xares                      # off by default


def test_norm_stats_are_those_pretraining_measures(tmp_path):
    "With `frontend.norm_clips` the experiment fixes the log-mel mean and std that pretraining itself measures on the pool."
    from audiojepa.config import apply_overrides
    from audiojepa.train import TrainConfig, pretrain
    cfg = apply_overrides(TrainConfig(), ['data.spec=synthetic:8', 'data.clip_seconds=1', 'data.batch_size=4',
                                          'data.num_workers=0', 'frontend.norm_clips=6', 'schedule.max_steps=1',
                                          'run.trackers=[]', 'run.progress=false', 'run.threads=1', f'run.out={tmp_path}'])
    fixed = learning.resolve_norm_stats(cfg).frontend.options
    measured = learning.AudioJEPAEncoder.from_pretrained(pretrain(cfg).encoder_dir).logmel.config
    assert (measured.mean, measured.std) == (fixed['mean'], fixed['std'])
