import os, torch, torch.nn.functional as F
os.environ["SAMBA_CHANNELS_LAST"] = "1"
from samba import SAMBA, SAMBAConfig
from samba.montage import DEVICE_PRESETS, positions
m = SAMBA(SAMBAConfig(backend="mamba_ssm")).cuda()
coords = torch.from_numpy(positions(list(DEVICE_PRESETS["10-20"]))).cuda()
x = torch.randn(2, 19, 1000, device="cuda")
seen = []
orig = F.conv1d
def spy(inp, w, *a, **k):
    out = orig(inp, w, *a, **k)
    seen.append((tuple(inp.shape), inp.stride(), w.stride(), out.stride()))
    return out
F.conv1d = spy
torch.nn.modules.conv.F.conv1d = spy
out = m(x, coords)
for s in seen[:8]: print("conv1d in", s[0], "in stride", s[1], "w stride", s[2], "out stride", s[3])
w = torch.randn(64, 19, 7, device="cuda").transpose(1, 2).contiguous().transpose(1, 2)
o = orig(x, w, padding=3)
print("plain conv1d, channel-contiguous weight -> out stride", o.stride(), "cudnn", torch.backends.cudnn.version())
o4 = torch.nn.functional.conv2d(x.unsqueeze(2), w.unsqueeze(2), padding=(0, 3))
print("conv2d via unsqueeze -> out stride", o4.stride(), "w4 cl?", w.unsqueeze(2).is_contiguous(memory_format=torch.channels_last))
