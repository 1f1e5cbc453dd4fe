#!/usr/bin/env bash
# Build what the stacks need, then deploy both stacks. Placeholders are refused (maas:requireBuiltAssets).
# Usage: bash infra/deploy.sh [extra cdk arguments, e.g. -c maas:region=eu-west-1 --require-approval never]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC1091
. .venv/bin/activate
ARCH="${MAAS_ARCH:-x86_64}"
PYTHON_VERSION="${MAAS_PYTHON:-3.14}"
for model in all-minilm-l6-v2 all-minilm-l6-v2-fp32; do
  [ -f "models/$model/manifest.json" ] || maas models build "$model"
done
python -m maas.tools.layers build-runtime --arch "$ARCH" --python "$PYTHON_VERSION"
npx --yes aws-cdk@2 deploy --all -c maas:requireBuiltAssets=true "$@"
