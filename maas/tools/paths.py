"""Where the repository keeps build outputs and fixtures when run from a checkout."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
MODELS_DIR = REPO_ROOT / "models"  # git-ignored; `maas models build` writes packages here
EVENTS_DIR = REPO_ROOT / "events"
FUNCTIONS_DIR = REPO_ROOT / "functions"
DEFAULT_MODEL = "all-minilm-l6-v2"


def model_dir(name: str = DEFAULT_MODEL) -> Path:
    return MODELS_DIR / name
