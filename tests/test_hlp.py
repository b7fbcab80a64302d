"Tests of audiojepa.hlp that need files, the authors' package, a subprocess, or many random cases."
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import audiojepa.hlp as hlp_module
from audiojepa.hlp import (HLP, POLICIES, Ontology, OntologyError, Vocabulary, propagation_matrix, read_segments,
                           write_segments)

DATA = Path(__file__).resolve().parents[1].parent/'shared'/'data'/'audioset'
needs_data = pytest.mark.skipif(not (DATA/'ontology.json').exists(), reason='needs ../shared/data/audioset')


def authors_formula(y, matrix):
    "The authors' propagate: (Y[:, :, None] * T).max(1), in float64 so every dtype compares exactly."
    return (y.double()[:, :, None] * matrix.double()).max(1).values


@pytest.fixture(scope='module')
def audioset():
    if not (DATA/'ontology.json').exists(): pytest.skip('needs ../shared/data/audioset')
    onto = Ontology.from_json(DATA/'ontology.json')
    vocab = Vocabulary.from_csv(DATA/'class_labels_indices.csv')
    return onto, vocab, HLP.from_ontology(onto, vocab, 'paper')


@pytest.fixture(scope='module')
def authors_table():
    hlp_pkg = pytest.importorskip('hierarchical_label_propagation')
    from importlib.resources import files
    return torch.load(files(hlp_pkg)/'HLP_lookup_table.pt', weights_only=True)


# --- the paper policy and the authors' table -------------------------------------------------------------------

def test_paper_matrix_equals_authors_table(audioset, authors_table):
    _, _, hlp = audioset
    assert authors_table.dtype == torch.bool and authors_table.shape == (527, 527)
    assert torch.equal(hlp.matrix, authors_table)


def test_propagation_equals_authors_package(audioset, authors_table):
    "Binary labels and scores in [0, 1], through the authors' own HLP class."
    from hierarchical_label_propagation import HLP as AuthorsHLP
    _, _, hlp = audioset
    authors = AuthorsHLP(authors_table)
    g = torch.Generator().manual_seed(0)
    scores = torch.rand(300, 527, generator=g)
    labels = scores > 0.99
    assert torch.equal(hlp.propagate(scores), authors.propagate(scores))
    assert torch.equal(hlp.propagate(labels), authors.propagate(labels))
    assert torch.equal(hlp.propagate(scores[0]), authors.propagate(scores[0]))


def test_policies_nest_and_differ(audioset):
    onto, vocab, paper = audioset
    single, closure = (propagation_matrix(onto, vocab, p) for p in ('single-parent', 'all-ancestors'))
    assert not (single & ~paper.matrix).any() and not (paper.matrix & ~closure).any()
    assert (int(single.sum()), int(paper.matrix.sum()), int(closure.sum())) == (697 + 527, 731 + 527, 835 + 527)
    for m in (single, paper.matrix, closure):  # each is already closed: propagating twice changes nothing
        assert torch.equal((m.float() @ m.float() > 0), m)


def test_paper_rule_on_named_cases(audioset):
    onto, vocab, hlp = audioset
    def targets(name):
        i = vocab.index(onto.mid_of(name))
        return {vocab.names[j] for j in hlp.matrix[i].nonzero().flatten().tolist() if j != i}
    assert targets('Rock music') == {'Music'}  # through the unlabelled 'Music genre'
    assert targets('Church bell') == {'Bell', 'Musical instrument', 'Music'}  # Bell's 2nd parent is unlabelled
    assert targets('Doorbell') == set()  # Door and Alarm: ambiguous
    assert targets('Ding-dong') == {'Doorbell'}  # the climb stops at the ambiguous Doorbell


def test_fsd50k_style_vocabulary(audioset):
    "A vocabulary with classes that are not AudioSet labels, e.g. FSD50K's 'Human voice'."
    onto, _, _ = audioset
    names = ['Human voice', 'Speech', 'Male speech, man speaking', 'Crash cymbal', 'Cymbal', 'Percussion']
    hlp = HLP.from_ontology(onto, [onto.mid_of(n) for n in names])
    y = torch.zeros(2, len(names), dtype=torch.bool)
    y[0, 2] = y[1, 3] = True
    out = hlp.propagate(y)
    assert out[0].tolist() == [True, True, True, False, False, False]
    assert out[1].tolist() == [False, False, False, True, True, True]
    with pytest.raises(KeyError, match='/m/not-a-class'):
        HLP.from_ontology(onto, ['/m/09x0r', '/m/not-a-class'])


# --- the balanced set and the command line ---------------------------------------------------------------------

@needs_data
def test_cli_balanced_statistics_and_output(tmp_path):
    out = tmp_path/'balanced_hlp.csv'
    res = subprocess.run([sys.executable, '-m', 'audiojepa.hlp', str(DATA/'balanced_train_segments.csv'),
                          '--out', str(out), '--top', '3'], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert 'mean positive labels per clip: 2.3864 -> 3.4162' in res.stdout
    assert 'classes that gain positives: 104 of 527' in res.stdout
    hlp = HLP.from_audioset(DATA/'ontology.json', DATA/'class_labels_indices.csv')
    ytids, before, times = read_segments(DATA/'balanced_train_segments.csv', hlp.vocab, with_times=True)
    ytids_out, after, times_out = read_segments(out, hlp.vocab, with_times=True)
    assert (ytids_out, times_out) == (ytids, times)
    assert np.array_equal(after, hlp.propagate(before))
    assert out.read_text().splitlines()[1] == '# num_ytids=22160, num_segs=22160, num_unique_labels=527, num_positive_labels=75703'


@needs_data
def test_cli_reports_bad_input_without_traceback(tmp_path):
    bad = tmp_path/'bad_segments.csv'
    bad.write_text('# YTID, start_seconds, end_seconds, positive_labels\nabc, 0.000, 10.000, "/m/09x0r,/m/nope"\n')
    res = subprocess.run([sys.executable, '-m', 'audiojepa.hlp', str(bad), '--ontology', str(DATA/'ontology.json'),
                          '--class_labels', str(DATA/'class_labels_indices.csv')], capture_output=True, text=True, timeout=120)
    assert res.returncode != 0
    assert '/m/nope on line 2' in res.stderr and 'Traceback' not in res.stderr


def test_cli_finds_the_ontology_and_class_list_beside_the_csv_then_in_the_cache(tmp_path, monkeypatch, capsys):
    "The rule every command follows (`audiojepa.audioset.audioset_file`): --ontology, else beside SEGMENTS_CSV, else cached; never fetched."
    from audiojepa.audioset import AUDIOSET_URLS
    cache = tmp_path/'cache'/'audioset'
    monkeypatch.setenv('AUDIOJEPA_CACHE', str(tmp_path/'cache'))
    monkeypatch.setattr('urllib.request.urlretrieve', lambda *a, **k: pytest.fail('nothing may be downloaded'))
    data = tmp_path/'data'; data.mkdir()
    segments = data/'segments.csv'
    segments.write_text('# YTID, start_seconds, end_seconds, positive_labels\nx1, 0.000, 10.000, "/t/a"\n')
    (data/'ontology.json').write_text(json.dumps([{'id': '/t/r', 'name': 'R', 'child_ids': ['/t/a']},
                                                   {'id': '/t/a', 'name': 'A', 'child_ids': []}]))
    (data/'class_labels_indices.csv').write_text('index,mid,display_name\n0,/t/r,R\n1,/t/a,A\n')
    hlp_module.main(str(segments))                                  # both beside the CSV
    assert 'positive labels: 1 -> 2 (+1)' in capsys.readouterr().out
    cache.mkdir(parents=True)
    (data/'ontology.json').rename(cache/'ontology.json')
    hlp_module.main(str(segments))                                  # the ontology from the cache
    assert 'positive labels: 1 -> 2 (+1)' in capsys.readouterr().out
    (cache/'ontology.json').unlink()
    with pytest.raises(SystemExit) as exit: hlp_module.main(str(segments))
    assert exit.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"audiojepa-hlp: error: no ontology.json: not given (--ontology), not beside {segments}, not in the cache {cache}; "
        f"download it from {AUDIOSET_URLS['ontology.json']} into that cache"]


# --- propagate: every input form gives the authors' formula ----------------------------------------------------

def random_matrix(n, density, seed):
    "Any bool matrix with a true diagonal (propagate does not need a transitive or ontology-shaped one)."
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, n, generator=g) < density) | torch.eye(n, dtype=torch.bool)


@pytest.mark.parametrize('seed', range(6))
def test_binary_matches_formula_across_blocks(seed, monkeypatch):
    monkeypatch.setattr(hlp_module, '_BLOCK_ELEMENTS', 997)  # many blocks, a ragged last one
    n = 23 + seed * 7
    matrix = random_matrix(n, 0.1 * (seed % 3), seed)
    hlp = HLP(matrix)
    g = torch.Generator().manual_seed(100 + seed)
    y = torch.rand(257, n, generator=g) < 0.15
    expected = authors_formula(y, matrix).bool()
    assert torch.equal(hlp.propagate(y), expected)  # sparse CPU path
    assert torch.equal(hlp.propagate(y.to(torch.uint8)), expected.to(torch.uint8))  # dense path
    assert np.array_equal(hlp.propagate(y.numpy()), expected.numpy())
    assert torch.equal(hlp.propagate(y[5]), expected[5])
    y_t = y.T.contiguous().T  # non-contiguous
    assert torch.equal(hlp.propagate(y_t), expected)
    assert torch.equal(hlp.propagate(y_t.clone(), inplace=True), expected)
    scores_t = y.float().T.contiguous().T  # dense path, in place, non-contiguous
    assert hlp.propagate(scores_t, inplace=True) is scores_t and torch.equal(scores_t, expected.float())


@pytest.mark.parametrize('dtype', [torch.bool, torch.uint8, torch.int32, torch.int64, torch.float16, torch.bfloat16,
                                   torch.float32, torch.float64])
def test_dtypes_preserved_and_values_exact(dtype, monkeypatch):
    monkeypatch.setattr(hlp_module, '_BLOCK_ELEMENTS', 500)
    matrix = random_matrix(40, 0.08, 1)
    hlp = HLP(matrix)
    g = torch.Generator().manual_seed(2)
    y = (torch.rand(100, 40, generator=g) * 10).to(dtype) if dtype != torch.bool else torch.rand(100, 40, generator=g) < 0.2
    out = hlp.propagate(y)
    assert out.dtype == dtype and out.shape == y.shape
    assert torch.equal(out.double(), authors_formula(y, matrix))


def test_negative_scores_take_the_max_over_sources():
    "Logits: no clipping at 0, unlike multiplying by the table; equals propagating sigmoid(logits)."
    hlp = HLP(random_matrix(30, 0.1, 3))
    logits = torch.randn(50, 30, generator=torch.Generator().manual_seed(4)) - 3
    out = hlp.propagate(logits)
    expected = torch.stack([logits[:, hlp.matrix[:, j]].max(1).values for j in range(30)], 1)
    assert torch.equal(out, expected) and (out < 0).any()
    assert torch.equal(out.sigmoid(), hlp.propagate(logits.sigmoid()))


def test_gradients_match_formula(monkeypatch):
    monkeypatch.setattr(hlp_module, '_BLOCK_ELEMENTS', 300)  # in-place updates of several row blocks
    matrix = random_matrix(25, 0.15, 10)
    scores = torch.rand(40, 25, generator=torch.Generator().manual_seed(11))
    ours, theirs = scores.clone().requires_grad_(), scores.clone().requires_grad_()
    weights = torch.randn(40, 25, generator=torch.Generator().manual_seed(12))
    (HLP(matrix).propagate(ours) * weights).sum().backward()
    (authors_formula(theirs, matrix).float() * weights).sum().backward()
    assert torch.allclose(ours.grad, theirs.grad)


def test_edge_shapes_and_identity():
    hlp = HLP(random_matrix(12, 0.2, 5))
    assert hlp.propagate(torch.zeros(0, 12, dtype=torch.bool)).shape == (0, 12)
    assert hlp.propagate(np.zeros((0, 12), np.float32)).shape == (0, 12)
    identity = HLP(torch.eye(12, dtype=torch.bool))
    y = torch.rand(4, 12)
    assert torch.equal(identity.propagate(y), y)


def test_inplace_and_copies():
    hlp = HLP(random_matrix(20, 0.2, 6))
    y = np.random.default_rng(0).random((30, 20)) < 0.1
    original = y.copy()
    out = hlp.propagate(y)
    assert np.array_equal(y, original) and out is not y  # the input is untouched
    assert hlp.propagate(y, inplace=True) is y and np.array_equal(y, out)
    readonly = original.copy()
    readonly.flags.writeable = False
    assert np.array_equal(hlp.propagate(readonly), out)
    with pytest.raises(ValueError, match='writeable'):
        hlp.propagate(readonly, inplace=True)


def test_bad_input_errors():
    hlp = HLP(random_matrix(10, 0.2, 7))
    with pytest.raises(ValueError, match='expected 10 columns'):
        hlp.propagate(torch.zeros(3, 11))
    with pytest.raises(ValueError, match='NaN'):
        hlp.propagate(torch.tensor([[0.5] * 9 + [float('nan')]]))
    infinite = torch.tensor([[float('inf'), float('-inf')] + [0.0] * 8])  # sums to NaN, but holds no NaN
    expected = torch.stack([infinite[:, hlp.matrix[:, j]].max(1).values for j in range(10)], 1)
    assert torch.equal(hlp.propagate(infinite), expected)
    with pytest.raises(ValueError, match=r'shape \[C\] or \[B, C\]'):
        hlp.propagate(np.zeros((2, 2, 10)))
    with pytest.raises(TypeError):
        hlp.propagate([0.0] * 10)
    with pytest.raises(ValueError, match='square'):
        HLP(torch.ones(3, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match='bool or 0/1'):
        HLP(torch.eye(3) * 2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a GPU')
@pytest.mark.parametrize('dtype', [torch.bool, torch.float16, torch.float32])
def test_cuda_device_preserved(dtype):
    matrix = random_matrix(64, 0.05, 8)
    hlp = HLP(matrix)
    y = torch.rand(1000, 64, generator=torch.Generator().manual_seed(9))
    y = (y < 0.1) if dtype == torch.bool else y.to(dtype)
    out = hlp.propagate(y.cuda())
    assert out.device.type == 'cuda' and out.dtype == dtype
    assert torch.equal(out.cpu(), hlp.propagate(y))


# --- files: ontology, class lists, segments --------------------------------------------------------------------

@pytest.mark.parametrize('content, message', [
    ('{not json', 'not valid JSON'),
    ('{"id": "/t/a"}', 'expected a JSON list'),
    ('[{"id": "/t/a", "name": "A"}]', "'child_ids'"),
    ('[{"id": "/t/a", "name": "A", "child_ids": ["/t/b"]}]', 'unknown child /t/b'),
    ('[{"id": "/t/a", "name": "A", "child_ids": []}, {"id": "/t/a", "name": "B", "child_ids": []}]', 'appears twice'),
    ('[{"id": "/t/a", "name": "A", "child_ids": ["/t/b"]}, {"id": "/t/b", "name": "B", "child_ids": ["/t/a"]}]', 'cycle'),
])
def test_malformed_ontology_files(tmp_path, content, message):
    path = tmp_path/'ontology.json'
    path.write_text(content)
    with pytest.raises(OntologyError, match=message) as e:
        Ontology.from_json(path)
    assert str(path) in str(e.value)


def test_class_list_errors(tmp_path):
    path = tmp_path/'classes.csv'
    path.write_text('index,display_name\n0,Speech\n')
    with pytest.raises(ValueError, match="'mid' column"):
        Vocabulary.from_csv(path)
    path.write_text('index,mid,display_name\n0,/t/a,A\n2,/t/b,B\n')
    with pytest.raises(ValueError, match=r'0\.\.1'):
        Vocabulary.from_csv(path)
    path.write_text('index,mid,display_name\n1,/t/b,B\n0,/t/a,A\n')
    assert Vocabulary.from_csv(path).mids == ('/t/a', '/t/b')  # ordered by index
    path.write_text('index,mid,display_name\n0,/t/a,A\n1,/t/a,B\n')
    with pytest.raises(ValueError, match='duplicate MIDs'):
        Vocabulary.from_csv(path)


def test_segments_errors_and_round_trip(tmp_path):
    vocab = Vocabulary(['/t/a', '/t/b', '/t/c'], ['A', 'B', 'C'])
    good = tmp_path/'good.csv'
    good.write_text('# comment\n# YTID, start_seconds, end_seconds, positive_labels\n'
                    'x1, 0.000, 10.000, "/t/a,/t/c"\nx2, 5.000, 15.000, "/t/b"\nx3, 1.000, 11.000, ""\n')
    ytids, y, times = read_segments(good, vocab, with_times=True)
    assert ytids == ['x1', 'x2', 'x3'] and times[1] == ('5.000', '15.000')
    assert y.tolist() == [[True, False, True], [False, True, False], [False, False, False]]
    write_segments(tmp_path/'copy.csv', ytids, torch.from_numpy(y), vocab, times)
    assert np.array_equal(read_segments(tmp_path/'copy.csv', vocab)[1], y)

    bad = tmp_path/'unknown.csv'
    bad.write_text('x1, 0.000, 10.000, "/t/a"\nx2, 0.000, 10.000, "/t/z,/t/b"\nx3, 0.000, 10.000, "/t/y"\n')
    with pytest.raises(ValueError, match=r'2 unknown MIDs.*/t/z on line 2; /t/y on line 3'):
        read_segments(bad, vocab)
    short = tmp_path/'short.csv'
    short.write_text('x1, 0.000, 10.000, "/t/a"\nx2, 0.000\n')
    with pytest.raises(ValueError, match='short.csv:2: expected 4 fields'):
        read_segments(short, vocab)
    with pytest.raises(ValueError, match='do not make'):
        write_segments(tmp_path/'x.csv', ytids, y[:, :2], vocab, times)


def test_ontology_queries_on_a_diamond():
    onto = Ontology.from_records([
        {'id': '/t/r', 'name': 'R', 'child_ids': ['/t/a', '/t/b']},
        {'id': '/t/a', 'name': 'A', 'child_ids': ['/t/d']},
        {'id': '/t/b', 'name': 'B', 'child_ids': ['/t/c']},
        {'id': '/t/c', 'name': 'C', 'child_ids': ['/t/d']},
        {'id': '/t/d', 'name': 'D', 'child_ids': []},
    ])
    assert onto.depth('/t/d') == 2  # shortest path R-A-D
    assert set(onto.ancestors('/t/d')) == {'/t/a', '/t/c', '/t/b', '/t/r'}
    assert onto.ancestors('/t/d')[:2] == ('/t/a', '/t/c')  # nearest first
    assert set(onto.descendants('/t/b')) == {'/t/c', '/t/d'}
    sub = onto.subset(['/t/r', '/t/d', '/t/c'])
    assert set(sub.parents('/t/d')) == {'/t/r', '/t/c'} and sub.parents('/t/c') == ('/t/r',)
    vocab = Vocabulary.from_ontology(onto, ['/t/r', '/t/b', '/t/d'])
    paper = propagation_matrix(onto, vocab, 'paper')  # D's labelled parents: R (via A) and B (via C): ambiguous
    assert paper[2].tolist() == [False, False, True]
    assert propagation_matrix(onto, vocab, 'all-ancestors')[2].tolist() == [True, True, True]
    text = onto.render('/t/r')
    assert 'D  /t/d  (also under: C)' in text and 'D  /t/d  (also under: A)' in text


def test_policies_listed():
    assert POLICIES == ('paper', 'single-parent', 'all-ancestors')
