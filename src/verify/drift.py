"""The drift gate: a run's ledger against an earlier one (`verify compare`, `--claims-baseline`).

Per subject and claim it lines up old and new values, and it fails on what a fixed threshold
cannot see:
- a verdict that changed (held -> failed, and also held -> skipped: a gate never loses a claim silently);
- a judged value that moved beyond its tolerance: the manifest's `max_drift` for the claim, else
  the two 95% intervals combined, sqrt(h_old^2 + h_new^2) with h the half-widths (a change the
  intervals do not explain; for numbers without an interval, any change);
- a fingerprint that moved (verify.fingerprint): the same hook points on the same batch give other
  activations, so a library or the weights changed what the numbers mean;
- a claim whose metric-definition version differs: refused as incomparable, never compared;
- a claim of the old ledger missing from the new one, for a subject the new run measured.
Notes (numbers reported beside the checks) are shown, never gated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from verify.fingerprint import moved
from verify.ledger import ClaimRecord, Ledger, Measured

EPSILON = 1e-12  # float noise below which two values are the same number


@dataclass(frozen=True)
class Row:
    subject: str
    claim: str
    what: str
    kind: str
    old: float | None
    new: float | None
    tolerance: float | None
    status: str  # "ok", "moved", "note", "only old", "only new"
    passed: tuple[bool | None, bool | None] = (None, None)

    @property
    def change(self) -> float | None:
        return None if self.old is None or self.new is None else self.new - self.old


@dataclass
class Comparison:
    rows: list[Row] = field(default_factory=list)
    verdicts: list[tuple[str, str, str, str]] = field(default_factory=list)  # subject, claim, old, new
    problems: list[str] = field(default_factory=list)
    fingerprints: dict[str, list[str]] = field(default_factory=dict)  # subject -> what moved
    skipped: list[str] = field(default_factory=list)  # subjects of the old ledger this run did not measure

    def lines(self) -> list[str]:
        out = []
        for subject, claim, old, new in self.verdicts:
            out.append(f"{subject} / {claim}: verdict {old} -> {new}" + ("" if old == new else "   <-- changed"))
            for r in self.rows:
                if (r.subject, r.claim) == (subject, claim):
                    out.append("    " + format_row(r))
        for subject, what in self.fingerprints.items():
            out += [f"{subject}: fingerprint moved: {line}" for line in what]
        if self.skipped:
            out.append(f"not compared (not in the new run): {', '.join(self.skipped)}")
        return out

    def verdict_line(self) -> str:
        if not self.problems:
            return f"drift gate: passed ({len(self.verdicts)} claims compared, no verdict flipped, nothing moved beyond tolerance)"
        return f"drift gate: FAILED, {len(self.problems)} problem(s):\n  " + "\n  ".join(self.problems)


def fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.4f}"


def format_row(r: Row) -> str:
    change = "-" if r.change is None else f"{r.change:+.4f}"
    tol = "" if r.tolerance is None else f" (tolerance {r.tolerance:.4f})"
    flag = {"moved": "   <-- moved", "only old": "   <-- missing in new", "only new": "   (new)"}.get(r.status, "")
    return f"{r.kind:5} {r.what}: {fmt(r.old)} -> {fmt(r.new)}, change {change}{tol}{flag}"


def tolerance(record: ClaimRecord, old: Measured, new: Measured) -> float:
    if record.max_drift is not None:
        return record.max_drift
    return math.hypot(old.half_width, new.half_width)


def paired(old: list[Measured], new: list[Measured]) -> list[tuple[Measured | None, Measured | None]]:
    """Lines of one claim, old with new. The same definition prints the same lines in the same
    order, though a line's words may name what it found (e.g. which task broke most): pair by
    position when both have the same kinds of lines, else by their words."""
    if [m.kind for m in old] == [m.kind for m in new]:
        return list(zip(old, new))
    by_what = {m.what: m for m in new}
    pairs = [(m, by_what.pop(m.what, None)) for m in old]
    return pairs + [(None, m) for m in new if m.what in by_what]


def compare(old: Ledger, new: Ledger, rename: dict[str, str] | None = None) -> Comparison:
    """`rename` maps a subject of `old` onto the subject of `new` to compare it with (a new checkpoint's)."""
    rename = rename or {}
    for old_name, new_name in rename.items():
        if old_name not in old.subjects and not any(r.subject == old_name for r in old.records):
            raise ValueError(f"--as {old_name}={new_name}: the old ledger has no subject {old_name!r} "
                             f"(it has {', '.join(sorted(old.subjects)) or 'none'})")
        if new_name not in new.subjects and not any(r.subject == new_name for r in new.records):
            raise ValueError(f"--as {old_name}={new_name}: the new ledger has no subject {new_name!r} "
                             f"(it has {', '.join(sorted(new.subjects)) or 'none'})")
    # with --as, only the mapped subjects; else the subjects the new run measured (a run of one
    # shard or one --subject is gated on its own subjects, not failed for the others)
    in_new = set(new.subjects) | {r.subject for r in new.records}
    compared = set(rename) if rename else ({r.subject for r in old.records} | set(old.subjects)) & in_new
    result = Comparison()
    result.skipped = sorted(({r.subject for r in old.records} | set(old.subjects)) - compared)
    result = Comparison()
    for record in old.records:
        if record.subject not in compared:
            continue
        target = rename.get(record.subject, record.subject)
        label = record.subject if target == record.subject else f"{record.subject} -> {target}"
        counterpart = new.record(target, record.claim)
        if counterpart is None:
            result.problems.append(f"{label} / {record.claim}: in the old ledger, not in the new one")
            continue
        if record.claim_version != counterpart.claim_version:
            result.problems.append(f"{label} / {record.claim}: incomparable: metric definition v{record.claim_version} (old) "
                                   f"vs v{counterpart.claim_version} (new)")
            continue
        result.verdicts.append((label, record.claim, record.verdict, counterpart.verdict))
        if record.verdict != counterpart.verdict:
            result.problems.append(f"{label} / {record.claim}: verdict {record.verdict} -> {counterpart.verdict}")
        for a, b in paired(record.checks, counterpart.checks):
            result.rows.append(row(label, counterpart, a, b))
            if result.rows[-1].status in ("moved", "only old"):
                r = result.rows[-1]
                result.problems.append(f"{label} / {record.claim}: {r.what}: {fmt(r.old)} -> {fmt(r.new)}" +
                                       ("" if r.tolerance is None else f" (change {r.change:+.4f}, tolerance {r.tolerance:.4f})"))
    for name in sorted(compared):
        a, b = old.subjects.get(name), new.subjects.get(rename.get(name, name))
        if a is not None and b is not None and a.fingerprint is not None and b.fingerprint is not None:
            what = moved(a.fingerprint, b.fingerprint)
            if what:
                result.fingerprints[name] = what
                result.problems.append(f"{name}: fingerprint moved ({len(what)} statistic(s); first: {what[0]})")
    return result


def row(subject: str, record: ClaimRecord, a: Measured | None, b: Measured | None) -> Row:
    if a is None or b is None:
        m = a or b
        return Row(subject, record.claim, m.what, m.kind, a and a.value, b and b.value, None, "only old" if b is None else "only new")
    if a.kind == "note":
        return Row(subject, record.claim, b.what, "note", a.value, b.value, None, "note")
    tol = tolerance(record, a, b)
    same = a.value == b.value or (a.value is not None and b.value is not None and abs(b.value - a.value) <= tol + EPSILON)
    return Row(subject, record.claim, b.what, "check", a.value, b.value, tol, "ok" if same else "moved", (a.passed, b.passed))
