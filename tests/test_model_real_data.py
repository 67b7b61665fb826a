"""The paper model trains on real recordings from three headsets mixed in ONE batch (64 / 19 / 4 channels)."""
import numpy as np
import torch

from samba import SAMBA, SAMBAConfig
from samba.data import load_task
from samba.losses import reconstruction_loss
from samba.masking import tsr_mask
from samba.nn.cdse import pad_montages


def test_three_devices_one_batch_trains(mirror, data_cache):
    T = 128  # 1 s at 128 Hz, the shortest task window (muse-p300)
    parts = []
    for task in ("eegmmidb-mi", "eegmat-workload", "muse-p300"):  # 64-ch cap, 19-ch 10-20, Muse
        ds = load_task(task, mirror=mirror, cache_dir=data_cache, profile="quick")
        for i in (0, len(ds) // 2):
            x = torch.from_numpy(np.asarray(ds.X[i, :, :T], dtype=np.float32))
            parts.append((x, torch.from_numpy(ds.positions)))
    x, coords, mask = pad_montages(parts)  # (6, 64, T), (6, 64, 3), (6, 64)
    assert sorted({int(m.sum()) for m in mask}) == [4, 19, 64]

    torch.manual_seed(0)
    model = SAMBA(SAMBAConfig(backend="torch"))  # the paper's defaults
    opt = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=1e-2)
    g = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(3):
        visible = tsr_mask(x.shape[0], T, generator=g)
        recon = model(x * visible[:, None, :], coords, mask)
        loss, _ = reconstruction_loss(recon, x, visible, channel_mask=mask)
        opt.zero_grad()
        loss.backward()
        grads = [p.grad for p in model.parameters()]
        assert all(gr is not None and torch.isfinite(gr).all() for gr in grads)
        opt.step()
        losses.append(loss.item())
    assert all(np.isfinite(losses)), losses
    assert (recon[~mask] == 0).all()  # padded channels produce nothing
