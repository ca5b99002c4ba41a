"""The drift gate between two claims ledgers: old value, new value, change and verdict change per
subject and claim, and what moved in the activation fingerprints.

    verify compare OLD NEW [--as OLD_SUBJECT=NEW_SUBJECT ...] [--accept-changed-bounds] [--require-all]

OLD and NEW are ledger files (or the folders `pytest --claims-report` wrote them in). Both are
checked against themselves first: every check's pass is recomputed from its value and bounds,
every verdict from its checks, and a ledger that contradicts itself or records a claim twice is
refused (exit 2). The exit status is 1 when a verdict flips, a judged value moves beyond its
tolerance (OLD's `max_drift` for the claim, else the two 95% intervals combined), a bound,
parameter or max_drift differs from OLD's (unless --accept-changed-bounds), a fingerprint moves, a
claim's metric-definition versions differ (incomparable), a claim of OLD is missing from NEW, no
claim at all was compared, or (with --require-all) a subject of OLD was not measured by NEW; 0
otherwise; 2 for a ledger that cannot be read or a bad option. A baseline OLD that does not exist
yet is written from NEW (exit 0), so the first run of a CI gate sets it. `--as` compares a subject
of OLD with one of NEW under another name: a new checkpoint's manifest against the previous
checkpoint's.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from verify import drift, ledger


def parse_rename(pairs: list[str], option: str = "--as") -> dict[str, str]:
    """OLD=NEW pairs as a mapping; ValueError (one line) for a malformed or repeated one."""
    rename = {}
    for pair in pairs:
        old, sep, new = pair.partition("=")
        if not sep or not old or not new:
            raise ValueError(f"{option} {pair!r}: expected OLD_SUBJECT=NEW_SUBJECT")
        if old in rename:
            raise ValueError(f"{option} {pair!r}: {old} is already mapped to {rename[old]}")
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
    parser.add_argument("--accept-changed-bounds", action="store_true",
                        help="report bounds, parameters and max_drift that differ from the baseline's without failing "
                             "(a reviewed manifest change); the tolerance stays the baseline's")
    parser.add_argument("--require-all", action="store_true",
                        help="fail when a subject of the baseline was not measured by the new run (default: listed as not compared)")
    args = parser.parse_args(argv)
    try:
        rename = parse_rename(args.rename)
    except ValueError as err:
        parser.error(str(err))
    old_path, new_path = ledger_path(args.old), ledger_path(args.new)
    try:
        new = ledger.read(new_path)
        if not old_path.exists():
            old_path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(new_path, old_path)
            print(f"no baseline at {old_path} yet: wrote it from {new_path}")
            return 0
        comparison = drift.compare(ledger.read(old_path), new, rename, args.accept_changed_bounds, args.require_all)
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
