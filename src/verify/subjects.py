"""Subjects: a manifest's model + SAEs + data, validated early and loaded lazily, once per session."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable


from verify import hooks, loaders, sources
from verify.findings import CLAIM_SCHEMAS
from verify.manifest import Manifest, ManifestError, load_manifest

BUILTIN_SUBJECTS = Path(__file__).resolve().parents[2] / "fixtures" / "subjects"


def builtin_manifest_paths() -> list[Path]:
    return sorted(BUILTIN_SUBJECTS.glob("*.toml"))


def read_manifest(path: Path) -> Manifest:
    """Parse and check a manifest against whatever of its files is local (configs, folders)."""
    manifest = load_manifest(path, CLAIM_SCHEMAS)
    validate_files(manifest)
    return manifest


def validate_files(m: Manifest) -> None:
    """Collection-time checks: local files exist, hooks exist in the model, SAE widths fit them."""
    for key in ("weights", "config"):
        source = getattr(m.model, key)
        if source and not sources.is_remote(source) and not sources.local_path(source, m.dir).exists():
            raise ManifestError(f"{m.where('[model]', key)}: file {sources.local_path(source, m.dir)} does not exist")
    widths = model_hook_widths(m)
    for name, sae in m.saes.items():
        where = m.where(f"[saes.{name}]")
        if widths is not None and sae.hook not in widths:
            raise ManifestError(f"{where} hook: the model has no hook point {sae.hook!r}")
        if sources.is_remote(sae.path):
            continue
        if sae.loader != "sae_lens":  # other formats carry their widths in the weights: checked on load
            if not sources.local_path(sae.path, m.dir).exists():
                raise ManifestError(f"{where} path: {sources.local_path(sae.path, m.dir)} does not exist")
            continue
        folder = sources.local_path(sae.path, m.dir)
        if not folder.is_dir():
            raise ManifestError(f"{where} path: folder {folder} does not exist")
        try:
            cfg = loaders.sae_lens_config(folder)
        except loaders.CheckpointError as err:
            raise ManifestError(f"{where} path: {err}") from None
        cfg_hook = cfg.get("metadata", {}).get("hook_name", cfg.get("hook_name"))
        if cfg_hook not in (None, sae.hook):
            raise ManifestError(f"{where} hook: the manifest says {sae.hook!r} but {folder}/cfg.json says {cfg_hook!r}")
        if widths is not None and sae.hook in widths and cfg.get("d_in") != widths[sae.hook]:
            raise ManifestError(f"{where}: SAE d_in {cfg.get('d_in')} does not match the width {widths[sae.hook]} of hook {sae.hook!r}")
    if widths is not None:
        for claim, params in m.claims.items():
            hook = getattr(params, "hook", None)
            if hook is not None and hook not in widths:
                raise ManifestError(f"{m.where(f'[claims.{claim}]')} hook: the model has no hook point {hook!r}")


def model_hook_widths(m: Manifest) -> dict[str, int] | None:
    """Hook widths from the architecture, when it is known without the weights (else None)."""
    from verify.loaders.culture_pth import CULTURE_GPT_CONFIG
    from verify.loaders.othello_gpt import OTHELLO_GPT_CONFIG

    fixed = {"culture_pth": CULTURE_GPT_CONFIG, "othello_gpt": OTHELLO_GPT_CONFIG}
    if m.model.loader == "culture_pth" and not sources.is_remote(m.model.weights):
        from verify.loaders.culture_pth import architecture, read_culture_state

        path = sources.local_path(m.model.weights, m.dir)
        try:  # memory-mapped: reads the shapes, not the weights
            return hooks.hook_widths(architecture(read_culture_state(path, mmap=True)[0], path))
        except loaders.CheckpointError as err:
            raise ManifestError(f"{m.where('[model] weights')}: {err}") from None
    if m.model.loader in fixed:
        return hooks.hook_widths(fixed[m.model.loader])
    if m.model.loader == "hooked_transformer" and m.model.config and not sources.is_hub(m.model.config):
        try:
            return hooks.hook_widths(loaders.hooked_transformer_config(sources.local_path(m.model.config, m.dir)))
        except loaders.CheckpointError as err:
            raise ManifestError(f"{m.where('[model] config')}: {err}") from None
    return None


@dataclass
class Subject:
    """A loaded subject. Domain data (games, puzzles) is made on first use and cached here."""

    manifest: Manifest
    model: Any  # transformer_lens.HookedTransformer
    saes: dict[str, Any]  # name -> sae_lens SAE
    device: str
    cache: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.manifest.name

    def cached(self, key: Any, make):
        if key not in self.cache:
            self.cache[key] = make()
        return self.cache[key]


def load_subject(m: Manifest, device: str) -> Subject:
    """Fetch, hash-check and load the model and SAEs. Raises SourceUnavailable when offline."""
    spec = m.model
    if spec.loader not in loaders.MODEL_LOADERS:
        raise ManifestError(f"{m.where('[model] loader')}: unknown loader {spec.loader!r} (known: {', '.join(loaders.MODEL_LOADERS)})")
    files = {key: sources.fetch(getattr(spec, key), m.dir) for key in ("weights", "config") if getattr(spec, key)}
    for key, path in files.items():
        sources.check_sha256(path, spec.sha256.get(key))
    # a verifier never trains: frozen weights build no autograd graph (without switching off
    # gradients process-wide, which would break a trainer running in the same process)
    model = loaders.MODEL_LOADERS[spec.loader](device=device, **files).requires_grad_(False)
    saes = {}
    for name, sae_spec in m.saes.items():
        if sae_spec.loader not in loaders.SAE_LOADERS:
            raise ManifestError(f"{m.where(f'[saes.{name}] loader')}: unknown loader {sae_spec.loader!r}")
        folder = sources.fetch(sae_spec.path, m.dir)
        for file_name, digest in sae_spec.sha256.items():
            sources.check_sha256(folder / file_name, digest)
        saes[name] = loaders.SAE_LOADERS[sae_spec.loader](folder, device).requires_grad_(False)
        check_sae_fits(m, name, saes[name], model)
    subject = Subject(m, model, saes, device)
    if m.data.source == "culture-dataset":  # open it now, so an offline dataset skips like a model
        from verify.culture.data import open_dataset

        subject.cache["dataset"] = open_dataset(m.data.path, m.dir)
    return subject


def check_sae_fits(m: Manifest, name: str, sae, model) -> None:
    """The loaded SAE reads a hook the loaded model has, of the SAE's width."""
    hook = m.saes[name].hook
    if hook not in model.hook_dict:
        raise ManifestError(f"{m.where(f'[saes.{name}] hook')}: the model has no hook point {hook!r}")
    width = hooks.hook_widths(model.cfg.to_dict()).get(hook)
    if width is not None and sae.cfg.d_in != width:
        raise loaders.CheckpointError(f"{m.where(f'[saes.{name}]')}: SAE d_in {sae.cfg.d_in} does not match the width {width} of hook {hook!r}")


class Registry:
    """The manifests of one pytest session, by name; each subject is loaded on first request."""

    def __init__(self, paths: Iterable[Path], device: str) -> None:
        self.device = device
        self.manifests: dict[str, Manifest] = {}
        for path in paths:
            manifest = read_manifest(path)
            if manifest.name in self.manifests:
                raise ManifestError(f"{path}: subject name {manifest.name!r} is already used by {self.manifests[manifest.name].path}; give the copy its own name")
            self.manifests[manifest.name] = manifest
        self._loaded: dict[str, Subject | Exception] = {}

    def select(self, names: list[str]) -> None:
        unknown = [n for n in names if n not in self.manifests]
        if unknown:
            raise ManifestError(f"unknown subject {unknown[0]!r} (known: {', '.join(sorted(self.manifests))})")
        if names:
            self.manifests = {n: self.manifests[n] for n in names}

    def declaring(self, claim: str) -> list[Manifest]:
        return [m for m in self.manifests.values() if claim in m.claims]

    def load(self, name: str) -> Subject:
        """The loaded subject; a failure (e.g. offline) is remembered and raised again for each claim."""
        if name not in self._loaded:
            try:
                self._loaded[name] = load_subject(self.manifests[name], self.device)
            except Exception as err:  # noqa: BLE001 - re-raised for every claim on this subject
                self._loaded[name] = err
        result = self._loaded[name]
        if isinstance(result, Exception):
            raise result
        return result
