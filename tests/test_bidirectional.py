"""SAMBAConfig.bidirectional: reverse-time twins of every Mamba2 scan, opt-in; the paper default untouched."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from torch.func import functional_call

from samba import SAMBA, SAMBAConfig
from samba.checkpoint import load_model, save_model
from samba.model import MambaBlock
from samba.montage import DEVICE_PRESETS, positions
from samba.nn.diff_mamba import DiffMamba, DiffMambaLoop
from samba.nn.mamba2 import Mamba2
from test_train_pretrain import tiny_model_config

REPO = Path(__file__).resolve().parents[1]
RELEASED = REPO / "checkpoints" / "samba_pretrained"
EPOC = list(DEVICE_PRESETS["emotiv_epoc"])
REVERSE_PREFIXES = ("enc1.mamba_reverse.", "dec3_mamba.mamba_reverse.", "dec2_mamba.mamba_reverse.",
                    "bottleneck_reverse.")


def small_cfg(**kw):
    base = dict(expand=2, d_state=8, chunk_size=16, backend="torch")
    base.update(kw)
    return SAMBAConfig(**base)


def _coords(names=EPOC, dtype=torch.float32):
    return torch.from_numpy(positions(names)).to(dtype)


# ------------------------------------------------------------------------------------------ parameters
def test_default_has_no_reverse_parameters_and_the_released_names():
    default = SAMBA(SAMBAConfig())
    keys = set(default.state_dict())
    assert not any("reverse" in k for k in keys)
    assert not any(isinstance(m, (Mamba2, DiffMamba)) and n.endswith("reverse") for n, m in default.named_modules())
    if RELEASED.is_dir():  # the checkpoint released with the paper model: the very same names and shapes
        from samba.checkpoint import load_checkpoint

        sd = load_checkpoint(RELEASED)["state_dict"]
        assert set(sd) == keys
        assert all(sd[k].shape == v.shape for k, v in default.state_dict().items())

    bidir = SAMBA(SAMBAConfig(bidirectional=True))
    extra = set(bidir.state_dict()) - keys
    assert keys <= set(bidir.state_dict())  # every default name is kept, with its shape
    assert all(bidir.state_dict()[k].shape == default.state_dict()[k].shape for k in keys)
    assert extra and all(k.startswith(REVERSE_PREFIXES) for k in extra)
    assert {p for p in REVERSE_PREFIXES if any(k.startswith(p) for k in extra)} == set(REVERSE_PREFIXES)
    # each twin has exactly the shape of the module it mirrors (the bottleneck twin: the whole DiffMamba)
    for k in extra:
        fwd = k.replace(".mamba_reverse.", ".mamba.").replace("bottleneck_reverse.", "bottleneck.")
        assert bidir.state_dict()[k].shape == default.state_dict()[fwd].shape, k
    mirrored = (default.enc1.mamba, default.dec3_mamba.mamba, default.dec2_mamba.mamba, default.bottleneck)
    assert bidir.num_parameters() == default.num_parameters() + sum(p.numel() for m in mirrored
                                                                     for p in m.parameters())


@pytest.mark.skipif(not RELEASED.is_dir(), reason="released checkpoint not in this checkout")
def test_released_checkpoint_loads_as_the_paper_model():
    model, _ = load_model(RELEASED)
    assert model.cfg.bidirectional is False
    assert model.bottleneck_reverse is None and model.enc1.mamba_reverse is None


def test_default_checkpoint_whose_config_lacks_the_field_loads(tmp_path, monkeypatch):
    """A checkpoint folder written by save_model with a config.json that has no ``bidirectional`` key (as every
    checkpoint of the paper model written without the option has) loads as the paper model, same outputs."""
    torch.manual_seed(0)
    m = SAMBA(small_cfg()).eval()
    plain = SAMBAConfig.to_dict
    monkeypatch.setattr(SAMBAConfig, "to_dict",
                        lambda self: {k: v for k, v in plain(self).items() if k != "bidirectional"})
    path = save_model(tmp_path / "m", m)
    monkeypatch.undo()
    assert "bidirectional" not in json.loads((path / "config.json").read_text())["config"]
    m2, _ = load_model(path)
    assert m2.cfg == m.cfg and m2.cfg.bidirectional is False
    assert set(m2.state_dict()) == set(m.state_dict())
    x = torch.randn(1, 14, 64)
    with torch.no_grad():
        torch.testing.assert_close(m2(x, _coords()), m(x, _coords()), rtol=0, atol=0)
    assert m.cfg.to_dict()["bidirectional"] is False  # saved from here on, and compared


def test_bidirectional_survives_save_load_and_from_dict(tmp_path):
    cfg = small_cfg(bidirectional=True)
    assert SAMBAConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg != small_cfg()  # compared like every other hyper-parameter
    torch.manual_seed(0)
    m = SAMBA(cfg).eval()
    path = save_model(tmp_path / "m", m)
    assert json.loads((path / "config.json").read_text())["config"]["bidirectional"] is True
    m2, _ = load_model(path)
    assert m2.cfg.bidirectional is True and set(m2.state_dict()) == set(m.state_dict())
    x = torch.randn(2, 14, 96)
    with torch.no_grad():
        torch.testing.assert_close(m2(x, _coords()), m(x, _coords()), rtol=0, atol=0)


def test_finetuning_rebuilds_the_bidirectional_architecture(tmp_path):
    from samba.classifier import SAMBAClassifier

    torch.manual_seed(0)
    cfg = SAMBAConfig(**tiny_model_config(), bidirectional=True)
    m = SAMBA(cfg)
    path = save_model(tmp_path / "pre", m)
    names = list(cfg.target_channels)[:6]
    clf = SAMBAClassifier(n_outputs=2, ch_names=names, pretrained=str(path))
    assert clf.samba.cfg.bidirectional is True
    for k, v in m.state_dict().items():
        assert torch.equal(clf.samba.state_dict()[k], v), k
    assert clf(torch.randn(2, 6, 64)).shape == (2, 2)
    # and from a config dict, as a fine-tuned run folder stores it (finetuning.load_finetuned)
    assert SAMBAClassifier(n_outputs=2, ch_names=names, config=cfg.to_dict()).samba.bottleneck_reverse is not None


# ------------------------------------------------------------------------------------------ the flip plumbing
def test_reverse_branch_is_the_forward_module_on_the_flipped_input():
    """With the forward branch silenced and the twin a copy of a Mamba2 m, block(x) = x + flip(m(flip(x))), so
    flip(block(flip(x))) = x + m(x): the reverse branch is the plain forward module on the time-reversed input.
    A flip along the wrong axis (or none) breaks it."""
    torch.manual_seed(0)
    cfg = small_cfg(bidirectional=True)
    block = MambaBlock(32, cfg).double()
    ref = Mamba2(32, d_state=cfg.d_state, d_conv=cfg.d_conv, expand=cfg.expand, headdim=cfg.headdim,
                 chunk_size=cfg.chunk_size, backend="torch").double()
    block.mamba_reverse.load_state_dict(ref.state_dict())
    with torch.no_grad():
        block.mamba.out_proj.weight.zero_()  # forward branch contributes 0
    x = torch.randn(2, 80, 32, dtype=torch.float64)
    with torch.no_grad():
        got = block(x.flip(1)).flip(1)
        torch.testing.assert_close(got, x + ref(x), rtol=1e-12, atol=1e-12)
        # the full block with both branches equal: x + m(x) + flip(m(flip(x))), symmetric under time reversal
        block.mamba.load_state_dict(ref.state_dict())
        y = block(x)
        torch.testing.assert_close(y, x + ref(x) + ref(x.flip(1)).flip(1), rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(block(x.flip(1)).flip(1), y, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("impl", ["grouped", "loop"])
def test_bottleneck_twin_is_the_differential_mixer_without_residual(impl):
    torch.manual_seed(0)
    m = SAMBA(small_cfg(bidirectional=True, diff_mamba_impl=impl)).double().eval()
    Diff = DiffMamba if impl == "grouped" else DiffMambaLoop
    assert isinstance(m.bottleneck_reverse, Diff) and m.bottleneck_reverse.residual is False
    m.bottleneck_reverse.load_state_dict(m.bottleneck.state_dict())
    z = torch.randn(2, 40, m.cfg.bottleneck_dim, dtype=torch.float64)
    with torch.no_grad():
        mix = lambda h: m.bottleneck(h) - h  # noqa: E731 - the forward mixer inside its residual
        torch.testing.assert_close(m._bottleneck(z), z + mix(z) + mix(z.flip(1)).flip(1), rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(m._bottleneck(z.flip(1)).flip(1), m._bottleneck(z), rtol=1e-10, atol=1e-10)


def test_residual_free_diff_mamba_loop_and_grouped_agree():
    torch.manual_seed(0)
    loop = DiffMambaLoop(16, head_dim=8, d_state=8, expand=2, headdim=8, backend="torch", residual=False).double()
    grouped = DiffMamba.from_loop(loop)
    assert grouped.residual is False and grouped.to_loop().residual is False
    u = torch.randn(2, 24, 16, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(grouped(u), loop(u), rtol=1e-10, atol=1e-10)
        with_res = DiffMambaLoop(16, head_dim=8, d_state=8, expand=2, headdim=8, backend="torch").double()
        with_res.load_state_dict(loop.state_dict())
        torch.testing.assert_close(with_res(u), u + loop(u), rtol=1e-12, atol=1e-12)


def test_default_block_is_exactly_causal_and_the_bidirectional_one_is_not():
    torch.manual_seed(0)
    x = torch.randn(1, 600, 32, dtype=torch.float64)
    x2 = x.clone()
    x2[:, 400] += 1.0
    for bidirectional in (False, True):
        block = MambaBlock(32, small_cfg(bidirectional=bidirectional)).double()
        with torch.no_grad():
            for mod in block.modules():  # long memory, so the influence reaches 200 steps
                if isinstance(mod, Mamba2):
                    mod.A_log.fill_(math.log(1e-2))
                    mod.dt_bias.fill_(0.0)
            d = (block(x2) - block(x)).abs().amax(-1)[0]
        if bidirectional:
            assert d[200] > 1e-3 * d[400], (d[200], d[400])
        else:
            assert torch.all(d[:400] == 0)


def _long_memory(model):
    """Every scan forgets slowly (A = 0.01, dt = softplus(0) = 0.69: a time constant of about 145 steps)."""
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, Mamba2):
                mod.A_log.fill_(math.log(1e-2))
                mod.dt_bias.fill_(0.0)
            if isinstance(mod, DiffMamba):
                mod.team_A_log.fill_(math.log(1e-2))
                mod.team_dt_bias.fill_(0.0)


def test_output_depends_on_inputs_200_samples_later_only_when_bidirectional():
    """Whole model: perturb one sample at t0 and compare the output change at t0-200.

    The bottleneck's mixers are silenced (out_proj zero; the block is then its residual) because its GroupNorm
    normalises each head over the whole window: through it any sample moves every output a little, in both
    directions (about 1e-3 of the largest change, also in the released checkpoint), which is not the reading
    direction under test. Measured (float64, 3 seeds): the default model's output before t0-30 is bit-identical
    (30 samples: the reach of its k=3 convolutions, poolings and linear upsamplings), the bidirectional one moves by
    4e-4 to 2e-3 of the largest change at t0-200, through the reverse scans of enc1, dec3 and dec2 alone.
    """
    x = None
    t0 = 640
    change = {}
    for bidirectional in (False, True):
        torch.manual_seed(0)
        m = SAMBA(small_cfg(bidirectional=bidirectional)).double().eval()
        _long_memory(m)
        with torch.no_grad():
            for mixer in (m.bottleneck, m.bottleneck_reverse):
                if mixer is not None:
                    mixer.out_proj.weight.zero_()
                    mixer.out_proj.bias.zero_()
            if x is None:
                x = torch.randn(1, 14, 1024, dtype=torch.float64)
            x2 = x.clone()
            x2[:, :, t0] += 1.0
            c = _coords(dtype=torch.float64)
            change[bidirectional] = (m(x2, c) - m(x, c)).abs().amax(1)[0]  # (T,)
    default, bidir = change[False], change[True]
    assert default[t0] > 0 and default[t0 - 20] > 0  # the local look-ahead exists ...
    assert torch.all(default[:t0 - 30] == 0), default[:t0 - 30].abs().max()  # ... and ends within 30 samples
    assert bidir[t0 - 200] > 1e-4 * bidir.max(), (bidir[t0 - 200], bidir.max())
    assert bidir[: t0 - 30].min() > 0  # every earlier output reads the perturbed sample


# ------------------------------------------------------------------------------------------ gradients, paths
def test_float64_gradcheck_tiny_bidirectional():
    torch.manual_seed(0)
    m = SAMBA(SAMBAConfig(**tiny_model_config(), bidirectional=True)).double().train()
    names = list(m.target_channels)[:3]
    coords = _coords(names, torch.float64)
    x = torch.randn(1, 3, 16, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: m(x, coords), (x,), eps=1e-6, atol=1e-6, rtol=1e-4)
    # and through twin parameters (their gradients come through the flips)
    params = dict(m.named_parameters())
    picked = {k: params[k].detach().clone().requires_grad_(True)
              for k in ("enc1.mamba_reverse.dt_bias", "bottleneck_reverse.lam", "dec2_mamba.mamba_reverse.A_log")}

    def f(*vals):
        return functional_call(m, {**params, **dict(zip(picked, vals))}, (x.detach(), coords))

    assert torch.autograd.gradcheck(f, tuple(picked.values()), eps=1e-6, atol=1e-6, rtol=1e-4)


def test_activation_checkpointing_keeps_the_twins_and_the_gradients():
    torch.manual_seed(0)
    ref = SAMBA(small_cfg(bidirectional=True)).double().train()
    ckpt = SAMBA(small_cfg(bidirectional=True, activation_checkpointing=True, checkpoint_piece_tokens=64)).double()
    ckpt.load_state_dict(ref.state_dict())
    ckpt.train()
    x = torch.randn(3, 14, 64, dtype=torch.float64)
    grads = []
    for m in (ref, ckpt):
        m.zero_grad()
        y = m(x, _coords(dtype=torch.float64))
        (y ** 2).mean().backward()
        grads.append({k: p.grad.clone() for k, p in m.named_parameters()})
    for k, g in grads[0].items():
        torch.testing.assert_close(grads[1][k], g, rtol=1e-9, atol=1e-12, msg=k)
    assert all(grads[0][k].abs().sum() > 0 for k in grads[0] if k.startswith(REVERSE_PREFIXES))


def test_time_chunked_inference_is_exact_for_the_reverse_scans(monkeypatch):
    """Chunks are cut inside each layer over its whole input; a twin's input is the whole flipped sequence, so its
    chunked scan carries the state from the end. Explicit and automatic chunking both match the one-call output,
    and the twins really ran in chunks."""
    import samba.nn.time_chunks as tc

    torch.manual_seed(0)
    m = SAMBA(small_cfg(bidirectional=True)).double().eval()
    x = torch.randn(1, 14, 512, dtype=torch.float64)
    c = _coords(dtype=torch.float64)
    chunked = []
    original = Mamba2._forward_chunked

    def spy(self, u, be, steps):
        chunked.append(self)
        return original(self, u, be, steps)

    monkeypatch.setattr(Mamba2, "_forward_chunked", spy)
    with torch.no_grad():
        y_ref, z_ref = m(x, c, time_chunk=0), m.encode(x, c, time_chunk=0)
        assert not chunked
        torch.testing.assert_close(m(x, c, time_chunk=96), y_ref, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(m.encode(x, c, time_chunk=32), z_ref, rtol=1e-10, atol=1e-12)
        assert {id(m.enc1.mamba_reverse), id(m.dec3_mamba.mamba_reverse), id(m.dec2_mamba.mamba_reverse)} <= set(
            map(id, chunked))
        chunked.clear()
        monkeypatch.setattr(tc, "CPU_AUTO_ELEMENTS", 1 << 14)  # automatic chunking for this small input
        torch.testing.assert_close(m(x, c), y_ref, rtol=1e-10, atol=1e-12)
        assert id(m.enc1.mamba_reverse) in set(map(id, chunked))


# ------------------------------------------------------------------------------------------ command line, resume
def test_pretrain_cli_flag_sets_the_model_override(monkeypatch, tmp_path):
    import samba.train.pretraining as pretraining
    from samba.train.cli import pretrain_main

    seen = []
    monkeypatch.delenv("SAMBA_DATA_MIRROR", raising=False)
    monkeypatch.setattr(pretraining, "pretrain", lambda cfg: seen.append(cfg) or tmp_path / "m")
    pretrain_main(["--out", str(tmp_path / "a"), "--bidirectional"])
    pretrain_main(["--out", str(tmp_path / "b")])
    assert seen[0].model == {"bidirectional": True}
    assert seen[1].model == {}  # the paper model; a run folder started without the flag resumes unchanged


def test_pretraining_a_bidirectional_model_saves_it(tmp_path):
    from test_train_pretrain import run

    path = run(tmp_path / "r", steps=2, ckpt_every=1, val_every=2,
               model={**tiny_model_config(), "bidirectional": True})
    model, _ = load_model(path)
    assert model.cfg.bidirectional is True and model.bottleneck_reverse is not None
    run(tmp_path / "r", steps=2, ckpt_every=1, val_every=2,
        model={**tiny_model_config(), "bidirectional": True})  # resumes: same model config


def test_resume_accepts_a_model_config_saved_without_the_field():
    from samba.train.pretraining import _same_model_config

    cfg = SAMBAConfig(**tiny_model_config())
    saved = cfg.to_dict()
    del saved["bidirectional"]
    assert _same_model_config(saved, cfg)
    assert not _same_model_config(saved, SAMBAConfig(**tiny_model_config(), bidirectional=True))
    assert not _same_model_config(None, cfg)
