"""List subjects: whether each is available here (or why not), its files and their sha256, its claims.

    verify subjects [--subjects-dir DIR] [--subject-file PATH ...]

Reads every manifest in the subjects folder (default fixtures/subjects) and the named files;
downloads nothing and loads no weights. A local file is hashed and checked against its pin; a hub
file is available when it is in the local cache or the hub can be reached. Exit status 2 when a
manifest cannot be read.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from verify import registry, sources
from verify.manifest import ManifestError, load_manifest
from verify.subjects import manifest_paths, pinned_file


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


def describe(path: Path) -> tuple[list[str], bool]:
    m = load_manifest(path)
    lines, problems = [], []
    for key in ("weights", "config"):
        source = getattr(m.model, key)
        if source:
            line, problem = file_line(f"model {key}", source, m.dir, m.model.sha256.get(key))
            lines.append(line)
            problems += [problem] if problem else []
    for name, spec in m.saes.items():
        if sources.is_remote(spec.path):
            line, problem = file_line(f"sae {name}", spec.path, m.dir, None)
            lines.append(line)
            problems += [problem] if problem else []
            continue
        folder = sources.local_path(spec.path, m.dir)
        files = sorted(p.name for p in folder.iterdir() if p.is_file()) if folder.is_dir() else [folder.name]
        for file_name in files:
            pinned = pinned_file(folder, file_name)
            line, problem = file_line(f"sae {name} ({spec.hook})", str((pinned or folder / file_name).resolve()), m.dir,
                                      spec.sha256.get(file_name))
            lines.append(line)
            problems += [problem] if problem else []
    data = f"{m.data.source}" + (f" {m.data.path}" if m.data.path else f", {m.data.size} per split, seeds {m.data.selection_seed}/{m.data.confirmation_seed}")
    claims = []
    for name in m.claim_tables:
        claim = registry.get_claim(name)
        claims.append(f"  claim {name}" + (f" (definition v{claim.version}): {claim.summary}" if claim else
                                           " (not registered in this process: its conftest registers it)"))
    status = "available" if not problems else f"NOT available: {problems[0]}"
    return [f"{m.name} [{m.domain}] {status}", f"  manifest {path}", f"  data {data}", *lines, *claims], not problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="verify subjects", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subjects-dir", type=Path, default=Path("fixtures/subjects"))
    parser.add_argument("--subject-file", type=Path, action="append", default=[])
    args = parser.parse_args(argv)
    paths = (manifest_paths(args.subjects_dir) if args.subjects_dir.is_dir() else []) + args.subject_file
    if not paths:
        print(f"verify subjects: no manifests in {args.subjects_dir} and no --subject-file", file=sys.stderr)
        return 2
    available = 0
    for path in paths:
        try:
            lines, ok = describe(path)
        except ManifestError as err:
            print(f"verify subjects: {err}", file=sys.stderr)
            return 2
        available += ok
        print("\n".join(lines) + "\n")
    print(f"{available} of {len(paths)} subjects available here")
    return 0


if __name__ == "__main__":
    sys.exit(main())
