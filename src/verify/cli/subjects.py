"""List subjects: whether each is available here (or why not), its files and their sha256, its claims.

    verify subjects [--subjects-dir DIR] [--subject-file PATH ...]

Sees what `pytest` run in this folder sees (verify.collection): the subjects folder from
--subjects-dir, else the verify_subjects_dir ini value (pytest.ini, pyproject.toml, tox.ini,
setup.cfg), else fixtures/subjects under the rootdir; the claims and domains registered by
conftest.py files, test modules and `verify.claims` entry points. A manifest is available only when
the plugin's collection checks accept it (the same code) and its files are here: a local file is
hashed and checked against its pin; a hub file, a pretrained model's or an SAELens release's, is
available when it is in the local cache or the hub can be reached. Downloads nothing and loads no
weights. Exit status 2 when a manifest is refused (as pytest would refuse the run) or pytest cannot
collect here.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from verify import registry, sources
from verify.collection import check_manifest, pytest_view
from verify.manifest import Manifest, ManifestError, claim_name
from verify.subjects import pinned_file


def file_line(role: str, source: str, base: Path, pin: str | None) -> tuple[str, str | None]:
    """(line, reason it is not available or None)."""
    if sources.is_remote(source):
        cached = sources.cached(source)
        if cached is None:
            if sources.is_hub(source) and sources.hub_reachable():
                return f"  {role}: {source}: not cached here; downloaded on first use", None
            return f"  {role}: {source}: not available offline (not in the local cache)", f"not available offline: {source}"
        if cached.is_dir():
            return f"  {role}: {source}: cached at {cached}", None
        source = str(cached)
    path = sources.local_path(source, base)
    if not path.is_file():
        return f"  {role}: {path}: missing", f"{path} is missing"
    actual = sources.sha256_of(path)
    if pin and actual != pin:
        return f"  {role}: {path}: sha256 {actual} but pinned {pin}", f"{path} does not match its pin"
    return f"  {role}: {path} sha256 {actual} ({'pinned' if pin else 'not pinned'})", None


def describe(path: Path, m: Manifest) -> tuple[list[str], bool]:
    lines, problems = [], []

    def add(line_problem: tuple[str, str | None]) -> None:
        lines.append(line_problem[0])
        problems.extend([line_problem[1]] if line_problem[1] else [])

    if m.model.name:  # a TransformerLens pretrained model: its files follow from the name
        from verify.loaders import pretrained

        where = pretrained.official_name(m.model.name) + (f"@{m.model.revision}" if m.model.revision else "")
        files = {"config": pretrained.CONFIG, "weights": pretrained.WEIGHTS}
        for key, found in pretrained.cached_files(m.model.name, m.model.revision).items():
            if found is not None:
                add(file_line(f"model {key} ({where})", str(found), m.dir, m.model.sha256.get(key)))
            elif sources.hub_reachable():
                add((f"  model {key}: {where} {files[key]}: not cached here; downloaded on first use", None))
            else:
                add((f"  model {key}: {where} {files[key]}: not available offline (not in the local cache)",
                     f"not available offline: {where} {files[key]}"))
    for key in ("weights", "config"):
        source = getattr(m.model, key)
        if source:
            add(file_line(f"model {key}", source, m.dir, m.model.sha256.get(key)))
    for name, spec in m.saes.items():
        if spec.release:
            from verify.loaders import sae_release

            numbers = sae_release.published(spec.release, spec.sae_id)
            lines.append(f"  sae {name}: SAELens release {spec.release} {spec.sae_id}; published: "
                         + (", ".join(f"{k} {v:g}" for k, v in numbers.items()) or "none recorded"))
        local = sources.cached(spec.path) if sources.is_remote(spec.path) else sources.local_path(spec.path, m.dir)
        if local is None or not local.is_dir():
            add(file_line(f"sae {name}", spec.path, m.dir, None) if local is None else
                file_line(f"sae {name} ({spec.hook})", str(local.resolve()), m.dir, spec.sha256.get(local.name)))
            continue
        for file_name in sorted(p.name for p in local.iterdir() if p.is_file()):
            add(file_line(f"sae {name} ({spec.hook})", str(pinned_file(local, file_name) or local / file_name), m.dir,
                          spec.sha256.get(file_name)))
    data = f"{m.data.source}" + (f" {m.data.path}" if m.data.path else f", {m.data.size} per split, seeds {m.data.selection_seed}/{m.data.confirmation_seed}")
    claims = []
    for name in m.claim_tables:
        claim = registry.get_claim(claim_name(name))  # a named instance "NAME.INSTANCE" is a declaration of NAME
        claims.append(f"  claim {name}" + (f" (definition v{claim.version}): {claim.summary}" if claim else
                                           " (not registered)"))
    status = "available" if not problems else f"NOT available: {problems[0]}"
    return [f"{m.name} [{m.domain}] {status}", f"  manifest {path}", f"  data {data}", *lines, *claims], not problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="verify subjects", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subjects-dir", default=None, help="default: what pytest reads (verify_subjects_dir, else fixtures/subjects)")
    parser.add_argument("--subject-file", action="append", default=[])
    args = parser.parse_args(argv)
    view = pytest_view([*([f"--subjects-dir={args.subjects_dir}"] if args.subjects_dir else []),  # one argument: never a test path
                        *(f"--subject-file={f}" for f in args.subject_file)])
    if view.exit_code:
        last = [line for line in view.output.splitlines() if line.strip()][-3:]
        print(f"verify subjects: pytest cannot collect here (exit {view.exit_code}): {' | '.join(last)}", file=sys.stderr)
        return 2
    paths = view.manifests
    if not paths:
        print(f"verify subjects: no manifests in {view.folder or 'the subjects folder (fixtures/subjects)'} and no --subject-file",
              file=sys.stderr)
        return 2
    available, refused = 0, 0
    for path in paths:
        try:
            lines, ok = describe(path, check_manifest(path))
        except ManifestError as err:  # pytest would stop the run on it: a usage error
            refused += 1
            print(f"{path}: REFUSED (pytest stops with this usage error): {err}\n")
            continue
        available += ok
        print("\n".join(lines) + "\n")
    print(f"{available} of {len(paths)} subjects available here" + (f"; {refused} refused" if refused else ""))
    return 2 if refused else 0


if __name__ == "__main__":
    sys.exit(main())
