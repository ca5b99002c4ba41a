"""Rebuild the claims report (report.html, report.md, figures/) from a saved ledger.

    verify report DIR [--baseline LEDGER [--as OLD=NEW ...]] [--out OUT]

DIR holds ledger.json (what `pytest claims/ --claims-report DIR` wrote, or `verify merge`); the
report is written next to it unless --out names another folder. With --baseline, the report also
shows the drift table against that ledger (`--as` pairs a baseline subject with a renamed one, as
in `verify compare`). Both ledgers are checked against themselves first (every
check's pass recomputed from its value and bounds, every verdict from its checks): one that
contradicts itself is refused, exit 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from verify import drift, ledger, report
from verify.cli.compare import parse_rename


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="verify report", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="folder with ledger.json (or the ledger file itself)")
    parser.add_argument("--baseline", type=Path, default=None, help="a ledger to show the drift against")
    parser.add_argument("--as", dest="rename", action="append", default=[], metavar="OLD=NEW",
                        help="with --baseline: compare subject OLD of the baseline with subject NEW of this ledger (repeatable)")
    parser.add_argument("--out", type=Path, default=None, help="where to write the report (default: the ledger's folder)")
    args = parser.parse_args(argv)
    path = args.folder / "ledger.json" if args.folder.is_dir() else args.folder
    try:
        run = ledger.read(path)
        rename = parse_rename(args.rename)
        if rename and args.baseline is None:
            raise ValueError("--as needs --baseline: it pairs a baseline subject with one of this ledger")
        comparison = None if args.baseline is None else drift.compare(ledger.read(args.baseline), run, rename)
    except (ledger.LedgerError, ValueError) as err:
        print(f"verify report: {err}", file=sys.stderr)
        return 2
    for page in report.write(run, args.out or path.parent, comparison):
        print(f"wrote {page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
