#!/usr/bin/env bash
# Set up (if needed) and run the service locally on 127.0.0.1:8000 with the embedded default model.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# shellcheck disable=SC1091
. .venv/bin/activate
exec maas serve "$@"
