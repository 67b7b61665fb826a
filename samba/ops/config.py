"""`KernelConfig`: every setting that changes which kernel runs, or how it is launched, in one typed object.

A model chooses it once (`SAMBA(cfg, kernels=KernelConfig(...))`) and hands it to its Mamba2 layers at
construction; nothing reads the environment per call. It is not part of `SAMBAConfig`, so a checkpoint carries no
kernel choice and moves freely between CPU and GPU. The defaults are the fastest settings measured on H100/H200
(their measurements are next to each kernel in `samba.ops.triton`).

One environment variable remains, read only by `KernelConfig.from_env()` (what a model uses when given no
`kernels`): ``SAMBA_KERNELS``, either a backend name (``torch``, ``triton``, ``mamba_ssm``, ``auto``) or
comma-separated ``field=value`` pairs, e.g. ``SAMBA_KERNELS="backend=triton,scan_backward=walk"`` or
``SAMBA_KERNELS="autotune=single"`` (what the test suite sets).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields, replace

from ..errors import UsageError

__all__ = ["KernelConfig", "BACKENDS", "SCAN_BACKWARDS", "ENV_VAR"]

ENV_VAR = "SAMBA_KERNELS"
BACKENDS = ("auto", "torch", "triton", "mamba_ssm")
SCAN_BACKWARDS = ("walk", "split", "group")
AUTOTUNE = ("full", "single")
# The scan's heads of at most this width count as narrow (the bottleneck's 16-wide differential heads): they take
# their own backward (`scan_backward_narrow`).
NARROW_HEADDIM = 16
# Each scan backward's launch when none is set: the launch its CUDA tests passed at (see samba.ops.triton.ssd).
SCAN_BACKWARD_LAUNCH_DEFAULT = {"split": (4, 3), "walk": (8, 3), "group": (4, 3)}

Launch = tuple  # (num_warps, num_stages) or (num_warps, num_stages, maxnreg)


def _ints(value, name: str) -> tuple[int, ...]:
    """A tuple of ints from a tuple/list or a "a,b[,c]" string (the form the environment variable takes)."""
    try:
        if isinstance(value, str):
            return tuple(int(v) for v in value.split(","))
        return tuple(int(v) for v in value)
    except (TypeError, ValueError):
        raise UsageError(f"KernelConfig.{name} must be comma-separated whole numbers, got {value!r}") from None


def _launch(value, name: str) -> Launch | None:
    if value is None:
        return None
    v = _ints(value, name)
    if len(v) not in (2, 3) or v[0] not in (1, 2, 4, 8, 16) or not 1 <= v[1] <= 8 \
            or (len(v) == 3 and not 32 <= v[2] <= 255):
        raise UsageError(f'KernelConfig.{name} must be "warps,stages[,maxnreg]" (warps a power of two <= 16, '
                         f'stages 1-8, maxnreg 32-255; e.g. "4,3"), got {value!r}')
    return v


def _tiles(value, name: str, names: tuple[str, ...], lo: int, hi: int) -> tuple[int, ...]:
    v = _ints(value, name)
    if len(v) != len(names) or any(x < lo or x > hi or x & (x - 1) for x in v):
        raise UsageError(f"KernelConfig.{name} must be {len(names)} comma-separated powers of two in [{lo}, {hi}] "
                         f"({', '.join(names)}), got {value!r}")
    return v


def _choice(value, name: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise UsageError(f"KernelConfig.{name} must be one of {', '.join(allowed)}; got {value!r}")
    return value


@dataclass(frozen=True)
class KernelConfig:
    """Which kernels run SAMBA's fused operations, and how ours are launched.

    backend: "auto" (our Triton kernels on CUDA when Triton imports, else torch), "torch" (the plain-PyTorch
        reference, any device), "triton" (our kernels; CUDA) or "mamba_ssm" (the upstream package's kernels; CUDA).
    On the triton backend, each piece can go back to mamba_ssm's kernel (needs mamba_ssm) or, for the conv and
    the skip join, to PyTorch:
        fused_block: conv -> scan -> gated norm -> out_proj of a Mamba2 layer as one autograd Function.
        fused_bottleneck: the same Function for the differential Mamba's teams (the bottleneck), fed by its dense
        projections (needs fused_block).
        triton_scan: our SSD scan (else mamba_ssm's); triton_norm: our gated-RMSNorm backward in the fused block
        and our whole norm layer by layer (else mamba_ssm's); triton_conv: our causal conv (else PyTorch);
        triton_upsample: our decoder skip join (else PyTorch; it applies on CUDA whatever the backend).
        channels_last_unet: inference (no autograd) keeps the U-Net's activations (B, L, C) between its Mamba2
        blocks, each conv one kernel with its pooling or skip join folded in (`samba.ops.unet_conv`);
        channels_last_unet_train: training too (the kernel's backward; measured faster than the channels-first
        train step on an H100, docs/performance.md).
    Launches are (num_warps, num_stages[, maxnreg]); tiles are powers of two:
        scan_forward_launch, and scan_forward_narrow_launch for heads of headdim <= 16 (None: as the others);
        scan_backward ("walk" | "split" | "group") and scan_backward_launch (None: the
        mode's default); scan_backward_narrow / _narrow_launch for heads of headdim <= 16 (None: as the others);
        scan_chunk: time steps per chunk of our scan (a power of two, 16-256; the result does not depend on it);
        scan_chunk_narrow: the same for heads of headdim <= 16 (None: scan_chunk);
        scan_min_programs: fewer (sample, head) programs than this take mamba_ssm's scan (0: ours always);
        scan_segment_programs: an inference scan on ours (no autograd) with fewer (sample, head) programs than this
        runs its sequence as segments side by side to have about this many (`samba.ops.segments`; 0: off);
        scan_segment_min_steps: no segment shorter than this many time steps (None: `segments.MIN_SEGMENT_STEPS`);
        norm_backward_tiles (values per tile, row blocks per program) and norm_backward_launch;
        conv_backward_tiles (time steps, channels per tile), conv_backward_iters (consecutive tiles per program, which
        writes one partial sum of the weight gradient for all of them) and conv_backward_launch;
    autotune: "full", or "single" to give mamba_ssm's autotuned kernels one config each (the smallest): a fresh
        process compiles in seconds instead of minutes; for tests, never for timings.
    """

    backend: str = "auto"
    fused_block: bool = True
    fused_bottleneck: bool = True
    triton_scan: bool = True
    triton_norm: bool = True
    triton_conv: bool = True
    triton_upsample: bool = True
    channels_last_unet: bool = True
    channels_last_unet_train: bool = True
    scan_forward_launch: Launch = (4, 3)
    scan_forward_narrow_launch: Launch | None = None
    scan_backward: str = "split"
    scan_backward_launch: Launch | None = None
    scan_backward_narrow: str | None = "group"
    scan_backward_narrow_launch: Launch | None = None
    scan_chunk: int = 64
    scan_chunk_narrow: int | None = None
    scan_min_programs: int = 0
    scan_segment_programs: int = 0
    scan_segment_min_steps: int | None = None
    norm_backward_tiles: tuple[int, int] = (2048, 8)
    norm_backward_launch: Launch = (4, 3)
    conv_backward_tiles: tuple[int, int] = (64, 64)
    conv_backward_iters: int = 1
    conv_backward_launch: Launch = (4, 3)
    autotune: str = "full"

    def __post_init__(self):
        # Normalise (strings from the environment, lists from JSON) and check every field once, here.
        put = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731  (frozen dataclass)
        _choice(self.backend, "backend", BACKENDS)
        _choice(self.scan_backward, "scan_backward", SCAN_BACKWARDS)
        if self.scan_backward_narrow is not None:
            _choice(self.scan_backward_narrow, "scan_backward_narrow", SCAN_BACKWARDS)
        _choice(self.autotune, "autotune", AUTOTUNE)
        for name in ("fused_block", "fused_bottleneck", "triton_scan", "triton_norm", "triton_conv",
                     "triton_upsample", "channels_last_unet", "channels_last_unet_train"):
            put(name, _bool(getattr(self, name), name))
        for name in ("scan_forward_launch", "scan_forward_narrow_launch", "scan_backward_launch",
                     "scan_backward_narrow_launch",
                     "norm_backward_launch", "conv_backward_launch"):
            put(name, _launch(getattr(self, name), name))
        if self.scan_forward_launch is None or self.norm_backward_launch is None or self.conv_backward_launch is None:
            raise UsageError("KernelConfig: only the scan's backward launches may be None (their mode's default)")
        put("norm_backward_tiles", _tiles(self.norm_backward_tiles, "norm_backward_tiles", ("tile", "iters"), 1, 65536))
        put("conv_backward_tiles", _tiles(self.conv_backward_tiles, "conv_backward_tiles", ("BL", "BC"), 16, 1024))
        for name in ("scan_chunk", "scan_chunk_narrow"):
            value = getattr(self, name)
            if value is not None:  # one value: "32" from the environment, 32 from code
                put(name, _tiles(value if isinstance(value, str) else (value,), name, ("steps",), 16, 256)[0])
        for name, lo in (("conv_backward_iters", 1), ("scan_min_programs", 0), ("scan_segment_programs", 0),
                         ("scan_segment_min_steps", 1)):
            if getattr(self, name) is None and name == "scan_segment_min_steps":
                continue  # None: the module's default
            try:
                put(name, int(str(getattr(self, name))))
            except ValueError:
                raise UsageError(f"KernelConfig.{name} must be a whole number, got {getattr(self, name)!r}") from None
            if getattr(self, name) < lo:
                raise UsageError(f"KernelConfig.{name} must be >= {lo}, got {getattr(self, name)}")

    # ------------------------------------------------------------------ what the kernels ask
    def scan_backward_for(self, headdim: int | None) -> str:
        """The scan backward for heads of this width: narrow heads (<= 16) take `scan_backward_narrow`."""
        if headdim is not None and headdim <= NARROW_HEADDIM and self.scan_backward_narrow is not None:
            return self.scan_backward_narrow
        return self.scan_backward

    def scan_chunk_for(self, headdim: int | None) -> int:
        """Time steps per chunk of our scan for heads of this width (narrow heads: `scan_chunk_narrow` if set)."""
        if headdim is not None and headdim <= NARROW_HEADDIM and self.scan_chunk_narrow is not None:
            return self.scan_chunk_narrow
        return self.scan_chunk

    def scan_forward_launch_for(self, headdim: int | None) -> dict:
        """Launch options of the scan's forward kernel for heads of this width."""
        if headdim is not None and headdim <= NARROW_HEADDIM and self.scan_forward_narrow_launch is not None:
            return launch_options(self.scan_forward_narrow_launch)
        return launch_options(self.scan_forward_launch)

    def scan_backward_launch_for(self, mode: str, headdim: int | None) -> dict:
        """Launch options of the scan backward's heavy kernel for this mode and head width."""
        launch = self.scan_backward_launch
        if headdim is not None and headdim <= NARROW_HEADDIM and self.scan_backward_narrow_launch is not None:
            launch = self.scan_backward_narrow_launch
        return launch_options(launch or SCAN_BACKWARD_LAUNCH_DEFAULT[mode])

    # ------------------------------------------------------------------ records
    def to_dict(self) -> dict:
        """Every field, launches and tiles as "a,b[,c]" strings (the benchmark JSON's form), plus the scan
        backward and its launch each head width actually gets."""
        d = {}
        for k, v in asdict(self).items():
            d[k] = ",".join(map(str, v)) if isinstance(v, (tuple, list)) else v
        for label, p in (("wide", 64), ("narrow", NARROW_HEADDIM)):
            mode = self.scan_backward_for(p)
            d[f"scan_backward_used_{label}"] = mode
            d[f"scan_backward_launch_used_{label}"] = ",".join(
                str(v) for v in self.scan_backward_launch_for(mode, p).values())
        return d

    def __str__(self) -> str:
        changed = [f"{f.name}={_show(getattr(self, f.name))}" for f in fields(self)
                   if getattr(self, f.name) != _DEFAULTS[f.name]]
        return f"KernelConfig(backend={self.backend}" + "".join(
            ", " + c for c in changed if not c.startswith("backend=")) + (")" if changed else "; defaults)")

    @classmethod
    def from_env(cls, environ: dict | None = None) -> "KernelConfig":
        """The defaults, changed by ``SAMBA_KERNELS`` (a backend name, or "field=value,..."; see the module)."""
        raw = (os.environ if environ is None else environ).get(ENV_VAR, "").strip()
        if not raw:
            return cls()
        if "=" not in raw:
            return cls(backend=raw)
        known = {f.name for f in fields(cls)}
        values: dict = {}
        # Launches and tiles hold commas themselves: a piece without "=" continues the previous value.
        key = None
        for piece in raw.split(","):
            if "=" in piece:
                key, value = (s.strip() for s in piece.split("=", 1))
                if key not in known:
                    raise UsageError(f"{ENV_VAR}: unknown setting {key!r}; known: {', '.join(sorted(known))}")
                values[key] = value
            elif key is not None:
                values[key] += "," + piece.strip()
            else:
                raise UsageError(f"{ENV_VAR} must be a backend name or field=value pairs, got {raw!r}")
        for k, v in list(values.items()):
            if v.lower() == "none":
                values[k] = None
        return cls(**values)

    def with_backend(self, backend: str | None) -> "KernelConfig":
        return self if backend is None or backend == self.backend else replace(self, backend=backend)


def launch_options(launch: Launch) -> dict:
    """(warps, stages[, maxnreg]) as the keyword arguments of a Triton launch."""
    return {"num_warps": launch[0], "num_stages": launch[1], **({"maxnreg": launch[2]} if len(launch) == 3 else {})}


def _bool(value, name: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise UsageError(f"KernelConfig.{name} must be true or false, got {value!r}")


def _show(v) -> str:
    return ",".join(map(str, v)) if isinstance(v, tuple) else str(v)


_DEFAULTS = {f.name: f.default for f in fields(KernelConfig)}
