"""How far torch and OneFlow eager part on an example port, against torch's own float32 drift.

Not a pass/fail test: a measurement. Both frameworks start from torch's
initial weights (seeded), see the same batches and run the same optimizer;
dropout is off (the pipeline draws its masks; here nothing does). Printed per
setting: the largest per-step relative loss difference of OneFlow float64 and
float32 from torch float64, torch float32's own drift from torch float64 (the
float32 floor any port shares), and the loss at the first and last step.
The setting `adam-exact:0` is Adam with float32-exact hyperparameters (and
norm eps), which OneFlow's float32 arithmetic then does not change.

    .venv/bin/python tests/bench/port_drift.py cnn.py:SmallCNN images sgd:0.02 adam:0.001
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import oneflow
import torch

from dualtrain.problems import get_problem
from dualtrain_oneflow.source import port_module_class
from dualtrain_torch.source import load_module_class

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "port"


#: Adam with every hyperparameter exact in float32 (OneFlow applies them as float32).
EXACT = {"lr": 2.0**-7, "betas": (0.875, 1 - 2.0**-10), "eps": 2.0**-27}


def losses(fw, model, x, y, optimizer: str, lr: float, steps: int, batch: int = 32):
    if optimizer == "adam-exact":
        opt = fw.optim.Adam(model.parameters(), **EXACT)
    elif optimizer == "adam":
        opt = fw.optim.Adam(model.parameters(), lr=lr)
    else:
        opt = fw.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    rows = len(x) - len(x) % batch
    out = []
    for step in range(steps):
        start = batch * step % rows
        opt.zero_grad()
        xb, yb = fw.tensor(x[start : start + batch]), fw.tensor(y[start : start + batch])
        loss = fw.nn.functional.cross_entropy(model(xb), yb)
        loss.backward()
        opt.step()
        out.append(loss.item())
    return np.array(out)


def drift(ref: str, problem: str, optimizer: str, lr: float, seed: int, steps: int) -> dict:
    file, _, name = ref.partition(":")
    data = get_problem(problem, 0).data
    torch.manual_seed(seed)
    state = {
        k: v.detach().numpy().copy()
        for k, v in load_module_class(EXAMPLES / file, name)(dropout=0.0).state_dict().items()
    }
    runs = {}
    for fw, loader in ((torch, load_module_class), (oneflow, port_module_class)):
        for dtype in ("float64", "float32"):
            model = loader(EXAMPLES / file, name)(dropout=0.0).to(getattr(fw, dtype))
            if optimizer == "adam-exact":  # and norm eps exact too (OneFlow's BN: float32)
                for module in model.modules():
                    if hasattr(module, "eps"):
                        module.eps = 2.0**-17
            cast = {k: v.astype(dtype) if v.dtype.kind == "f" else v for k, v in state.items()}
            model.load_state_dict({k: fw.tensor(v) for k, v in cast.items()})
            x = data.x.astype(dtype) if data.x.dtype.kind == "f" else data.x
            runs[fw.__name__, dtype] = losses(fw, model, x, data.y, optimizer, lr, steps)
    reference = runs["torch", "float64"]

    def rel(key):
        return float((np.abs(runs[key] - reference) / np.abs(reference)).max())

    return {
        "oneflow64": rel(("oneflow", "float64")),
        "oneflow32": rel(("oneflow", "float32")),
        "torch32": rel(("torch", "float32")),
        "loss": (float(reference[0]), float(reference[-1])),
    }


def main(argv: list[str]) -> None:
    torch.set_num_threads(1)  # a loaded 2-core machine: torch's threads only contend
    ref, problem, *settings = argv
    for setting in settings:
        optimizer, _, lr = setting.partition(":")
        for seed in (0, 1, 2):
            d = drift(ref, problem, optimizer, float(lr), seed, steps=100)
            print(
                f"{ref} {optimizer} lr={lr} seed={seed}: oneflow64 {d['oneflow64']:.0e} "
                f"oneflow32 {d['oneflow32']:.0e} torch32 {d['torch32']:.0e} "
                f"loss {d['loss'][0]:.2f}->{d['loss'][1]:.3f}",
                flush=True,
            )


if __name__ == "__main__":
    main(sys.argv[1:])
