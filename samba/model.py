"""The SAMBA U-shaped encoder - differential-Mamba bottleneck - decoder.

Data flow for one window ``x (B, C, T)`` recorded on electrodes at ``coords (C, 3)``::

    CDSE                 any montage -> fixed target montage       (B, O, T)      O = 94 by default
    temporal embedding   Conv1d k=1,3,7 in parallel, concat, 1x1   (B, 64, T)
    encoder 1            Linear + Mamba2, residual                 (B, 64, T)     skip s1
    pool/2, Conv k3                                                (B, 64, T/2)   skip s2
    pool/2, Conv k3                                                (B, 128, T/4)  skip s3
    pool/2, bottleneck   Linear, multi-head differential Mamba, Linear
                                                                   (B, 128, T/8)  = encode()
    up to T/4, concat [s3, up], Conv + Mamba2 block                (B, 128, T/4)
    up to T/2, concat [s2, up], Conv + Mamba2 block                (B, 64, T/2)
    up to T,   concat [s1, up], Conv                               (B, 64, T)
    1x1 conv to the target montage, inverse CDSE to the input electrodes
                                                                   (B, C, T)

Widths, kernel sizes and the (deliberately) activation-free convolutions follow the authors'
released model definition (``EEGMS``): the only non-linearities are inside the Mamba2 blocks and
the differential-Mamba bottleneck. The differential heads are 16 channels wide and each "team" is a
Mamba2 with ``headdim=16``. Defaults give about 1.06 M parameters, as the paper reports.

Two details the paper leaves open are decided here:

* **Reconstruction in the input montage.** The decoder ends on the 94 target channels; an
  :class:`~samba.nn.cdse.InverseCDSE` (the same coordinate MLP idea, softmax over target channels)
  maps them back to the recorded electrodes, so the loss compares against what was measured and
  no channel is invented.
* **Lengths not divisible by 8.** The input is right-padded by replication to a multiple of 8 and
  the output cropped back, so nothing is truncated; ``encode`` returns ``ceil(T / 8)`` steps (the
  API's ``T // 8`` when ``T`` is a multiple of 8).

**Fused spatial embedding (fast path).** CDSE, the branch convolutions and the 1x1 fuse are all
linear in the signal, so their product is one kernel-7 convolution from the *input* electrodes
straight to the 64 embedding channels; the 94-channel and 192-channel tensors at full sample rate
never have to exist. With ``cfg.fuse_spatial=True``
(default) the forward pass builds that product once per batch (per montage) and runs one conv;
likewise the final 1x1 conv and the inverse CDSE are fused into one channel map. The unfused path
(``fuse_spatial=False``) is the readable reference and the tests check that both agree.

**Channels-last U-Net (fast path).** Without autograd, on CUDA (`KernelConfig.channels_last_unet`), the
activations between the Mamba2 blocks stay ``(B, L, D)``, the layout the blocks use, and each conv, the fused
embedding's included, is one `samba.ops.unet_conv.conv_cl` kernel with its max-pooling or skip join folded into its
loads; with `KernelConfig.channels_last_unet_train` (the default) training without activation checkpointing takes
it too. Checkpointed training and the CPU take the channels-first data flow drawn above; the tests hold the two to
each other.

**Bidirectional variant (``cfg.bidirectional=True``; not the paper's model, off by default).** The paper's
Mamba2 layers scan forwards in time; only the k=3 convolutions, the max-poolings and the linear upsamplings see a
few samples ahead, so inside a long masked span the model sees little of the span's right edge. On held-out
recordings (``results/pretraining.json``, scored at commit 7fbb1b6) the released checkpoint's masked L1 is 0.8261;
a linear AR predictor gets 0.8208 from the samples before each span alone and 0.8033 from both edges. The numbers
are consistent with a model limited to the left edge without proving it; the option exists to test whether a
model that can read the right edge learns more.
Every Mamba2 scan gets a reverse twin of the same class (own weights, same kernels) that reads the time-reversed
sequence; its output, flipped back, is added before the residual::

    enc1, dec3, dec2   x + mamba(x) + flip(mamba_reverse(flip(x)))    x (B, L, D), L = T, T/4, T/2; flip along L
    bottleneck         x + mix(x) + flip(mix_reverse(flip(x)))        x (B, T/8, Db)

where ``mix`` is the whole differential mixer inside the residual (teams, lambda, per-head GroupNorm, out_proj).
The twins' parameters have new names only (``enc1.mamba_reverse.*``, ``dec3_mamba.mamba_reverse.*``,
``dec2_mamba.mamba_reverse.*``, ``bottleneck_reverse.*``): a default model's parameters, their names and its
outputs are the paper model's, and its checkpoints load unchanged. About 1.81 M parameters with the paper's widths.
Time-chunked inference (`samba.nn.time_chunks`) still applies: it chunks inside each layer, over that layer's whole
input, which for a twin is the whole flipped sequence, so the reverse scan carries its state from the last sample
back to the first and the output equals the one-call output up to rounding.

**Kernels.** Which kernels run (PyTorch references, our Triton kernels, mamba_ssm's) and how they are launched is a
`samba.ops.KernelConfig` given once, ``SAMBA(cfg, kernels=...)`` (default `KernelConfig.from_env()`), kept as
``model.kernels`` and handed to every Mamba2 layer. It is not part of `SAMBAConfig`: a checkpoint carries no kernel
choice and loads on any device.
"""
from __future__ import annotations

import numbers
from dataclasses import asdict, dataclass, field, fields
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint, set_checkpoint_early_stop

from .montage import check_positions
from .nn.cdse import CDSE, InverseCDSE, capturing
from .nn.diff_mamba import DiffMamba, DiffMambaLoop
from .nn.mamba2 import Mamba2, layer_kernels
from .nn.time_chunks import time_chunking
from .ops import KernelConfig, upsample_concat
from .ops.unet_conv import conv_cl, max_pool2x_cl

__all__ = ["SAMBAConfig", "SAMBA", "MambaBlock"]


@dataclass
class SAMBAConfig:
    """Hyper-parameters of SAMBA. Defaults are the paper's (about 1.06 M parameters)."""

    # spatial embedding
    cdse_hidden: int = 32
    target_channels: tuple[str, ...] | None = None  # None: samba.montage.TARGET_CHANNELS
    # temporal embedding
    embed_kernels: tuple[int, ...] = (1, 3, 7)
    embed_branch_dim: int = 64
    embed_dim: int = 64
    # encoder / decoder widths
    enc_dims: tuple[int, int] = (64, 128)  # after the 1st and 2nd strided stages
    dec_dims: tuple[int, int, int] = (128, 64, 64)  # at T/4, T/2, T
    conv_kernel: int = 3
    # bottleneck
    bottleneck_dim: int = 128
    diff_head_dim: int = 16
    diff_mamba_headdim: int = 16  # Mamba2 headdim inside each differential team (authors: 16)
    diff_mamba_impl: str = "grouped"  # "grouped" (one call for all heads) | "loop" (authors' per-head loop)
    # Chunk of the pure-PyTorch scan in the bottleneck (result-neutral). Its 16-wide SSM heads make the
    # (chunk x chunk) decay matrices, not the matmuls, the cost: 32 halves the CPU time of 64 there
    # (2 cores, B=8, T/8=160: 66 vs 131 ms).
    diff_torch_chunk_size: int = 32
    # Chunk of the Triton scan in the bottleneck (result-neutral). mamba_ssm's default 256 made its backward
    # hold three (B, L/256, 16 teams, 256, 256) float32 buffers, 608 MiB each at batch 4 x 10 min (the peak
    # of that step, measured on an H100), and spends 256 x 256 work per chunk on
    # 16-wide heads; 64 cuts both by 4x.
    diff_chunk_size: int = 64
    # Mamba2 (paper: d_state 16, d_conv 2, expand 8)
    d_state: int = 16
    d_conv: int = 2
    expand: int = 8
    headdim: int = 64
    chunk_size: int = 64
    # Not the paper's model (see the module docstring): every Mamba2 scan (enc1, the bottleneck, dec3, dec2) also
    # reads the sequence backwards in time, through a reverse twin of its mixer whose output is added before the
    # residual. Adds parameters under new names only (``*.mamba_reverse.*``, ``bottleneck_reverse.*``).
    bidirectional: bool = False
    # Deprecated, kept so existing calls work: a backend name here replaces the backend of the model's
    # KernelConfig when SAMBA is given none. Not saved (to_dict leaves it out; from_dict drops it), not compared.
    backend: str | None = field(default=None, compare=False)
    # speed / memory (result-neutral)
    fuse_spatial: bool = True
    # Recompute the Mamba2 blocks (enc1 with its projection, dec3, dec2, the bottleneck) in the backward
    # pass instead of storing their activations: what the 10-minute-context memory target needs
    # (batch 4 x 10 min on one H100/H200); costs one extra forward of those blocks per training step.
    activation_checkpointing: bool = False
    # With activation_checkpointing: cut each checkpointed block's batch into pieces of whole samples of about
    # this many time steps, each recomputed and freed on its own, so the backward holds one piece's Mamba2
    # internals instead of the batch's (None: one piece). 10-minute batch-4 train step, measured on one H200:
    # 2,543 MiB with one sample per piece (76,800) vs 2,900 MiB per block,
    # eager 103 vs 59 ms (more launches); as a CUDA graph, in the benchmark, 2,750 MiB and 53.6 ms.
    checkpoint_piece_tokens: int | None = None

    NOT_SAVED: ClassVar[tuple[str, ...]] = ("backend",)
    SIZES: ClassVar[tuple[str, ...]] = (
        "cdse_hidden", "embed_kernels", "embed_branch_dim", "embed_dim", "enc_dims", "dec_dims", "conv_kernel",
        "bottleneck_dim", "diff_head_dim", "diff_mamba_headdim", "diff_torch_chunk_size", "diff_chunk_size",
        "d_state", "d_conv", "expand", "headdim", "chunk_size", "checkpoint_piece_tokens")

    def __post_init__(self):
        # Every width, kernel and chunk is a whole number >= 1: a 0 or a string (a hand-edited config.json) would
        # otherwise fail deep inside a layer, or only at the first forward pass (a chunk of 0 divides by zero).
        for name in self.SIZES:
            value = getattr(self, name)
            if name == "checkpoint_piece_tokens" and value is None:
                continue
            items = value if isinstance(value, (tuple, list)) else (value,)
            if not items or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 1
                                    for v in items):
                raise ValueError(f"SAMBAConfig.{name} must be whole number(s) >= 1, got {value!r}")
            ints = tuple(int(v) for v in items)  # numpy integers become ints (JSON, hashing, comparisons)
            setattr(self, name, ints if isinstance(value, (tuple, list)) else ints[0])

    def to_dict(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if k not in self.NOT_SAVED}
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = list(v)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "SAMBAConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown SAMBAConfig fields {sorted(unknown)}")
        # Older checkpoints carry "backend": a kernel choice, not a property of the weights.
        kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items() if k not in cls.NOT_SAVED}
        return cls(**kw)

    @property
    def downsample(self) -> int:
        return 8


class MambaBlock(nn.Module):
    """Residual Mamba2 block on ``(B, L, D)``: ``x + Mamba2(x)`` (authors' ``SingleMambaModel``).

    With ``cfg.bidirectional``: ``x + mamba(x) + flip(mamba_reverse(flip(x)))``, flip along time; ``mamba_reverse``
    is a second `Mamba2` of the same shape (own weights, same kernels), so step t also reads every step after t.
    """

    def __init__(self, dim: int, cfg: SAMBAConfig, kernels: KernelConfig | None = None):
        super().__init__()

        def mixer():
            return Mamba2(dim, d_state=cfg.d_state, d_conv=cfg.d_conv, expand=cfg.expand,
                          headdim=cfg.headdim, chunk_size=cfg.chunk_size, kernels=kernels)

        self.mamba = mixer()
        self.mamba_reverse = mixer() if cfg.bidirectional else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, D)
        y = self.mamba(x)  # (B, L, D)
        if self.mamba_reverse is not None:
            y = y + self.mamba_reverse(x.flip(1)).flip(1)  # (B, L, D): the backward scan, back in forward time
        if y.dtype == x.dtype and not (torch.is_grad_enabled() and (x.requires_grad or y.requires_grad)):
            return y.add_(x)  # inference: into the layer's fresh output, one full-rate buffer fewer for long inputs
        return x + y


def conv(c_in: int, c_out: int, k: int) -> nn.Conv1d:
    """'same'-padded Conv1d on ``(B, C, L)``."""
    return nn.Conv1d(c_in, c_out, k, padding=k // 2)


class SAMBA(nn.Module):
    """SAMBA: montage-agnostic EEG encoder-decoder (see the module docstring for the data flow)."""

    def __init__(self, cfg: SAMBAConfig | None = None, kernels: KernelConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg if cfg is not None else SAMBAConfig()
        # chosen once; every Mamba2 layer gets this object (cfg.backend: the deprecated way to name a backend)
        self.kernels = kernels if kernels is not None else layer_kernels(None, cfg.backend)
        from . import montage

        names = tuple(cfg.target_channels) if cfg.target_channels else tuple(montage.TARGET_CHANNELS)
        target = torch.as_tensor(montage.positions(list(names)), dtype=torch.float32)
        self.target_channels = names
        O = len(names)

        self.cdse = CDSE(target, hidden=cfg.cdse_hidden)
        self.branches = nn.ModuleList(
            nn.Conv1d(O, cfg.embed_branch_dim, k, padding=k // 2) for k in cfg.embed_kernels)
        if any(k % 2 == 0 for k in cfg.embed_kernels):
            raise ValueError("embed_kernels must be odd so 'same' padding keeps the length")
        self.embed_fuse = nn.Conv1d(cfg.embed_branch_dim * len(cfg.embed_kernels), cfg.embed_dim, 1)

        D0, (D1, D2), Db, k = cfg.embed_dim, cfg.enc_dims, cfg.bottleneck_dim, cfg.conv_kernel
        E3, E2, E1 = cfg.dec_dims
        self.enc1_proj = nn.Linear(D0, D0)
        self.enc1 = MambaBlock(D0, cfg, self.kernels)
        self.enc2 = conv(D0, D1, k)
        self.enc3 = conv(D1, D2, k)
        self.bottleneck_in = nn.Linear(D2, Db)
        if cfg.diff_mamba_impl not in ("grouped", "loop"):
            raise ValueError(f"diff_mamba_impl must be 'grouped' or 'loop', got {cfg.diff_mamba_impl!r}")
        Diff = DiffMamba if cfg.diff_mamba_impl == "grouped" else DiffMambaLoop
        self.bottleneck = Diff(Db, head_dim=cfg.diff_head_dim, d_state=cfg.d_state, d_conv=cfg.d_conv,
                               expand=cfg.expand, headdim=cfg.diff_mamba_headdim, kernels=self.kernels,
                               chunk_size=cfg.diff_chunk_size, torch_chunk_size=cfg.diff_torch_chunk_size)
        # Bidirectional: the reverse twin is the whole differential mixer (teams, lambda, per-head GroupNorm and its
        # out_proj), without the residual, so the block is x + mix(x) + flip(mix_reverse(flip(x))): the same rule as
        # MambaBlock, whose twin is a whole Mamba2 (its own gated norm and out_proj). Each direction keeps its own
        # differential pair and head norm (the noise cancelling happens within one reading direction, as in the
        # paper's head), every twin parameter is used (DDP needs no find_unused_parameters), and being the same
        # class it runs on whatever kernels the forward mixer runs on.
        self.bottleneck_reverse = Diff(Db, head_dim=cfg.diff_head_dim, d_state=cfg.d_state, d_conv=cfg.d_conv,
                                       expand=cfg.expand, headdim=cfg.diff_mamba_headdim, kernels=self.kernels,
                                       chunk_size=cfg.diff_chunk_size, torch_chunk_size=cfg.diff_torch_chunk_size,
                                       residual=False) if cfg.bidirectional else None
        self.bottleneck_out = nn.Linear(Db, Db)
        self.dec3 = conv(D2 + Db, E3, k)
        self.dec3_mamba = MambaBlock(E3, cfg, self.kernels)
        self.dec2 = conv(D1 + E3, E2, k)
        self.dec2_mamba = MambaBlock(E2, cfg, self.kernels)
        self.dec1 = conv(D0 + E2, E1, k)
        self.head = nn.Conv1d(E1, O, 1)
        self.inverse_cdse = InverseCDSE(target, hidden=cfg.cdse_hidden)

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _check_inputs(x: torch.Tensor, coords: torch.Tensor, channel_mask):
        if x.dim() != 3:
            raise ValueError(f"x must be (B, C, T); got shape {tuple(x.shape)}")
        B, C, T = x.shape
        if T < 8:
            raise ValueError(f"SAMBA needs at least 8 time samples (three /2 poolings); got T={T}")
        if C < 1:
            raise ValueError("x has no channels")
        coords = check_positions(coords, channel_mask, device=x.device, check_values=not capturing(x))
        if coords.dim() not in (2, 3) or coords.shape[-1] != 3 or coords.shape[-2] != C:
            raise ValueError(f"coords must be (C, 3) or (B, C, 3) with C={C}; got {tuple(coords.shape)}")
        if coords.dim() == 3 and coords.shape[0] not in (1, B):
            raise ValueError(f"coords batch {coords.shape[0]} does not match x batch {B}")
        # The one host sync of the forward pass. Skipped while a CUDA graph is being captured (where a sync
        # is illegal): samba.graphs.GraphedInference / GraphedTrainStep check their inputs themselves.
        if not capturing(x) and not torch.isfinite(x).all():
            raise ValueError("x contains NaN or Inf")
        # (1, C): one mask for the whole batch (one montage with electrodes left out), one set of CDSE weights
        if channel_mask is not None and tuple(channel_mask.shape) not in ((B, C), (1, C)):
            raise ValueError(f"channel_mask must be (B, C)=({B}, {C}) or (1, {C}); got {tuple(channel_mask.shape)}")
        return coords

    def spatial_weights(self, coords, channel_mask=None) -> torch.Tensor:
        """CDSE weights ``(O, C)`` (or ``(B, O, C)`` for batched coords); rows sum to 1."""
        coords = check_positions(coords, channel_mask, device=self.cdse.target_positions.device)
        w = self.cdse.weights(coords, channel_mask)  # (B, O, C)
        return w[0] if coords.dim() == 2 and w.shape[0] == 1 else w

    def _embed(self, x, coords, channel_mask):
        """CDSE + multi-branch temporal embedding: (B, C, T) -> (B, embed_dim, T)."""
        if not self.cfg.fuse_spatial:  # the readable reference
            y = self.cdse(x, coords, channel_mask)  # (B, O, T)
            return self.embed_fuse(torch.cat([b(y) for b in self.branches], dim=1))  # (B, embed_dim, T)
        return self._fused_embed(x, coords, channel_mask)

    def _embed_cl(self, x, coords, channel_mask):
        """`_embed` as ``(B, T, embed_dim)`` (contiguous when one montage serves the batch: one `conv_cl` reading
        x as stored), for the channels-last inference path."""
        if not self.cfg.fuse_spatial:
            return self._embed(x, coords, channel_mask).transpose(1, 2)
        fused, bias = self._fused_embed_weights(coords, channel_mask)
        if fused.shape[0] != 1:  # one montage per sample: the grouped conv, transposed (a view)
            return self._fused_conv(x, fused, bias).transpose(1, 2)
        return conv_cl(x.transpose(1, 2), fused[0], bias, kernels=self.kernels)  # (B, T, embed_dim)

    def _fused_embed_weights(self, coords, channel_mask):
        """The fused embedding's conv: weight (Bw, embed_dim, C, kmax) and bias (embed_dim,)."""
        # W: (Bw, O, C) with Bw = 1 (one montage for the batch) or B (one per sample)
        W = self.cdse.weights(coords, channel_mask)
        kmax = max(self.cfg.embed_kernels)
        # Branch kernels zero-padded (centred) to kmax and stacked: (n_branch*bd, O, kmax)
        K = torch.cat([F.pad(b.weight, ((kmax - b.kernel_size[0]) // 2,) * 2) for b in self.branches])
        Wf = self.embed_fuse.weight[:, :, 0]  # (embed_dim, n_branch*bd)
        K = torch.einsum("dj,jok->dok", Wf, K)  # (embed_dim, O, kmax): montage-independent
        bias = self.embed_fuse.bias + Wf @ torch.cat([b.bias for b in self.branches])  # (embed_dim,)
        return torch.einsum("dok,boc->bdck", K, W.to(K.dtype)), bias  # (Bw, embed_dim, C, kmax)

    def _fused_embed(self, x, coords, channel_mask):
        """The same linear map as one conv from the C input electrodes straight to embed_dim."""
        return self._fused_conv(x, *self._fused_embed_weights(coords, channel_mask))

    @staticmethod
    def _fused_conv(x, fused, bias):
        """x (B, C, T) through the fused embedding's conv (Bw, embed_dim, C, kmax) -> (B, embed_dim, T)."""
        kmax = fused.shape[-1]
        B, C, T = x.shape
        if fused.shape[0] == 1:
            return F.conv1d(x, fused[0], bias, padding=kmax // 2)
        # one montage per sample: grouped conv with the batch as groups
        out = F.conv1d(x.reshape(1, B * C, T), fused.reshape(-1, C, kmax), bias.repeat(B),
                       padding=kmax // 2, groups=B)
        return out.view(B, -1, T)

    def _to_electrodes(self, h, coords, channel_mask):
        """Final 1x1 conv + inverse CDSE: (B, E1, T), any strides (the channels-last path's: a view) -> (B, C, T)."""
        if not self.cfg.fuse_spatial:
            return self.inverse_cdse(self.head(h), coords, channel_mask)
        V = self.inverse_cdse.weights(coords, channel_mask)  # (Bw, C, O)
        Wh = self.head.weight[:, :, 0]  # (O, E1)
        M = torch.einsum("bco,od->bcd", V.to(Wh.dtype), Wh)  # (Bw, C, E1)
        b = torch.einsum("bco,o->bc", V.to(Wh.dtype), self.head.bias)  # (Bw, C)
        out = torch.einsum("bcd,bdt->bct", M.expand(h.shape[0], -1, -1), h) + b[..., None].expand(h.shape[0], -1, -1)
        if channel_mask is not None:
            out = out * channel_mask[:, :, None]
        return out

    def _seq(self, f, h):
        """Apply a (B, L, D) module to a (B, D, L) tensor (recomputed in backward with activation_checkpointing)."""
        return self._ckpt(f, h.transpose(1, 2)).transpose(1, 2)

    def _ckpt(self, f, h):
        """``f(h)``; with activation checkpointing (training only), recomputed in backward instead of stored.

        One checkpoint per block and batch, or per piece of ``cfg.checkpoint_piece_tokens`` time steps (whole
        samples; every block is per-sample, so the result is the same).
        """
        if not (self.cfg.activation_checkpointing and self.training and torch.is_grad_enabled()):
            return f(h)
        tokens = self.cfg.checkpoint_piece_tokens
        per_piece = h.shape[0] if not tokens else max(1, int(tokens) // max(1, h.shape[1]))  # whole samples
        # No early stop: by default the recompute is cut short by an exception raised when the last needed
        # tensor is saved; raised inside a custom autograd Function (the fused Mamba2 block, mamba_ssm's
        # scan), it surfaced on an H100 as "SystemError: ... apply ... returned NULL without setting an
        # exception" on the first checkpointed step. Recomputing to the end costs one residual add.
        with set_checkpoint_early_stop(False):
            pieces = [checkpoint(f, p, use_reentrant=False) for p in h.split(per_piece)]
        return pieces[0] if len(pieces) == 1 else torch.cat(pieces)

    # ------------------------------------------------------------------ forward
    def _bottleneck(self, z):
        """The differential-Mamba block on ``(B, L, Db)`` (with ``cfg.bidirectional``, plus its reverse twin)."""
        y = self.bottleneck(z)  # (B, L, Db), residual inside
        if self.bottleneck_reverse is not None:
            y = y + self.bottleneck_reverse(z.flip(1)).flip(1)  # (B, L, Db), no residual in the twin
        return y

    def _channels_last(self, x) -> bool:
        """Whether this forward runs the U-Net on channels-last activations (`KernelConfig.channels_last_unet`):
        on CUDA with a backend other than torch, float32 or lower, under inference (no autograd) or with
        `KernelConfig.channels_last_unet_train` in training without activation checkpointing (the checkpointed
        long-context steps keep the channels-first path, whose peak memory the whole-night benchmark measured)."""
        k = self.kernels
        checkpointed = self.cfg.activation_checkpointing and self.training
        return (k.channels_last_unet and k.backend != "torch" and x.is_cuda and x.dtype != torch.float64
                and (not torch.is_grad_enabled() or (k.channels_last_unet_train and not checkpointed)))

    def _encoder(self, x, coords, channel_mask):
        """Encoder and bottleneck. Returns z (B, Db, T/8), the skips, T and whether the channels-last path ran
        (the decoder follows it). Channels-first by default: the activations between stages are (B, D, L) and
        each Mamba2 block reads a transposed view. On the channels-last path (`_channels_last`) they are (B, L, D)
        and each conv is one `conv_cl` with its pooling folded into its loads."""
        T = x.shape[-1]
        pad = (-T) % 8
        if pad:  # replicate-pad so three /2 poolings are exact; output is cropped back to T
            x = F.pad(x, (0, pad), mode="replicate")
        cl = self._channels_last(x)
        # (the embedding is not kept: at 8 h it is 0.9 GB that enc1 no longer needs once projected)
        if cl:
            if torch.is_grad_enabled():  # channels_last_unet_train
                s1 = self._ckpt(lambda h: self.enc1(self.enc1_proj(h)), self._embed_cl(x, coords, channel_mask))
            else:  # the embedding freed once projected
                s1 = self.enc1(self.enc1_proj(self._embed_cl(x, coords, channel_mask)))  # (B, T, D0)
            s2 = self._conv_cl(self.enc2, s1, "pool")                    # (B, T/2, D1)
            s3 = self._conv_cl(self.enc3, s2, "pool")                    # (B, T/4, D2)
            z = max_pool2x_cl(s3)                                        # (B, T/8, D2)
        else:
            s1 = self._seq(lambda h: self.enc1(self.enc1_proj(h)), self._embed(x, coords, channel_mask))  # (B, D0, T)
            s2 = self.enc2(F.max_pool1d(s1, 2))                          # (B, D1, T/2)
            s3 = self.enc3(F.max_pool1d(s2, 2))                          # (B, D2, T/4)
            z = F.max_pool1d(s3, 2).transpose(1, 2)                      # (B, T/8, D2)
        z = self.bottleneck_out(self._ckpt(self._bottleneck, self.bottleneck_in(z)))  # (B, T/8, Db)
        return z.transpose(1, 2), (s1, s2, s3), T, cl                   # (B, Db, T/8)

    def _conv_cl(self, conv: nn.Conv1d, a, mode: str, up=None):
        """``conv`` on the channels-last path: (B, L, C) in and out, `samba.ops.unet_conv.conv_cl`."""
        return conv_cl(a, conv.weight, conv.bias, mode, up, kernels=self.kernels)

    def encode(self, x: torch.Tensor, coords, channel_mask=None, *, time_chunk: int | None = None) -> torch.Tensor:
        """Bottleneck features ``(B, bottleneck_dim, ceil(T / 8))``.

        ``time_chunk``: Mamba2 layers run in time chunks of this many steps (`samba.nn.time_chunks`; 0: never;
        None: automatically for long inputs under inference). Same output up to float rounding, bounded memory.
        """
        coords = self._check_inputs(x, coords, channel_mask)
        with time_chunking(time_chunk):
            return self._encoder(x, coords, channel_mask)[0]

    def forward(self, x: torch.Tensor, coords, channel_mask=None, *, time_chunk: int | None = None) -> torch.Tensor:
        """Reconstruct ``x (B, C, T)`` recorded at ``coords (C, 3) | (B, C, 3)`` -> ``(B, C, T)``. ``time_chunk``:
        as in `encode`."""
        coords = self._check_inputs(x, coords, channel_mask)
        with time_chunking(time_chunk):
            return self._reconstruct(x, coords, channel_mask)

    def _reconstruct(self, x, coords, channel_mask):
        z, skips, T, cl = self._encoder(x, coords, channel_mask)
        s1, s2, s3 = skips
        del skips  # each skip is freed right after its decoder stage (at 8 h, s1 and s2 are 0.5 GB each in bf16)
        if cl:  # (B, L, D) throughout; each skip join is folded into its conv's loads
            h = self._ckpt(self.dec3_mamba, self._conv_cl(self.dec3, s3, "upcat", z.transpose(1, 2)))  # (B, T/4, E3)
            del z, s3
            h = self._ckpt(self.dec2_mamba, self._conv_cl(self.dec2, s2, "upcat", h))  # (B, T/2, E2)
            del s2
            h = self._conv_cl(self.dec1, s1, "upcat", h)                   # (B, T, E1)
            del s1
            return self._to_electrodes(h.transpose(1, 2), coords, channel_mask)[..., :T]  # (B, C, T)

        def up(h, skip):  # linear upsampling to the skip's length, then [skip, up] channel concat
            return upsample_concat(skip, h, kernels=self.kernels)

        h = self._seq(self.dec3_mamba, self.dec3(up(z, s3)))  # (B, E3, T/4)
        del z, s3
        h = self._seq(self.dec2_mamba, self.dec2(up(h, s2)))  # (B, E2, T/2)
        del s2
        h = self.dec1(up(h, s1))                              # (B, E1, T)
        del s1
        out = self._to_electrodes(h, coords, channel_mask)    # (B, C, T)
        return out[..., :T]

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
