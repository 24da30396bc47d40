"""GPU step times: dualtrain's engines against hand-written loops on the same device.

    python tests/bench/gpu/gpu_bench.py [--device cuda] [--quick] [--out FILE]
    (tests/bench/gpu/run.sh checks the machine, installs and runs this)

For the CNN preset (digits' shape, channels and image size scaled up) and the
transformer-like preset (tokens', width scaled up) at a size that keeps a GPU
busy, float32, SGD with momentum, it measures seconds per step as the
difference of two run lengths, each timed from its step `WARM` on (set-up and
compiling are left out, and what the two runs share cancels):

- dualtrain torch eager with the data set kept on the device, losses read every
  step (`loss_read_every=1`) and in chunks (the default), and with the data
  copied from host memory every step (what dualtrain did before);
- dualtrain torch.compile (chunked reads, data on the device);
- a hand-written torch loop on the same device, data on the device, `.item()`
  each step (what people write), and the same without reading any loss until
  the end (the device's own limit);
- hand-written OneFlow eager and nn.Graph loops on the device (dualtrain's
  OneFlow backend trains on the CPU only in this version), loss read each step.

For each dualtrain engine also the share of the wall time the host spends
waiting for the device (inside the loss reads). Prints a table and writes every
figure as JSON to `--out` (default runs/bench/gpu.json). `--quick` runs tiny
sizes for a dry run of the code on any device, the CPU included.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dualtrain.backend import HostData, lazy_step
from dualtrain.data import Dataset
from dualtrain.loop import RunConfig, fit
from dualtrain.model import ModelSpec
from dualtrain.problems import TOKEN_CLASSES, TOKEN_VOCAB, digits_cnn, token_transformer
from dualtrain_torch.backend import TorchBackend


@dataclass(frozen=True)
class Workload:
    name: str
    width: int
    batch: int
    image: int = 8

    def model(self) -> ModelSpec:
        if self.name == "cnn":
            return digits_cnn(channels=self.width, image=self.image)
        return token_transformer(dim=self.width, hidden=4 * self.width)

    def data(self, steps: int) -> Dataset:
        rng = np.random.default_rng(0)
        n = steps * self.batch
        if self.name == "cnn":
            x = rng.random(size=(n, 1, self.image, self.image), dtype=np.float32)
            return Dataset(x, rng.integers(0, 10, size=n))
        x = rng.integers(1, TOKEN_VOCAB, size=(n, 12))
        return Dataset(x, rng.integers(0, TOKEN_CLASSES, size=(n, 12)))


BUSY = (Workload("cnn", 64, 512, image=32), Workload("transformer", 512, 512))
QUICK = (Workload("cnn", 8, 16), Workload("transformer", 16, 16))


#: dualtrain's runs are timed from the start of this step (0-based) on: torch.compile
#: runs step 0 eagerly and compiles at step 1, and each compiled run compiles anew
#: (its step has a code object of its own), so a compile's time varies from run to
#: run by more than the steps it would hide among (measured on the CPU: -765 ms a
#: step from the two-run difference alone).
WARM = 3


class TimedTorch(TorchBackend):
    """torch, timing every wait for the device (the loss reads), from step `WARM` on."""

    def __init__(self, device: str, keep_on_device: bool = True) -> None:
        self.device, self.keep_on_device = device, keep_on_device
        self.waited, self.steps, self.marked = 0.0, 0, None

    def put_dataset(self, model, x, y):
        if not self.keep_on_device:
            return HostData(x, y)
        self.resident_on_cpu = True  # a --quick dry run on the CPU takes the device path too
        return super().put_dataset(model, x, y)

    def read_losses(self, losses):
        start = time.perf_counter()
        try:
            return super().read_losses(losses)
        finally:
            self.waited += time.perf_counter() - start

    def _count(self) -> None:
        """Before each step: at step WARM, wait for the device and start the clock."""
        if self.steps == WARM:
            sync(self.device)
            self.marked, self.waited = time.perf_counter(), 0.0
        self.steps += 1

    def _timed(self, step):
        lazy = step.lazy

        def counted(x, y):
            self._count()
            return lazy(x, y)

        def reading(x, y):
            loss = counted(x, y)
            start = time.perf_counter()
            value = loss.item()
            self.waited += time.perf_counter() - start
            return value

        return lazy_step(reading, counted)

    def eager_step(self, model, optimizer):
        return self._timed(super().eager_step(model, optimizer))

    def compile_step(self, model, optimizer, plan):
        return self._timed(super().compile_step(model, optimizer, plan))


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def dualtrain_run(work, device, steps, mode="eager", every=32, keep=True):
    """(wall seconds from step WARM to the end, seconds the host waited in them) of
    `steps` steps through `fit`."""
    backend = TimedTorch(device, keep_on_device=keep)
    config = RunConfig(
        backend="torch",
        mode=mode,
        lr=0.01,
        options={"momentum": 0.9},
        epochs=1,
        batch_size=work.batch,
        dtype="float32",
        device=device,
        drop_last=True,
        loss_read_every=every,
    )
    data = work.data(steps)
    fit(config, work.model(), data, backend=backend)
    sync(device)
    return time.perf_counter() - backend.marked, backend.waited


def torch_hand_written(work, device, steps, read_each_step=True):
    """(wall seconds from step WARM on, 0) of the plain torch loop, the data set on the
    device."""
    import torch

    from dualtrain_torch.model import build, loss_fn

    model = build(work.model().for_run(0), torch.float32, torch.device(device))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    data = work.data(steps)
    x_all = torch.from_numpy(data.x).to(device)
    x_all = x_all if x_all.dtype == torch.long else x_all.float()
    y_all = torch.from_numpy(data.y).to(device)
    order = torch.randperm(len(x_all), device=device)
    last = start = None
    for i in range(steps):
        if i == WARM:  # timed from the same step on as dualtrain's runs
            sync(device)
            start = time.perf_counter()
        rows = order[i * work.batch : (i + 1) * work.batch]
        optimizer.zero_grad()
        loss = loss_fn("cross_entropy", model(x_all[rows]), y_all[rows])
        loss.backward()
        optimizer.step()
        last = loss.item() if read_each_step else loss
    float(last)
    sync(device)
    return time.perf_counter() - start, 0.0


def oneflow_hand_written(work, device, steps, graph=False):
    """(wall seconds from step WARM on, 0) of a plain OneFlow loop (eager or nn.Graph)
    on the device."""
    import oneflow as flow

    from dualtrain_oneflow.model import Loss, build

    model = build(work.model().for_run(0), flow.float32, device)
    optimizer = flow.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = Loss("cross_entropy")
    data = work.data(steps)
    x_all = flow.tensor(data.x, device=device)
    x_all = x_all if x_all.dtype == flow.int64 else x_all.to(flow.float32)
    y_all = flow.tensor(data.y, device=device)
    step = None
    if graph:

        class Train(flow.nn.Graph):
            def __init__(self):
                super().__init__()
                self.model = model
                self.add_optimizer(optimizer)

            def build(self, x, y):
                loss = loss_fn(self.model(x), y)
                loss.backward()
                return loss

        step = Train()
    start = None
    for i in range(steps):
        if i == WARM:  # after nn.Graph's compile at step 0; each loss is read: in sync
            start = time.perf_counter()
        x, y = (
            x_all[i * work.batch : (i + 1) * work.batch],
            y_all[i * work.batch : (i + 1) * work.batch],
        )
        if step is None:
            optimizer.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            optimizer.step()
        else:
            loss = step(x, y)
        float(loss.numpy())
    return time.perf_counter() - start, 0.0


def per_step(run, short: int, long: int) -> tuple[float, float | None]:
    """(seconds a step, share of the wall time waiting) from runs of two lengths;
    the share is None where the two runs' difference is lost in noise."""
    t1, w1 = run(short)
    t2, w2 = run(long)
    share = (w2 - w1) / (t2 - t1) if t2 > t1 else None
    return (t2 - t1) / (long - short), share if share is None or 0 <= share <= 1 else None


def measure(work: Workload, device: str, short: int, long: int) -> dict:
    engines = {
        "dualtrain torch eager, data on device, read every step": lambda n: dualtrain_run(
            work, device, n, every=1
        ),
        "dualtrain torch eager, data on device, read every 32": lambda n: dualtrain_run(
            work, device, n
        ),
        "dualtrain torch eager, data from host, read every step": lambda n: dualtrain_run(
            work, device, n, every=1, keep=False
        ),
        "dualtrain torch.compile, data on device, read every 32": lambda n: dualtrain_run(
            work, device, n, mode="graph"
        ),
        "hand-written torch, .item() each step": lambda n: torch_hand_written(work, device, n),
        "hand-written torch, no read until the end": lambda n: torch_hand_written(
            work, device, n, read_each_step=False
        ),
        "hand-written OneFlow eager": lambda n: oneflow_hand_written(work, device, n),
        "hand-written OneFlow nn.Graph": lambda n: oneflow_hand_written(
            work, device, n, graph=True
        ),
    }
    out = {}
    for name, run in engines.items():
        try:
            seconds, waiting = per_step(run, short, long)
        except Exception as exc:  # noqa: BLE001 - one engine failing must not lose the rest
            out[name] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
            print(f"{work.name}: {name}: {out[name]['error']}", flush=True)
            continue
        out[name] = {
            "seconds_per_step": seconds,
            "samples_per_second": work.batch / seconds,
            "host_waiting_share": waiting if name.startswith("dualtrain") else None,
        }
        share = ""
        if name.startswith("dualtrain"):
            share = ", host waits " + ("?" if waiting is None else f"{waiting:.0%}")
        print(f"{work.name}: {name}: {seconds * 1e3:.3f} ms a step{share}", flush=True)
    base = out["hand-written torch, .item() each step"].get("seconds_per_step")
    for figure in out.values():
        if base and "seconds_per_step" in figure:
            figure["throughput_vs_hand_written"] = base / figure["seconds_per_step"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default="runs/bench/gpu.json")
    args = parser.parse_args()
    import torch

    workloads, (short, long) = (QUICK, (6, 16)) if args.quick else (BUSY, (30, 130))
    machine = {"python": platform.python_version(), "torch": torch.__version__}
    if args.device.startswith("cuda"):
        machine["gpu"] = torch.cuda.get_device_name(0)
    result = {"machine": machine, "steps": [short, long], "figures": {}}
    for work in workloads:
        result["figures"][f"{work.name}_w{work.width}_b{work.batch}"] = measure(
            work, args.device, short, long
        )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"figures: {args.out}")


if __name__ == "__main__":
    main()
