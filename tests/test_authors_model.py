"""The authors' released Audio-JEPA model: their front end, their checkpoint, and the embeddings of their X-ARES wrapper.

Nothing is downloaded. Each checkpoint is built here in the authors' layout (the parameter names and shapes of
their ViT, Lightning's `state_dict` nesting, hyper-parameters that `weights_only` refuses) with random weights, and
the wrapper's computation (`LudovicTuncay/xares`, `example/Audio-JEPA/`: `Audio-JEPA_encoder.py`,
`utils/audio_preprocessing.py`, `components/vision_transformer.py`) is written out below from that code, without
using the library, to compare the library with. The real-recording checks read the Debian packages
`sound-theme-freedesktop` and `lmms-common` and skip when they are not installed.
"""
import functools, json, math, os, subprocess, sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.nn.functional as F
from torchaudio.compliance.kaldi import fbank

from audiojepa.audio import LogMel, load_audio
from audiojepa.embed import AudioJEPAEncoder, ENCODER_ENV, export_training
from audiojepa.authors import authors_encoder_config, authors_encoder_state, encoder_from_authors, load_authors_checkpoint
from audiojepa import convert, probe

torch.set_num_threads(1)

RATE, CLIP, FRAMES, MELS, PATCH = 32000, 320000, 256, 128, 16   # the wrapper's constants
RECORDINGS = [Path('/usr/share/sounds/freedesktop/stereo') / n for n in ('alarm-clock-elapsed.oga', 'phone-incoming-call.oga',
                                                                         'complete.oga')] + \
             [Path('/usr/share/lmms/samples') / n for n in ('latin/latin_guitar03.ogg', 'beats/break01.ogg')]
RECORDINGS = [p for p in RECORDINGS if p.exists()]


# ---- the authors' checkpoint layout ---------------------------------------------------------------------------

def authors_layout(dim, depth, hidden, qkv_bias=True):
    "Parameter names and shapes of the wrapper's `VisionTransformer` (16 x 16 patches of a 256 x 128 log-mel)."
    shapes = {'patch_embed.proj.weight': (dim, 1, PATCH, PATCH), 'patch_embed.proj.bias': (dim,),
              'pos_embed': (1, (FRAMES // PATCH) * (MELS // PATCH), dim)}
    for i in range(depth):
        b = f'blocks.{i}.'
        shapes.update({b + 'norm1.weight': (dim,), b + 'norm1.bias': (dim,), b + 'attn.Wqkv.weight': (3 * dim, dim),
                       b + 'attn.out_proj.weight': (dim, dim), b + 'attn.out_proj.bias': (dim,),
                       b + 'norm2.weight': (dim,), b + 'norm2.bias': (dim,), b + 'mlp.fc1.weight': (hidden, dim),
                       b + 'mlp.fc1.bias': (hidden,), b + 'mlp.fc2.weight': (dim, hidden), b + 'mlp.fc2.bias': (dim,)})
        if qkv_bias: shapes[b + 'attn.Wqkv.bias'] = (3 * dim,)
    shapes.update({'norm.weight': (dim,), 'norm.bias': (dim,)})
    return shapes


def random_weights(shapes, seed):
    "Random values of the layout: LayerNorm gains near 1, everything else small."
    g = torch.Generator().manual_seed(seed)
    gain = lambda k: k.endswith(('norm1.weight', 'norm2.weight')) or k == 'norm.weight'
    return {k: 1 + 0.1 * torch.randn(s, generator=g) if gain(k) else 0.05 * torch.randn(s, generator=g) for k, s in shapes.items()}


def lightning_checkpoint(path, target, context=None, nested=True):
    "Write a checkpoint the way Lightning saves the authors' JEPA module (plus objects `weights_only` refuses)."
    state = {f'target_encoder.{k}': v for k, v in target.items()}
    if context is not None: state.update({f'encoder.{k}': v for k, v in context.items()})
    state['predictor.mask_token'] = torch.zeros(1, 1, 8)
    ckpt = {'epoch': 12, 'global_step': 3456, 'pytorch-lightning_version': '2.4.0', 'state_dict': state,
            'optimizer_states': [{'state': {}, 'param_groups': [{'lr': 1e-4}]}],
            'hyper_parameters': {'optimizer': functools.partial(torch.optim.AdamW, lr=1e-4, weight_decay=0.05)}}
    torch.save(ckpt if nested else state, path)
    return path


@pytest.fixture(scope='module')
def small(tmp_path_factory):
    "A checkpoint of a 2-block, 128-wide ViT in the authors' layout (2 heads of 64): path and target weights."
    target, context = random_weights(authors_layout(128, 2, 512), 0), random_weights(authors_layout(128, 2, 512), 1)
    return lightning_checkpoint(tmp_path_factory.mktemp('ckpt') / 'JEPA.ckpt', target, context), target


# ---- the wrapper's computation, written out ---------------------------------------------------------------------

def wrapper_spectrogram(chunk):
    "`normalize_audio` then `MelSpecTransform` of the wrapper: one 10 s chunk at 32 kHz -> [256, 128]."
    wav = chunk - chunk.mean()
    wav = wav / (wav.abs().max() + 1e-6)
    hop = max(1, int(round(CLIP / (FRAMES - 1 + 2.5))))           # hop_and_frame_for_target, snip_edges=True
    win = int(round(2.5 * hop))
    wav = wav - wav.mean()                                         # MelSpecTransform removes the mean again
    spec = fbank(wav[None], sample_frequency=RATE, frame_length=1000.0 * win / RATE, frame_shift=1000.0 * hop / RATE,
                 num_mel_bins=MELS, high_freq=RATE // 2, low_freq=20, use_log_fbank=True, window_type='hanning', snip_edges=True)
    return F.pad(spec, (0, 0, 0, FRAMES - spec.shape[0])) if spec.shape[0] < FRAMES else spec[:FRAMES]


def wrapper_vit(w, x, heads):
    "The wrapper's `VisionTransformer.forward` on [B, 1, 256, 128]: conv patches, + pos_embed, pre-norm blocks, norm."
    x = F.conv2d(x, w['patch_embed.proj.weight'], w['patch_embed.proj.bias'], stride=PATCH).flatten(2).transpose(1, 2)
    x = x + w['pos_embed']
    B, N, D = x.shape
    depth = 1 + max(int(k.split('.')[1]) for k in w if k.startswith('blocks.'))
    for i in range(depth):
        p = lambda name: w.get(f'blocks.{i}.{name}')
        h = F.layer_norm(x, (D,), p('norm1.weight'), p('norm1.bias'), 1e-6)
        # flash-attn MHA: Wqkv output is (three h d); softmax scale 1/sqrt(head width)
        q, k, v = F.linear(h, p('attn.Wqkv.weight'), p('attn.Wqkv.bias')).view(B, N, 3, heads, D // heads).unbind(2)
        att = torch.softmax(torch.einsum('bthd,bshd->bhts', q, k) / math.sqrt(D // heads), dim=-1)
        x = x + F.linear(torch.einsum('bhts,bshd->bthd', att, v).reshape(B, N, D), p('attn.out_proj.weight'), p('attn.out_proj.bias'))
        h = F.layer_norm(x, (D,), p('norm2.weight'), p('norm2.bias'), 1e-6)
        x = x + F.linear(F.gelu(F.linear(h, p('mlp.fc1.weight'), p('mlp.fc1.bias'))), p('mlp.fc2.weight'), p('mlp.fc2.bias'))
    return F.layer_norm(x, (D,), w['norm.weight'], w['norm.bias'], 1e-6)


def wrapper_forward(w, audio, heads):
    "`AudioJEPAEncoder.forward` of the wrapper: [B, T] at 32 kHz -> [B, T', D], 10 s chunks, 16 time steps each."
    outputs = []
    for wav in audio:
        embeds = []
        for c in range(math.ceil(len(wav) / CLIP)):
            chunk = wav[c * CLIP:(c + 1) * CLIP]
            valid = len(chunk)
            chunk = F.pad(chunk, (0, CLIP - valid))
            feats = wrapper_vit(w, wrapper_spectrogram(chunk)[None, None], heads)       # [1, 128, D], time-major
            feats = feats.view(1, FRAMES // PATCH, MELS // PATCH, -1).mean(2)[0]          # mean of the 8 frequency patches
            embeds.append(feats[:int(math.ceil(valid / CLIP * (FRAMES // PATCH)))])
        outputs.append(torch.cat(embeds))
    out = audio.new_zeros(len(audio), max(len(o) for o in outputs), outputs[0].shape[-1])
    for b, o in enumerate(outputs): out[b, :len(o)] = o
    return out


# ---- the front end ----------------------------------------------------------------------------------------------

def test_paper_frontend_equals_the_wrappers_fbank_on_noise():
    "Every bin, of clips at very different levels (the peak is divided out)."
    torch.manual_seed(0)
    clips = torch.randn(3, CLIP) * torch.tensor([[1e-3], [0.3], [20.0]]) + 0.5
    mel, _ = LogMel('audiojepa-paper')(clips)
    ref = torch.stack([wrapper_spectrogram(c) for c in clips])
    assert mel.shape == ref.shape == (3, 256, 128)
    diff = (mel - ref).abs().max().item()
    print(f'noise: max |LogMel - wrapper fbank| = {diff:.2e}')
    assert diff < 2e-4
    assert mel[:, 255].abs().max() == 0 and ref[:, 254].abs().min() > 0   # Kaldi makes 255 frames, the 256th is zeros


def resolved(ref64):
    "Bins within a factor 1e-5 of their frame's strongest bin (below that, float32 rounding of the power decides)."
    return ref64 > ref64.max(dim=1, keepdim=True).values - 11.5


@pytest.mark.skipif(not RECORDINGS, reason='needs sound-theme-freedesktop or lmms-common')
@pytest.mark.parametrize('path', RECORDINGS, ids=lambda p: p.name)
def test_paper_frontend_equals_the_wrappers_fbank_on_a_recording(path):
    """A real recording, cut and padded as the wrapper does. Where a bin's energy is below float32's resolution
    relative to its frame (Vorbis leaves spectral holes), any two float32 computations disagree; there the check is
    that LogMel is as close to Kaldi's fbank in float64 as Kaldi's own float32 result is."""
    wav = load_audio(path)
    chunks = F.pad(wav, (0, -len(wav) % CLIP)).view(-1, CLIP)
    mel, _ = LogMel('audiojepa-paper')(chunks)
    for spec, chunk in zip(mel, chunks):
        ref32, ref64 = wrapper_spectrogram(chunk), wrapper_spectrogram(chunk.double())
        keep = resolved(ref64)
        print(f'{path.name}: max |LogMel - fbank| {(spec - ref32).abs()[keep].max():.1e} on {keep.float().mean():.0%} of bins; '
              f'vs float64 everywhere: LogMel {(spec - ref64).abs().max():.1e}, fbank {(ref32 - ref64).abs().max():.1e}')
        assert (spec - ref32).abs()[keep].max() < 2e-4
        assert (spec - ref64).abs().max() <= 2 * (ref32 - ref64).abs().max() + 1e-4


# ---- the checkpoint ---------------------------------------------------------------------------------------------

def test_the_real_vit_b_layout_is_accepted():
    "The key set and shapes of the wrapper's ViT-B (768 wide, 12 blocks, MLP 3072), uninitialised: only shapes matter."
    vit_b = {k: torch.empty(s) for k, s in authors_layout(768, 12, 3072).items()}
    state, prefix = authors_encoder_state({'state_dict': {f'target_encoder.{k}': v for k, v in vit_b.items()}})
    assert prefix == 'target_encoder.' and state.keys() == vit_b.keys()
    cfg = authors_encoder_config(state)
    assert (cfg.embed_dim, cfg.depth, cfg.num_heads, cfg.mlp_ratio, cfg.qkv_bias) == (768, 12, 12, 4.0, True)
    assert (cfg.n_mels, cfg.max_frames, cfg.patch_size, cfg.grid) == (128, 256, (16, 16), (16, 8))
    assert (cfg.positions, cfg.final_norm_eps) == ('learned', 1e-6)
    encoder = encoder_from_authors(state)
    assert sum(p.numel() for p in encoder.parameters()) == sum(v.numel() for v in vit_b.values()) == 85_351_680
    assert encoder.blocks[11].attn.num_heads == 12 and encoder.norm.eps == 1e-6


@pytest.mark.parametrize('prefixes, nested, network', [(('target_encoder.', 'encoder.'), True, 'target'),
                                                        (('encoder.',), True, 'context'), (('target_encoder.',), False, 'target')])
def test_checkpoint_loads_with_either_prefix_and_nesting(prefixes, nested, network, tmp_path):
    target, context = random_weights(authors_layout(64, 1, 128), 0), random_weights(authors_layout(64, 1, 128), 1)
    state = {}
    if 'target_encoder.' in prefixes: state.update({f'target_encoder.{k}': v for k, v in target.items()})
    if 'encoder.' in prefixes: state.update({f'encoder.{k}': v for k, v in context.items()})
    torch.save({'state_dict': state, 'global_step': 7} if nested else state, tmp_path / 'x.ckpt')
    encoder, frontend, loaded = load_authors_checkpoint(tmp_path / 'x.ckpt')
    expected = target if network == 'target' else context
    assert loaded['network'] == network and frontend.name == 'audiojepa-paper'
    assert torch.equal(encoder.state_dict()['positions.table'], expected['pos_embed'].view(16, 8, 64))
    assert torch.equal(encoder.state_dict()['blocks.0.attn.qkv.weight'], expected['blocks.0.attn.Wqkv.weight'])


def test_reading_the_checkpoint_runs_none_of_its_code(trapped_checkpoint):
    "An object whose unpickling would create a directory sits in the hyper-parameters: the weights load, nothing runs."
    weights = random_weights(authors_layout(64, 1, 128), 0)
    path, sprung = trapped_checkpoint({f'target_encoder.{k}': v for k, v in weights.items()})
    encoder, _, _ = load_authors_checkpoint(path)
    assert not sprung.exists()
    assert torch.equal(encoder.state_dict()['norm.bias'], weights['norm.bias'])


@pytest.mark.parametrize('change, message', [
    (lambda w: w.pop('blocks.0.mlp.fc2.bias'), 'missing keys (1): blocks.0.mlp.fc2.bias'),
    (lambda w: w.update({'cls_token': torch.zeros(1, 1, 64)}), 'unexpected keys (1): cls_token'),
    (lambda w: w.update({'pos_embed': torch.zeros(1, 64, 64)}), 'pos_embed (1, 64, 64), expected (1, 128, 64)'),
    (lambda w: w.update({'blocks.0.attn.out_proj.weight': torch.zeros(64, 32)}), 'blocks.0.attn.out_proj.weight (64, 32), expected (64, 64)'),
])
def test_a_checkpoint_that_does_not_fit_names_the_keys(change, message, tmp_path):
    weights = random_weights(authors_layout(64, 1, 128), 0)
    change(weights)
    lightning_checkpoint(tmp_path / 'bad.ckpt', weights)
    with pytest.raises(ValueError) as err: load_authors_checkpoint(tmp_path / 'bad.ckpt')
    assert message in str(err.value) and 'bad.ckpt' in str(err.value)


# ---- the embeddings ---------------------------------------------------------------------------------------------

def test_embeddings_equal_the_wrappers(small):
    "Clips of 23.3 s (3 chunks, the last 3.3 s), 4.1 s and 0.2 s, as a batch and alone, at 32 kHz."
    path, weights = small
    encoder = AudioJEPAEncoder.from_pretrained(path)
    assert (encoder.sampling_rate, encoder.hop_size_in_ms, encoder.output_dim) == (32000, 625.0, 128)
    torch.manual_seed(0)
    t = torch.arange(int(23.3 * RATE)) / RATE
    audio = torch.stack([0.1 * torch.randn(len(t)), torch.sin(2 * math.pi * 440 * t) * (t < 4.1) + 0.01 * torch.randn(len(t)) * (t < 4.1)])
    with torch.no_grad():
        ours, ref = encoder(audio), wrapper_forward(weights, audio, heads=2)   # the wrapper encodes the batch padding as audio
        assert ours.shape == ref.shape == (2, 38, 128)
        # the second clip's zeros after 4.1 s are batch padding to `forward` (X-ARES' interface): its frames are the
        # wrapper's up to there, and the mean of those over the padding, whatever the clip was batched with
        real = math.ceil(16 * 4.1 / 10)
        diff = max((ours[0] - ref[0]).abs().max().item(), (ours[1, :real] - ref[1, :real]).abs().max().item())
        print(f'batch: max |ours - wrapper| = {diff:.2e} (embeddings of size {ref.abs().mean():.2f})')
        assert diff < 1e-4
        assert (ours[1, real:] - ref[1, :real].mean(0)).abs().max() < 1e-4
        for seconds in (4.1, 0.2):
            clip = audio[1, :int(seconds * RATE)][None]
            ours, ref = encoder(clip), wrapper_forward(weights, clip, heads=2)
            assert ours.shape == ref.shape == (1, math.ceil(16 * seconds / 10), 128)
            assert (ours - ref).abs().max() < 1e-4


@pytest.mark.skipif(not RECORDINGS, reason='needs sound-theme-freedesktop or lmms-common')
@pytest.mark.parametrize('recording', RECORDINGS, ids=lambda p: p.name)
def test_embeddings_equal_the_wrappers_on_a_recording(recording, small):
    """To 1e-4, except where the wrapper's own float32 result is further than that from its float64 result (the
    alarm clock: the log of bins below float32's resolution, see the front-end test); there, as close as it is."""
    path, weights = small
    encoder = AudioJEPAEncoder.from_pretrained(path)
    wav = load_audio(recording)[None]
    with torch.no_grad():
        ours, ref32 = encoder(wav), wrapper_forward(weights, wav, heads=2)
        ref64 = wrapper_forward({k: v.double() for k, v in weights.items()}, wav.double(), heads=2)
    diff, own = (ours - ref32).abs().max().item(), (ref32 - ref64).abs().max().item()
    print(f'{recording.name}: max |ours - wrapper| = {diff:.2e}; vs float64: ours {(ours - ref64).abs().max():.2e}, wrapper {own:.2e}')
    assert ours.shape == ref32.shape
    assert diff < max(1e-4, 2 * own) and (ours - ref64).abs().max() <= 2 * own + 1e-5


def test_ten_minutes_give_960_frames(small):
    "60 chunks of 10 s, 16 frames each (625 ms), equal to the wrapper's."
    path, weights = small
    encoder = AudioJEPAEncoder.from_pretrained(path)
    torch.manual_seed(0)
    audio = 0.1 * torch.randn(1, RATE * 600)
    with torch.no_grad(): ours = encoder(audio)
    assert ours.shape == (1, 960, 128) and 600_000 / encoder.hop_size_in_ms == 960
    with torch.no_grad(): ref = wrapper_forward(weights, audio, heads=2)
    assert (ours - ref).abs().max() < 1e-4
    frames, mask = encoder.encode(torch.randn(1, RATE * 600 - 1))   # a sample short: the last time step still starts in time
    assert frames.shape[1] == 960 and not mask.any()


def test_16khz_input_is_resampled_to_the_front_ends_rate(small):
    path, _ = small
    encoder = AudioJEPAEncoder.from_pretrained(path, sampling_rate=16000)
    assert encoder(torch.randn(2, 16000 * 25)).shape == (2, 40, 128)


# ---- converting, probing, X-ARES --------------------------------------------------------------------------------

def test_convert_command_writes_an_export_with_the_same_embeddings(small, tmp_path):
    path, _ = small
    out = tmp_path / 'paper' / 'encoder'
    res = subprocess.run([sys.executable, '-m', 'audiojepa.convert', str(path), str(out), '--num-heads', '2'],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert '2 blocks of width 128 with 2 heads' in res.stdout and 'not imported: functools.partial' in res.stderr
    assert sorted(p.name for p in out.iterdir()) == ['complete.json', 'config.json', 'model.safetensors']   # sealed whole (runs.seal_export)
    config = json.loads((out / 'config.json').read_text())
    assert (config['frontend']['name'], config['frontend']['framing'], config['frontend']['peak_normalise']) == ('audiojepa-paper', 'clip', True)
    assert export_training(out) == {'source': "the authors' Lightning checkpoint", 'checkpoint': 'JEPA.ckpt', 'network': 'target', 'step': 3456}
    wav = torch.randn(1, RATE * 13)
    with torch.no_grad():
        torch.testing.assert_close(AudioJEPAEncoder.from_pretrained(out)(wav), AudioJEPAEncoder.from_pretrained(path)(wav), rtol=0, atol=1e-6)


def test_convert_command_errors_are_one_line(tmp_path):
    (tmp_path / 'junk.ckpt').write_bytes(b'not a checkpoint')
    for args, message in ((['nowhere.ckpt', str(tmp_path / 'a')], 'does not exist'),
                          ([str(tmp_path / 'junk.ckpt'), str(tmp_path / 'b')], 'cannot read')):
        res = subprocess.run([sys.executable, '-m', 'audiojepa.convert', *args], capture_output=True, text=True, timeout=300)
        assert res.returncode == 2 and message in res.stderr and 'Traceback' not in res.stderr


def test_convert_entry_point_is_declared():
    "setup.py installs `audiojepa-convert` from settings.ini."
    import configparser
    cfg = configparser.ConfigParser(); cfg.read(Path(__file__).resolve().parents[1] / 'settings.ini')
    assert 'audiojepa-convert=audiojepa.convert:main' in cfg['DEFAULT']['console_scripts'].split()


def test_probe_reads_the_converted_model(small, tmp_path):
    "`audiojepa-probe` on the export, with a random baseline of its architecture (learned positions) and log-mel; and on the .ckpt."
    path, _ = small
    convert.main(str(path), str(tmp_path / 'export'))
    rng = np.random.default_rng(0)
    t = np.arange(RATE // 2) / RATE
    for label, freq in (('low', 220), ('high', 3520)):
        (tmp_path / 'data' / label).mkdir(parents=True)
        for i in range(4):
            sf.write(tmp_path / 'data' / label / f'{i}.wav', (0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.normal(size=len(t))).astype(np.float32), RATE)
    probe.main(encoder=str(tmp_path / 'export'), data=str(tmp_path / 'data'), folds=2, k=1, random_seeds=1, logmel=True,
               out=str(tmp_path / 'report.json'))
    report = json.loads((tmp_path / 'report.json').read_text())
    assert report['training']['source'] == "the authors' Lightning checkpoint" and report['embedding_dim'] == 128
    assert report['linear']['accuracy'] == 1.0          # 220 Hz and 3.5 kHz tones: any working encoder separates them
    assert report['random']['encoder'].startswith('random:') and 'linear' in report['logmel']
    direct = probe.run_probe(str(path), str(tmp_path / 'data'), folds=2, k=1, random_seeds=0, progress=False)   # the .ckpt itself
    assert direct['linear'] == report['linear'] and direct['knn'] == report['knn']


def test_xares_builds_the_authors_model(small, monkeypatch):
    "How X-ARES builds the encoder (`AUDIOJEPA_ENCODER` may name the checkpoint): 32 kHz declared, as the wrapper."
    pytest.importorskip('xares')
    from xares.audio_encoder_checker import check_audio_encoder
    path, _ = small
    monkeypatch.setenv(ENCODER_ENV, str(path))
    encoder = AudioJEPAEncoder()
    assert check_audio_encoder(encoder) and (encoder.sampling_rate, encoder.hop_size_in_ms) == (32000, 625.0)
