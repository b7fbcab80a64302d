"""The learning benchmark's report, regenerated from its stored results only (`python -m experiments.learning report`).

Per recipe label and step count, per task, protocol (the fixed split; grouped 5-fold CV where the task has it), probe
and metric: the pretrained mean ± sd over the K seeds, the random networks' mean ± sd over R seeds per front-end kind,
the log-mel baseline, the difference of the pretrained mean to the stronger random kind with its 95 % Welch interval
(its half-width: the smallest effect this design resolves), the paired difference final − step 0 over the seeds with its
interval, and the verdict: "gain" / "loss" when the interval excludes zero, "tie (inconclusive)" otherwise ("not
resolvable (one seed)" when a side has one run), on the tasks corpora.json judges; the others are "reported, not
judged". Then the groups against each other (`contrasts`): each recipe against the reference recipe (`default`) at the
same steps, and each recipe at more steps against itself at its fewest, the difference of their means with its Welch
interval: whether an option or a longer run is better than what it is compared with, not only better than random.
RESULTS/report.md holds the tables, RESULTS/report.png the figure: split accuracy against steps (mean ± sd over seeds),
the stronger random kind's mean and log-mel as lines; `report --curves` prints the figure's numbers as the literals
chapter 23's figure cells hold (`curve_literals`).
"""
from __future__ import annotations
import json
from collections import Counter
from pathlib import Path

from experiments.stats import mean_sd, paired_interval, verdict, welch_interval
from experiments.yardstick import METRICS, PROBES, read_baselines

PROTOCOLS = {'split': 'train/test split', 'cv': 'grouped 5-fold CV'}
NOT_JUDGED = 'reported, not judged'
REFERENCE = 'default'   # the recipe every other one is contrasted with at the same steps


def load_runs(results:Path) -> list[dict]:
    "Every stored run result under RESULTS/runs."
    return [json.loads(p.read_text()) for p in sorted(Path(results).glob('runs/*/steps_*/seed_*.json'))]


def run_groups(runs:list) -> dict:
    "(label, steps) -> its runs, ordered by seed."
    out = {}
    for r in sorted(runs, key=lambda r: (r['label'], r['steps'], r['seed'])): out.setdefault((r['label'], r['steps']), []).append(r)
    return out


def pick(scores:dict|None, task:str, protocol:str, probe:str, metric:str):
    "One number of a measurement (`yardstick.measure`'s nesting), or None."
    return ((((scores or {}).get(task) or {}).get(protocol) or {}).get(probe) or {}).get(metric)


def present(values) -> list: return [v for v in values if v is not None]


def compare(runs:list, baselines:dict, task:str, protocol:str, probe:str, metric:str) -> dict:
    "The report's numbers for one task, protocol, probe and metric of a group of runs."
    key = (task, protocol, probe, metric)
    final, step0 = [pick(r['final'], *key) for r in runs], [pick(r['step0'], *key) for r in runs]
    random = {kind: present(pick(s, *key) for s in scores) for kind, scores in baselines['random'].items()}
    random = {k: v for k, v in random.items() if v}
    stronger = max(random, key=lambda k: mean_sd(random[k])['mean']) if random else None
    difference = welch_interval(present(final), random[stronger]) if stronger else None
    pairs = [(f, s) for f, s in zip(final, step0) if f is not None and s is not None]
    judged = runs[0]['tasks'][task]['judged']
    return {'task': task, 'protocol': protocol, 'probe': probe, 'metric': metric, 'judged': judged,
            'pretrained': mean_sd(present(final)), 'step0': mean_sd(present(step0)),
            'random': {k: mean_sd(v) for k, v in random.items()}, 'stronger': stronger,
            'logmel': pick(baselines['logmel'], *key), 'difference': difference,
            'final_minus_step0': paired_interval(*zip(*pairs)) if len(pairs) > 1 else None,
            'resolvable': difference['half_width'] if difference else None,
            'verdict': verdict(difference) if judged else NOT_JUDGED}


def summarise(results:Path) -> list[dict]:
    "Per (label, steps): its runs' seeds, baselines and the rows of `compare` (judged tasks first)."
    out = []
    for (label, steps), runs in run_groups(load_runs(results)).items():
        family, count = Counter(r['baseline_family'] for r in runs).most_common(1)[0]
        baselines = read_baselines(Path(results) / 'baselines' / family)
        tasks = sorted(runs[0]['tasks'], key=lambda t: not runs[0]['tasks'][t]['judged'])
        rows = [compare(runs, baselines, t, protocol, probe, metric) for metric in METRICS for t in tasks
                for protocol in PROTOCOLS if protocol in (runs[0]['final'].get(t) or {}) for probe in PROBES]
        out.append({'label': label, 'steps': steps, 'seeds': [r['seed'] for r in runs], 'runs': runs, 'rows': rows,
                    'baseline_family': family, 'other_families': len(runs) - count,
                    'random_seeds': {k: len(v) for k, v in baselines['random'].items()}})
    return out


def contrast(a:dict, b:dict, metric:str='accuracy') -> dict:
    "Group `a` against group `b` (two entries of `summarise`): per judged row, a's mean minus b's with its Welch interval and verdict."
    rows = []
    for ra in (r for r in a['rows'] if r['metric'] == metric and r['judged']):
        key = (ra['task'], ra['protocol'], ra['probe'], metric)
        finals = [[pick(run['final'], *key) for run in g['runs']] for g in (a, b)]
        difference = welch_interval(present(finals[0]), present(finals[1]))
        rows.append({'task': ra['task'], 'protocol': ra['protocol'], 'probe': ra['probe'], 'metric': metric,
                     'a': mean_sd(present(finals[0])), 'b': mean_sd(present(finals[1])), 'difference': difference,
                     'verdict': verdict(difference)})
    return {'a': (a['label'], a['steps']), 'b': (b['label'], b['steps']), 'rows': rows}


def contrasts(summary:list, reference:str=REFERENCE) -> list[dict]:
    "Every recipe against `reference` at the same steps, and every recipe at more steps against itself at its fewest."
    groups = {(g['label'], g['steps']): g for g in summary}
    pairs = [(key, (reference, key[1])) for key in groups if key[0] != reference and (reference, key[1]) in groups]
    fewest = {label: min(s for l, s in groups if l == label) for label, _ in groups}
    pairs += [(key, (key[0], fewest[key[0]])) for key in groups if key[1] != fewest[key[0]]]
    return [contrast(groups[a], groups[b]) for a, b in sorted(pairs)]


def points(x) -> str: return '–' if x is None else f"{100 * x:.1f}"


def signed(x) -> str: return f"{100 * x:+.1f}".replace('-', '−')


def spread(s:dict) -> str:
    "'61.2 ± 1.3 [5]' in points."
    if s['mean'] is None: return '–'
    return f"{points(s['mean'])}" + (f" ± {points(s['sd'])}" if s['sd'] is not None else '') + f" [{s['n']}]"


def ci(iv:dict|None) -> str:
    "'+3.1 [−0.5, +6.7]' in points."
    return '–' if iv is None else f"{signed(iv['difference'])} [{signed(iv['low'])}, {signed(iv['high'])}]"


def table(group:dict, metric:str) -> list[str]:
    "The markdown table of one group for one metric."
    kinds = sorted(group['random_seeds'])
    head = ['task', 'protocol', 'probe', 'pretrained', 'step 0', *[f'random {k}' for k in kinds], 'log-mel',
            'Δ to stronger random [95 % CI]', 'resolves ±', 'final − step 0 [95 % CI]', 'verdict']
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for r in (r for r in group['rows'] if r['metric'] == metric):
        cells = [r['task'] + ('' if r['judged'] else ' (not judged)'), PROTOCOLS[r['protocol']], r['probe'],
                 spread(r['pretrained']), spread(r['step0']),
                 *[spread(r['random'][k]) if k in r['random'] else '–' for k in kinds], points(r['logmel']),
                 ci(r['difference']) + (f" ({r['stronger']})" if r['stronger'] else ''),
                 points(r['resolvable']), ci(r['final_minus_step0']), f"**{r['verdict']}**" if r['verdict'] in ('gain', 'loss') else r['verdict']]
        lines.append('| ' + ' | '.join(cells) + ' |')
    return lines


def group_header(g:dict) -> list[str]:
    "A group's heading and the facts its numbers stand on: seeds, baselines, threads, corpus, seconds per run."
    runs = g['runs']
    threads = sorted({t for r in runs for t in r['threads']['used']})
    seconds = mean_sd([r['seconds']['pretrain'] for r in runs])
    note = (f" ({g['other_families']} of its runs were measured with other baselines' code or corpus: compare with care)"
            if g['other_families'] else '')
    return [f"## {g['label']}, {g['steps']:,} steps", '',
            f"K = {len(runs)} pretraining seeds ({', '.join(map(str, g['seeds']))}); random networks per kind: "
            f"{', '.join(f'{k} R = {n}' for k, n in sorted(g['random_seeds'].items()))}; torch threads used: {threads}; "
            f"corpus {runs[0]['corpus_digest'][:12]}; baselines {g['baseline_family']}{note}; pretraining with the curve's "
            f"evaluations {seconds['mean']:.0f} s per run on average; overrides: {' '.join(runs[0]['overrides']) or 'none (the defaults)'}.", '']


def markdown(summary:list) -> str:
    "The report: how to read it, then per group its accuracy and macro-F1 tables."
    lines = ['# Does pretraining beat no pretraining? The learning benchmark', '',
             'Regenerated from the stored results by `python -m experiments.learning report`. Numbers are percentages: '
             'mean ± sd [n] over seeds. Δ is the pretrained mean minus the stronger random kind\'s, with its 95 % Welch '
             'interval; "resolves ±" is the interval\'s half-width, the smallest effect this design can tell from zero. '
             '"final − step 0" pairs each run with its own initialisation. A verdict is "gain" or "loss" only when the '
             'interval excludes zero.', '']
    for g in summary:
        lines += group_header(g)
        for metric in METRICS: lines += [f"**{metric.replace('_', '-')}**", '', *table(g, metric), '']
    if pairs := contrasts(summary): lines += ['## Recipes and run lengths against each other (accuracy, judged tasks)', '',
                                              *contrast_table(pairs), '']
    return '\n'.join(lines if summary else lines + ['No stored runs yet.'])


def contrast_table(pairs:list) -> list[str]:
    "One markdown table of `contrasts`: A against B per task, protocol and probe."
    lines = ['| A | B | task | protocol | probe | A | B | A − B [95 % CI] | verdict |', '|---|---|---|---|---|---|---|---|---|']
    for c in pairs:
        (la, sa), (lb, sb) = c['a'], c['b']
        for r in c['rows']:
            v = {'gain': 'A better', 'loss': 'B better'}.get(r['verdict'], r['verdict'])
            lines.append(f"| {la}, {sa:,} | {lb}, {sb:,} | {r['task']} | {PROTOCOLS[r['protocol']]} | {r['probe']} | "
                         f"{spread(r['a'])} | {spread(r['b'])} | {ci(r['difference'])} | {v} |")
    return lines


def mean_curve(runs:list, column:str) -> tuple:
    "(steps, mean, sd) of a curve column over the runs, on the steps every run has."
    import numpy as np
    by_run = [{r['step']: r[column] for r in run['curve'] if column in r} for run in runs]
    steps = sorted(set.intersection(*(set(c) for c in by_run))) if by_run else []
    values = np.array([[c[s] for s in steps] for c in by_run])
    return np.array(steps), values.mean(0), values.std(0, ddof=1) if len(runs) > 1 else np.zeros(len(steps))


def curve_table(summary:list, judged_only:bool=False) -> tuple[dict, dict]:
    """The figure's numbers, in points, as plain literals (chapter 23 prints them into the cell that draws them):
    {group: {'task probe': [(step, mean, sd), ...]}} of split accuracy during pretraining, the reference recipe's groups
    first, and {'task probe': (stronger random kind's mean, log-mel)} from the first group that names them (groups share
    their baselines). One seed gives sd 0."""
    curves, references = {}, {}
    for g in sorted(summary, key=lambda g: (g['label'] != REFERENCE, g['label'], g['steps'])):
        export = g['runs'][0]['config']['model']['export']
        group = curves.setdefault(f"{g['label']}, {g['steps']:,} steps (K = {len(g['runs'])})", {})
        for r in g['rows']:
            if (r['protocol'], r['metric']) != ('split', 'accuracy') or (judged_only and not r['judged']): continue
            panel = f"{r['task']}{'' if r['judged'] else ' (not judged)'} {r['probe']}"
            steps, m, sd = mean_curve(g['runs'], f"eval_{r['task']}_{export}_{r['probe']}_accuracy")
            if len(steps): group[panel] = [(int(s), round(100 * float(a), 1), round(100 * float(b), 1)) for s, a, b in zip(steps, m, sd)]
            references.setdefault(panel, (round(100 * r['random'][r['stronger']]['mean'], 1) if r['stronger'] else None,
                                          None if r['logmel'] is None else round(100 * r['logmel'], 1)))
    return curves, references


def curve_literals(curves:dict, references:dict) -> str:
    "`curve_table`'s numbers as the Python source of chapter 23's figure cells: `CURVES = {...}` and `REFERENCES = {...}`."
    groups = ''.join(f"    {name!r}: {{\n" + ''.join(f"        {panel!r}: {points},\n" for panel, points in curve.items()) + '    },\n'
                     for name, curve in curves.items())
    return f"CURVES = {{\n{groups}}}\nREFERENCES = {references!r}   # (stronger random kind's mean, log-mel)"


def plot_curves(curves:dict, references:dict):
    "One panel per task and probe: each group's accuracy against steps (± sd band); random (dashed) and log-mel (dash-dot)."
    import numpy as np
    from matplotlib.figure import Figure
    panels = list(dict.fromkeys(p for c in curves.values() for p in c))
    tasks = list(dict.fromkeys(p.rsplit(' ', 1)[0] for p in panels))
    fig = Figure(figsize=(3.4 * len(tasks), 5.2), layout='constrained')
    axes = fig.subplots(len(PROBES), len(tasks), squeeze=False, sharex=True)
    for gi, (name, curve) in enumerate(curves.items()):
        for panel, points in curve.items():
            task, probe = panel.rsplit(' ', 1)
            ax = axes[PROBES.index(probe)][tasks.index(task)]
            steps, m, sd = (np.array(v) for v in zip(*points))
            ax.plot(steps, m, color=f'C{gi}', marker='.', label=name)
            ax.fill_between(steps, m - sd, m + sd, color=f'C{gi}', alpha=0.15)
    for panel, (random, logmel) in references.items():
        if panel not in panels: continue
        task, probe = panel.rsplit(' ', 1)
        ax = axes[PROBES.index(probe)][tasks.index(task)]
        if random is not None: ax.axhline(random, color='grey', ls='--', lw=1, label='random (stronger kind, mean)')
        if logmel is not None: ax.axhline(logmel, color='k', ls='-.', lw=1, label='log-mel mean + std')
        ax.set_title(panel, fontsize=9); ax.tick_params(labelsize=7)
        if probe == PROBES[-1]: ax.set_xlabel('step', fontsize=8)
    for row in axes: row[0].set_ylabel('accuracy (split), %', fontsize=8)
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles: fig.legend(handles, labels, loc='outside lower center', fontsize=7, ncols=3)
    return fig


def plot(summary:list, path:Path):
    "report.png: `plot_curves` of the stored groups."
    plot_curves(*curve_table(summary)).savefig(path, dpi=80)


def write_report(results, summary:list|None=None) -> Path:
    """RESULTS/report.md and RESULTS/report.png from the stored results (`summary`: their `summarise`, when the caller
    has read them already); the path of report.md."""
    results = Path(results)
    if summary is None: summary = summarise(results)
    (results / 'report.md').write_text(markdown(summary) + '\n')
    if summary: plot(summary, results / 'report.png')
    return results / 'report.md'
