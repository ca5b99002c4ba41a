"""Subjects: a manifest's model + SAEs + data, checked before loading and loaded lazily, once a session.

This module knows no domain and no checkpoint format by name: formats come from verify.loaders,
data sources and claims from verify.registry. A manifest is checked in two steps, both before any
weights are read: its files and architecture (`check_files`: hook points from the model's config,
kept on disk by verify.skeletons, SAE widths from theirs), then its claim tables against the registered claims (`resolve_claims`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from verify import registry, skeletons, sources, timing
from verify.manifest import Manifest, ManifestError, claim_name, load_manifest, parse_claim
from verify.params import SAEShape, Shape, check_params, check_values, vacuous_bounds


def manifest_paths(folder: Path) -> list[Path]:
    """The *.toml manifests of a subjects folder, sorted."""
    return sorted(Path(folder).glob("*.toml"))


def read_manifest(path: Path, strict: bool = True) -> Manifest:
    """Parse and check a manifest against whatever of its files is local, and resolve its claims.
    `strict`: a claim table that no registered claim matches is an error (else left unresolved)."""
    manifest = load_manifest(path)
    return resolve_claims(manifest, check_files(manifest), strict)


def read_structure(path: Path) -> Manifest:
    """A manifest's model, SAEs and data, checked, with its claims left unresolved: what a tool that
    (re)writes the claims loads (the claims it replaces need not be valid)."""
    manifest = load_manifest(path)
    check_files(manifest)
    return manifest


def check_files(m: Manifest) -> Shape:
    """Local files exist, loaders are known, SAE hooks exist in the model and fit its widths.
    Returns what is known of the subject's shape without its weights."""
    from verify import loaders  # here, as in load_subject: a session without manifests imports no torch
    from verify.loaders import bridge

    fmt = loaders.MODEL_FORMATS.get(m.model.loader)
    if fmt is None:
        raise ManifestError(f"{m.where('[model] loader')}: unknown loader {m.model.loader!r} (known: {', '.join(loaders.MODEL_FORMATS)})")
    unknown = sorted(set(m.model.sha256) - set(fmt.files))
    if unknown:
        raise ManifestError(f"{m.where('[model] sha256')}: unknown key {unknown[0]!r}: the {m.model.loader} loader reads "
                            f"{', '.join(fmt.files)}, and only those can be pinned")
    files: dict[str, Path | None] = {}
    keys = {key: getattr(m.model, key) for key in fmt.keys}
    if fmt.resolve is not None:  # the files follow from the [model] keys: those in the local cache, nothing fetched
        try:
            files = fmt.resolve(**keys, fetch=False)
        except loaders.CheckpointError as err:
            raise ManifestError(f"{m.where('[model]', fmt.keys[0])}: {err}") from None
    for key in fmt.files:
        source = getattr(m.model, key)
        if not source:
            if key in files:  # found in the folder `weights` names, or from the name
                continue
            raise ManifestError(f"{m.where('[model]')}: missing key {key!r} (the {m.model.loader} loader reads it)")
        files[key] = sources.cached(source) if sources.is_remote(source) else sources.local_path(source, m.dir)
        if files[key] is not None and not files[key].exists():
            raise ManifestError(f"{m.where('[model]', key)}: file {files[key]} does not exist")
        if files[key] is not None and files[key].is_dir() and fmt.folder is not None:
            try:
                files.update({k: v for k, v in fmt.folder(files[key]).items() if k == key or not getattr(m.model, k)})
            except loaders.CheckpointError as err:
                raise ManifestError(f"{m.where('[model]', key)}: {err}") from None
        if files[key] is not None:
            try:
                sources.check_regular_file(files[key])
            except ValueError as err:
                raise ManifestError(f"{m.where('[model]', key)}: {err}") from None
    def build():
        with bridge.building(m.model.api):
            return fmt.skeleton(files, **keys)

    try:
        found = skeletons.skeleton_record(m.model.loader, m.model.api, keys, files, build)
    except loaders.CheckpointError as err:
        raise ManifestError(f"{m.where('[model]')}: {err}") from None
    if found["bridge_problem"] is not None:
        raise ManifestError(f"{m.where('[model] api')}: 'bridge' cannot run this model: {found['bridge_problem']}")
    hook_shapes = None if found["hooks"] is None else {name: tuple(shape) for name, shape in found["hooks"].items()}
    saes = {}
    for name, spec in m.saes.items():
        where = m.where(f"[saes.{name}]")
        sae_format = loaders.SAE_FORMATS.get(spec.loader)
        if sae_format is None:
            raise ManifestError(f"{where} loader: unknown loader {spec.loader!r} (known: {', '.join(loaders.SAE_FORMATS)})")
        saes[name] = SAEShape(spec.hook, None, None)
        if hook_shapes is not None and spec.hook not in hook_shapes:
            raise ManifestError(f"{where} hook: the model has no hook point {spec.hook!r}")
        path = sources.cached(spec.path) if sources.is_remote(spec.path) else sources.local_path(spec.path, m.dir)
        if path is None:  # not here yet: checked when it is fetched
            continue
        if not path.exists():
            raise ManifestError(f"{where} path: {path} does not exist")
        for file_name in spec.sha256:
            if pinned_file(path, file_name) is None:
                raise ManifestError(f"{where} sha256: unknown key {file_name!r}: " + (
                    "a key is the bare name of a file of the SAE, not a path" if Path(file_name).name != file_name or "\\" in file_name
                    else f"no file {file_name!r} in folder {path}" if path.is_dir() else f"the SAE is the single file {path.name!r}"))
        try:
            saes[name] = found = sae_format.shape(path)
        except loaders.CheckpointError as err:
            raise ManifestError(f"{where} path: {err}") from None
        if found.hook not in (None, "", spec.hook):
            raise ManifestError(f"{where} hook: the manifest says {spec.hook!r} but the SAE's config says {found.hook!r}")
        saes[name] = dataclasses.replace(found, hook=spec.hook)
        width = None if hook_shapes is None else hook_shapes[spec.hook][-1]
        if width is not None and found.d_in != width:
            raise ManifestError(f"{where}: SAE d_in {found.d_in} does not match the width {width} of hook {spec.hook!r}")
    return Shape(hook_shapes, saes)


def pinned_file(path: Path, name: str) -> Path | None:
    """The file a sha256 key names: a file in an SAE folder, or the SAE file itself (by its name).
    A key is a bare file name: a path (`../x`, `/etc/x`, `sub/x`) would pin a file outside the SAE."""
    if name in ("", ".", "..") or Path(name).name != name or "\\" in name:
        return None
    if path.is_dir():
        return path / name if (path / name).is_file() else None
    return path if path.name == name else None


def resolve_claims(m: Manifest, shape: Shape, strict: bool) -> Manifest:
    """m with the parameters of every claim table whose claim is registered, each checked against
    the subject's shape (hooks, SAE names, feature and neuron indices)."""
    claims = dict(m.claims)
    unknown = {name: None for name in m.claim_tables if registry.get_claim(claim_name(name)) is None}  # a dict: ordered, O(1) lookups
    if strict and unknown:  # first: a misspelt table name explains the errors it would cause elsewhere
        raise ManifestError(f"{m.where(f'[claims.{next(iter(unknown))}]')}: unknown claim (registered: {', '.join(sorted(registry.claims()))}); "
                            "a claim is registered by verify.register_claim in a conftest.py, a collected test module, "
                            "or a package's `verify.claims` entry point")
    for name in m.claim_tables:
        if name in claims or name in unknown:
            continue
        claim = registry.get_claim(claim_name(name))
        params = parse_claim(m, claim, name)
        where = m.where(f"[claims.{name}]")
        problems = (check_values(params, where) + vacuous_bounds(m.claim_tables[name], where) + check_params(params, shape, where)
                    + missing_foundations(m, claim, params))
        if problems:
            raise ManifestError(problems[0])
        claims[name] = params
    return dataclasses.replace(m, claims=claims)


def missing_foundations(m: Manifest, claim, params) -> list[str]:
    """What a claim rests on that the manifest does not declare: the claims named in `rests_on`, and
    the fidelity floors of every SAE the claim reads."""
    where = m.where(f"[claims.{claim.name}]")
    problems = [f"{where}: {claim.name} rests on {need}, which this manifest does not declare ([claims.{need}])"
                for need in claim.rests_on if not any(claim_name(key) == need for key in m.claim_tables)]
    for sae in sae_fields(params):
        spec = m.saes.get(sae)
        for floor in ("min_explained_variance", "min_loss_recovered"):
            if spec is not None and getattr(spec, floor) is None:
                problems.append(f"{m.where(f'[saes.{sae}]')} {floor}: claim {claim.name} reads this SAE, so its fidelity floor must be declared")
    return problems


def sae_fields(params) -> list[str]:
    from verify.params import SAERef, kinds

    return [getattr(params, name) for name, kind in kinds(type(params)).items() if isinstance(kind, SAERef)]


@dataclass
class Subject:
    """A loaded subject. Data that depends on the seeds only (games, puzzles) lives in `data_cache`,
    which copies of the subject with other weights share; results that depend on the weights
    (activations, clean verdicts) live in `results`, which is the subject's own."""

    manifest: Manifest
    model: Any  # transformer_lens.HookedTransformer
    saes: dict[str, Any]  # name -> sae_lens SAE
    device: str
    data_cache: dict = field(default_factory=dict)
    results: dict = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)  # what was read to load it: role -> local path

    @property
    def name(self) -> str:
        return self.manifest.name

    def data(self, key: Any, make):
        """Seed-only data, made once for every subject that shares this data spec and cache."""
        key = (self.manifest.data, key)
        if key not in self.data_cache:
            self.data_cache[key] = make()
        return self.data_cache[key]

    def cached(self, key: Any, make):
        """A result of this subject's weights, computed once."""
        if key not in self.results:
            self.results[key] = make()
        return self.results[key]

    def with_weights(self, model=None, saes=None) -> Subject:
        """A copy with other weights (a mutated or random model, another SAE): it shares the data
        and recomputes every weight-dependent result."""
        return Subject(self.manifest, self.model if model is None else model,
                       dict(self.saes) if saes is None else saes, self.device, self.data_cache)


def model_files(m: Manifest, fmt) -> dict[str, Path]:
    """The model's files by key, fetched; a folder named by `weights` gives the keys the manifest leaves out."""
    if fmt.resolve is not None:  # SourceUnavailable when not cached and offline
        return fmt.resolve(**{key: getattr(m.model, key) for key in fmt.keys}, fetch=True)
    files: dict[str, Path] = {}
    for key in fmt.files:
        if getattr(m.model, key):
            files[key] = sources.fetch(getattr(m.model, key), m.dir)
            if files[key].is_dir() and fmt.folder is not None:
                files.update({k: v for k, v in fmt.folder(files[key]).items() if k == key or not getattr(m.model, k)})
    return files


@timing.stage("load")
def load_subject(m: Manifest, device: str, data_cache: dict | None = None, fused_forward: bool | None = None) -> Subject:
    """Fetch, hash-check and load the model and SAEs. Raises SourceUnavailable when offline.
    `fused_forward`: give the model verify.fused's forward (None: as $VERIFY_FUSED says, default on)."""
    from verify import fused, hooks, loaders
    from verify.loaders import bridge

    spec = m.model
    fmt = loaders.MODEL_FORMATS[spec.loader]
    files = model_files(m, fmt)
    for key, path in files.items():
        sources.check_sha256(path, spec.sha256.get(key))
    # a verifier never trains: frozen weights build no autograd graph (without switching off
    # gradients process-wide, which would break a trainer running in the same process)
    with bridge.building(spec.api):
        model = fmt.load(device=device, **files, **{key: getattr(spec, key) for key in fmt.keys}).requires_grad_(False)
    if (fused.wanted() if fused_forward is None else fused_forward):
        fused.install(model)  # the same numbers to float rounding, TransformerLens' code wherever a hook needs it
    if spec.api == "bridge":  # the loaders read into a HookedTransformer; the claims run on a TransformerBridge of it
        model = bridge.to_bridge(model)
    widths = {name: shape[-1] for name, shape in hooks.hook_shapes(model).items()}
    saes = {}
    read = {f"model {key}": path for key, path in files.items()}
    for name, sae_spec in m.saes.items():
        path = sources.fetch(sae_spec.path, m.dir)
        read.update({f"sae {name}: {p.name}": p for p in (sorted(path.iterdir()) if path.is_dir() else [path]) if p.is_file()})
        for file_name, digest in sae_spec.sha256.items():
            pinned = pinned_file(path, file_name)
            if pinned is None:
                raise loaders.CheckpointError(f"{m.where(f'[saes.{name}] sha256')}: {file_name!r} is not a file of {path}")
            sources.check_sha256(pinned, digest)
        saes[name] = loaders.SAE_FORMATS[sae_spec.loader].load(path, device).requires_grad_(False)
        if widths.get(sae_spec.hook) != saes[name].cfg.d_in:
            raise loaders.CheckpointError(f"{m.where(f'[saes.{name}]')}: SAE d_in {saes[name].cfg.d_in} does not match "
                                          f"the width {widths.get(sae_spec.hook)} of hook {sae_spec.hook!r}")
    subject = Subject(m, model, saes, device, {} if data_cache is None else data_cache, files=read)
    source = registry.sources()[m.data.source]
    if source.open is not None:  # open it now, so data that is not available skips like a model
        subject.data("opened", lambda: source.open(m))
    if source.files is not None:
        subject.files.update({f"data: {p.name}": p for p in source.files(m)})
    return subject


class SubjectSet:
    """The manifests of one pytest session, by name; each subject is loaded on first request.
    Subjects with the same data spec share their games and puzzles."""

    def __init__(self, paths: Iterable[Path], device: str, fused_forward: bool | None = None) -> None:
        self.device = device
        self.fused_forward = fused_forward
        self.manifests: dict[str, Manifest] = {}
        self.shapes: dict[str, Shape] = {}
        for path in paths:
            manifest = load_manifest(path)
            if manifest.name in self.manifests:
                raise ManifestError(f"{path}: subject name {manifest.name!r} is already used by {self.manifests[manifest.name].path}; give the copy its own name")
            self.shapes[manifest.name] = check_files(manifest)
            self.manifests[manifest.name] = resolve_claims(manifest, self.shapes[manifest.name], strict=False)
        self.data_cache: dict = {}
        self._loaded: dict[str, Subject | Exception] = {}

    def select(self, names: list[str]) -> None:
        unknown = [n for n in names if n not in self.manifests]
        if unknown:
            raise ManifestError(f"unknown subject {unknown[0]!r} (known: {', '.join(sorted(self.manifests)) or 'none'})")
        if names:
            self.manifests = {n: self.manifests[n] for n in names}

    def shard(self, k: int, n: int) -> None:
        """Keep the k-th of n shards (1-based) of the subjects sorted by name: whole subjects, so
        each CI job loads its own and the parts of the ledger never overlap."""
        names = sorted(self.manifests)[k - 1 :: n]
        self.manifests = {name: self.manifests[name] for name in names}

    def resolve(self, strict: bool) -> None:
        """Resolve claim tables against the claims registered by now (test modules register theirs
        when collected); with `strict`, a table no claim matches is an error."""
        for name, m in self.manifests.items():
            self.manifests[name] = resolve_claims(m, self.shapes[name], strict)

    def declaring(self, claim: str) -> list[Manifest]:
        self.resolve(strict=False)
        return [m for m in self.manifests.values() if claim in m.claims]

    def instances(self, claim: str) -> list[tuple[Manifest, str]]:
        """(manifest, claim table key) for every declaration of `claim`: "NAME", or "NAME.INSTANCE" for
        each named instance ([claims.NAME.INSTANCE]), in manifest then declaration order."""
        self.resolve(strict=False)
        return [(m, key) for m in self.manifests.values() for key in m.claims if claim_name(key) == claim]

    def load(self, name: str) -> Subject:
        """The loaded subject; a failure (e.g. offline) is remembered and raised again for each claim."""
        if name not in self._loaded:
            try:
                self._loaded[name] = load_subject(self.manifests[name], self.device, self.data_cache, self.fused_forward)
            except Exception as err:  # noqa: BLE001 - re-raised for every claim on this subject
                self._loaded[name] = err
        result = self._loaded[name]
        if isinstance(result, Exception):
            raise result
        return result
