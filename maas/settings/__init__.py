"""Function settings: one from_env, every MAAS_* name once (names.py), per-function settings from mixins."""
