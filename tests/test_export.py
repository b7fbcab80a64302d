"""Encoders by name from the Hugging Face Hub, pushed to it with a model card, and as ONNX graphs: all offline.

No test reaches the network (tests/conftest.py sets HF_HUB_OFFLINE): a Hub model is found in a Hugging Face cache laid
out by the test (`audiojepa.models.cache_export`: `models--ORG--NAME/refs/REVISION` and `snapshots/COMMIT/`, the layout
`huggingface_hub` reads), and a push goes through `huggingface_hub`'s own client into a mocked transport that plays the
Hub's upload API and keeps what it receives in a folder.
"""
import base64, json, os, subprocess, sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
import huggingface_hub
from huggingface_hub import HfApi, constants as hub_constants

from audiojepa.audio import FrontendConfig
from audiojepa.authors import ae_state_dict
from audiojepa.embed import AudioJEPAEncoder, Embeddings, load_embedder
from audiojepa.export import export_onnx, main as export_main, onnx_difference, push_to_hub
from audiojepa.models import EncoderConfig, ViTEncoder, cache_export, hub_export, preset, save_encoder

torch.set_num_threads(1)
REPO = 'someone/tiny-jepa'
ONNX_EXTRA = "onnxruntime is the 'onnx' extra (pip install -e '.[onnx]'; '.[dev]' holds it too)"


@pytest.fixture(scope='module')
def export_dir(tmp_path_factory) -> Path:
    "A randomly initialised tiny encoder, exported as pretraining exports one."
    torch.manual_seed(0)
    return save_encoder(tmp_path_factory.mktemp('export') / 'encoder', ViTEncoder(preset('tiny')['encoder']), FrontendConfig())


@pytest.fixture
def hub_cache(tmp_path, monkeypatch) -> Path:
    "An empty Hugging Face cache of the test's own, for this process (the constant) and its subprocesses (the variable)."
    cache = tmp_path / 'hf-cache'
    monkeypatch.setattr(hub_constants, 'HF_HUB_CACHE', str(cache))
    monkeypatch.setenv('HF_HUB_CACHE', str(cache))
    return cache


def embeddings_of(encoder, seconds=(1.3, 12.0)) -> torch.Tensor:
    torch.manual_seed(1)
    audio = torch.zeros(len(seconds), int(max(seconds) * 16000))
    lengths = torch.tensor([int(s * 16000) for s in seconds])
    for row, n in enumerate(lengths): audio[row, :n] = torch.randn(int(n))
    frames, _ = encoder.encode(audio, torch.arange(audio.shape[1])[None] >= lengths[:, None])
    return frames


# ---------------------------------------------------------------- loading by name

def test_a_hub_id_loads_from_the_offline_cache(export_dir, hub_cache):
    "HF_HUB_OFFLINE=1 and a cache holding the model: `from_pretrained('ORG/NAME')`, `hf:ORG/NAME[@REV]` give the local export's frames."
    assert hub_constants.HF_HUB_OFFLINE
    snapshot = cache_export(export_dir, REPO)
    cache_export(export_dir, REPO, revision='v1')
    assert snapshot.parent.parent.name == 'models--someone--tiny-jepa' and (snapshot.parent.parent / 'refs' / 'main').is_file()
    local = embeddings_of(AudioJEPAEncoder.from_pretrained(export_dir))
    for name, kwargs in ((REPO, {}), (f'hf:{REPO}', {}), (f'hf:{REPO}@v1', {}), (REPO, {'revision': 'v1'})):
        assert torch.equal(embeddings_of(AudioJEPAEncoder.from_pretrained(name, **kwargs)), local), name
    assert hub_export(f'hf:{REPO}') == snapshot
    assert torch.equal(embeddings_of(load_embedder(f'hf:{REPO}', sampling_rate=16000)), local)
    with pytest.raises(ValueError, match='no/such/dir does not exist'): AudioJEPAEncoder.from_pretrained('no/such/dir')


def test_the_command_line_reads_a_hub_id_offline(export_dir, hub_cache, tmp_path):
    "`audiojepa-embed --encoder hf:ORG/NAME` in a fresh process with HF_HUB_OFFLINE=1: the same .npz as with the folder."
    cache_export(export_dir, REPO)
    clips = tmp_path / 'clips'
    clips.mkdir()
    import soundfile as sf
    for i in range(2): sf.write(clips / f'{i}.wav', np.random.default_rng(i).normal(size=16000 * (i + 1)).astype(np.float32) * 0.1, 16000)
    env = {**os.environ, 'HF_HUB_OFFLINE': '1', 'HF_HUB_CACHE': str(hub_cache), 'PYTHONPATH': str(Path(__file__).parents[1])}
    outs = []
    for name, encoder in (('hub', f'hf:{REPO}'), ('local', str(export_dir))):
        out = tmp_path / f'{name}.npz'
        res = subprocess.run([sys.executable, '-m', 'audiojepa.embed', '--encoder', encoder, '--data', str(clips), '--out', str(out)],
                             capture_output=True, text=True, env=env, timeout=300)
        assert res.returncode == 0, res.stderr
        outs.append(Embeddings.load(out))
    assert outs[0].ids == outs[1].ids and np.array_equal(outs[0].clip, outs[1].clip)


def test_a_missing_hub_id_is_one_line_naming_it(hub_cache, tmp_path):
    env = {**os.environ, 'HF_HUB_OFFLINE': '1', 'HF_HUB_CACHE': str(hub_cache), 'PYTHONPATH': str(Path(__file__).parents[1])}
    for encoder, named in ((f'hf:someone/missing', 'hf:someone/missing: not in the Hugging Face cache'),
                           ('hf:not a model', "'hf:not a model' is not a Hugging Face Hub model id")):
        res = subprocess.run([sys.executable, '-m', 'audiojepa.embed', '--encoder', encoder, '--data', 'synthetic:2',
                              '--out', str(tmp_path / 'x.npz')], capture_output=True, text=True, env=env, timeout=300)
        assert res.returncode == 2 and 'Traceback' not in res.stderr, res.stderr
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f'audiojepa-embed: error: {named}'), lines
        assert not (tmp_path / 'x.npz').exists()


def test_a_repository_without_an_export_is_refused(hub_cache, tmp_path):
    (tmp_path / 'notes').mkdir()
    (tmp_path / 'notes' / 'README.md').write_text('# no weights here\n')
    cache_export(tmp_path / 'notes', 'someone/notes')
    with pytest.raises(ValueError, match='hf:someone/notes holds no audiojepa export: config.json, model.safetensors missing'):
        AudioJEPAEncoder.from_pretrained('hf:someone/notes')
    # the weights of another library beside a config that is not an export's: checked as a local export's is
    (tmp_path / 'other').mkdir()
    (tmp_path / 'other' / 'config.json').write_text(json.dumps({'model_type': 'wav2vec2'}))
    (tmp_path / 'other' / 'model.safetensors').write_bytes(b'not read')
    cache_export(tmp_path / 'other', 'someone/other')
    with pytest.raises(ValueError, match="config.json is not an audiojepa encoder config"):
        AudioJEPAEncoder.from_pretrained('hf:someone/other')


# ---------------------------------------------------------------- pushing

class MockHub:
    "The Hub's upload API in a mocked transport of `huggingface_hub`'s own HTTP client: what is committed lands in `root/ORG/NAME`."
    def __init__(self, root:Path, fail_commit:bool=False):
        self.root, self.fail_commit, self.requests = root, fail_commit, []

    def __call__(self, request):
        http = sys.modules[type(request).__module__.split('.')[0]]   # httpx or httpx2, whichever huggingface_hub speaks
        path = request.url.path
        self.requests.append((request.method, path))
        if path == '/api/repos/create':
            body = json.loads(request.content)
            name = f"{body.get('organization') or 'someone'}/{body['name']}"
            return http.Response(200, json={'url': f'https://huggingface.co/{name}', 'name': name})
        if path.startswith('/api/models/') and '/branch/' in path: return http.Response(200, json={})
        if path == '/api/validate-yaml':
            yaml.safe_load(json.loads(request.content)['content'].split('---')[1])   # the card's metadata must parse
            return http.Response(200, json={})
        if '/preupload/' in path:
            files = json.loads(request.content)['files']
            return http.Response(200, json={'files': [{'path': f['path'], 'uploadMode': 'regular', 'shouldIgnore': False} for f in files]})
        if '/commit/' in path:
            if self.fail_commit: return http.Response(500, json={'error': 'the Hub is down'})
            repo = path.split('/api/models/')[1].split('/commit/')[0]
            for line in request.content.decode().splitlines():
                entry = json.loads(line)
                if entry['key'] == 'file':
                    (self.root / repo).mkdir(parents=True, exist_ok=True)
                    (self.root / repo / entry['value']['path']).write_bytes(base64.b64decode(entry['value']['content']))
            return http.Response(200, json={'commitUrl': f'https://huggingface.co/{repo}/commit/{"a" * 40}', 'commitOid': 'a' * 40})
        return http.Response(404, json={'error': f'not part of the mock: {request.method} {path}'})


@pytest.fixture
def mock_hub(tmp_path, monkeypatch):
    "A MockHub behind huggingface_hub's client (online mode, but nothing leaves this process), and a token."
    hub = MockHub(tmp_path / 'remote')
    http = sys.modules[type(huggingface_hub.get_session()).__module__.split('.')[0]]
    huggingface_hub.set_client_factory(lambda: http.Client(transport=http.MockTransport(hub)))
    monkeypatch.setattr(hub_constants, 'HF_HUB_OFFLINE', False)
    monkeypatch.setenv('HF_TOKEN', 'hf_test_token')
    yield hub
    huggingface_hub.set_client_factory(huggingface_hub.utils._http.default_client_factory)
    huggingface_hub.close_session()


def test_push_to_hub_commits_the_export_and_its_card(export_dir, mock_hub, hub_cache, tmp_path):
    probe = {'encoder': 'x', 'data': 'drums', 'main_metric': 'accuracy', 'linear': {'accuracy': 0.71}, 'knn': {'accuracy': 0.64}}
    url = push_to_hub(str(export_dir), 'someone/pushed', reports=[probe], api=HfApi(token='hf_test_token'))
    assert url.startswith('https://huggingface.co/someone/pushed/commit/')
    upload = [p for _, p in mock_hub.requests if p.startswith(('/api/repos/', '/api/validate', '/api/models/'))]   # not the client's other calls
    assert upload == ['/api/repos/create', '/api/validate-yaml', '/api/models/someone/pushed/preupload/main', '/api/models/someone/pushed/commit/main']
    remote = mock_hub.root / 'someone/pushed'
    assert sorted(p.name for p in remote.iterdir()) == ['README.md', 'config.json', 'model.safetensors']   # no seal marker, nothing else
    card = (remote / 'README.md').read_text()
    assert yaml.safe_load(card.split('---')[1])['library_name'] == 'audiojepa'
    assert "AudioJEPAEncoder.from_pretrained('someone/pushed')" in card and '| `drums` | this encoder | accuracy | 0.710 | 0.640 |' in card
    # what was pushed, downloaded (here: cached) again, is the export
    cache_export(remote, 'someone/pushed')
    assert torch.equal(embeddings_of(AudioJEPAEncoder.from_pretrained('hf:someone/pushed')), embeddings_of(AudioJEPAEncoder.from_pretrained(export_dir)))


def test_export_push_on_the_command_line(export_dir, mock_hub, tmp_path, capsys):
    (tmp_path / 'probe.json').write_text(json.dumps({'data': 'music', 'linear': {'accuracy': 0.5}, 'knn': {'accuracy': 0.4}}))
    export_main(str(export_dir), push='someone/cli', revision='v2', report=[str(tmp_path / 'probe.json')])
    assert 'pushed to someone/cli: https://huggingface.co/someone/cli/commit/' in capsys.readouterr().out
    assert '/api/models/someone/cli/commit/v2' in [p for _, p in mock_hub.requests]
    assert '| `music` | this encoder | accuracy | 0.500 | 0.400 |' in (mock_hub.root / 'someone/cli/README.md').read_text()


def test_a_failed_push_is_one_line_and_commits_nothing(export_dir, mock_hub, capsys):
    mock_hub.fail_commit = True
    with pytest.raises(SystemExit) as exit: export_main(str(export_dir), push='someone/down')
    err = capsys.readouterr().err.strip().splitlines()
    assert exit.value.code == 2 and len(err) == 1 and err[0].startswith('audiojepa-export: error: pushing to someone/down failed: ')
    assert not (mock_hub.root / 'someone/down').exists()


# ---------------------------------------------------------------- ONNX

@pytest.fixture(scope='module')
def tiny_onnx(export_dir, tmp_path_factory) -> tuple:
    pytest.importorskip('onnxruntime', reason=ONNX_EXTRA)
    embedder = AudioJEPAEncoder.from_pretrained(export_dir)          # 16 kHz in, as X-ARES
    return embedder, export_onnx(embedder, tmp_path_factory.mktemp('onnx') / 'tiny.onnx')


@pytest.mark.parametrize('batch', [1, 3])
@pytest.mark.parametrize('seconds', [0.7, 10.0, 23.3])   # shorter than a chunk, one chunk exactly, three chunks
def test_onnxruntime_gives_torch_s_embeddings(tiny_onnx, seconds, batch):
    "max |onnxruntime - torch| < 1e-4 over every valid frame; a batch of 3 holds clips of other lengths, zero-padded."
    embedder, path = tiny_onnx
    n = int(seconds * 16000)
    lengths = torch.tensor([n, n // 2, max(1, n // 7)][:batch])
    gen = torch.Generator().manual_seed(batch)
    audio = torch.randn(batch, n, generator=gen) * (torch.arange(n)[None] < lengths[:, None])
    assert onnx_difference(embedder, path, audio, lengths) < 1e-4


def test_onnx_of_the_authors_front_ends_and_layers(tmp_path):
    "The authors' released layout ('clip' framing, learned positions) and current one (torchaudio front end, rotary), all layers."
    pytest.importorskip('onnxruntime', reason=ONNX_EXTRA)
    torch.manual_seed(0)
    small = dict(n_mels=128, max_frames=256, embed_dim=64, depth=2, num_heads=1)
    released = AudioJEPAEncoder(ViTEncoder(EncoderConfig(**small, positions='learned', final_norm_eps=1e-6)), 'audiojepa-paper')
    current = AudioJEPAEncoder(ViTEncoder(EncoderConfig(**small, positions='rope', final_norm_eps=1e-5, block_norm_eps=1e-5)),
                               'audiojepa-ae16k', layers='all')
    for name, embedder in (('released', released), ('current', current)):
        path = export_onnx(embedder, tmp_path / f'{name}.onnx')
        rate = embedder.sampling_rate
        audio, lengths = torch.randn(2, int(13.1 * rate)) * 0.1, torch.tensor([int(13.1 * rate), int(4.2 * rate)])
        audio[1, lengths[1]:] = 0
        assert onnx_difference(embedder, path, audio, lengths) < 1e-4, name
    assert current.output_dim == 2 * 64


def test_export_cli_writes_a_card_and_an_onnx_graph(export_dir, tmp_path, capsys):
    pytest.importorskip('onnxruntime', reason=ONNX_EXTRA)
    export_main(str(export_dir), out=str(tmp_path / 'out'), onnx=str(tmp_path / 'm.onnx'), layers='2,4:mean')
    out = capsys.readouterr().out
    assert f'export with its model card → {tmp_path}/out' in out and '(embeddings [B, F, 128] every 312.5 ms' in out
    assert sorted(p.name for p in (tmp_path / 'out').iterdir()) == ['README.md', 'complete.json', 'config.json', 'model.safetensors']
    import onnxruntime
    meta = onnxruntime.InferenceSession(str(tmp_path / 'm.onnx')).get_modelmeta().custom_metadata_map
    assert (meta['format'], meta['layers'], meta['sample_rate'], meta['output_dim']) == ('audiojepa-onnx', '2,4:mean', '16000', '128')
    assert sorted(p.name for p in tmp_path.iterdir()) == ['m.onnx', 'out']                        # no temporary file left
