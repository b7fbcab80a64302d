"The Audio-JEPA objective: EMA, gradients, losses, padding, diagnostics, and overfitting one batch (audiojepa.jepa)."

import pytest
import torch

from audiojepa.audio import LogMel
from audiojepa.data import collate
from audiojepa.synthetic import SyntheticSounds
from audiojepa.loop import ScheduleSection, ema_at
from audiojepa.jepa import (AudioJEPA, JEPAConfig, drift_from_init, effective_rank, instance_norm,
                            linear_cka, oracle_losses)
from audiojepa.masking import RandomPatchMask
from audiojepa.models import EncoderConfig, PredictorConfig, ViTEncoder, gather_tokens

pytestmark = pytest.mark.usefixtures('one_thread')


ENC = dict(embed_dim=32, depth=2, num_heads=4, max_frames=64)
PRED = dict(embed_dim=16, depth=1, num_heads=2)


def small_model(**jepa):
    torch.manual_seed(0)
    return AudioJEPA(EncoderConfig(**ENC), PredictorConfig(**PRED), JEPAConfig(**jepa))


def masks(B=2):
    return RandomPatchMask(0.5)(B, (4, 6), generator=0)


def test_target_is_a_frozen_copy():
    m = small_model()
    assert all(not p.requires_grad for p in m.target_encoder.parameters())
    for a, b in zip(m.target_encoder.parameters(), m.encoder.parameters()):
        assert torch.equal(a, b) and a.data_ptr() != b.data_ptr()
    m.train()
    assert m.encoder.training and m.predictor.training and not m.target_encoder.training


@pytest.mark.parametrize('momentum', [0.0, 0.5, 0.996, 1.0])
def test_ema_equals_formula(momentum):
    m = small_model()
    with torch.no_grad():
        for p in m.encoder.parameters(): p.add_(torch.randn_like(p))
    before = [p.clone() for p in m.target_encoder.parameters()]
    m.update_target(momentum)
    for b, t, s in zip(before, m.target_encoder.parameters(), m.encoder.parameters()):
        assert torch.allclose(t, momentum * b + (1 - momentum) * s, atol=1e-6)


def test_gradients_reach_encoder_and_predictor_not_target():
    m = small_model()
    ctx, tgt = masks()
    loss, _ = m(torch.randn(2, 64, 96), ctx, tgt)
    loss.backward()
    assert all(p.grad is None for p in m.target_encoder.parameters())
    for name, p in list(m.encoder.named_parameters()) + list(m.predictor.named_parameters()):
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_target_uses_full_spectrogram_and_ignores_context_only_changes():
    "Targets come from the EMA encoder over every patch: they change with a context patch, the context encoder does not see targets."
    m = small_model().eval()
    ctx, tgt = masks(1)
    mel = torch.randn(1, 64, 96)
    t0 = gather_tokens(m.targets(mel), tgt)
    changed = mel.clone()
    t, f = divmod(int(ctx[0, 0]), 6)
    changed[:, 16 * t:16 * t + 16, 16 * f:16 * f + 16] += 5.0
    assert not torch.allclose(gather_tokens(m.targets(changed), tgt), t0)
    # the context representation does not depend on target patches
    t, f = divmod(int(tgt[0, 0]), 6)
    hidden = mel.clone(); hidden[:, 16 * t:16 * t + 16, 16 * f:16 * f + 16] += 5.0
    with torch.no_grad(): assert torch.allclose(m.encoder(mel, keep_idx=ctx), m.encoder(hidden, keep_idx=ctx), atol=1e-6)


@pytest.mark.parametrize('cfg', [dict(loss='mse'), dict(loss='smooth_l1'), dict(loss='cosine'),
                                 dict(target_norm='none'), dict(average_last_k=2), dict(target_norm='instance'),
                                 dict(target_norm='instance', average_last_k=2, masks_per_clip=3),
                                 dict(target_view='masked'), dict(target_view='masked', masks_per_clip=3)])
def test_loss_options(cfg):
    m = small_model(**cfg)
    ctx, tgt = masks(2 * cfg.get('masks_per_clip', 1))
    loss, diag = m(torch.randn(2, 64, 96), ctx, tgt)
    assert loss.ndim == 0 and torch.isfinite(loss) and loss > 0
    if cfg.get('loss') == 'cosine': assert loss <= 4.0
    if cfg.get('target_norm', 'layernorm') == 'layernorm' and cfg.get('average_last_k', 1) == 1:
        target = m.targets(torch.randn(2, 64, 96))
        assert torch.allclose(target.mean(-1), torch.zeros(()), atol=1e-5)
        assert torch.allclose(target.var(-1, unbiased=False), torch.ones(()), atol=1e-3)


def test_bad_config():
    with pytest.raises(ValueError, match='unknown loss'): JEPAConfig(loss='l2')
    with pytest.raises(ValueError, match='unknown target_norm'): JEPAConfig(target_norm='batchnorm')
    with pytest.raises(ValueError, match='average_last_k'): JEPAConfig(average_last_k=0)
    with pytest.raises(ValueError, match='masks_per_clip'): JEPAConfig(masks_per_clip=0)
    with pytest.raises(ValueError, match='exceeds the encoder depth'): small_model(average_last_k=5)
    with pytest.raises(ValueError, match='unknown preset'): AudioJEPA.from_preset('giant')


def test_padded_targets_do_not_count():
    m = small_model().eval()
    ctx, tgt = masks(2)
    mel = torch.randn(2, 64, 96)
    pad = torch.zeros(2, 64, dtype=torch.bool); pad[1] = True              # clip 1 entirely padding
    loss, _ = m(mel, ctx, tgt, padding_mask=pad)
    alone, _ = m(mel[:1], ctx[:1], tgt[:1])
    assert torch.allclose(loss, alone, atol=1e-6)


def test_diagnostics_show_collapse():
    g = torch.Generator().manual_seed(0)
    assert effective_rank(torch.randn(1000, 32, generator=g)) > 25
    collapsed = torch.randn(1000, 1, generator=g) * torch.randn(1, 32, generator=g) + 0.01 * torch.randn(1000, 32, generator=g)
    assert effective_rank(collapsed) < 3
    m = small_model()
    ctx, tgt = masks()
    _, diag = m(torch.randn(2, 64, 96), ctx, tgt)
    assert set(diag) == {'pred_loss', 'var_cov', 'target_std', 'pred_std', 'target_rank', 'pred_rank',
                         'oracle_global', 'oracle_clip', 'oracle_clip_pos'}
    assert all(v.ndim == 0 and not v.requires_grad for v in diag.values())
    assert 1 <= diag['target_rank'] <= 32 and diag['target_std'] > 0.1
    assert m(torch.randn(2, 64, 96), ctx, tgt, diagnostics=False)[1] == {}


def test_bf16_autocast_on_cpu():
    m = small_model()
    ctx, tgt = masks()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        loss, diag = m(torch.randn(2, 64, 96), ctx, tgt)
    loss.backward()
    assert loss.dtype == torch.float32 and torch.isfinite(loss)


def test_tiny_overfits_a_fixed_batch_of_synthetic_sounds():
    torch.manual_seed(0)
    source = SyntheticSounds(n_clips=4, clip_seconds=2.0, seed=0)
    batch = collate([source[i] for i in range(4)])
    context_idx, target_idx = RandomPatchMask()(len(batch['audio']), (6, 6), generator=0)
    front = LogMel({'clip_seconds': 2.0, 'num_frames': 96})           # 2 s → 96 frames → 6 × 6 patches
    mel, frame_pad = front(batch['audio'], batch['padding_mask'])
    assert mel.shape == (4, 96, 96)
    model = AudioJEPA.from_preset('tiny', JEPAConfig(var_cov_weight=0.0))   # four clips: nothing to keep apart
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3, weight_decay=0.0)
    steps, losses = 150, []
    schedule = ScheduleSection(max_steps=steps)   # the EMA momentum rises from 0.996 to 1 as in training
    for step in range(steps):
        loss, diag = model(mel, context_idx, target_idx, padding_mask=frame_pad, diagnostics=False)
        opt.zero_grad(); loss.backward(); opt.step()
        model.update_target(ema_at(step, schedule))
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert min(losses[-10:]) < losses[0] / 10, (losses[0], losses[-10:])


def mse(pred, target): return (pred - target).pow(2).mean(-1)


def test_oracle_losses_on_a_constructed_batch():
    "Targets = clip level + position shape + noise: each oracle explains exactly its part."
    g = torch.Generator().manual_seed(0)
    B, P, D = 64, 24, 8
    level, shape = 3 * torch.randn(B, 1, D, generator=g), torch.randn(1, P, D, generator=g)
    shape = shape - shape.mean(1, keepdim=True)   # the average clip shape has zero mean over positions
    noise = 0.1 * torch.randn(B, P, D, generator=g)
    ctx, tgt = RandomPatchMask(0.5)(B, (4, 6), generator=0)
    # with no noise, clip mean + position is perfect and the clip mean misses exactly the position shape
    clean = oracle_losses(level + shape, ctx, tgt, mse)
    assert clean['oracle_clip_pos'] < 1e-3 < clean['oracle_clip'] < clean['oracle_global']
    full = oracle_losses(level + shape + noise, ctx, tgt, mse)
    assert abs(full['oracle_clip_pos'] - 0.01) < 0.004                 # only the noise is left
    expected_clip = mse(shape[0, tgt] - shape[0, ctx].mean(1, keepdim=True), torch.zeros(())).mean()
    assert abs(full['oracle_clip'] - expected_clip - 0.01) < 0.01
    # global mean: level variance (9) + shape + noise
    assert 8 < full['oracle_global'] < 11
    # padded patches are left out: garbage there changes nothing
    pad = torch.zeros(B, P, dtype=torch.bool); pad[:, 18:] = True
    spoiled = (level + shape).clone(); spoiled[:, 18:] = 1e3
    a, b = oracle_losses(level + shape, ctx, tgt, mse, pad), oracle_losses(spoiled, ctx, tgt, mse, pad)
    for k in a: assert torch.allclose(a[k], b[k], atol=1e-4), k


def test_oracle_losses_with_several_views():
    g = torch.Generator().manual_seed(1)
    target = torch.randn(4, 24, 8, generator=g)
    ctx, tgt = RandomPatchMask(0.5)(12, (4, 6), generator=0)     # three views of each clip
    out = oracle_losses(target, ctx, tgt, mse)
    assert set(out) == {'oracle_global', 'oracle_clip', 'oracle_clip_pos'} and all(torch.isfinite(v) for v in out.values())


def test_instance_norm_removes_what_is_constant_in_a_clip():
    x = torch.randn(2, 10, 4) * 5 + torch.tensor([1., 2., 3., 4.])
    y = instance_norm(x)
    assert torch.allclose(y.mean(1), torch.zeros(2, 4), atol=1e-5) and torch.allclose(y.std(1, unbiased=False), torch.ones(2, 4), atol=1e-3)
    pad = torch.zeros(2, 10, dtype=torch.bool); pad[0, 6:] = True
    spoiled = x.clone(); spoiled[0, 6:] = 100.0
    assert torch.allclose(instance_norm(spoiled, pad)[0, :6], instance_norm(x[:1, :6])[0], atol=1e-5)


def test_linear_cka_and_drift():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(500, 16, generator=g)
    q, _ = torch.linalg.qr(torch.randn(16, 16, generator=g))
    assert abs(linear_cka(x, 3 * x @ q) - 1) < 1e-4                    # invariant to rotation and scale
    assert linear_cka(x, torch.randn(500, 16, generator=g)) < 0.1       # unrelated features
    enc = ViTEncoder(EncoderConfig(**ENC)).eval()
    init = ViTEncoder(EncoderConfig(**ENC)).eval(); init.load_state_dict(enc.state_dict())
    mel = torch.randn(2, 64, 96, generator=g)
    same = drift_from_init(enc, init, mel)
    assert same['dist_init'] == 0 and abs(same['cka_init'] - 1) < 1e-4
    with torch.no_grad():
        for p in enc.parameters(): p.add_(0.5 * torch.randn_like(p))
    moved = drift_from_init(enc, init, mel)
    assert moved['dist_init'] > 0.1 and moved['cka_init'] < 0.99
