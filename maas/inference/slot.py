"""One model of a container: loaded and verified once, 503 while it is not loaded, retried without a restart."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from maas.errors import ServiceUnavailable
from maas.inference.loader import resolve_package
from maas.inference.package import Manifest

RETRY_LOAD_AFTER_S = 30.0


class ModelSlot:
    """A model that fails to load is a 503 with its reason logged, retried at most every RETRY_LOAD_AFTER_S
    seconds, so a transient failure heals without a restart.

    ``build(folder, manifest)`` makes the runtime object from the verified package (a session, a tokenizer).
    """

    def __init__(
        self,
        source: str,
        build: Callable[[Path, Manifest], object],
        cache_dir: Path,
        logger: logging.Logger,
        s3_client=None,
    ):
        self.source, self.build, self.cache_dir = source, build, cache_dir
        self.logger, self.s3_client = logger, s3_client
        self.runtime = None
        self.manifest: Manifest | None = None
        # Until it loads, the slot answers to its folder's name (what the package is called by convention).
        self.name = source.rstrip("/").rpartition("/")[2]
        self._last_attempt = 0.0
        self._load()

    def _load(self) -> None:
        self._last_attempt = time.monotonic()
        try:
            folder, manifest = resolve_package(self.source, self.cache_dir, self.s3_client)
            self.runtime = self.build(folder, manifest)
            self.manifest, self.name = manifest, manifest.name
            self.logger.info("model loaded", extra={"model": manifest.name, "version": manifest.version})
        except Exception as exc:  # any failure must become a 503 with a logged reason, not a crash loop
            self.logger.error(
                "model failed to load", extra={"source": self.source, "reason": f"{type(exc).__name__}: {exc}"}
            )

    def ids(self) -> set[str]:
        if self.manifest is None:
            return {self.name.lower(), f"{self.name}@latest".lower()}
        m = self.manifest
        ids = {m.name.lower(), f"{m.name}@{m.version}".lower(), f"{m.name}@latest".lower()}
        if "model" in m.source:
            ids.add(m.source["model"].lower())
        return ids

    def ready(self):
        if self.runtime is None and time.monotonic() - self._last_attempt >= RETRY_LOAD_AFTER_S:
            self._load()
        if self.runtime is None:
            raise ServiceUnavailable(
                f"The model '{self.name}' is unavailable: it failed to load (logged). Retry later."
            )
        return self.runtime
