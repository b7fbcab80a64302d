"""Checkpoints of the authors' current training code (`LudovicTuncay/audio-embeddings`): layout, front end, embeddings.

Nothing is downloaded and none of their code is used. Each checkpoint is written here as their Lightning module saves
it (the names and shapes of `AudioJEPAModule`'s `state_dict`: the `spectrogram.` buffers, one shared
`patch_embed.patch_embed.proj`, the `student.` and `teacher.` ViTs, the predictor with its projections and mask token;
read from `src/models/audio_jepa_module.py` and `src/models/components/{vit,rope,spectrogram,patch_embed}.py`), with
random weights, for each of their three position types. Their inference `forward` is written out below from reading
that code, without the library: `MelSpectrogram(normalized=True)` + `AmplitudeToDB`, the frame axis cut to whole
patches, a strided convolution over `[B, 1, mels, frames]` whose tokens come frequency-major, positions added
(`sincos`, `learnable`) or rotated into q and k (`rope`), pre-norm blocks with LayerNorm eps 1e-5, the final norm.
The library must give the same frame embeddings (the mean of a time step's frequency patches).
"""
import functools, json, math, os, subprocess, sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import torchaudio
from timm.layers import build_sincos2d_pos_embed

from audiojepa.audio import LogMel, load_audio
from audiojepa.embed import AudioJEPAEncoder, export_training
from audiojepa.authors import load_authors_checkpoint

torch.set_num_threads(1)

RATE, CLIP, MELS, PATCH = 16000, 160000, 128, 16      # their configs/model/audio_jepa.yaml with data.target_sample_rate
H, W = MELS // PATCH, 256 // PATCH                    # their ViT's grid_size: 8 frequency x 16 time patches of a 10 s clip
RECORDING = Path('/usr/share/lmms/samples/latin/latin_guitar03.ogg')   # Debian package lmms-common


# ---- their checkpoint layout ------------------------------------------------------------------------------------

def their_melspec():
    "Their `Spectrogram` module's transform: win 128 ms and hop 39.0625 ms at 16 kHz, i.e. 2048 and 625 samples."
    return torchaudio.transforms.MelSpectrogram(sample_rate=RATE, n_fft=2048, win_length=int(RATE * 128 / 1000),
                                                hop_length=int(RATE * 39.0625 / 1000), n_mels=MELS, f_min=0, f_max=8000,
                                                power=2.0, normalized=True)

def vit_layout(dim, depth, hidden, pos_embed_type, heads):
    "Parameter and buffer shapes of their `ViT` (no patch embedding of its own), with the rotary buffers' values."
    shapes = {}
    if pos_embed_type in ('sincos', 'learnable'): shapes['pos_embed'] = (1, H * W, dim)
    for i in range(depth):
        b = f'blocks.{i}.'
        shapes.update({b + 'norm1.weight': (dim,), b + 'norm1.bias': (dim,), b + 'attn.qkv.weight': (3 * dim, dim),
                       b + 'attn.qkv.bias': (3 * dim,), b + 'attn.proj.weight': (dim, dim), b + 'attn.proj.bias': (dim,),
                       b + 'norm2.weight': (dim,), b + 'norm2.bias': (dim,), b + 'mlp.fc1.weight': (hidden, dim),
                       b + 'mlp.fc1.bias': (hidden,), b + 'mlp.fc2.weight': (dim, hidden), b + 'mlp.fc2.bias': (dim,)})
    shapes.update({'norm.weight': (dim,), 'norm.bias': (dim,)})
    fixed = {}
    if pos_embed_type == 'rope':   # RotaryEmbedding2D: one module, saved under the ViT and under every block's attention
        half = dim // heads // 2
        inv = 1.0 / (10000.0 ** (torch.arange(0, half, 2).float() / half))
        for where in ['rope.'] + [f'blocks.{i}.attn.rope.' for i in range(depth)]:
            fixed[where + 'inv_freq_h'], fixed[where + 'inv_freq_w'] = inv, inv
    if pos_embed_type == 'sincos': fixed['pos_embed'] = build_sincos2d_pos_embed([H, W], dim)[None]   # their buffer
    return shapes, fixed

def module_state(dim=128, depth=2, hidden=256, pos_embed_type='rope', heads=2, seed=0, empty=False):
    "The `state_dict` of their `AudioJEPAModule`: random weights (LayerNorm gains near 1), their fixed buffers."
    g = torch.Generator().manual_seed(seed)
    def value(key, shape):
        if empty: return torch.empty(shape)
        if key.endswith(('norm1.weight', 'norm2.weight', 'norm.weight')): return 1 + 0.1 * torch.randn(shape, generator=g)
        return 0.05 * torch.randn(shape, generator=g)
    state = {f'spectrogram.mel_spec.{k}': v for k, v in their_melspec().state_dict().items()}
    state.update({'patch_embed.patch_embed.proj.weight': value('w', (dim, 1, PATCH, PATCH)),
                  'patch_embed.patch_embed.proj.bias': value('b', (dim,))})
    for net in ('student', 'teacher', 'predictor'):
        shapes, fixed = vit_layout(dim, depth if net != 'predictor' else 1, hidden, pos_embed_type, heads)
        state.update({f'{net}.{k}': fixed[k].clone() if k in fixed else value(k, s) for k, s in shapes.items()})
        state.update({f'{net}.{k}': v.clone() for k, v in fixed.items() if k not in shapes})
    state.update({'predictor_input_proj.weight': value('w', (dim, dim)), 'predictor_input_proj.bias': value('b', (dim,)),
                  'predictor_output_proj.weight': value('w', (dim, dim)), 'predictor_output_proj.bias': value('b', (dim,)),
                  'mask_token': value('m', (1, 1, dim))})
    return state

def lightning_checkpoint(path, state, heads=None):
    "As Lightning saves their module: the `state_dict`, counters, and hyper-parameters that `weights_only` refuses."
    hp = {'optimizer': functools.partial(torch.optim.AdamW, lr=1e-4, weight_decay=0.05), 'warmup_pct': 0.05}
    if heads: hp['net'] = {'encoder': {'embed_dim': state['patch_embed.patch_embed.proj.weight'].shape[0], 'num_heads': heads}}
    torch.save({'epoch': 0, 'global_step': 3, 'pytorch-lightning_version': '2.5.0', 'state_dict': state,
                'optimizer_states': [], 'hyper_parameters': hp}, path)
    return path


# ---- their computation, written out --------------------------------------------------------------------------------

def their_spectrogram(wav):
    "`Spectrogram.forward` then `_adjust_spectrogram` (truncate): [B, T] -> [B, 1, mels, frames], frames a multiple of 16."
    spec = torchaudio.transforms.AmplitudeToDB()(their_melspec()(wav))
    return spec[..., :spec.shape[-1] - spec.shape[-1] % PATCH][:, None]

def rotate(x, pos_ids, w_grid, inv_freq):
    "`RotaryEmbedding2D.forward` on q or k [B, heads, N, hd]: the first half by the row (frequency), the second by the column (time)."
    def cos_sin(index):
        freqs = index.float()[:, None] * inv_freq[None]
        emb = torch.cat([freqs, freqs], -1)
        return emb.cos(), emb.sin()
    def turn(v, cos, sin):
        v1, v2 = v.chunk(2, -1)
        return v * cos + torch.cat([-v2, v1], -1) * sin
    half = x.shape[-1] // 2
    return torch.cat([turn(x[..., :half], *cos_sin(pos_ids // w_grid)), turn(x[..., half:], *cos_sin(pos_ids % w_grid))], -1)

def their_vit(w, net, x, heads, w_grid):
    "`ViT.forward` with neither pos_ids nor grid_size, as `AudioJEPAModule.forward` calls it."
    p = lambda name: w[f'{net}.{name}']
    B, N, D = x.shape
    if f'{net}.pos_embed' in w:      # added whole for the 10 s grid (their rule for shorter inputs is not used here)
        assert N == p('pos_embed').shape[1]
        x = x + p('pos_embed')
    rope = f'{net}.rope.inv_freq_h' in w
    pos_ids = torch.arange(N)
    depth = 1 + max(int(k.split('.')[2]) for k in w if k.startswith(f'{net}.blocks.'))
    for i in range(depth):
        b = lambda name: p(f'blocks.{i}.{name}')
        h = F.layer_norm(x, (D,), b('norm1.weight'), b('norm1.bias'), 1e-5)
        q, k, v = F.linear(h, b('attn.qkv.weight'), b('attn.qkv.bias')).reshape(B, N, 3, heads, D // heads).permute(2, 0, 3, 1, 4)
        if rope: q, k = (rotate(t, pos_ids, w_grid, b('attn.rope.inv_freq_h')) for t in (q, k))
        att = ((q @ k.transpose(-2, -1)) * (D // heads) ** -0.5).softmax(-1)
        x = x + F.linear((att @ v).transpose(1, 2).reshape(B, N, D), b('attn.proj.weight'), b('attn.proj.bias'))
        h = F.layer_norm(x, (D,), b('norm2.weight'), b('norm2.bias'), 1e-5)
        x = x + F.linear(F.gelu(F.linear(h, b('mlp.fc1.weight'), b('mlp.fc1.bias'))), b('mlp.fc2.weight'), b('mlp.fc2.bias'))
    return F.layer_norm(x, (D,), p('norm.weight'), p('norm.bias'), 1e-5)

def their_frames(w, wav, heads, net='student'):
    """`AudioJEPAModule.forward` (the student; or the teacher, as it runs in `training_step`) on each 10 s piece of
    `wav` [B, k x 160000], tokens frequency-major, then the mean of each time step's 8 frequency patches: [B, 16 k, D]."""
    out = []
    for piece in wav.split(CLIP, dim=1):
        spec = their_spectrogram(piece)
        tokens = F.conv2d(spec, w['patch_embed.patch_embed.proj.weight'], w['patch_embed.patch_embed.proj.bias'], stride=PATCH)
        tokens = tokens.flatten(2).transpose(1, 2)                                   # [B, H * W, D], row = frequency
        x = their_vit(w, net, tokens, heads, spec.shape[-1] // PATCH)
        out.append(x.view(len(wav), H, -1, x.shape[-1]).mean(1))
    return torch.cat(out, 1)


def clips():
    "10 s of noise, 10 s of a chirp with a little noise (16 kHz), and 20 s made of both (two pieces)."
    torch.manual_seed(0)
    t = torch.arange(CLIP) / RATE
    noise, chirp = 0.1 * torch.randn(CLIP), 0.5 * torch.sin(2 * math.pi * (200 + 300 * t) * t) + 0.01 * torch.randn(CLIP)
    return torch.stack([noise, chirp]), torch.cat([chirp, noise])[None]


# ---- the front end ---------------------------------------------------------------------------------------------------

def test_frontend_equals_theirs():
    "`audiojepa-ae16k` against their spectrogram: every bin of clips at very different levels and of a recording."
    torch.manual_seed(0)
    wav = torch.randn(3, CLIP) * torch.tensor([[1e-3], [0.1], [5.0]])
    if RECORDING.exists(): wav = torch.cat([wav, F.pad(load_audio(RECORDING, RATE), (0, CLIP))[None, :CLIP]])
    mel, _ = LogMel('audiojepa-ae16k')(wav)
    ref = their_spectrogram(wav)[:, 0].transpose(1, 2)
    assert mel.shape == ref.shape == (len(wav), 256, 128)
    assert (mel - ref).abs().max() < 1e-4


# ---- the checkpoint --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('pos_embed_type, positions', [('rope', 'rope'), ('sincos', 'learned'), ('learnable', 'learned')])
def test_the_real_vit_b_layout_is_accepted(pos_embed_type, positions, tmp_path):
    "Their configuration's ViT-B (768 wide, 12 blocks, MLP 3072) with each position type, uninitialised: only shapes matter."
    state = module_state(768, 12, 3072, pos_embed_type, heads=12, empty=True)
    if pos_embed_type == 'learnable': state['student.pos_embed'] = torch.randn(1, 128, 768)
    encoder, front, loaded = load_authors_checkpoint(lightning_checkpoint(tmp_path / 'vit_b.ckpt', state))
    cfg = encoder.config
    assert (cfg.embed_dim, cfg.depth, cfg.num_heads, cfg.mlp_ratio, cfg.qkv_bias) == (768, 12, 12, 4.0, True)
    assert (cfg.n_mels, cfg.max_frames, cfg.patch_size, cfg.grid, cfg.positions) == (128, 256, (16, 16), (16, 8), positions)
    assert (cfg.block_norm_eps, cfg.final_norm_eps, front.name, loaded['positions']) == (1e-5, 1e-5, 'audiojepa-ae16k', pos_embed_type)
    # their ViT's parameters and, for sin-cos, its position buffer: nothing more, nothing less
    theirs = sum(v.numel() for k, v in state.items() if k.startswith('student.') and 'inv_freq' not in k) + 768 * 257
    assert sum(p.numel() for p in encoder.parameters()) == theirs


@pytest.mark.parametrize('pos_embed_type', ['rope', 'sincos', 'learnable'])
def test_embeddings_equal_theirs(pos_embed_type, tmp_path):
    "Frame embeddings of the student (default) and the teacher, as a batch of 10 s clips and as 20 s in two pieces."
    state = module_state(pos_embed_type=pos_embed_type, seed=1)
    path = lightning_checkpoint(tmp_path / 'last.ckpt', state)
    batch, long = clips()
    for net in ('student', 'teacher'):
        encoder = AudioJEPAEncoder.from_pretrained(path, **({} if net == 'student' else {'network': net}))
        assert (encoder.sampling_rate, encoder.hop_size_in_ms, encoder.output_dim) == (16000, 625.0, 128)
        with torch.no_grad():
            for wav in (batch, long):
                ours, ref = encoder(wav), their_frames(state, wav, heads=2, net=net)
                assert ours.shape == ref.shape == (len(wav), 16 * wav.shape[1] // CLIP, 128)
                assert (ours - ref).abs().max() < 1e-4, (net, (ours - ref).abs().max())
    # the two networks are different weights, so the choice is real
    with torch.no_grad(): assert (their_frames(state, batch, 2, 'student') - their_frames(state, batch, 2, 'teacher')).abs().max() > 0.1


@pytest.mark.skipif(not RECORDING.exists(), reason='needs lmms-common')
def test_embeddings_equal_theirs_on_a_recording(tmp_path):
    "A guitar recording resampled to 16 kHz, its first 10 s (zero-padded: it is 8 s long), rotary positions."
    state = module_state(pos_embed_type='rope', seed=2)
    encoder = AudioJEPAEncoder.from_pretrained(lightning_checkpoint(tmp_path / 'last.ckpt', state))
    wav = F.pad(load_audio(RECORDING, RATE), (0, CLIP))[None, :CLIP]
    with torch.no_grad(): ours = encoder(wav)
    assert (ours - their_frames(state, wav, heads=2)).abs().max() < 1e-4


def test_heads_come_from_the_rotary_buffers_or_the_hyper_parameters(tmp_path):
    "Two 64-wide heads of a 128-wide rotary ViT; a sin-cos one: Lightning's plain hyper-parameters, else 64-wide heads."
    assert load_authors_checkpoint(lightning_checkpoint(tmp_path / 'r.ckpt', module_state()))[0].config.num_heads == 2
    sincos = module_state(pos_embed_type='sincos')
    assert load_authors_checkpoint(lightning_checkpoint(tmp_path / 's.ckpt', sincos))[0].config.num_heads == 2
    assert load_authors_checkpoint(lightning_checkpoint(tmp_path / 'h.ckpt', sincos, heads=4))[0].config.num_heads == 4
    with pytest.raises(ValueError, match='2 heads, not 4'): load_authors_checkpoint(tmp_path / 'r.ckpt', num_heads=4)


def test_reading_the_checkpoint_runs_none_of_its_code(trapped_checkpoint):
    "An object whose unpickling would create a directory sits in the hyper-parameters: the weights load, nothing runs."
    state = module_state()
    path, sprung = trapped_checkpoint(state)
    encoder, _, _ = load_authors_checkpoint(path)
    assert not sprung.exists()
    assert torch.equal(encoder.state_dict()['norm.bias'], state['student.norm.bias'])


@pytest.mark.parametrize('change, message', [
    (lambda s: s.pop('student.blocks.1.mlp.fc2.bias'), 'missing keys (1): student.blocks.1.mlp.fc2.bias'),
    (lambda s: s.pop('patch_embed.patch_embed.proj.bias'), 'missing keys (1): patch_embed.patch_embed.proj.bias'),
    (lambda s: s.update({'student.cls_token': torch.zeros(1, 1, 128)}), 'unexpected keys (1): student.cls_token'),
    (lambda s: s.update({'student.blocks.0.attn.proj.weight': torch.zeros(128, 64)}), 'student.blocks.0.attn.proj.weight (128, 64), expected (128, 128)'),
    (lambda s: s.update({'student.blocks.0.attn.rope.inv_freq_w': torch.ones(16)}), 'other rotary positions (1): student.blocks.0.attn.rope.inv_freq_w'),
    (lambda s: s.update({'spectrogram.mel_spec.spectrogram.window': torch.hann_window(1024)}), 'spectrogram.mel_spec.spectrogram.window (1024,) is not'),
    (lambda s: [s.pop(k) for k in list(s) if k.startswith('student.')], 'no student weights: no key starts with student.'),
])
def test_a_checkpoint_that_does_not_fit_names_the_keys(change, message, tmp_path):
    state = module_state()
    change(state)
    with pytest.raises(ValueError) as err: load_authors_checkpoint(lightning_checkpoint(tmp_path / 'bad.ckpt', state))
    assert message in str(err.value) and 'bad.ckpt' in str(err.value)


# ---- converting ------------------------------------------------------------------------------------------------------

def test_convert_command_writes_the_teacher_as_an_export(tmp_path):
    state = module_state(pos_embed_type='rope', seed=3)
    path = lightning_checkpoint(tmp_path / 'epoch=0-step=3.ckpt', state)
    out = tmp_path / 'ae' / 'encoder'
    res = subprocess.run([sys.executable, '-m', 'audiojepa.convert', str(path), str(out), '--network', 'teacher'],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert 'teacher encoder, 2 blocks of width 128 with 2 heads, rope positions' in res.stdout and 'audiojepa-ae16k' in res.stdout
    config = json.loads((out / 'config.json').read_text())
    assert (config['frontend']['name'], config['encoder']['positions'], config['encoder']['block_norm_eps']) == ('audiojepa-ae16k', 'rope', 1e-5)
    assert export_training(out) == {'source': "the authors' training code", 'checkpoint': path.name, 'network': 'teacher',
                                    'positions': 'rope', 'step': 3}
    batch, _ = clips()
    with torch.no_grad():
        assert (AudioJEPAEncoder.from_pretrained(out)(batch) - their_frames(state, batch, 2, 'teacher')).abs().max() < 1e-4
    bad = subprocess.run([sys.executable, '-m', 'audiojepa.convert', str(path), str(tmp_path / 'x'), '--network', 'ema'],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and 'network must be one of' in bad.stderr and 'Traceback' not in bad.stderr
    assert not (tmp_path / 'x').exists()
