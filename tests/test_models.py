"Encoder, predictor, presets and export (audiojepa.models)."
import json

import pytest
import torch
from safetensors.torch import load_file

from audiojepa.audio import frontend_config
from audiojepa.models import (PRESETS, EncoderConfig, PatchEmbed, Predictor, PredictorConfig, ViTEncoder, attention_mask,
                              load_encoder, preset, save_encoder, sincos_pos_embed_2d)

pytestmark = pytest.mark.usefixtures('one_thread')


SMALL = dict(embed_dim=32, depth=2, num_heads=4, max_frames=64)


@pytest.mark.parametrize('name', list(PRESETS))
def test_preset_shapes(name):
    torch.manual_seed(0)
    cfgs = preset(name)
    enc = ViTEncoder(cfgs['encoder']).eval()
    pred = Predictor(cfgs['predictor'], enc.embed_dim, cfgs['encoder'].grid).eval()
    D = cfgs['encoder'].embed_dim
    mel = torch.randn(2, 64, 96)                                # 4 × 6 = 24 patches
    ctx_idx = torch.tensor([[0, 2, 5, 9, 13, 20], [1, 3, 4, 8, 17, 23]])
    tgt_idx = torch.tensor([[1, 6, 7, 22], [0, 5, 11, 12]])
    with torch.no_grad():
        assert enc(mel).shape == (2, 24, D)
        ctx = enc(mel, keep_idx=ctx_idx)
        assert ctx.shape == (2, 6, D)
        out = pred(ctx, ctx_idx, tgt_idx, enc.grid(64))
        assert out.shape == (2, 4, D)
        assert torch.isfinite(out).all()
        assert len(enc(mel, return_layers=[-1, -2, -3])) == 3


def test_preset_sizes_and_unknown():
    base = preset('base')
    assert (base['encoder'].embed_dim, base['encoder'].depth, base['encoder'].num_heads,
            base['encoder'].mlp_ratio) == (768, 12, 12, 4.0)
    assert (base['predictor'].embed_dim, base['predictor'].depth) == (384, 6)
    assert base['encoder'].grid == (32, 6) and base['encoder'].patch_size == (16, 16)
    with pytest.raises(ValueError, match="unknown preset 'xl'; expected one of"): preset('xl')


def test_bad_inputs():
    enc = ViTEncoder(EncoderConfig(**SMALL))
    with pytest.raises(ValueError, match=r'\[B, N frames, 96 mel bins\]'): enc(torch.randn(2, 64, 128))
    with pytest.raises(ValueError, match=r'got shape \(2, 1, 64, 96\)'): enc(torch.randn(2, 1, 64, 96))
    with pytest.raises(ValueError, match='multiple of the time patch size 16'): enc(torch.randn(2, 60, 96))
    with pytest.raises(ValueError, match='multiple of the time patch size 16'): enc(torch.randn(2, 0, 96))
    with pytest.raises(ValueError, match='keep_idx must be a long tensor'): enc(torch.randn(2, 64, 96), keep_idx=torch.zeros(3, 2).long())
    with pytest.raises(ValueError, match='padding_mask must be'):
        enc(torch.randn(2, 64, 96), padding_mask=torch.zeros(2, 50, dtype=torch.bool))
    with pytest.raises(ValueError, match='must divide n_mels=96'): EncoderConfig(patch_size=(16, 20))
    with pytest.raises(ValueError, match='must divide max_frames=500'): EncoderConfig(max_frames=500)
    with pytest.raises(ValueError, match='multiple of 4'): EncoderConfig(embed_dim=30, num_heads=3)
    with pytest.raises(ValueError, match='must divide embed_dim'): PredictorConfig(embed_dim=64, num_heads=5)


def test_lengths_shorter_and_longer_than_max():
    enc = ViTEncoder(EncoderConfig(**SMALL)).eval()
    with torch.no_grad():
        assert enc(torch.randn(1, 16, 96)).shape == (1, 6, 32)
        long = torch.randn(1, 256, 96)
        assert enc(long).shape == (1, 96, 32)
        # positions of a longer input extend the table: its first rows are the table's
        assert torch.allclose(enc.positions(16, 6)[:24], enc.positions(4, 6))


def test_sincos_positions():
    pos = sincos_pos_embed_2d(32, 6, 64).view(32, 6, 64)
    assert torch.equal(pos[:, :, :32], pos[:, :1, :32].expand(-1, 6, -1))   # time half constant along frequency
    assert torch.equal(pos[:, :, 32:], pos[:1, :, 32:].expand(32, -1, -1))  # frequency half constant along time
    assert len({tuple(v.tolist()) for v in pos.view(-1, 64)}) == 192         # every patch distinct
    with pytest.raises(ValueError, match='multiple of 4'): sincos_pos_embed_2d(2, 2, 6)


def test_patch_embed_is_time_major():
    pe = PatchEmbed((16, 16), 8, n_mels=96)
    mel = torch.zeros(1, 32, 96); mel[0, 16:32, 32:48] = 1.0                # patch t=1, f=2 -> index 1*6+2
    tokens = pe(mel) - pe.proj.bias
    assert tokens[0].abs().sum(-1).nonzero().flatten().tolist() == [8]


def test_fused_and_explicit_attention_agree_with_padding():
    "timm's fused SDPA path and its explicit softmax path give the same result with our attention mask."
    torch.manual_seed(0)
    enc = ViTEncoder(EncoderConfig(**SMALL)).eval()
    x = torch.randn(2, 24, 32)
    pad = torch.zeros(2, 24, dtype=torch.bool); pad[0, 15:] = True
    mask = attention_mask(pad)
    blk = enc.blocks[0]
    with torch.no_grad():
        blk.attn.fused_attn = True; fused = blk(x, attn_mask=mask)
        blk.attn.fused_attn = False; explicit = blk(x, attn_mask=mask)
    assert torch.allclose(fused, explicit, atol=1e-5)


def test_attention_path_follows_device_and_dtype():
    enc = ViTEncoder(EncoderConfig(**SMALL))
    mel = torch.randn(1, 64, 96)
    with torch.no_grad():
        full = enc(mel)
        assert all(b.attn.fused_attn for b in enc.blocks)
        with torch.autocast('cpu', dtype=torch.bfloat16): low = enc(mel)
        assert not any(b.attn.fused_attn for b in enc.blocks)         # explicit attention in bf16 on CPU
    assert torch.allclose(low.float(), full, atol=0.1)


def test_padding_patches_are_ignored():
    torch.manual_seed(0)
    enc = ViTEncoder(EncoderConfig(**SMALL)).eval()
    real = torch.randn(1, 32, 96)
    pad = torch.zeros(2, 64, dtype=torch.bool); pad[:, 32:] = True
    batch = torch.cat([torch.cat([real, torch.randn(1, 32, 96)], 1), torch.cat([real, 100 * torch.randn(1, 32, 96)], 1)])
    with torch.no_grad():
        out = enc(batch, padding_mask=pad)
        assert torch.allclose(out[0, :12], out[1, :12], atol=1e-5)         # the padded garbage does not matter
        assert torch.allclose(out[0, :12], enc(real)[0], atol=1e-5)
        # a patch is padding only if all its frames are padded
        pad2 = torch.zeros(2, 64, dtype=torch.bool); pad2[:, 40:] = True
        assert not torch.allclose(enc(batch, padding_mask=pad2)[0, :12], enc(batch, padding_mask=pad2)[1, :12], atol=1e-3)
        # a context made only of padding does not produce NaN
        all_pad = torch.ones(2, 64, dtype=torch.bool)
        assert torch.isfinite(enc(batch, padding_mask=all_pad, keep_idx=torch.tensor([[20, 21], [22, 23]]))).all()


def test_predictor_gradients_and_position_dependence():
    torch.manual_seed(0)
    enc = ViTEncoder(EncoderConfig(**SMALL))
    pred = Predictor(PredictorConfig(embed_dim=16, depth=1, num_heads=2), 32)   # no precomputed table
    mel = torch.randn(2, 64, 96)
    ctx_idx, tgt_idx = torch.arange(0, 24, 2).expand(2, -1), torch.arange(1, 24, 2).expand(2, -1)
    out = pred(enc(mel, keep_idx=ctx_idx), ctx_idx, tgt_idx, (4, 6))
    out.square().mean().backward()
    for module in (enc.patch_embed, enc.blocks, pred.embed, pred.blocks, pred.proj):
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())
    assert pred.mask_token.grad.abs().sum() > 0
    assert not torch.allclose(out[:, 0], out[:, 1])                           # mask tokens differ only by position


def test_export_roundtrip(tmp_path):
    torch.manual_seed(0)
    enc = ViTEncoder(EncoderConfig(**SMALL)).eval()
    front = frontend_config('audiojepa')
    front.mean, front.std = -3.5, 2.25
    save_encoder(tmp_path / 'enc', enc, front)
    config = json.loads((tmp_path / 'enc' / 'config.json').read_text())
    assert config['encoder']['embed_dim'] == 32 and config['frontend']['mean'] == -3.5
    assert set(load_file(str(tmp_path / 'enc' / 'model.safetensors'))) == set(enc.state_dict())
    enc2, front2 = load_encoder(tmp_path / 'enc')
    assert front2 == front and enc2.config == enc.config and not enc2.training
    mel = torch.randn(2, 64, 96)
    with torch.no_grad(): assert torch.equal(enc(mel), enc2(mel))


def test_load_rejects_non_exports(tmp_path):
    with pytest.raises(ValueError, match='is not an exported audiojepa encoder'): load_encoder(tmp_path)
    (tmp_path / 'config.json').write_text('{"some": "thing"}')
    (tmp_path / 'model.safetensors').write_bytes(b'')
    with pytest.raises(ValueError, match='is not an audiojepa encoder config'): load_encoder(tmp_path)
    with pytest.raises(ValueError, match='gives 128 mel bins'):
        save_encoder(tmp_path / 'x', ViTEncoder(EncoderConfig(**SMALL)), 'audiomae')


@pytest.mark.skipif(not (torch.cuda.is_available() or torch.backends.mps.is_available()), reason='no GPU / MPS')
def test_runs_on_accelerator():
    device = 'cuda' if torch.cuda.is_available() else 'mps'
    enc = ViTEncoder(EncoderConfig(**SMALL)).to(device)
    pred = Predictor(PredictorConfig(embed_dim=16, depth=1, num_heads=2), 32, (4, 6)).to(device)
    mel = torch.randn(2, 64, 96, device=device)
    pad = torch.zeros(2, 64, dtype=torch.bool, device=device); pad[0, 48:] = True
    idx = torch.arange(0, 24, 2, device=device).expand(2, -1)
    out = pred(enc(mel, keep_idx=idx, padding_mask=pad), idx, idx + 1, (4, 6))
    assert out.shape == (2, 12, 32) and torch.isfinite(out).all()
