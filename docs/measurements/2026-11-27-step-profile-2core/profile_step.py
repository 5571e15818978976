"""One float32 training step of the 3 × 300 network as the torch engine runs it on a CPU
(oneDNN dense layers, freed memory kept), Adam, random batches; T threads. From the repository:

    T=2 OMP_NUM_THREADS=2 PYTHONPATH=app PROF=1 python \\
        docs/measurements/2026-11-27-step-profile-2core/profile_step.py 4096
"""

import os
import sys
import time

import torch
from torch import nn

from higgsbench import hardware
from higgsbench.engines import onednn
from higgsbench.engines.torch_training import bce_loss

torch.set_num_threads(int(os.environ.get("T", "1")))
hardware.keep_freed_memory()
BATCH = int(sys.argv[1]) if len(sys.argv) > 1 else 4096
ROWS = 400_000
torch.manual_seed(0)
layers = [nn.Linear(28, 300), nn.Tanh(), nn.Linear(300, 300), nn.Tanh()]
layers += [nn.Linear(300, 300), nn.Tanh(), nn.Linear(300, 1)]
model, kernels = onednn.fuse(nn.Sequential(*layers))
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, foreach=True)
data_x, data_y = torch.randn(ROWS, 28), (torch.rand(ROWS) < 0.5).float()
x, y = torch.empty(BATCH, 28), torch.empty(BATCH)


def step() -> None:
    index = torch.randint(0, ROWS, (BATCH,))
    torch.index_select(data_x, 0, index, out=x)
    torch.index_select(data_y, 0, index, out=y)
    optimizer.zero_grad(set_to_none=True)
    loss = bce_loss(model(x), y)
    loss.backward()
    optimizer.step()


for _ in range(20):
    step()
start, steps = time.perf_counter(), 60
for _ in range(steps):
    step()
seconds = (time.perf_counter() - start) / steps
flops = 6 * BATCH * (28 * 300 + 300 * 300 * 2 + 300)
print(
    f"{kernels} B={BATCH} step {seconds * 1e3:.2f} ms, {BATCH / seconds / 1e3:.1f} k ev/s, "
    f"{flops / seconds / 1e9:.1f} GF/s"
)
if os.environ.get("PROF"):
    from torch.profiler import profile

    with profile() as prof:
        for _ in range(20):
            step()
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=22))
