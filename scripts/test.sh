#!/usr/bin/env bash
# The test command: install everything from scratch, build the model packages, lint, run the suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# shellcheck disable=SC1091
. .venv/bin/activate
if [ ! -f models/all-minilm-l6-v2/manifest.json ]; then
  echo "==> building the int8 MiniLM package (progress below)"
  maas models build all-minilm-l6-v2
fi
# tests/integration/test_cli.py runs events/classify-*.json with only the embedding model's fixture.
if [ ! -f models/ticket-intents/manifest.json ]; then
  echo "==> training the ticket-intents classifier (progress below)"
  maas models train-classifier --data maas/data/ticket_intents.csv --name ticket-intents
fi
# The image function's package: trained on scikit-learn's bundled digits (about 20 s on 2 cores).
if [ ! -f models/digits-cnn/manifest.json ]; then
  echo "==> building the digits-cnn image classifier (progress below)"
  maas models build digits-cnn
fi
# The heavy model (served by the SageMaker endpoint; locally by the endpoint process the tests start).
if [ ! -f models/all-minilm-l6-v2-fp32/manifest.json ]; then
  echo "==> building the fp32 heavy-model package (progress below)"
  maas models build all-minilm-l6-v2-fp32
fi
# The embedding tiers: the fast one (int8 compute; about 4-6 min on 2 shared cores, most of it the per-node
# sensitivity pass) and the static one (model2vec distillation of the 29,525-token vocabulary, about 3-6 min).
for tier in all-minilm-l6-v2-fast all-minilm-l6-v2-static; do
  if [ ! -f "models/$tier/manifest.json" ]; then
    echo "==> building the $tier package (progress below)"
    maas models build "$tier" --no-compare
  fi
done
echo "==> ruff"
ruff check .
ruff format --check .
echo "==> pytest"
pytest -q "$@"
