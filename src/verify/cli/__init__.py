"""The `verify` command: the project's command-line tools, one subcommand each.

    verify SUBCOMMAND --help

Each tool lives in its own module here and is also runnable as `python -m verify.cli.MODULE`.
"""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "discover-othello": ("discover_othello", "choose F3/F4/F6 parameters on the selection split; write the claims"),
    "discover-culture": ("discover_culture", "sweep zero-ablations against every task (F1) on the selection split"),
    "fidelity-floors": ("fidelity_floors", "measure each SAE's fidelity on the selection split; write its floors"),
    "structures": ("structures", "a culture subject's solved rates per block structure"),
    "ambiguity": ("ambiguity", "count contact puzzles with more than one valid answer"),
    "build-othello-tiny": ("build_othello_tiny", "rebuild the embedded othello-tiny: model, SAE, manifest, discovery"),
    "build-culture-tiny": ("build_culture_tiny", "rebuild the embedded culture-tiny: model, sweep, SAE, manifest"),
    "train-othello-model": ("train_othello_model", "train the othello-tiny model alone"),
    "train-culture-model": ("train_culture_model", "train the culture-tiny model alone (in stages)"),
    "train-induction-model": ("train_induction_model", "train induction-tiny (or its no-repeat control) and its SAE; write the manifest"),
    "discover-tokens": ("discover_tokens", "choose the previous-token head, induction head and feature on the selection split; write the claims"),
    "subjects": ("subjects", "each subject: available here or why not, its files and sha256, its claims"),
    "compare": ("compare", "the drift gate: two claims ledgers side by side; non-zero when something moved"),
    "report": ("report", "rebuild report.html / report.md from a saved ledger"),
    "merge": ("merge", "join the ledgers of sharded runs into one ledger and report"),
    "bench-history": ("bench_history", "benchmark throughput across saved runs, as a fraction of the machine's matmul rate"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    return "usage: verify SUBCOMMAND [options]   (verify SUBCOMMAND --help)\n\nsubcommands:\n" + "\n".join(
        f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items())


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    if argv[0] not in COMMANDS:
        print(f"verify: unknown subcommand {argv[0]!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"verify.cli.{COMMANDS[argv[0]][0]}")
    sys.argv[0] = f"verify {argv[0]}"  # what argparse shows as the program name in --help
    return module.main(argv[1:]) or 0  # tools that gate (compare) return their exit status
