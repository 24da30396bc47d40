#!/usr/bin/env bash
# GPU measurements for docs/performance.md: check the machine, install, measure.
#
#   bash tests/bench/gpu/run.sh            (from the repository root, on a GPU machine)
#
# Needs a Python 3.10 with torch built for CUDA already installed, or wheels for it
# in $WHEELS (the device machines reach no network): torch, and oneflow built for
# CUDA for the OneFlow figures (without it those rows print their error and the
# rest still runs). dualtrain itself is installed from this checkout, no network.
# Writes runs/bench/gpu.json and prints the table; takes a few minutes.
set -euo pipefail
cd "$(dirname "$0")/../../.."
PY=${PY:-python3}
nvidia-smi --query-gpu=name,memory.total,utilization.gpu --format=csv || {
    echo "no GPU here (nvidia-smi failed): nothing measured" >&2; exit 2; }
VENV=${VENV:-/tmp/dualtrain-gpu-venv}
if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv --system-site-packages "$VENV"   # keeps a preinstalled CUDA torch
fi
if [ -n "${WHEELS:-}" ]; then
    "$VENV/bin/pip" install -q --no-index --find-links "$WHEELS" torch numpy || true
    "$VENV/bin/pip" install -q --no-index --find-links "$WHEELS" oneflow || true
fi
"$VENV/bin/pip" install -q --no-deps --no-build-isolation -e . 
"$VENV/bin/python" - <<'PY'
import torch
assert torch.cuda.is_available(), f"torch {torch.__version__} sees no CUDA device"
print("torch", torch.__version__, "on", torch.cuda.get_device_name(0))
try:
    import oneflow
    print("oneflow", oneflow.__version__, "cuda:", oneflow.cuda.is_available())
except ImportError as exc:
    print("no oneflow:", exc)
PY
"$VENV/bin/python" tests/bench/gpu/gpu_bench.py --device cuda --out runs/bench/gpu.json "$@"
