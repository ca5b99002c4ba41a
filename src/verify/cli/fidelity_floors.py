"""Measure each SAE's fidelity (verify.fidelity) on a subject's *selection* split, through the
preconditions of the claims that read it, and write floors by POLICY into the SAE's table.

    verify fidelity-floors fixtures/subjects/othello-tiny.toml [--write]

The claims then check the floors on the confirmation split. For subjects whose splits come from
seeds (synthetic data); a hub SAE takes its floors from its published numbers instead.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import tempfile
from pathlib import Path

import tomlkit
from tqdm import tqdm

from verify import registry
from verify.cli.manifest_tables import set_keys
from verify.subjects import load_subject, read_manifest

# floor = the selection value minus `slack`, rounded down to two decimals: the claims' data is the
# other split of the same generator, so a reconstruction that drifts by more than this is no longer
# the SAE the floors were written for
POLICY = {"slack": 0.1}
FLOORS = {"explained variance": "min_explained_variance", "loss recovered": "min_loss_recovered"}


def measure(manifest: Path, device: str) -> dict[str, dict[str, float]]:
    """SAE name -> floor key -> selection-split value."""
    manifest = manifest.resolve()
    doc = tomlkit.parse(manifest.read_text())
    if "extends" in doc:  # its SAEs' floors live in (and are inherited from) the manifest it extends
        raise SystemExit(f"{manifest}: extends {doc['extends']}; measure the floors on the manifest that declares the SAEs")
    for table in doc.get("saes", {}).values():  # provisional floors, so the manifest can be read
        for key in FLOORS.values():
            table.setdefault(key, -math.inf)
    with tempfile.TemporaryDirectory() as folder:
        copy = Path(folder) / manifest.name
        copy.write_text(tomlkit.dumps(doc).replace('"../', f'"{manifest.parent.parent}/'))
        m = read_manifest(copy)
    data = m.data
    if registry.sources()[data.source].needs_path:
        raise SystemExit(f"{manifest}: its data is a dataset, not seeded splits; take the floors from the SAE's published numbers")
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
    for sae, values in floors(measure(args.manifest, args.device)).items():
        print(f"[saes.{sae}] " + ", ".join(f"{k} = {v}" for k, v in values.items()))
        if args.write:
            set_keys(args.manifest, f"saes.{sae}", values)


if __name__ == "__main__":
    main()
