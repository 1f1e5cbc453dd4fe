"""model.tar.gz's code/inference.py (a copy of this file): SageMaker's framework containers import it.

It checks every file listed in code/SHA256SUMS, itself and the `maas` package beside it included, before it
imports any of them; then it hands SageMaker the entry points of maas.heavy.endpoint.inference.
"""

import hashlib
from pathlib import Path

_CODE = Path(__file__).resolve().parent
_SUMS = _CODE / "SHA256SUMS"
if _SUMS.is_file():  # absent only when this module is imported from a source checkout
    for _line in _SUMS.read_text().splitlines():
        _digest, _, _name = _line.partition("  ")
        _path = _CODE / _name
        if not _path.is_file() or hashlib.sha256(_path.read_bytes()).hexdigest() != _digest:
            raise RuntimeError(f"endpoint code {_name}: missing, or its sha256 does not match SHA256SUMS")

from maas.heavy.endpoint.inference import input_fn, model_fn, output_fn, predict_fn  # noqa: E402,F401
