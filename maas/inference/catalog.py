"""The model catalog (maas/data/catalog.toml): every model the service can serve, and model-id resolution.

One list for `maas models list`, for resolving a request's `model` (`name`, `name@version`, `name@latest`,
aliases; case-insensitive), for `maas serve`, and (checked by a test) for infra/config.json.
"""

from __future__ import annotations

import tomllib
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from maas.errors import NotFound

Task = Literal["embeddings", "classify", "image-classify", "rerank"]
# The price family of each task's models (plans.toml prices per family) and of the billable unit it counts.
TASK_FAMILY = {
    "embeddings": "text-embedding",
    "classify": "text-classification",
    "image-classify": "image-classification",
    "rerank": "rerank",
    "v2-infer": "tensor-inference",  # KServe v2 infer: units are the tokens run (attention mask ones)
}
LATEST = "latest"


class CatalogError(Exception):
    """The catalog file is invalid; the message names the entry."""


class CatalogEntry(BaseModel):
    """One served (name, version)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    version: str = Field(pattern=r"^[A-Za-z0-9._-]+$")
    latest: bool = False
    task: Task
    # Other public routes answered with the same package (rerank uses the embedding model).
    tasks_also: tuple[Task, ...] = ()
    build: str | None = None
    source: str | None = None
    package: str | None = None
    precision: str | None = None
    runtime: Literal["layer", "s3", "sagemaker"] = "layer"
    memory_mb: int = Field(1024, ge=128, le=10240)
    unit: Literal["tokens", "images", "items"] = "tokens"
    aliases: tuple[str, ...] = ()
    # What GET /v1/models says about a model the answering function does not load (the package's manifest says the
    # same; tests/unit/test_catalog.py checks the built ones agree): vector size, or a classifier's labels.
    dimensions: int | None = Field(None, ge=1)
    labels: tuple[str, ...] = ()
    description: str = ""
    placeholder: bool = False  # listed for coordination; not deployed yet

    @model_validator(mode="after")
    def _made_somehow(self):
        if not (self.build or self.source):
            raise ValueError(f"{self.name}@{self.version}: say how it is built ('build') or where it comes from")
        return self

    @property
    def id(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def package_name(self) -> str:
        return self.package or self.name

    @property
    def family(self) -> str:
        """Price family in maas/data/plans.toml."""
        return TASK_FAMILY[self.task]

    def serves(self, task: str) -> bool:
        return task == self.task or task in self.tasks_also


def _version_key(version: str) -> tuple:
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in version.replace("-", ".").split("."))


class Catalog:
    """The entries of a catalog file, and how a request's model id resolves against them."""

    def __init__(self, entries: list[CatalogEntry]):
        seen: set[str] = set()
        for e in entries:
            if e.id in seen:
                raise CatalogError(f"catalog lists {e.id} twice")
            seen.add(e.id)
        self.entries = tuple(entries)
        self._latest: dict[str, CatalogEntry] = {}
        for name in dict.fromkeys(e.name for e in entries):
            versions = [e for e in entries if e.name == name]
            marked = [e for e in versions if e.latest]
            if len(marked) > 1:
                raise CatalogError(f"{name}: more than one version is marked latest")
            self._latest[name] = marked[0] if marked else max(versions, key=lambda e: _version_key(e.version))
        self._aliases: dict[str, str] = {}
        for e in entries:
            for alias in e.aliases:
                owner = self._aliases.setdefault(alias.lower(), e.name)
                if owner != e.name or alias.lower() in self._latest:
                    raise CatalogError(f"alias {alias!r} names more than one model")

    def names(self) -> list[str]:
        return list(self._latest)

    def latest(self, name: str) -> CatalogEntry:
        return self._latest[name]

    def resolve(self, model_id: str) -> CatalogEntry | None:
        """The entry a request's model id means, or None. `name` and `name@latest` are the latest version;
        `name@version` pins one; aliases (e.g. a Hugging Face id) stand for the name. Case-insensitive."""
        text = model_id.strip().lower()
        base, _, version = text.rpartition("@") if "@" in text else (text, "", "")
        name = self._aliases.get(base, base)
        if name not in self._latest:
            return None
        if not version or version == LATEST:
            return self._latest[name]
        return next((e for e in self.entries if e.name == name and e.version.lower() == version), None)

    def for_task(self, task: str, runtime: str | None = None) -> list[CatalogEntry]:
        """Entries that answer a task's routes (optionally on one runtime), latest first."""
        found = [e for e in self.entries if e.serves(task) and (runtime is None or e.runtime == runtime)]
        return sorted(found, key=lambda e: (self._latest[e.name] is not e, e.name))

    def ids_of(self, entry: CatalogEntry) -> set[str]:
        """Every model id that resolves to ``entry`` (lower-case)."""
        ids = {entry.id.lower()}
        if self._latest[entry.name] is entry:
            ids |= {entry.name, f"{entry.name}@{LATEST}"}
            ids |= {f"{a}@{LATEST}" for a, n in self._aliases.items() if n == entry.name}
            ids |= {a for a, n in self._aliases.items() if n == entry.name}
        return ids


def load_catalog(path: Path | None = None) -> Catalog:
    """The catalog from ``path`` or the packaged maas/data/catalog.toml."""
    where = str(path or "maas/data/catalog.toml")
    try:
        raw = Path(path).read_bytes() if path else (resources.files("maas") / "data" / "catalog.toml").read_bytes()
        data = tomllib.loads(raw.decode("utf-8"))
        return Catalog([CatalogEntry(**spec) for spec in data.get("models", [])])
    except CatalogError as exc:
        raise CatalogError(f"{where}: {exc}") from None
    except Exception as exc:
        raise CatalogError(f"invalid catalog {where}: {exc}") from exc


@cache
def default_catalog() -> Catalog:
    return load_catalog()


def resolve_served(model_id: str | None, manifest, catalog: Catalog | None = None, param: str = "model"):
    """Check that a request's model id names the package this function serves; 404 in the error shape if not.

    An id that resolves to another catalog entry, including another version of the same model, is answered with a
    404 that says which version is served here.
    """
    return resolve_among(model_id, [manifest], catalog, param)


def resolve_among(model_id: str | None, manifests: list, catalog: Catalog | None = None, param: str = "model"):
    """The one of ``manifests`` (the packages a function serves, the default first) that a request's model id
    names: `name` and `name@latest` mean the catalog's latest version, `name@version` pins one, aliases stand for
    the name. 404 in the error shape when the id is unknown or names a version not served here."""
    if model_id is None:
        return manifests[0]
    catalog = catalog or default_catalog()
    entry = catalog.resolve(model_id)
    if entry is None:
        raise NotFound(
            f"The model '{model_id}' does not exist or is not served here; see GET /v1/models.",
            code="model_not_found",
            param=param,
        )
    for manifest in manifests:
        if entry.name == manifest.name and entry.version == manifest.version:
            return manifest
    served = ", ".join(f"{m.name}@{m.version}" for m in manifests)
    raise NotFound(
        f"The model '{model_id}' ({entry.id}) is not served by this endpoint; it serves {served}.",
        code="model_not_found",
        param=param,
    )


def catalog_table(catalog: Catalog, models_dir: Path) -> str:
    """`maas models list`: one line per entry with its package's size and quality report, read from the built
    package's manifest under ``models_dir`` ("not built" when there is none or it names another version)."""
    from maas.inference.package import MANIFEST, read_manifest

    header = ("model", "task", "runtime", "memory", "unit", "size", "quality (vs fp32)", "made by")
    rows = [header]
    for e in catalog.entries:
        folder = Path(models_dir) / e.package_name
        size, quality = "not built", "-"
        if (folder / MANIFEST).is_file():
            try:
                manifest = read_manifest(folder)
            except Exception as exc:  # a listing must not crash on one broken package
                size, quality = "invalid manifest", type(exc).__name__
            else:
                size = f"{sum(f.size for f in manifest.files.values()) / 2**20:.1f} MB"
                q = manifest.quality
                quality = f"min cos {q.min_cosine:.4f}, mean {q.mean_cosine:.4f}" if q else "no report"
                if (manifest.name, manifest.version) != (e.name, e.version):
                    size += f" (package says {manifest.name}@{manifest.version})"
        tasks = "+".join((e.task, *e.tasks_also))
        name = e.id + (" (latest)" if catalog.latest(e.name) is e else "") + (" [placeholder]" if e.placeholder else "")
        rows.append((name, tasks, e.runtime, f"{e.memory_mb} MB", e.unit, size, quality, e.build or e.source or ""))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)
