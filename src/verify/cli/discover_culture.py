"""Discovery sweep for a culture subject (F1): zero-ablate every layer's MLP and attention output,
on the *selection* split, against every task; report the table and the most selective
(hook, task) pair.

    verify discover-culture fixtures/subjects/culture-gpt-1.toml [--write]

Selectivity = broken rate of the task - the highest broken rate of any other task (the margin the
claim judges). With --write the pair and thresholds (POLICY) replace the manifest's
[claims.ablation_breaks_one_task] table (every other table is kept as written); the claim then
confirms on the confirmation split. Needs the subject's files (hub access or a cache).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from verify import stats
from verify.culture.data import TASKS
from verify.cli.manifest_tables import update_manifest
from verify.culture import findings as f
from verify.interventions import zero_ablation
from verify.subjects import load_subject, read_structure

# min_broken: half the selection rate; max_broken_other: the highest other rate plus the larger of
# other_slack and `standard_errors` standard errors of a rate difference between two splits (n: the
# fewest puzzles any task counts); min_margin: the selection margin minus `standard_errors` standard
# errors of the margin's difference between two splits (each of the two rates on its own task's
# count), and at least min_margin_floor (the claim's words need a positive margin)
POLICY = {"min_broken_fraction_of_selection": 0.5, "other_slack": 0.02, "standard_errors": 3, "min_margin_floor": 0.02}


def sweep(subject) -> dict[str, dict[str, float]]:
    """hook -> task -> broken rate on the selection split's determined puzzles."""
    table = {}
    hooks = [f"blocks.{layer}.{name}" for layer in range(subject.model.cfg.n_layers) for name in ("hook_attn_out", "hook_mlp_out")]
    for i, hook in enumerate(tqdm(hooks, desc="ablation sweep", unit="hook", disable=None)):  # a bar on a terminal only
        table[hook] = {task: float(f.broken_by(subject, task, [zero_ablation(hook)], "selection")[f.counted(subject, task, "selection", "determined")].mean())
                       for task in TASKS}
        row = " ".join(f"{t}={r:.2f}" for t, r in table[hook].items())
        tqdm.write(f"[{i + 1}/{len(hooks)}] {hook}: {row}", file=sys.stderr)
    return table


def most_selective(table: dict[str, dict[str, float]]) -> tuple[str, str, float, float]:
    """(hook, task, task's rate, highest other rate) maximising the selectivity."""
    best = None
    for hook, rates in table.items():
        for task, r in rates.items():
            other = max(v for t, v in rates.items() if t != task)
            if best is None or r - other > best[2] - best[3]:
                best = (hook, task, r, other)
    return best


def counts(subject) -> dict[str, int]:
    """task -> puzzles the selection split's rates count."""
    return {task: int(f.counted(subject, task, "selection", "determined").sum()) for task in TASKS}


def claim_table(hook: str, task: str, rates: dict[str, float], n: dict[str, int]) -> tuple[dict, str]:
    """The [claims.ablation_breaks_one_task] values and comment for a pair discovered on the
    selection split: `rates` task -> broken rate under the hook, `n` task -> puzzles counted."""
    runner_up = max((t for t in rates if t != task), key=rates.get)
    rate, other, fewest = rates[task], rates[runner_up], min(n.values())
    slack = max(POLICY["other_slack"], POLICY["standard_errors"] * stats.rate_difference_se(other, fewest))
    margin_se = float(np.hypot(stats.rate_difference_se(rate, n[task]), stats.rate_difference_se(other, n[runner_up])))
    min_margin = max(POLICY["min_margin_floor"], rate - other - POLICY["standard_errors"] * margin_se)
    values = {"hook": hook, "task": task, "min_broken": round(rate * POLICY["min_broken_fraction_of_selection"], 4),
              "max_broken_other": round(other + slack, 4), "min_margin": round(min_margin, 4)}
    return values, (f"discover-culture on the selection split: {task} {rate:.3f} ({n[task]} puzzles), highest other task "
                    f"{runner_up} {other:.3f} ({n[runner_up]}); margin {rate - other:.3f}, its standard error between two "
                    f"splits {margin_se:.3f}\n(max_broken_other: standard errors for {fewest} puzzles, the fewest any task counts)")


def write_claim(manifest: Path, hook: str, task: str, rates: dict[str, float], n: dict[str, int]) -> None:
    values, comment = claim_table(hook, task, rates, n)
    update_manifest(manifest, {"claims.ablation_breaks_one_task": values}, comments={"claims.ablation_breaks_one_task": comment})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("manifest", type=Path)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--write", action="store_true", help="write the most selective pair into the manifest")
    args = parser.parse_args(argv)
    subject = load_subject(read_structure(args.manifest), args.device)
    table = sweep(subject)
    hook, task, rate, other = most_selective(table)
    print(f"most selective: zeroing {hook} breaks {rate:.3f} of {task}, at most {other:.3f} of any other task", file=sys.stderr)
    if args.write:
        write_claim(args.manifest, hook, task, table[hook], counts(subject))
        print(f"wrote [claims.ablation_breaks_one_task] into {args.manifest}", file=sys.stderr)


if __name__ == "__main__":
    main()
