"""CUDA graphs (samba.graphs) against the eager model; activation checkpointing against no checkpointing.

The graph tests need CUDA (skipped here on CPU, run on the device machine); the checkpointing test runs anywhere.
"""

from __future__ import annotations

import pytest
import torch

from samba import SAMBA, SAMBAConfig
from samba.montage import DEVICE_PRESETS, positions

CUDA = torch.cuda.is_available()
COORDS = torch.from_numpy(positions(list(DEVICE_PRESETS["10-20"])))


def _grads(model):
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("piece_tokens", [None, 96, 1])  # one piece; one sample per piece; tokens < length
def test_activation_checkpointing_gives_the_same_loss_and_gradients(piece_tokens):
    torch.manual_seed(0)
    ref = SAMBA(SAMBAConfig(backend="torch")).double()
    ck = SAMBA(SAMBAConfig(backend="torch", activation_checkpointing=True,
                           checkpoint_piece_tokens=piece_tokens)).double()
    ck.load_state_dict(ref.state_dict())
    x = torch.randn(2, 19, 96, dtype=torch.float64)
    c = COORDS.double()
    for m in (ref, ck):
        m.train()
        m.zero_grad()
        (m(x, c) - x).abs().mean().backward()
    g_ref, g_ck = _grads(ref), _grads(ck)
    assert set(g_ref) == set(g_ck) and len(g_ref) == len(list(ref.parameters()))
    for n in g_ref:
        torch.testing.assert_close(g_ck[n], g_ref[n], rtol=1e-9, atol=1e-12, msg=n)
    # eval / no-grad forward is unaffected by the flag
    ck.eval()
    ref.eval()
    with torch.no_grad():
        torch.testing.assert_close(ck(x, c), ref(x, c), rtol=0, atol=0)


gpu = pytest.mark.skipif(not CUDA, reason="needs CUDA")


@gpu
@pytest.mark.gpu
def test_graphed_inference_matches_eager_and_rejects_nan():
    from samba.graphs import GraphedInference

    torch.manual_seed(0)
    model = SAMBA(SAMBAConfig()).cuda().eval()
    coords = COORDS.cuda()
    x = torch.randn(2, 19, 1280, device="cuda")
    runner = GraphedInference(model, coords, batch=2, n_times=1280)
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
        eager = model(x, coords).float()
    y = runner(x).float().clone()
    err = ((y - eager).norm() / eager.norm()).item()
    print(f"GPU-TOL graphed vs eager inference (bf16): {err:.2e}")
    assert err < 1e-2
    y2 = runner(torch.randn(2, 19, 1280, device="cuda")).float()  # new data, same buffers: a new answer
    assert not torch.allclose(y2, y)
    bad = x.clone()
    bad[0, 3, 7] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        runner(bad)
    with pytest.raises(ValueError, match="shape"):
        runner(x[:1])


@gpu
@pytest.mark.gpu
def test_graphed_train_step_matches_eager_steps():
    from samba.graphs import GraphedTrainStep

    torch.manual_seed(0)
    eager = SAMBA(SAMBAConfig()).cuda()
    graphed = SAMBA(SAMBAConfig()).cuda()
    graphed.load_state_dict(eager.state_dict())
    coords = COORDS.cuda()

    def loss_fn(pred, x):
        return (pred - x).abs().mean()

    opt_e = torch.optim.AdamW(eager.parameters(), lr=1e-3, capturable=True)
    opt_g = torch.optim.AdamW(graphed.parameters(), lr=1e-3, capturable=True)
    step = GraphedTrainStep(graphed, opt_g, loss_fn, coords, batch=2, n_times=1024)
    xs = [torch.randn(2, 19, 1024, device="cuda") for _ in range(3)]
    for i, x in enumerate(xs):
        opt_e.zero_grad()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            pred = eager(x, coords)
        le = loss_fn(pred.float(), x)
        le.backward()
        opt_e.step()
        lg = step(x)
        print(f"GPU-TOL graphed vs eager train step {i}: loss {lg.item():.6f} vs {le.item():.6f}")
        assert abs(lg.item() - le.item()) < 2e-2 * abs(le.item())
    diffs = [((pg - pe).norm() / pe.norm().clamp_min(1e-12)).item()
             for pg, pe in zip(graphed.parameters(), eager.parameters())]
    print(f"GPU-TOL graphed vs eager weights after 3 steps: max rel {max(diffs):.2e}")
    assert max(diffs) < 5e-2
    bad = xs[0].clone()
    bad[1, 0, 0] = float("inf")
    before = [p.detach().clone() for p in graphed.parameters()]
    with pytest.raises(ValueError, match="NaN or Inf"):
        step(bad)
    assert all(torch.equal(a, p) for a, p in zip(before, graphed.parameters()))  # nothing reached the weights


@gpu
@pytest.mark.gpu
def test_graphed_train_step_needs_a_capturable_optimizer():
    from samba.graphs import GraphedTrainStep

    model = SAMBA(SAMBAConfig()).cuda()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    with pytest.raises(ValueError, match="capturable"):
        GraphedTrainStep(model, opt, lambda p, x: p.mean(), COORDS.cuda(), batch=1, n_times=64)


def test_graph_runners_refuse_a_cpu_model():
    from samba.graphs import GraphedInference

    with pytest.raises(RuntimeError, match="CUDA"):
        GraphedInference(SAMBA(SAMBAConfig()), COORDS, batch=1, n_times=64)


@gpu
@pytest.mark.gpu
def test_graphed_gradients_match_autograd_and_land_in_each_grad():
    from samba.graphs import GraphedGradients

    torch.manual_seed(0)
    model = SAMBA(SAMBAConfig()).cuda().train()
    coords = COORDS.cuda()
    params = list(model.parameters())

    def fn(x, keep):  # float32 throughout: the graph must give autograd's gradients to rounding
        pred = model(x, coords, keep)
        return torch.stack([(pred - x).abs().mean(), pred.detach().square().mean()])

    x0 = torch.randn(2, 19, 512, device="cuda")
    keep0 = torch.ones(2, 19, dtype=torch.bool, device="cuda")
    runner = GraphedGradients(fn, params, [x0, keep0])
    for trial in range(2):  # a second input: the replay reads the new one
        x = torch.randn(2, 19, 512, device="cuda")
        keep = torch.rand(19, device="cuda").argsort()[None, :].expand(2, 19) >= 5  # 14 of 19 electrodes
        out = runner(x, keep).clone()
        got = [p.grad.clone() for p in params]
        assert all(p.grad is g for p, g in zip(params, runner.grads))
        ref_loss = fn(x, keep)
        ref = torch.autograd.grad(ref_loss[0], params, allow_unused=True, materialize_grads=True)
        torch.testing.assert_close(out, ref_loss.detach(), rtol=1e-5, atol=1e-6)
        for n, (a, b) in enumerate(zip(got, ref)):
            torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-5, msg=f"parameter {n}")
    with pytest.raises(ValueError, match="captured for"):
        runner(torch.randn(2, 19, 256, device="cuda"), keep0)


@gpu
@pytest.mark.gpu
def test_graphed_pretraining_follows_the_eager_steps(tmp_path):
    """Augmented pretraining with CUDA graphs (full montage + channel mask) against eager steps (electrode subset):
    the same losses step by step, and the same direction of travel of the weights."""
    import csv

    from samba.checkpoint import load_checkpoint
    from samba.train.pretraining import PretrainConfig, pretrain, synthetic_corpus

    finals = {}
    for graphs in (False, True):
        out = tmp_path / f"graphs_{graphs}"
        cfg = PretrainConfig(out=str(out), profile="quick", steps=8, batch_size=4, ckpt_every=4, log_every=1,
                             val_every=4, val_batches=1, progress=False, device="cuda", augment=True,
                             cuda_graphs=graphs)
        pretrain(cfg, datasets=synthetic_corpus(n_montages=2, n_windows=24, n_times=256))
        with open(out / "metrics.csv") as f:
            losses = [float(r["loss"]) for r in csv.DictReader(f)]
        finals[graphs] = (losses, load_checkpoint(out / "samba_pretrained")["state_dict"])
    (l_eager, p_eager), (l_graph, p_graph) = finals[False], finals[True]
    assert len(l_eager) == len(l_graph) == 8
    torch.testing.assert_close(torch.tensor(l_graph), torch.tensor(l_eager), rtol=2e-2, atol=1e-3)
    # both runs start from the initialisation of seed 0 (PretrainConfig.seed); compare where the weights went
    torch.manual_seed(0)
    init = SAMBA(SAMBAConfig())
    d_eager = torch.cat([(p_eager[k].float().cpu() - v.float()).flatten() for k, v in init.state_dict().items()
                         if v.is_floating_point()])
    d_graph = torch.cat([(p_graph[k].float().cpu() - v.float()).flatten() for k, v in init.state_dict().items()
                         if v.is_floating_point()])
    assert d_eager.norm() > 0 and d_graph.norm() > 0
    cos = torch.nn.functional.cosine_similarity(d_eager, d_graph, dim=0)
    assert cos > 0.95, f"graphed and eager updates point in different directions (cosine {cos:.3f})"
