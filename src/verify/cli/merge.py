"""Join the ledgers of one run split into shards (CI jobs, `--subject-shard K/N`) into one ledger
and one report.

    verify merge PART [PART ...] --out DIR

Each PART is a ledger file or the folder `--claims-report` wrote it in, checked against itself as
`verify compare` checks it (every pass and verdict recomputed). Parts from another environment
(Python, package versions, git commit, uncommitted changes) and a subject or claim that two parts
measured with different results (values, verdict, parameters) are refused, exit 2: they are not
one run. Writes DIR/ledger.json, DIR/report.html and DIR/report.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from verify import ledger, report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="verify merge", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("parts", type=Path, nargs="+", help="ledger files or --claims-report folders")
    parser.add_argument("--out", type=Path, required=True, help="folder for the merged ledger and report")
    args = parser.parse_args(argv)
    paths = [p / "ledger.json" if p.is_dir() else p for p in args.parts]
    try:
        merged = ledger.merge([ledger.read(p) for p in paths], [str(p) for p in paths])
    except ledger.LedgerError as err:
        print(f"verify merge: {err}", file=sys.stderr)
        return 2
    ledger.write(merged, args.out / "ledger.json")
    pages = report.write(merged, args.out)
    held = sum(r.verdict == "held" for r in merged.records)
    print(f"merged {len(paths)} ledgers: {len(merged.subjects)} subjects, {len(merged.records)} claim records ({held} held)")
    print(f"wrote {args.out / 'ledger.json'}, " + ", ".join(map(str, pages)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
