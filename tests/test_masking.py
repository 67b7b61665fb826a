import pytest
import torch

from samba.masking import block_mask, make_mask, random_mask, span_mask, ssp_mask, tsr_mask


def _runs(row: torch.Tensor):
    """Lengths of the runs of True in a 1-D bool tensor."""
    runs, n = [], 0
    for v in row.tolist():
        if v:
            n += 1
        elif n:
            runs.append(n)
            n = 0
    if n:
        runs.append(n)
    return runs


@pytest.mark.parametrize("length", [128, 512, 1000, 7680])
def test_tsr_exact_visible_total_and_blocks(length):
    g = torch.Generator().manual_seed(0)
    m = tsr_mask(64, length, ratio=0.5, n_blocks=8, generator=g)
    assert m.shape == (64, length) and m.dtype == torch.bool
    visible = round(length * 0.5)
    assert (m.sum(1) == visible).all()
    for row in m[:16]:
        runs = _runs(row)
        assert len(runs) == 8, runs  # blocks never touch, so exactly 8 runs
        assert min(runs) >= 4


def test_tsr_block_lengths_follow_scale_range():
    g = torch.Generator().manual_seed(1)
    m = tsr_mask(200, 4096, generator=g)
    runs = torch.tensor([r for row in m for r in _runs(row)], dtype=torch.float)
    base = 2048 / 8
    # shares are s_i / sum(s) with s ~ U(0.5, 1.5): every block lies within (0.5/1.5*... ) of base
    assert runs.min() > base * 0.5 / 1.5 * 8 / 8 * 0.9
    assert runs.max() < base * 1.5 / 0.5 * 1.1
    assert runs.std() > 10  # lengths really vary


def test_tsr_seeded_and_random():
    a = tsr_mask(4, 512, generator=torch.Generator().manual_seed(3))
    b = tsr_mask(4, 512, generator=torch.Generator().manual_seed(3))
    c = tsr_mask(4, 512, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert not torch.equal(a[0], a[1])  # rows differ


def test_tsr_short_windows_reduce_blocks_or_fail_clearly():
    m = tsr_mask(3, 16, generator=torch.Generator().manual_seed(0))  # 8 visible: only 2 blocks of 4 fit
    assert (m.sum(1) == 8).all()
    with pytest.raises(ValueError, match="min_block"):
        tsr_mask(1, 6, ratio=0.5)
    with pytest.raises(ValueError):
        tsr_mask(1, 100, ratio=1.0)


def test_random_block_ssp_exact_ratio():
    g = torch.Generator().manual_seed(0)
    for fn in (random_mask, block_mask, ssp_mask, span_mask):
        m = fn(8, 1000, ratio=0.3, generator=g)
        assert (m.sum(1) == 700).all(), fn.__name__
    s = span_mask(8, 1000, ratio=0.3, generator=g)
    for row in s:
        assert len(_runs(~row)) == 1  # one hidden span
    for row in ssp_mask(8, 1000, ratio=0.5, generator=g):
        runs = _runs(row)
        assert len(runs) == 8 and max(runs) - min(runs) <= 1  # equal-length preserved blocks
    b = block_mask(8, 1024, ratio=0.5, block=32, generator=g)
    for row in b:
        assert all(r % 32 == 0 for r in _runs(~row))  # hidden stretches are whole blocks


def test_make_mask_dispatch():
    assert make_mask("tsr", 2, 256).shape == (2, 256)
    with pytest.raises(ValueError, match="unknown mask"):
        make_mask("nope", 2, 256)
