"""Measure each SAE's fidelity (verify.fidelity) on a subject's *selection* split, through the
preconditions of the claims that read it, and write floors by POLICY into the SAE's table.

    verify fidelity-floors fixtures/subjects/othello-tiny.toml [--write]

The claims then check the floors on the confirmation split. For subjects whose splits come from
seeds (synthetic data). An SAELens release's published numbers (its registry's variance_explained)
are printed beside the measurement, and give the explained-variance floor where the data is a
dataset (no seeded selection split to measure on). Claims registered by a conftest.py or a test
module count as in a pytest run in this folder (verify.collection).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import tomllib
from pathlib import Path

from tqdm import tqdm

from verify import registry
from verify.cli.manifest_tables import set_keys
from verify.collection import pytest_view
from verify.manifest import ManifestError, load_manifest
from verify.subjects import check_files, load_subject, resolve_claims

# floor = the selection value minus `slack`, rounded down to two decimals: the claims' data is the
# other split of the same generator, so a reconstruction that drifts by more than this is no longer
# the SAE the floors were written for
POLICY = {"slack": 0.1}
FLOORS = {"explained variance": "min_explained_variance", "loss recovered": "min_loss_recovered"}


def read(manifest: Path):
    """The manifest as the claims read it, with provisional floors (-inf) where none is declared yet;
    every error names the manifest itself."""
    with open(manifest, "rb") as f:
        if "extends" in tomllib.load(f):  # its SAEs' floors live in (and are inherited from) the manifest it extends
            raise SystemExit(f"{manifest}: extends another manifest; measure the floors on the manifest that declares the SAEs")
    m = load_manifest(manifest)
    saes = {name: dataclasses.replace(spec, **{key: -math.inf for key in FLOORS.values() if getattr(spec, key) is None})
            for name, spec in m.saes.items()}
    m = dataclasses.replace(m, saes=saes)
    return resolve_claims(m, check_files(m), strict=True)


def published(m) -> dict[str, dict[str, float]]:
    """SAE name -> the numbers SAELens' registry publishes for it (releases only)."""
    from verify.loaders import sae_release

    return {name: sae_release.published(spec.release, spec.sae_id) for name, spec in m.saes.items() if spec.release}


def measure(manifest: Path, device: str, m=None) -> dict[str, dict[str, float]]:
    """SAE name -> floor key -> selection-split value."""
    manifest = manifest.resolve()
    m = read(manifest) if m is None else m
    data = m.data
    if registry.sources()[data.source].needs_path:
        found = {name: {"min_explained_variance": values["variance_explained"]} for name, values in published(m).items()
                 if "variance_explained" in values}
        if not found:
            raise SystemExit(f"{manifest}: its data is a dataset, not seeded splits; take the floors from the SAE's published numbers")
        return found
    swapped = dataclasses.replace(m, data=dataclasses.replace(data, selection_seed=data.confirmation_seed,
                                                              confirmation_seed=data.selection_seed))
    subject = load_subject(swapped, device)
    found: dict[str, dict[str, float]] = {}
    for name, params in tqdm(m.claims.items(), desc="claims", unit="claim", disable=None):  # a bar on a terminal only
        try:  # the SAE fidelity checks are among every claim's preconditions that names an SAE (verify.registry)
            checks = registry.get_claim(name).precondition_checks(subject, params)
        except ValueError as err:  # e.g. loss recovered not measurable: no floor can be written from it
            raise SystemExit(f"{manifest}: claim {name} on the selection split: {err}") from None
        for check in checks:
            for label, key in FLOORS.items():
                if check.what.startswith("precondition: SAE ") and label in check.what:
                    sae = check.what.split()[2]
                    found.setdefault(sae, {})[key] = min(found.get(sae, {}).get(key, math.inf), check.estimate.value)
                    tqdm.write(f"{name}: {check.what} = {check.estimate} on the selection split", file=sys.stderr)
    return found


def floors(found: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    return {sae: {key: math.floor((value - POLICY["slack"]) * 100) / 100 for key, value in values.items()} for sae, values in found.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("manifest", type=Path)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--write", action="store_true", help="write the floors into the manifest's [saes.NAME] tables")
    args = parser.parse_args(argv)
    view = pytest_view([])  # the claims a pytest run here registers (conftest.py, test modules, entry points)
    if view.exit_code:
        last = [line for line in view.output.splitlines() if line.strip()][-3:]
        raise SystemExit(f"verify fidelity-floors: pytest cannot collect here (exit {view.exit_code}): {' | '.join(last)}")
    try:
        m = read(args.manifest.resolve())
    except ManifestError as err:
        raise SystemExit(f"verify fidelity-floors: {err}") from None
    for sae, values in published(m).items():
        spec = m.saes[sae]
        print(f"[saes.{sae}] published by SAELens ({spec.release} {spec.sae_id}): "
              + (", ".join(f"{k} = {v:g}" for k, v in values.items()) or "no numbers recorded"))
    for sae, values in floors(measure(args.manifest, args.device, m)).items():
        print(f"[saes.{sae}] " + ", ".join(f"{k} = {v}" for k, v in values.items()))
        if args.write:
            set_keys(args.manifest, f"saes.{sae}", values)


if __name__ == "__main__":
    main()
