"""Benchmark history: each benchmark's throughput across saved pytest-benchmark runs, as a fraction
of the matmul rate of the machine that ran it.

    verify bench-history DIR [--benchmark NAME ...] [--max-drop F] [--plot FILE.png]

DIR is a pytest-benchmark storage folder: what `pytest benchmarks/ --benchmark-storage=DIR
--benchmark-save=NAME` (or `--benchmark-autosave`, DIR = .benchmarks) writes, one file per run,
DIR/<machine-id>/NNNN_NAME.json. Runs are ordered by the time they were saved, across machines.

For each benchmark and run the table gives the run's date (UTC), commit, verify version, torch
thread count, the machine's fp32 matmul rate at 2048^3 (stored by benchmarks/conftest.py with each
run), the benchmark's achieved rate (FLOPs per call / mean seconds per call) and that rate as a
fraction of the machine's matmul rate, with its change from the previous run. Machines differ, so
the fraction, not the time, is what is compared. A run saved without a matmul rate (or a benchmark
without a FLOP count) shows why it has no fraction.

--benchmark NAME (repeatable; the full name `path::test[param]` or the test name alone) limits the
table and the plot to those benchmarks. With --max-drop F, the command exits 1 when a named
benchmark's fraction in the latest run is more than F (e.g. 0.2 = 20%) below its fraction in the
previous run that has one, or when the latest run lacks the benchmark or its matmul rate. A
benchmark in a single run has nothing to be compared with and passes.

--plot FILE.png draws the fractions, one line per benchmark, runs along the x axis.

Errors (no such folder, no runs, a file that is not a run, an unknown benchmark) are one line
naming the path or name, exit status 2.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

RUN_GLOB = "*/[0-9][0-9][0-9][0-9]_*.json"  # pytest-benchmark's FileStorage: <machine-id>/NNNN_<name>.json


class HistoryError(Exception):
    """A one-line reason the history cannot be read or asked for; exit status 2."""


@dataclass(frozen=True)
class Run:
    label: str  # the file's path under DIR, without .json
    saved: datetime
    commit: str
    version: str
    threads: str
    matmul_gflops: float | None  # None: saved without benchmarks/conftest.py's machine info
    benchmarks: dict[str, dict]  # fullname -> pytest-benchmark's record of it

    def rate(self, name: str) -> float | None:
        """Achieved GFLOP/s of the benchmark (None without a FLOP count)."""
        bench = self.benchmarks[name]
        flops = bench.get("extra_info", {}).get("flops")
        return None if flops is None else flops / bench["stats"]["mean"] / 1e9

    def fraction(self, name: str) -> float | None:
        rate = self.rate(name)
        return None if rate is None or self.matmul_gflops is None else rate / self.matmul_gflops

    def why_no_fraction(self, name: str) -> str:
        return "no FLOP count recorded" if self.rate(name) is None else "no stored matmul rate"


def read_run(path: Path, root: Path) -> Run:
    try:
        data = json.loads(path.read_text())
        ours = data["machine_info"].get("verify", {})
        commit = data.get("commit_info", {})
        return Run(
            label=str(path.relative_to(root).with_suffix("")),
            saved=datetime.fromisoformat(data["datetime"]),
            commit=str(commit.get("id", "?"))[:10] + ("+dirty" if commit.get("dirty") else ""),
            version=str(ours.get("verify", "?")),
            threads=str(ours.get("torch_threads", "?")),
            matmul_gflops=ours.get("matmul_2048_gflops"),
            benchmarks={b["fullname"]: b for b in data["benchmarks"]},
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise HistoryError(f"{path}: not a pytest-benchmark run ({type(err).__name__}: {err})") from None


def read_runs(root: Path) -> list[Run]:
    if not root.is_dir():
        raise HistoryError(f"{root}: no such folder")
    paths = sorted(root.glob(RUN_GLOB))
    if not paths:
        raise HistoryError(f"{root}: no saved runs (pytest-benchmark saves {root}/<machine-id>/NNNN_<name>.json)")
    return sorted((read_run(p, root) for p in paths), key=lambda r: (r.saved, r.label))


def resolve(names: list[str], runs: list[Run], root: Path) -> list[str]:
    """Full benchmark names for `names` (each a full name or a test name matching exactly one)."""
    known = sorted({name for run in runs for name in run.benchmarks})
    out = []
    for name in names:
        matches = [k for k in known if k == name] or [k for k in known if k.split("::")[-1] == name]
        if not matches:
            raise HistoryError(f"no benchmark named {name!r} in the runs under {root} (known: {', '.join(known)})")
        if len(matches) > 1:
            raise HistoryError(f"benchmark name {name!r} is ambiguous under {root}: {', '.join(matches)}")
        out.append(matches[0])
    return out or known


def table(runs: list[Run], names: list[str]) -> str:
    header = ("run", "date (UTC)", "commit", "verify", "threads", "matmul GFLOP/s", "GFLOP/s", "fraction", "change")
    blocks = []
    for name in names:
        rows, previous = [], None
        for run in runs:
            if name not in run.benchmarks:
                continue
            rate, fraction = run.rate(name), run.fraction(name)
            change = "" if fraction is None or previous is None else f"{fraction / previous - 1:+.1%}"
            rows.append((run.label, run.saved.strftime("%Y-%m-%d %H:%M"), run.commit, run.version, run.threads,
                         "-" if run.matmul_gflops is None else f"{run.matmul_gflops:.1f}",
                         "-" if rate is None else f"{rate:.2f}",
                         run.why_no_fraction(name) if fraction is None else f"{fraction:.4f}", change))
            previous = fraction if fraction is not None else previous
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [header, *rows]]
        blocks.append(f"{name}\n" + "\n".join("  " + line for line in lines))
    return "\n\n".join(blocks)


def gate(runs: list[Run], name: str, max_drop: float) -> tuple[bool, str]:
    """(passed, message) for `name`'s fraction in the latest run against the previous one with a fraction."""
    latest = runs[-1]
    if name not in latest.benchmarks:
        return False, f"{name}: not in the latest run {latest.label} (failed, deselected or renamed?)"
    now = latest.fraction(name)
    if now is None:
        return False, f"{name}: the latest run {latest.label} has {latest.why_no_fraction(name)}; nothing to compare"
    before = next(((r, r.fraction(name)) for r in reversed(runs[:-1])
                   if name in r.benchmarks and r.fraction(name) is not None), None)
    if before is None:
        return True, f"{name}: {now:.4f} of the matmul rate in {latest.label}; no earlier run to compare with"
    run, then = before
    drop = 1 - now / then
    text = (f"{name}: fraction of the matmul rate {then:.4f} ({run.label}, {run.commit}) -> {now:.4f} "
            f"({latest.label}, {latest.commit}), {-drop:+.1%}")
    if drop > max_drop:
        return False, f"{text}: fell by more than the allowed {max_drop:.0%}"
    return True, f"{text}: within the allowed drop of {max_drop:.0%}"


def plot(runs: list[Run], names: list[str], path: Path) -> None:
    from matplotlib.figure import Figure  # a Figure renders with Agg; no pyplot, no display needed

    fig = Figure(figsize=(max(6, 0.6 * len(runs) + 3), 4.5), layout="constrained")
    ax = fig.add_subplot()
    x = range(len(runs))
    for name in names:
        ys = [run.fraction(name) if name in run.benchmarks else None for run in runs]
        ax.plot(x, [math.nan if y is None else y for y in ys], marker="o", label=name.split("::")[-1])
    ax.set_xticks(list(x), [f"{r.label.split('/')[-1]}\n{r.commit}" for r in runs], rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("FLOP rate / machine's 2048^3 matmul rate")
    ax.set_ylim(bottom=0)
    ax.set_title("benchmark throughput across saved runs")
    ax.legend(fontsize=7)
    fig.savefig(path, dpi=100)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dir", type=Path, metavar="DIR", help="pytest-benchmark storage folder")
    parser.add_argument("--benchmark", action="append", default=[], metavar="NAME",
                        help="only this benchmark (repeatable); with --max-drop, the ones gated")
    parser.add_argument("--max-drop", type=float, metavar="F",
                        help="exit 1 when a --benchmark's fraction fell by more than F (0 <= F < 1) from the previous run")
    parser.add_argument("--plot", type=Path, metavar="FILE.png", help="also draw the fractions into this PNG")
    args = parser.parse_args(argv)
    if args.max_drop is not None and not (args.benchmark and 0 <= args.max_drop < 1):
        parser.error("--max-drop F needs 0 <= F < 1 and at least one --benchmark NAME")
    try:
        runs = read_runs(args.dir)
        names = resolve(args.benchmark, runs, args.dir)
    except HistoryError as err:
        print(f"verify bench-history: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    print(table(runs, names))
    if args.plot:
        plot(runs, names, args.plot)
        print(f"\nplot: {args.plot}")
    if args.max_drop is not None:
        results = [gate(runs, name, args.max_drop) for name in names]
        print("\n" + "\n".join(("PASS " if ok else "FAIL ") + text for ok, text in results))
        if not all(ok for ok, _ in results):
            raise SystemExit(1)


if __name__ == "__main__":
    main()
