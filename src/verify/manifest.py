"""Subject manifests: TOML files that say what is checked, on which weights, with which thresholds.

A manifest is parsed into plain frozen dataclasses. Every problem is reported as a ManifestError
naming the file and the field, e.g. `fixtures/subjects/x.toml: [saes.resid] hook: ...`.
The format is documented in README.md ("Subject manifests").
"""

from __future__ import annotations

import dataclasses
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

DOMAINS = ("othello", "culture")


class ManifestError(ValueError):
    """A manifest that cannot be used, with the file and field at fault in the message."""


@dataclass(frozen=True)
class ModelSpec:
    loader: str  # which checkpoint format (see verify.loaders.MODEL_LOADERS)
    weights: str  # local path (relative to the manifest) or hf://owner/repo/path[@revision]
    config: str = ""  # architecture file, for loaders whose weights carry none
    sha256: dict = field(default_factory=dict)  # {"weights": hex, "config": hex}


@dataclass(frozen=True)
class SAESpec:
    hook: str  # the model hook point the SAE reads and, when spliced, writes
    path: str  # folder with cfg.json + sae_weights.safetensors (sae_lens layout)
    loader: str = "sae_lens"
    sha256: dict = field(default_factory=dict)  # {file name in the folder: hex}


DATA_SOURCES = {"othello": ("othello-synthetic",), "culture": ("culture-synthetic", "culture-dataset")}


@dataclass(frozen=True)
class DataSpec:
    source: str  # one of DATA_SOURCES[domain]
    size: int  # games, or puzzles per task, in each split
    selection_seed: int = 0  # synthetic data: seed of the split used for discovery (choosing features, hooks)
    confirmation_seed: int = 1  # synthetic data: seed of the held-out split the claims are checked on
    path: str = ""  # culture-dataset: hf://datasets/owner/name, a save_to_disk folder or a parquet folder;
    #                 selection = rows [0, size) of each task split, confirmation = rows [size, 2 size)
    grid_height: int = 10  # culture: puzzle grid size
    grid_width: int = 10


@dataclass(frozen=True)
class Manifest:
    path: Path
    name: str
    domain: str
    description: str
    model: ModelSpec
    saes: Mapping[str, SAESpec]
    data: DataSpec
    claims: Mapping[str, Any]  # claim name -> its parameter dataclass (see verify.findings)
    training: Mapping[str, Any]  # provenance, free-form: how the weights were made

    @property
    def dir(self) -> Path:
        return self.path.parent

    def where(self, *fields: str) -> str:
        return f"{self.path}: " + " ".join(fields)


def parse_table(cls, table: Any, where: str):
    """Build dataclass `cls` from a TOML table, refusing unknown, missing and mistyped keys."""
    if not isinstance(table, dict):
        raise ManifestError(f"{where}: expected a table, got {type(table).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(table) - set(fields))
    if unknown:
        raise ManifestError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(fields)})")
    values = {}
    for name, f in fields.items():
        if name not in table:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ManifestError(f"{where}: missing key {name!r}")
            continue
        values[name] = _typed(table[name], hints[name], f"{where} {name}")
    try:
        return cls(**values)
    except ValueError as err:  # a parameter dataclass's own check (e.g. an unknown square)
        raise ManifestError(f"{where}: {err}") from None


def _typed(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint) or hint
    if origin is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if origin in (list, tuple) and isinstance(value, list):
        item = (typing.get_args(hint) or (Any,))[0]  # list[X] and tuple[X, ...]
        items = [v if item is Any else _typed(v, item, where) for v in value]
        return tuple(items) if origin is tuple else items
    if origin is Any or (isinstance(value, origin) and not (origin is int and isinstance(value, bool))):
        return value
    raise ManifestError(f"{where}: expected {getattr(origin, '__name__', origin)}, got {value!r}")


def load_manifest(path: Path, claim_schemas: Mapping[str, type]) -> Manifest:
    """Parse one manifest; `claim_schemas` maps each known claim name to its parameter dataclass."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: no such manifest file")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ManifestError(f"{path}: not valid TOML: {err}") from None
    known = {"name", "domain", "description", "model", "saes", "data", "claims", "training"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ManifestError(f"{path}: unknown key {unknown[0]!r} (known: {', '.join(sorted(known))})")
    for key in ("name", "domain", "model", "data"):
        if key not in raw:
            raise ManifestError(f"{path}: missing key {key!r}")
    if raw["domain"] not in DOMAINS:
        raise ManifestError(f"{path}: domain: {raw['domain']!r} is not one of {', '.join(DOMAINS)}")
    saes = {name: parse_table(SAESpec, t, f"{path}: [saes.{name}]") for name, t in raw.get("saes", {}).items()}
    data = parse_table(DataSpec, raw["data"], f"{path}: [data]")
    if data.source not in DATA_SOURCES[raw["domain"]]:
        raise ManifestError(f"{path}: [data] source: {data.source!r} is not a {raw['domain']} source ({', '.join(DATA_SOURCES[raw['domain']])})")
    if data.source == "culture-dataset" and not data.path:
        raise ManifestError(f"{path}: [data] path: a culture-dataset source needs the dataset's path")
    claims = {}
    for name, table in raw.get("claims", {}).items():
        if name not in claim_schemas:
            raise ManifestError(f"{path}: [claims.{name}]: unknown claim (known: {', '.join(sorted(claim_schemas))})")
        params = parse_table(claim_schemas[name], table, f"{path}: [claims.{name}]")
        sae = getattr(params, "sae", None)
        if sae is not None and sae not in saes:
            raise ManifestError(f"{path}: [claims.{name}] sae: {sae!r} is not declared under [saes] (declared: {', '.join(saes) or 'none'})")
        claims[name] = params
    return Manifest(
        path=path,
        name=_typed(raw["name"], str, f"{path}: name"),
        domain=raw["domain"],
        description=_typed(raw.get("description", ""), str, f"{path}: description"),
        model=parse_table(ModelSpec, raw["model"], f"{path}: [model]"),
        saes=saes,
        data=data,
        claims=claims,
        training=raw.get("training", {}),
    )
