"""The drift gate between two claims ledgers: old value, new value, change and verdict change per
subject and claim, and what moved in the activation fingerprints.

    verify compare OLD NEW [--as OLD_SUBJECT=NEW_SUBJECT ...]

OLD and NEW are ledger files (or the folders `pytest --claims-report` wrote them in). The exit
status is 1 when a verdict flips, a judged value moves beyond its tolerance (the claim's
`max_drift` in the manifest, else the two 95% intervals combined), a fingerprint moves, a claim's
metric-definition versions differ (incomparable), or a claim of OLD is missing from NEW; 0
otherwise. A baseline OLD that does not exist yet is written from NEW (exit 0), so the first run of
a CI gate sets it. `--as` compares a subject of OLD with one of NEW under another name: a new
checkpoint's manifest against the previous checkpoint's.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from verify import drift, ledger


def parse_rename(pairs: list[str]) -> dict[str, str]:
    rename = {}
    for pair in pairs:
        old, sep, new = pair.partition("=")
        if not sep or not old or not new:
            raise SystemExit(f"verify compare: --as {pair!r}: expected OLD_SUBJECT=NEW_SUBJECT")
        rename[old] = new
    return rename


def ledger_path(path: Path) -> Path:
    return path / "ledger.json" if path.is_dir() else path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="verify compare", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("old", type=Path, help="the baseline ledger (file or folder)")
    parser.add_argument("new", type=Path, help="the ledger of the run to gate (file or folder)")
    parser.add_argument("--as", dest="rename", action="append", default=[], metavar="OLD=NEW",
                        help="compare subject OLD of the baseline with subject NEW of the new run (repeatable)")
    args = parser.parse_args(argv)
    old_path, new_path = ledger_path(args.old), ledger_path(args.new)
    try:
        new = ledger.read(new_path)
        if not old_path.exists():
            old_path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(new_path, old_path)
            print(f"no baseline at {old_path} yet: wrote it from {new_path}")
            return 0
        comparison = drift.compare(ledger.read(old_path), new, parse_rename(args.rename))
    except (ledger.LedgerError, ValueError) as err:
        print(f"verify compare: {err}", file=sys.stderr)
        return 2
    print(f"old: {old_path}\nnew: {new_path}")
    for line in comparison.lines():
        print(line)
    print(comparison.verdict_line())
    return 1 if comparison.problems else 0


if __name__ == "__main__":
    sys.exit(main())
