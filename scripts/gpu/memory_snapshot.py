#!/usr/bin/env python3
"""What holds the GPU memory at the peak of a long-context SAMBA train step? (docs/performance_log.md)

Runs the bench's train step (bf16 autocast, AdamW) at batch x seconds, warms up, then records one step with
`torch.cuda.memory._record_memory_history` and replays the allocator trace: the peak of live bytes, and
what is alive at that moment, grouped by the innermost frame in samba/ or mamba_ssm/ (with the frame that
called it). Also the peak after each phase (forward, loss, backward, optimizer) from max_memory_allocated.

    python3 scripts/gpu/memory_snapshot.py --seconds 600 --batch 4 --checkpointing 1 --out $OUT/mem
"""
import argparse
import collections
import json
from pathlib import Path

import torch

MiB = 2 ** 20


def frame_key(frames):
    """(innermost samba/mamba_ssm frame, its caller) as 'file:line name' strings."""
    ours = [f for f in frames if ("/samba/" in f["filename"] or "mamba_ssm" in f["filename"])]
    if not ours:
        top = frames[0] if frames else {"filename": "?", "line": 0, "name": "?"}
        return (f"{Path(top['filename']).name}:{top['line']} {top['name']}", "")
    a = ours[0]
    b = ours[1] if len(ours) > 1 else None
    fmt = lambda f: f"{'/'.join(Path(f['filename']).parts[-2:])}:{f['line']} {f['name']}"  # noqa: E731
    return (fmt(a), fmt(b) if b else "")


def replay(trace):
    """Peak of live bytes over the trace, the index where it happens and what is alive then."""
    live, cur, peak, at = {}, 0, 0, -1
    for i, e in enumerate(trace):
        if e["action"] == "alloc":
            live[e["addr"]] = e
            cur += e["size"]
            if cur > peak:
                peak, at = cur, i
        elif e["action"] == "free_completed" and e["addr"] in live:
            cur -= live.pop(e["addr"])["size"]
    live, cur = {}, 0
    for e in trace[:at + 1]:
        if e["action"] == "alloc":
            live[e["addr"]] = e
        elif e["action"] == "free_completed":
            live.pop(e["addr"], None)
    return peak, at, list(live.values())


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--seconds", type=float, default=600)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--checkpointing", type=int, default=1)
    p.add_argument("--config", default="{}", help="JSON of SAMBAConfig overrides")
    p.add_argument("--out", default="mem_out")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from samba import SAMBA, SAMBAConfig
    from samba.montage import DEVICE_PRESETS, positions

    dev = torch.device("cuda")
    coords = torch.from_numpy(positions(list(DEVICE_PRESETS["10-20"]))).to(dev)
    cfg = SAMBAConfig(backend="mamba_ssm", activation_checkpointing=bool(args.checkpointing),
                      **json.loads(args.config))
    model = SAMBA(cfg).to(dev).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randn(args.batch, 19, int(args.seconds * 128), device=dev)
    phases = {}

    def step(mark=False):
        def note(name):
            if mark:
                torch.cuda.synchronize()
                phases[name] = round(torch.cuda.max_memory_allocated() / MiB, 1)
                torch.cuda.reset_peak_memory_stats()
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            y = model(x, coords)
        note("forward")
        loss = y.float().pow(2).mean()
        note("loss")
        loss.backward()
        note("backward")
        opt.step()
        note("optimizer")

    try:
        for _ in range(2):
            step()
    except Exception:  # report it in full (the shell keeps only the tail of the output)
        import traceback
        tag = f"b{args.batch}_{args.seconds:g}s_ckpt{int(bool(args.checkpointing))}"
        (out / f"memory_{tag}_error.txt").write_text(traceback.format_exc())
        raise
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated() / MiB
    torch.cuda.reset_peak_memory_stats()
    step(mark=True)
    torch.cuda.reset_peak_memory_stats()
    torch.cuda.memory._record_memory_history(max_entries=200_000, stacks="python")
    step()
    torch.cuda.synchronize()
    snap = torch.cuda.memory._snapshot()
    torch.cuda.memory._record_memory_history(enabled=None)
    trace = snap["device_traces"][0]
    peak, at, live = replay(trace)
    groups = collections.defaultdict(lambda: [0, 0])
    for e in live:
        g = groups[frame_key(e.get("frames", []))]
        g[0] += e["size"]
        g[1] += 1
    rows = sorted(groups.items(), key=lambda kv: -kv[1][0])
    lines = [f"SAMBA train step, batch {args.batch} x {args.seconds:g} s, checkpointing={bool(args.checkpointing)}, "
             f"config {args.config}, {torch.cuda.get_device_name()}",
             f"allocated before the step (params, optimizer state, input, grads freed): {base:.1f} MiB",
             f"peak of each phase (max_memory_allocated, MiB): {phases}",
             f"trace: {len(trace)} events; peak of traced live bytes {peak / MiB:.1f} MiB at event {at} "
             f"(on top of what was allocated before recording)",
             "", "live at the peak, by innermost samba/mamba_ssm frame (and its caller):",
             f"{'MiB':>9} {'n':>4}  where"]
    for (a, b), (size, n) in rows[:40]:
        lines.append(f"{size / MiB:9.1f} {n:4d}  {a}  <-  {b}")
    big = sorted(live, key=lambda e: -e["size"])[:25]
    lines += ["", "largest live blocks at the peak (size MiB, innermost 4 frames):"]
    for e in big:
        fr = e.get("frames", [])[:4]
        lines.append(f"{e['size'] / MiB:9.1f}  " + " | ".join(f"{Path(f['filename']).name}:{f['line']} {f['name']}" for f in fr))
    # the last 30 events before the peak: what the step was doing
    lines += ["", "events just before the peak:"]
    for e in trace[max(0, at - 30):at + 1]:
        fr = e.get("frames", [])
        k = frame_key(fr)
        lines.append(f"  {e['action']:>14} {e['size'] / MiB:9.1f} MiB  {k[0]}  <-  {k[1]}")
    text = "\n".join(lines)
    tag = f"b{args.batch}_{args.seconds:g}s_ckpt{int(bool(args.checkpointing))}"
    (out / f"memory_{tag}.txt").write_text(text)
    print(text[:6000])


if __name__ == "__main__":
    main()
