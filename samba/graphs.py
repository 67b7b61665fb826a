"""CUDA graphs for fixed-shape SAMBA steps: capture once, replay with one launch.

At small batches a SAMBA step is bound by the host, not the GPU: one forward issues a few hundred
kernels (convolutions, Triton scans, norms, element-wise ops), and Python plus the Triton launcher
spend more time issuing them than the GPU spends running them (measured: batch 4 train steps of
40-75 ms at every context length on an H100). A CUDA graph records the whole sequence
once and replays it with a single launch, so the step costs what the kernels cost.

Three runners, all for fixed shapes (a new shape needs a new runner, which takes a few warm-up steps):

    runner = GraphedInference(model, coords, batch=1, n_times=1280)   # bf16 autocast on by default
    y = runner(x)                         # x (1, C, 1280) on the GPU; y is the runner's output buffer

    step = GraphedTrainStep(model, optimizer, loss_fn, coords, batch=4, n_times=76800)
    loss = step(x)                        # forward, backward and optimizer.step() in one replay

    grads = GraphedGradients(fn, params, [x, visible, mask])   # fn(*inputs) -> (k,) tensor, [0] the loss
    out = grads(x, visible, mask)         # forward + gradients into each p.grad; the caller steps the optimiser

Rules that make capture possible (enforced or documented here):
- Nothing may synchronise with the host inside the captured region: `SAMBA` skips its NaN/Inf input
  check while a capture is under way, so `GraphedInference` and `GraphedTrainStep` check the input
  themselves: a flag computed on the device and read once per call (inference: after the replay;
  training: before it, so a bad batch never reaches the weights). `check_finite=False` drops even that
  read. `GraphedGradients` checks nothing per call: its caller validates the data once, where it loads it.
- Triton autotunes on its first calls: the runners warm up on a side stream before capturing.
- Autocast runs with its weight-cast cache disabled (cached casts would be freed after capture).
- `GraphedTrainStep` captures the optimizer step, so the optimizer must hold its state on the GPU and be
  "capturable" (`torch.optim.AdamW(..., capturable=True)`); it checks this and says so.
- Outputs live in the graph's memory pool and are overwritten by the next replay: `.clone()` what you keep.

The eager model stays the reference: tests compare a replay with the eager step on the same input.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

__all__ = ["GraphedGradients", "GraphedInference", "GraphedTrainStep", "graphs_available"]


def graphs_available() -> bool:
    """CUDA graphs need a CUDA device."""
    return torch.cuda.is_available()


def _autocast(dtype: torch.dtype | None):
    if dtype is None:
        return torch.autocast("cuda", enabled=False)
    return torch.autocast("cuda", dtype=dtype, cache_enabled=False)


def _check_device(model: nn.Module) -> torch.device:
    p = next(model.parameters())
    if p.device.type != "cuda":
        raise RuntimeError(f"CUDA graphs need the model on a CUDA device; its parameters are on {p.device}")
    return p.device


class _Runner:
    def __init__(self, model: nn.Module, coords, batch: int, n_times: int, channel_mask: Tensor | None,
                 check_finite: bool, warmup: int):
        self.device = _check_device(model)
        self.model = model
        coords = torch.as_tensor(coords, dtype=torch.float32, device=self.device)
        C = coords.shape[-2]
        self.coords = coords.clone()  # static: the graph reads this buffer
        self.channel_mask = None if channel_mask is None else channel_mask.to(self.device).clone()
        self.static_x = torch.zeros(batch, C, n_times, device=self.device)
        self.check_finite = check_finite
        self._finite = torch.ones((), dtype=torch.bool, device=self.device)
        if warmup < 1:
            raise ValueError("warmup must be >= 1 (Triton compiles and autotunes on the first calls)")
        self.warmup = warmup
        self.graph = torch.cuda.CUDAGraph()

    def _load(self, x: Tensor) -> None:
        if tuple(x.shape) != tuple(self.static_x.shape):
            raise ValueError(f"this graph was captured for input shape {tuple(self.static_x.shape)}; got "
                             f"{tuple(x.shape)} (build another runner for another shape)")
        self.static_x.copy_(x, non_blocking=True)
        if self.check_finite:
            torch.all(torch.isfinite(self.static_x), out=self._finite)  # stays on the device

    def _verify(self) -> None:
        if self.check_finite and not bool(self._finite):  # the one host read of a call
            raise ValueError("x contains NaN or Inf")


class GraphedInference(_Runner):
    """``model(x, coords)`` (eval mode, no grad) captured for one input shape; call it like the model.

    ``dtype``: autocast dtype (default bfloat16; None runs in the parameters' dtype).
    """

    def __init__(self, model: nn.Module, coords, batch: int, n_times: int, *, channel_mask: Tensor | None = None,
                 dtype: torch.dtype | None = torch.bfloat16, check_finite: bool = True, warmup: int = 3,
                 method: str = "forward"):
        super().__init__(model, coords, batch, n_times, channel_mask, check_finite, warmup)
        if method not in ("forward", "encode"):
            raise ValueError(f"method must be 'forward' or 'encode', got {method!r}")
        fn = model.forward if method == "forward" else model.encode
        was_training = model.training
        model.eval()
        try:
            stream = torch.cuda.Stream(self.device)
            stream.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(stream), torch.inference_mode(), _autocast(dtype):
                for _ in range(warmup):
                    fn(self.static_x, self.coords, self.channel_mask)
            torch.cuda.current_stream(self.device).wait_stream(stream)
            with torch.cuda.graph(self.graph), torch.inference_mode(), _autocast(dtype):
                self.static_out = fn(self.static_x, self.coords, self.channel_mask)
        finally:
            model.train(was_training)

    def __call__(self, x: Tensor) -> Tensor:
        """Copy ``x`` into the graph's input, replay; returns the output buffer (``.clone()`` to keep it)."""
        self._load(x)
        self.graph.replay()
        self._verify()
        return self.static_out


class GraphedTrainStep(_Runner):
    """One training step ``loss_fn(model(x, coords), x)`` + backward + ``optimizer.step()`` as one graph.

    ``loss_fn(pred, x) -> scalar``: sees the static input, so masks or targets it needs must be made
    from ``x`` inside it, or live in buffers the caller refills before each call (``static_x`` is the
    input buffer). Gradients are zeroed inside the graph. Returns the loss tensor (graph-owned).
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, loss_fn: Callable[[Tensor, Tensor], Tensor],
                 coords, batch: int, n_times: int, *, channel_mask: Tensor | None = None,
                 dtype: torch.dtype | None = torch.bfloat16, check_finite: bool = True, warmup: int = 3):
        super().__init__(model, coords, batch, n_times, channel_mask, check_finite, warmup)
        for group in optimizer.param_groups:
            if "capturable" in group and not group["capturable"]:
                raise ValueError("the optimizer must be created with capturable=True to run inside a CUDA graph "
                                 "(e.g. torch.optim.AdamW(model.parameters(), lr=..., capturable=True))")
        self.optimizer = optimizer
        model.train()

        def step():
            optimizer.zero_grad(set_to_none=False)
            with _autocast(dtype):
                pred = model(self.static_x, self.coords, self.channel_mask)
            loss = loss_fn(pred.float(), self.static_x)
            loss.backward()
            optimizer.step()
            return loss

        # Warm-up on a side stream (Triton autotune, optimizer state allocation), then capture.
        # The warm-up steps are real optimizer steps on zeros input; they move the weights a little, so
        # the runner keeps a copy and restores weights and optimizer state before capture.
        params = [p for g in optimizer.param_groups for p in g["params"]]
        saved = [p.detach().clone() for p in params]
        stream = torch.cuda.Stream(self.device)
        stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(stream):
            for _ in range(warmup):
                step()
        torch.cuda.current_stream(self.device).wait_stream(stream)
        with torch.no_grad():
            for p, s in zip(params, saved):
                p.copy_(s)
            for st in optimizer.state.values():  # fresh moments and step counts, kept as device tensors
                for k, v in st.items():
                    if torch.is_tensor(v):
                        v.zero_()
        with torch.cuda.graph(self.graph):
            self.static_loss = step()

    def __call__(self, x: Tensor) -> Tensor:
        """One training step on ``x`` (same shape as at capture); returns the loss (graph-owned tensor)."""
        self._load(x)
        self._verify()  # before the replay: a NaN batch must not reach the weights
        self.graph.replay()
        return self.static_loss


class GraphedGradients:
    """``fn(*inputs)`` and the gradient of its loss with respect to ``params``, as one graph for fixed input shapes.

    For loops whose optimiser step stays outside the graph, e.g. because a schedule changes its learning rate and
    momentum as Python floats every step (``OneCycleLR``), which a captured optimiser would not see. The graph ends
    at the gradients: it writes them into each parameter's ``.grad``, allocated here once before capture and never
    replaced, so the caller clips and steps eagerly (a fused optimiser is one or two kernels).

    ``fn(*inputs) -> Tensor (k,)``: element 0 is the loss to differentiate, the rest anything to log (returned
    detached). ``inputs`` are valid examples that fix the shapes and dtypes (the warm-up runs on them); each call
    copies its arguments into the graph's static copies of them. ``pool``: a memory pool shared with other graphs
    that are never replayed at once (``torch.cuda.graph_pool_handle()``). The warm-up changes no parameter and no
    optimizer state (it writes only the ``.grad`` buffers, which every call overwrites), so a runner can be built
    at any point of training. The inputs' values are not checked per call: validate them before (e.g. once,
    where they are loaded).
    """

    def __init__(self, fn: Callable[..., Tensor], params, inputs, *, pool=None, warmup: int = 2):
        params = [p for p in params if p.requires_grad]
        if not params or params[0].device.type != "cuda":
            raise RuntimeError("CUDA graphs need parameters on a CUDA device")
        if warmup < 1:
            raise ValueError("warmup must be >= 1 (Triton compiles and autotunes on the first calls)")
        # static: the graph reads these buffers; the warm-up runs on the examples (a mask of zeros is no input)
        self.inputs = [t.detach().clone() for t in inputs]
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        self.params, self.grads = params, [p.grad for p in params]

        def body() -> Tensor:
            out = fn(*self.inputs)  # (k,)
            grads = torch.autograd.grad(out[0], params, allow_unused=True, materialize_grads=True)
            for buf, g in zip(self.grads, grads):
                buf.copy_(g)
            return out.detach()

        device = params[0].device
        stream = torch.cuda.Stream(device)
        stream.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(stream):
            for _ in range(warmup):
                body()
        torch.cuda.current_stream(device).wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph, pool=pool):
            self.out = body()
        if any(p.grad is not g for p, g in zip(params, self.grads)):  # the optimiser must read our buffers
            raise RuntimeError("a parameter's .grad was replaced during capture; gradients would not reach it")

    def __call__(self, *inputs: Tensor) -> Tensor:
        """Copy ``inputs`` into the graph's buffers and replay; returns ``fn``'s output (graph-owned: copy it)."""
        if len(inputs) != len(self.inputs):
            raise ValueError(f"this graph takes {len(self.inputs)} inputs, got {len(inputs)}")
        if self.params[0].grad is not self.grads[0]:  # e.g. zero_grad(set_to_none=True) since the capture
            raise RuntimeError("the parameters' .grad tensors were replaced after capture; the graph's gradients "
                               "would no longer reach the optimizer (never set them to None while it is in use)")
        for buf, x in zip(self.inputs, inputs):
            if x.shape != buf.shape or x.dtype != buf.dtype:
                raise ValueError(f"this graph was captured for {tuple(buf.shape)} {buf.dtype}; got "
                                 f"{tuple(x.shape)} {x.dtype} (build another runner for another shape)")
            buf.copy_(x, non_blocking=True)
        self.graph.replay()
        return self.out
