"Properties of the mask generators and their registry (audiojepa.masking)."
import inspect

import pytest
import torch

from audiojepa.data import collate
from audiojepa.masking import (MASKS, FreqStripMask, MaskGenerator, MultiBlockMask, RandomPatchMask, StripMask,
                               TimeStripMask, mask_generator, mask_to_index, register_mask)

# every registered strategy, at its defaults unless a setting here exercises more of it
OPTIONS = {'time': {'n_strips': 2}}
GENERATORS = {name: mask_generator(name, **OPTIONS.get(name, {})) for name in MASKS}
# strips have few placements, so some clips of a batch coincide
MIN_DISTINCT = {'freq': 3, 'time': 16}
GRIDS = [(32, 6), (8, 4), (64, 6)]


@pytest.mark.parametrize('name', GENERATORS)
@pytest.mark.parametrize('grid', GRIDS)
def test_index_properties(name, grid):
    gen, P = GENERATORS[name], grid[0] * grid[1]
    for seed in range(10):
        ctx, tgt = gen(16, grid, generator=seed)
        assert ctx.dtype == tgt.dtype == torch.long
        assert ctx.shape[0] == tgt.shape[0] == 16 and ctx.shape[1] >= 1 and tgt.shape[1] >= 1
        both = torch.cat([ctx, tgt], 1)
        assert both.min() >= 0 and both.max() < P                          # every index valid
        assert (both.sort(1).values.diff(1) > 0).all()                      # context ∩ targets = ∅, no repeats
        assert (ctx.diff(1) > 0).all() and (tgt.diff(1) > 0).all()          # sorted ascending


@pytest.mark.parametrize('name', GENERATORS)
def test_seed_reproducible_and_samples_differ(name):
    gen = GENERATORS[name]
    a, b = gen(32, (32, 6), generator=7), gen(32, (32, 6), generator=7)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert all(torch.equal(x, y) for x, y in zip(gen(4, (32, 6), g1), gen(4, (32, 6), g2)))
    # different clips of a batch get different masks
    distinct = len({tuple(r.tolist()) for r in a[1]})
    assert distinct >= MIN_DISTINCT.get(name, 30)
    c = gen(32, (32, 6), generator=8)
    assert not torch.equal(a[1][:, :min(a[1].shape[1], c[1].shape[1])], c[1][:, :min(a[1].shape[1], c[1].shape[1])])


def test_random_patch_ratio_within_range_and_varies_per_batch():
    gen, P = RandomPatchMask((0.4, 0.6)), 192
    ratios = []
    for seed in range(200):
        ctx, tgt = gen(4, (32, 6), generator=seed)
        assert ctx.shape[1] + tgt.shape[1] == P                             # a partition
        ratios.append(tgt.shape[1] / P)
    assert 0.4 - 1 / P <= min(ratios) < 0.43 and 0.57 < max(ratios) <= 0.6 + 1 / P
    # each clip has its own permutation: a patch is a target in some clips and context in others
    ctx, tgt = gen(64, (32, 6), generator=0)
    target_of = torch.zeros(64, P, dtype=torch.bool).scatter_(1, tgt, True)
    assert 0.2 < target_of.float().mean(0).min() and target_of.float().mean(0).max() < 0.8


def test_multiblock_blocks_and_context():
    gen, grid = MultiBlockMask(n_targets=1), (32, 6)
    for seed in range(20):
        ctx, tgt = gen(1, grid, generator=seed)                            # one clip: no cutting to the batch minimum
        rows, cols = tgt[0] // 6, tgt[0] % 6
        h, w = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
        assert h * w == tgt.shape[1]                                        # a filled rectangle
        assert 0.15 * 192 - 6 <= tgt.shape[1] <= 0.2 * 192 + 6              # about the target scale (rounding to the grid)
        assert ctx.shape[1] >= 0.85 * 192 - 6 - tgt.shape[1]                # the context block minus the target
    ctx, tgt = MultiBlockMask(n_targets=4)(32, grid, generator=0)
    assert 0.15 < tgt.shape[1] / 192 < 0.8 and ctx.shape[1] >= 1


def test_multiblock_grid_too_small():
    with pytest.raises(ValueError, match='too small'):
        MultiBlockMask(n_targets=4, target_scale=(0.6, 0.7), context_scale=0.5, max_tries=3)(8, (2, 2), generator=0)


@pytest.mark.parametrize('n_strips', [1, 2, 3])
def test_time_strips(n_strips):
    for seed in range(10):
        ctx, tgt = TimeStripMask(ratio=0.5, n_strips=n_strips)(8, (32, 6), generator=seed)
        assert tgt.shape[1] == 16 * 6
        for row in tgt:
            cols = row.view(-1, 6) // 6                                     # whole time columns, all 6 bands
            assert (cols == cols[:, :1]).all()
            runs = 1 + int((cols[:, 0].diff() > 1).sum())
            assert runs <= n_strips


def test_freq_strips_are_bands():
    ctx, tgt = FreqStripMask(ratio=(0.3, 0.5))(8, (32, 6), generator=0)
    bands = tgt % 6
    for row in bands:
        assert len(row.unique()) * 32 == len(row)                           # each masked band over every frame


@pytest.mark.parametrize('bad', [0.0, 1.0, -0.1, 1.5, (0.6, 0.4), (0.0, 0.5), (0.5, 1.0)])
def test_bad_ratio(bad):
    for make in [cls for cls in MASKS.values() if 'ratio' in inspect.signature(cls).parameters]:
        with pytest.raises(ValueError, match=r'inside \(0, 1.0\)'): make(bad)


def test_bad_grid_and_args():
    for grid in [(0, 6), (32,), (1, 1)]:
        with pytest.raises(ValueError, match='grid must be'): RandomPatchMask()(2, grid)
    with pytest.raises(ValueError, match='batch_size'): RandomPatchMask()(0, (4, 4))
    with pytest.raises(ValueError, match='axis'): StripMask('channel')
    with pytest.raises(ValueError, match='n_targets'): MultiBlockMask(n_targets=0)


def test_mask_to_index_cuts_to_batch_minimum_randomly():
    mask = torch.ones(2, 10, dtype=torch.bool); mask[1, 4:] = False
    kept = torch.stack([mask_to_index(mask, torch.Generator().manual_seed(s))[0] for s in range(50)])
    assert kept.shape == (50, 4)
    assert len(kept.unique()) > 4                                           # not always the first four


def test_registry_builds_every_strategy_by_name():
    assert MASKS and all(issubclass(cls, MaskGenerator) for cls in MASKS.values())
    for name, cls in MASKS.items():
        assert type(mask_generator(name)) is cls
    gen = mask_generator('multiblock', n_targets=2, target_scale=[0.1, 0.2])     # YAML gives lists
    assert (gen.n_targets, gen.target_scale) == (2, (0.1, 0.2))


def test_registry_errors_name_what_is_wrong():
    with pytest.raises(ValueError, match="unknown mask 'blocks'; expected one of " + ', '.join(MASKS)):
        mask_generator('blocks')
    with pytest.raises(ValueError, match="unknown option 'ratios'; valid keys for 'random': ratio$"):
        mask_generator('random', ratios=0.5)
    with pytest.raises(ValueError, match="valid keys for 'time': ratio, n_strips"):
        mask_generator('time', axis='freq')                                  # fixed by the strategy, not an option
    with pytest.raises(ValueError, match=r'ratio must be a number or \(min, max\) range'):
        mask_generator('random', ratio='half')
    with pytest.raises(ValueError, match="options of 'multiblock'"):
        mask_generator('multiblock', n_targets='4')


def test_register_mask_adds_a_strategy_and_guards_names():
    @register_mask('test_everything')
    class EverythingMask(MaskGenerator):
        def __init__(self, keep:int=1): self.keep = keep
        def masks(self, batch_size, grid, g):
            context = torch.zeros(batch_size, grid[0] * grid[1], dtype=torch.bool)
            context[:, :self.keep] = True
            return context, ~context
    try:
        gen = mask_generator('test_everything', keep=2)
        ctx, tgt = gen(3, (4, 4), generator=0)
        assert ctx.tolist() == [[0, 1]] * 3 and tgt.shape == (3, 14)
        with pytest.raises(ValueError, match="valid keys for 'test_everything': keep"): mask_generator('test_everything', n=1)
        with pytest.raises(ValueError, match='taken by RandomPatchMask'): register_mask('random')(EverythingMask)
        with pytest.raises(TypeError, match='not a MaskGenerator'): register_mask('test_dict')(dict)
        assert 'test_dict' not in MASKS
    finally: MASKS.pop('test_everything')


@pytest.mark.parametrize('name', GENERATORS)
def test_masks_for_a_batch_of_synthetic_sounds(name):
    synthetic = pytest.importorskip('audiojepa.synthetic')
    source = synthetic.SyntheticSounds(n_clips=3, clip_seconds=1.0, seed=0)
    batch = collate([source[i] for i in range(3)])
    ctx, tgt = GENERATORS[name](len(batch['audio']), (3, 6), generator=0)   # 1 s: 48 frames, 3 x 6 patches
    assert batch['audio'].shape[0] == ctx.shape[0] == tgt.shape[0] == 3
