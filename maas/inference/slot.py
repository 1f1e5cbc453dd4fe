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
    ``source`` is one package, or several comma-separated versions of one model served side by side: they load
    together or not at all, and ``order`` (default: as listed) puts first the version a bare name means.
    """

    def __init__(
        self,
        source: str,
        build: Callable[[Path, Manifest], object],
        cache_dir: Path,
        logger: logging.Logger,
        s3_client=None,
        order: Callable[[list[tuple[object, Manifest]]], list[tuple[object, Manifest]]] | None = None,
    ):
        self.source, self.build, self.cache_dir = source, build, cache_dir
        self.logger, self.s3_client, self.order = logger, s3_client, order
        self.sources = [x.strip() for x in source.split(",") if x.strip()]
        # Every version loaded, the default first; empty until the slot loads.
        self.versions: list[tuple[object, Manifest]] = []
        self.load_error: str | None = None
        # Until it loads, the slot answers to its folder's name (what the package is called by convention).
        self.name = self.sources[0].rstrip("/").rpartition("/")[2] if self.sources else source
        self._last_attempt = 0.0
        self._load()

    @property
    def runtime(self):
        """The default version's runtime object; None until loaded."""
        return self.versions[0][0] if self.versions else None

    @property
    def manifest(self) -> Manifest | None:
        """The default version's manifest; None until loaded."""
        return self.versions[0][1] if self.versions else None

    def _load(self) -> None:
        self._last_attempt = time.monotonic()
        try:
            loaded = []
            for source in self.sources:
                folder, manifest = resolve_package(source, self.cache_dir, self.s3_client)
                loaded.append((self.build(folder, manifest), manifest))
            if not loaded:
                raise ValueError("no model package source is set")
            self.versions = self.order(loaded) if self.order is not None else loaded
            self.load_error, self.name = None, self.manifest.name
            for _, manifest in self.versions:
                self.logger.info("model loaded", extra={"model": manifest.name, "version": manifest.version})
        except Exception as exc:  # any failure must become a 503 with a logged reason, not a crash loop
            self.load_error = f"{type(exc).__name__}: {exc}"
            self.logger.error("model failed to load", extra={"source": self.source, "reason": self.load_error})

    def ids(self) -> set[str]:
        """The model ids the default version answers to: name, name@version, name@latest, its source model."""
        if self.manifest is None:
            return {self.name.lower(), f"{self.name}@latest".lower()}
        m = self.manifest
        ids = {m.name.lower(), f"{m.name}@{m.version}".lower(), f"{m.name}@latest".lower()}
        if "model" in m.source:
            ids.add(m.source["model"].lower())
        return ids

    def ready(self):
        """The default version's runtime object; a 503 while it is not loaded (retrying the load when due)."""
        if self.runtime is None and time.monotonic() - self._last_attempt >= RETRY_LOAD_AFTER_S:
            self._load()
        if self.runtime is None:
            raise ServiceUnavailable(
                f"The model '{self.name}' is unavailable: it failed to load (logged). Retry later."
            )
        return self.runtime
