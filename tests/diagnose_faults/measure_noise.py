"""How far above its rounding noise a correct port's module ever is: the evidence for
NOISE_FACTOR (dualtrain/diagnose/noise.py) and the numbers in docs/diagnose.md.

For each example of examples/port (its automatic OneFlow port), SGD with momentum and
Adam, a port check on 128 rows in batches of 16 and a diagnosis of OneFlow eager at
step 0 (a one-step run) and step 7 (the last of eight): the largest ratio
difference / max(noise, own noise) over every module's output, input and parameter
gradients, and every update, per phase.

    .venv/bin/python tests/diagnose_faults/measure_noise.py
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

import dualtrain
from dualtrain.problems import images, sequence

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "port"
MODELS = {
    "cnn": (f"{EXAMPLES}/cnn.py:SmallCNN", images),
    "transformer": (f"{EXAMPLES}/transformer.py:TinyTransformer", sequence),
    "rnn": (f"{EXAMPLES}/rnn.py:LSTMClassifier", sequence),
}
OPTIMIZERS = {
    "sgd": {"optimizer": "sgd", "lr": 0.05, "momentum": 0.9},
    "adam": {"optimizer": "adam", "lr": 0.003},
}


def main() -> None:
    torch.set_num_threads(1)
    print("| model | optimizer | step | forward | backward | optimizer | modules | seconds |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    worst = 0.0
    for name, (model, problem) in MODELS.items():
        data = problem(n=128).data
        for opt, options in OPTIMIZERS.items():
            for rows in (16, 128):
                start = time.perf_counter()
                check = dualtrain.port(
                    model, data.x[:rows], data.y[:rows], engines=["torch/eager", "oneflow/eager"],
                    diagnose=True, epochs=1, batch_size=16, **options,
                )  # fmt: skip
                (f,) = [f for f in check.diagnosis.findings if f.engine == "oneflow/eager"]
                ratios = {
                    phase: max((c.ratio for c in f.checks if c.phase == phase), default=0.0)
                    for phase in ("forward", "backward", "optimizer")
                }
                worst = max(worst, *ratios.values())
                modules = len({c.module for c in f.checks})
                seconds = time.perf_counter() - start
                print(
                    f"| {name} | {opt} | {f.step} | {ratios['forward']:.3g} | "
                    f"{ratios['backward']:.3g} | {ratios['optimizer']:.3g} | {modules} | "
                    f"{seconds:.1f} | parted: {[c.what for c in f.checks if c.parted][:3]}"
                )
    print(f"largest ratio: {worst:.3g}; NOISE_FACTOR {np.float64(16.0)}")


if __name__ == "__main__":
    main()
