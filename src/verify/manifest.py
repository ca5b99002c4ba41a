"""Subject manifests: TOML files that say what is checked, on which weights, with which thresholds.

A manifest is parsed into plain frozen dataclasses. Every problem is reported as a ManifestError
naming the file and the field, e.g. `fixtures/subjects/x.toml: [saes.resid] hook: ...`.
The format is documented in README.md ("Subject manifests").
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import re
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping


class ManifestError(ValueError):
    """A manifest that cannot be used, with the file and field at fault in the message: always one
    line (a newline in a user's key or value is shown escaped)."""

    def __init__(self, message: str) -> None:
        super().__init__(message.replace("\r", "\\r").replace("\n", "\\n"))


@dataclass(frozen=True)
class ModelSpec:
    loader: str = ""  # which checkpoint format (see verify.loaders.MODEL_FORMATS); "pretrained" when `name` is given
    weights: str = ""  # local path (relative to the manifest) or hf://owner/repo/path[@revision]
    name: str = ""  # a TransformerLens pretrained model (official name or alias), read from the Hugging Face cache
    revision: str = ""  # with `name`: the hub repo's branch, tag or commit
    processed: bool = False  # with `name`: TransformerLens' from_pretrained processing (what SAEs trained on it read)
    config: str = ""  # architecture file, for loaders whose weights carry none
    sha256: dict = field(default_factory=dict)  # {"weights": hex, "config": hex}
    api: str = "hooked"  # the TransformerLens API the claims run on: "hooked" (HookedTransformer) or "bridge" (TransformerBridge)


@dataclass(frozen=True)
class SAESpec:
    hook: str  # the model hook point the SAE reads and, when spliced, writes
    path: str = ""  # folder with cfg.json + sae_weights.safetensors (sae_lens layout); from `release` when given
    loader: str = "sae_lens"
    release: str = ""  # an SAELens pretrained release (its registry gives the hub folder), with sae_id
    sae_id: str = ""
    sha256: dict = field(default_factory=dict)  # {file name in the folder, or the file's own name: hex}
    # fidelity floors (verify.fidelity), required by every claim that reads this SAE
    min_explained_variance: float | None = None
    min_loss_recovered: float | None = None


@dataclass(frozen=True)
class DataSpec:
    source: str  # a data source registered by the subject's domain (verify.registry)
    size: int  # games, or puzzles per task, in each split
    selection_seed: int = 0  # synthetic data: seed of the split used for discovery (choosing features, hooks)
    confirmation_seed: int = 1  # synthetic data: seed of the held-out split the claims are checked on
    path: str = ""  # data on disk or the hub, for sources that read it (e.g. culture-dataset)
    options: Any = None  # the source's own keys (its registered `options` dataclass), e.g. a puzzle grid

    def seed(self, split: str) -> int:
        return {"selection": self.selection_seed, "confirmation": self.confirmation_seed}[split]


@dataclass(frozen=True)
class Manifest:
    path: Path
    name: str
    domain: str
    description: str
    model: ModelSpec
    saes: Mapping[str, SAESpec]
    data: DataSpec
    # claim name -> its [claims.NAME] table, as written, less RESERVED_CLAIM_KEYS; a claim declared several
    # times is keyed "NAME.INSTANCE" per [claims.NAME.INSTANCE] table (so are claims, max_drift, expected_absent)
    claim_tables: Mapping[str, dict]
    claims: Mapping[str, Any]  # claim name -> its parameter dataclass, for the claims resolved so far
    training: Mapping[str, Any]  # provenance, free-form: how the weights were made
    # claim name -> the largest change of its judged values between two runs that a drift gate
    # accepts (the reserved key max_drift of [claims.NAME]); claims that declare none are absent
    max_drift: Mapping[str, float] = field(default_factory=dict)
    # claim name -> why the finding is expected NOT to hold on this subject (the reserved keys
    # expect = "absent" and expect_reason of [claims.NAME]): measured with its real bounds, an
    # expected failure when it does not hold, a failed test when it does
    expected_absent: Mapping[str, str] = field(default_factory=dict)

    @property
    def dir(self) -> Path:
        return self.path.parent

    def where(self, *fields: str) -> str:
        return f"{self.path}: " + " ".join(fields)


def parse_table(cls, table: Any, where: str, extra: type | None = None):
    """Build dataclass `cls` from a TOML table, refusing unknown, missing and mistyped keys.
    With `extra`, keys that `cls` does not know are parsed into that dataclass and returned too."""
    if not isinstance(table, dict):
        raise ManifestError(f"{where}: expected a table, got {type(table).__name__}")
    fields = {f.name for f in dataclasses.fields(cls)}
    rest = {k: v for k, v in table.items() if k not in fields}
    if extra is None:
        return _build(cls, table, where)
    return _build(cls, {k: v for k, v in table.items() if k in fields}, where, known=[*fields, *_names(extra)]), \
        _build(extra, rest, where, known=[*fields, *_names(extra)])


def _names(cls) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def _build(cls, table: dict, where: str, known: list[str] | None = None):
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(table) - set(fields))
    if unknown:
        raise ManifestError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(known or fields)})")
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
    args = typing.get_args(hint)
    if type(None) in args:  # X | None: a TOML file has no null, so a given value is an X
        hint = next(a for a in args if a is not type(None))
    origin = typing.get_origin(hint) or hint
    if origin is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if origin is dict and isinstance(value, dict):
        key, item = typing.get_args(hint) or (Any, Any)
        return {_typed(k, key, where): _typed(v, item, f"{where}.{k}") for k, v in value.items()}
    if origin in (list, tuple) and isinstance(value, list):
        item = (typing.get_args(hint) or (Any,))[0]  # list[X] and tuple[X, ...]
        items = [v if item is Any else _typed(v, item, where) for v in value]
        return tuple(items) if origin is tuple else items
    if origin is Any or (isinstance(value, origin) and not (origin is int and isinstance(value, bool))):
        return value
    raise ManifestError(f"{where}: expected {getattr(origin, '__name__', origin)}, got {value!r}")


def load_manifest(path: Path) -> Manifest:
    """Parse one manifest's structure, with the tables of the manifests it `extends` under its own.
    Claim tables are kept as written (less the reserved keys): `parse_claim` turns one into its parameters
    once the claim is registered (a claim may be defined by a test module)."""
    from verify import registry

    path = Path(path)
    raw = _raw_tables(path, ())
    for key in ("name", "domain", "model", "data"):
        if key not in raw:
            raise ManifestError(f"{path}: missing key {key!r}")
    domains = registry.domains()
    if not isinstance(raw["domain"], str) or raw["domain"] not in domains:
        raise ManifestError(f"{path}: domain: {raw['domain']!r} is not one of {', '.join(domains)}")
    for group in ("saes", "claims"):
        odd = [k for k in raw.get(group, {}) if not _BARE_KEY.match(k)] if isinstance(raw.get(group), dict) else []
        if odd:
            raise ManifestError(f"{path}: [{group}.{odd[0]!r}]: a {group[:-1]} name must be letters, digits, '_' or '-'")
    if not isinstance(raw.get("saes", {}), dict):
        raise ManifestError(f"{path}: saes: expected [saes.NAME] tables, got {type(raw['saes']).__name__}")
    for group, most in (("saes", MAX_SAES), ("claims", MAX_CLAIMS)):
        if isinstance(raw.get(group), dict) and len(raw[group]) > most:
            raise ManifestError(f"{path}: {group}: {len(raw[group])} [{group}.NAME] tables; at most {most} are read")
    saes = {name: _release(parse_table(SAESpec, t, f"{path}: [saes.{name}]"), f"{path}: [saes.{name}]")
            for name, t in raw.get("saes", {}).items()}
    for name, spec in saes.items():
        for floor in ("min_explained_variance", "min_loss_recovered"):
            value = getattr(spec, floor)
            if value is not None and not math.isfinite(value):
                raise ManifestError(f"{path}: [saes.{name}] {floor}: {value} is not a floor (a finite number is; -inf would let any SAE pass)")
    model = _pretrained(parse_table(ModelSpec, raw["model"], f"{path}: [model]"), f"{path}: [model]")
    if model.api not in MODEL_APIS:
        raise ManifestError(f"{path}: [model] api: {model.api!r} is not one of {', '.join(map(repr, MODEL_APIS))}")
    for where, source in [("[model] weights", model.weights), ("[model] config", model.config),
                          *((f"[saes.{n}] path", s.path) for n, s in saes.items())]:
        _check_source(source, f"{path}: {where}")
    for where, pins in [("[model]", model.sha256), *((f"[saes.{n}]", s.sha256) for n, s in saes.items())]:
        bad = [k for k, v in pins.items() if not (isinstance(v, str) and _SHA256.match(v))]
        if bad:
            raise ManifestError(f"{path}: {where} sha256[{bad[0]!r}]: {pins[bad[0]]!r} is not a sha256 digest (64 hex digits)")
    data = _data(raw["data"], raw["domain"], path)
    tables = raw.get("claims", {})
    if not isinstance(tables, dict) or not all(isinstance(t, dict) for t in tables.values()):
        raise ManifestError(f"{path}: claims: expected [claims.NAME] tables")
    tables = _named_instances(tables, path)
    max_drift = {name: _max_drift(t["max_drift"], f"{path}: [claims.{name}] max_drift") for name, t in tables.items() if "max_drift" in t}
    expected_absent = {name: reason for name, t in tables.items()
                       if (reason := _expect(t, f"{path}: [claims.{name}]")) is not None}
    return Manifest(
        path=path,
        name=_typed(raw["name"], str, f"{path}: name"),
        domain=raw["domain"],
        description=_typed(raw.get("description", ""), str, f"{path}: description"),
        model=model,
        saes=saes,
        data=data,
        claim_tables={name: {k: v for k, v in t.items() if k not in RESERVED_CLAIM_KEYS} for name, t in tables.items()},
        claims={},
        training=raw.get("training", {}),
        max_drift=max_drift,
        expected_absent=expected_absent,
    )


def _named_instances(tables: dict, path: Path) -> dict:
    """Claim tables keyed by "NAME" or, for a claim declared several times, "NAME.INSTANCE": a
    [claims.NAME] table whose values are all tables ([claims.NAME.INSTANCE]) holds named instances."""
    out = {}
    for name, table in tables.items():
        if not (table and all(isinstance(v, dict) for v in table.values())):
            out[name] = table
            continue
        for instance, inner in table.items():
            if not _BARE_KEY.match(instance):
                raise ManifestError(f"{path}: [claims.{name}.{instance!r}]: an instance name must be letters, digits, '_' or '-'")
            out[f"{name}.{instance}"] = inner
    return out


def claim_name(key: str) -> str:
    """The registered claim a claim table key names ("attention_pattern.induction_1_0" -> "attention_pattern")."""
    return key.split(".", 1)[0]


def _release(spec: SAESpec, where: str) -> SAESpec:
    """An SAE named by an SAELens release and sae_id, with `path` the hub folder SAELens' registry gives."""
    from verify import loaders

    if not spec.release:
        if spec.sae_id:
            raise ManifestError(f"{where} sae_id: an sae_id goes with `release`")
        if not spec.path:
            raise ManifestError(f"{where}: missing key 'path' (or `release` and `sae_id` for an SAELens pretrained SAE)")
        return spec
    if spec.path:
        raise ManifestError(f"{where} path: an SAELens release's files follow from release and sae_id; give one or the other")
    if not spec.sae_id:
        raise ManifestError(f"{where}: missing key 'sae_id' (a release holds many SAEs)")
    if spec.loader != "sae_lens":
        raise ManifestError(f"{where} loader: a release is read by the 'sae_lens' loader, not {spec.loader!r}")
    try:
        return dataclasses.replace(spec, path=loaders.sae_release.source(spec.release, spec.sae_id))
    except loaders.CheckpointError as err:
        raise ManifestError(f"{where} release: {err}") from None


def _pretrained(model: ModelSpec, where: str) -> ModelSpec:
    """A model named by `name` is the "pretrained" loader's, whose files follow from the name."""
    if not model.name:
        if not model.loader:
            raise ManifestError(f"{where}: missing key 'loader' (or `name` for a TransformerLens pretrained model)")
        if model.revision:
            raise ManifestError(f"{where} revision: a revision goes with `name` (a hub file's is written in its hf:// source)")
        if model.processed:
            raise ManifestError(f"{where} processed: goes with `name` (other loaders read the weights exactly as saved)")
        return model
    if model.loader not in ("", "pretrained"):
        raise ManifestError(f"{where} name: a pretrained model is read by the 'pretrained' loader, not {model.loader!r}")
    given = [key for key in ("weights", "config") if getattr(model, key)]
    if given:
        raise ManifestError(f"{where} {given[0]}: a pretrained model's files follow from its name; give `name` or `{given[0]}`, not both")
    return dataclasses.replace(model, loader="pretrained")


MODEL_APIS = ("hooked", "bridge")
TOP_KEYS = {"extends", "name", "domain", "description", "model", "saes", "data", "claims", "training"}
# bounds on what one manifest may hold: far above any real subject, low enough that checking a
# manifest takes a moment, not minutes
MAX_MANIFEST_BYTES = 4 << 20
MAX_DEPTH = 32  # nesting of arrays and tables (the deepest shipped manifest has 4)
MAX_CLAIMS = 1000  # [claims.NAME] tables
MAX_SAES = 64  # [saes.NAME] tables
MAX_SIZE = 10**6  # [data] size: games, or puzzles per task, in each split
SEED_LIMIT = 2**32  # seeds are in [0, 2**32), what numpy's and torch's generators take


def _depth(value: Any) -> int:
    """How deeply arrays and tables nest in value (iterative: a deep value must not exhaust the stack)."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if deepest > MAX_DEPTH:
            break
        if isinstance(item, dict):
            stack.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, level + 1) for v in item)
    return deepest
# the manifests in one `extends` chain, the subject's own included: deeper is a tangle, not a design
MAX_CHAIN = 4


def _read_toml(path: Path) -> dict:
    """One manifest file's own tables, its top-level keys checked."""
    if not path.is_file():  # a FIFO or device is no manifest either: is_file() is true for regular files only
        raise ManifestError(f"{path}: no such manifest file")
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_MANIFEST_BYTES + 1)
        if len(data) > MAX_MANIFEST_BYTES:
            raise ManifestError(f"{path}: larger than {MAX_MANIFEST_BYTES} bytes: not a manifest")
        raw = tomllib.loads(data.decode("utf-8"))
    except OSError as err:
        raise ManifestError(f"{path}: cannot be read ({err.strerror})") from None
    except UnicodeDecodeError as err:
        raise ManifestError(f"{path}: not UTF-8 text (byte {err.start}); TOML files are UTF-8") from None
    except tomllib.TOMLDecodeError as err:
        raise ManifestError(f"{path}: not valid TOML: {err}") from None
    except RecursionError:
        raise ManifestError(f"{path}: arrays or tables nested too deeply to read (maximum recursion depth exceeded)") from None
    if _depth(raw) > MAX_DEPTH:
        raise ManifestError(f"{path}: arrays or tables nested more than {MAX_DEPTH} deep; a manifest needs a few levels")
    unknown = sorted(set(raw) - TOP_KEYS)
    if unknown:
        raise ManifestError(f"{path}: unknown key {unknown[0]!r} (known: {', '.join(sorted(TOP_KEYS))})")
    return raw


def _raw_tables(path: Path, chain: tuple[Path, ...]) -> dict:
    """The manifest's tables merged over those of the manifest it extends (recursively); `chain`:
    the manifests that extend this one, nearest last, to refuse a cycle and a chain too deep."""
    raw = _read_toml(path)
    if "extends" not in raw:
        return raw
    ref = raw.pop("extends")
    if not isinstance(ref, str):
        raise ManifestError(f"{path}: extends: expected the path of a manifest (a string), got {ref!r}")
    if "name" not in raw:  # an inherited name would make two subjects of one name
        raise ManifestError(f"{path}: name: a manifest that extends another must give its own name")
    parent = path.parent / ref
    try:
        found = parent.is_file()
    except OSError:  # a name the file system refuses (too long)
        found = False
    if not found:
        raise ManifestError(f"{path}: extends: no such manifest file {parent}")
    chain = (*chain, path.resolve())
    if parent.resolve() in chain:
        raise ManifestError(f"{path}: extends: {parent} is already in the chain " + " -> ".join(map(str, chain)) + ": a cycle")
    if len(chain) >= MAX_CHAIN:
        raise ManifestError(f"{path}: extends: {parent} would make a chain of more than {MAX_CHAIN} manifests")
    base = _rebased(_raw_tables(parent, chain), parent.parent, path.parent)
    _check_pins(raw, base, path, parent)
    return _merged(base, raw)


def _rebased(raw: dict, parent_dir: Path, child_dir: Path) -> dict:
    """raw with the local relative paths the verifier reads (model files, SAE folders, data) taken
    from parent_dir rewritten relative to child_dir, so they still name the parent's files.
    ([training] is free-form provenance: its values are kept as written.)"""
    from verify import sources

    def moved(source: Any) -> Any:
        if not isinstance(source, str) or not source or sources.is_remote(source) or Path(source).is_absolute():
            return source
        # joined as text: a path that names nothing (yet) is the file check's to report, in its words
        return os.path.relpath(os.path.normpath(parent_dir.resolve() / source), child_dir.resolve())

    raw = copy.deepcopy(raw)
    tables = [(raw.get("model"), ("weights", "config")), (raw.get("data"), ("path", "tokenizer")),
              *((sae, ("path",)) for sae in (raw["saes"].values() if isinstance(raw.get("saes"), dict) else ()))]
    for table, keys in tables:
        if isinstance(table, dict):
            table.update({key: moved(table[key]) for key in keys if key in table})
    return raw


def _check_pins(child: dict, base: dict, path: Path, parent: Path) -> None:
    """A file the child moves must be pinned again: an inherited sha256 is the hash of the parent's file."""
    pairs = [("[model]", child.get("model"), base.get("model"))]
    if isinstance(child.get("saes"), dict) and isinstance(base.get("saes"), dict):
        pairs += [(f"[saes.{name}]", own, base["saes"].get(name)) for name, own in child["saes"].items()]
    for table, own, inherited in pairs:
        if not (isinstance(own, dict) and isinstance(inherited, dict)):
            continue
        own_pins, base_pins = own.get("sha256", {}), inherited.get("sha256", {})
        if not (isinstance(own_pins, dict) and isinstance(base_pins, dict)):
            continue
        # the model's pins are keyed by the key naming the file (weights, config); an SAE's by the
        # names of its files, which all move with its `path` (paths compare as both rebased)
        if table == "[model]":
            moved = [k for k in base_pins if own.get(k, inherited.get(k)) != inherited.get(k)]
        else:
            moved = list(base_pins) if own.get("path", inherited.get("path")) != inherited.get("path") else []
        stale = [k for k in moved if k not in own_pins]
        if stale:
            raise ManifestError(f"{path}: {table} sha256[{stale[0]!r}]: the pin inherited from {parent} is the hash of its file, "
                                "and this manifest names another: give the new file's sha256 here")


def _merged(base: Any, own: Any) -> Any:
    """own over base: tables merge key by key (a sha256 table too), any other value replaces."""
    if not (isinstance(base, dict) and isinstance(own, dict)):
        return own
    return {**base, **{key: _merged(base.get(key), value) for key, value in own.items()}}


RESERVED_CLAIM_KEYS = ("max_drift", "expect", "expect_reason")


def _expect(table: dict, where: str) -> str | None:
    """The reason where the table declares its finding absent (expect = "absent"), else None.
    `expect = "present"` (the default) undoes an absent declared by an extended manifest."""
    expect, reason = table.get("expect"), table.get("expect_reason")
    if expect is None:
        if reason is not None:
            raise ManifestError(f"{where} expect_reason: given without expect = \"absent\"")
        return None
    if expect not in ("absent", "present"):
        raise ManifestError(f"{where} expect: {expect!r} must be \"absent\" or \"present\"")
    if reason is not None and not isinstance(reason, str):
        raise ManifestError(f"{where} expect_reason: expected a string, got {reason!r}")
    if expect == "present":
        return None
    if not (reason or "").strip():
        raise ManifestError(f"{where} expect_reason: expect = \"absent\" needs the reason the finding is not expected here")
    return reason.strip()


def _max_drift(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ManifestError(f"{where}: {value!r} must be a finite number >= 0 (the largest change between two runs a drift gate accepts)")
    return float(value)


def _data(table: Any, domain: str, path: Path) -> DataSpec:
    from verify import registry

    where = f"{path}: [data]"
    if not isinstance(table, dict):
        raise ManifestError(f"{where}: expected a table, got {type(table).__name__}")
    ours = {n: s for n, s in registry.sources().items() if s.domain == domain}
    source = ours.get(table.get("source")) if isinstance(table.get("source"), str) else None
    if source is None:
        raise ManifestError(f"{where} source: {table.get('source')!r} is not a {domain} source ({', '.join(ours)})")
    if source.options is None:
        data = parse_table(DataSpec, table, where)
    else:
        data, options = parse_table(DataSpec, table, where, extra=source.options)
        data = dataclasses.replace(data, options=options)
    if source.needs_path and not data.path:
        raise ManifestError(f"{where} path: a {source.name} source needs the data's path")
    _check_source(data.path, f"{where} path")
    if not 0 < data.size <= MAX_SIZE:
        raise ManifestError(f"{where} size: {data.size} (games, or puzzles per task, in each split) must be > 0 and <= {MAX_SIZE}")
    for key in ("selection_seed", "confirmation_seed"):
        if not 0 <= getattr(data, key) < SEED_LIMIT:
            raise ManifestError(f"{where} {key}: {getattr(data, key)} must be in [0, 2**32)")
    if not source.needs_path and data.selection_seed == data.confirmation_seed:
        raise ManifestError(f"{where} confirmation_seed: equals selection_seed ({data.selection_seed}): "
                            "the held-out split would be the selection split")
    return data


_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _check_source(source: str, where: str) -> None:
    from verify import sources

    try:
        sources.check_source(source)
    except ValueError as err:
        raise ManifestError(f"{where}: {err}") from None


def parse_claim(m: Manifest, claim, key: str | None = None) -> Any:
    """The parameters of `claim` (a registered verify.registry.Claim) from m's [claims.NAME] table, or
    from its named instance `key` ("NAME.INSTANCE")."""
    key = claim.name if key is None else key
    where = f"{m.path}: [claims.{key}]"
    if claim.domain != m.domain:
        raise ManifestError(f"{where}: {claim.name} is a {claim.domain} claim; this subject's domain is {m.domain}")
    return parse_table(claim.params, m.claim_tables[key], where)
