"""The drift gate: a run's ledger against an earlier one (`verify compare`, `--claims-baseline`).

Per subject and claim it lines up old and new values, and it fails on what a fixed threshold
cannot see:
- a ledger that contradicts itself (a check marked passed whose value lies outside its bounds, a
  verdict its checks do not give, a claim recorded twice: verify.ledger.inconsistencies), refused
  before anything is compared;
- a verdict that changed (held -> failed, and also held -> skipped, held <-> absent: a gate never
  loses a claim silently);
- a judged value that moved beyond its tolerance: the BASELINE's `max_drift` for the claim, else
  the two 95% intervals combined, sqrt(h_old^2 + min(h_new, h_old)^2) with h the half-widths (a change the
  intervals do not explain; for numbers without an interval, any change);
- a bound, parameter, `max_drift` or `expect` that differs from the baseline's: the candidate does
  not set its own bar; reported, and failed unless `accept_changed` (a reviewed manifest change);
- a fingerprint that moved (verify.fingerprint): the same hook points on the same batch give other
  activations, so a library or the weights changed what the numbers mean;
- a claim whose metric-definition version differs: refused as incomparable, never compared;
  a line that was a check and is now a note (or back): never accepted;
- a claim of the old ledger missing from the new one, for a subject the new run measured;
- a comparison that compared no claim at all (the new run measured none of the baseline's subjects).
Baseline subjects the new run did not measure (a shard, one --subject) are listed as not compared;
with `require_all` they fail the gate too. Notes (numbers reported beside the checks) are shown,
never gated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from verify.fingerprint import moved
from verify.ledger import ClaimRecord, Ledger, Measured, verified

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
    changes: list[str] = field(default_factory=list)  # bounds, parameters, max_drift that differ from the baseline's
    accept_changed: bool = False

    def lines(self) -> list[str]:
        out = []
        for subject, claim, old, new in self.verdicts:
            out.append(f"{subject} / {claim}: verdict {old} -> {new}" + ("" if old == new else "   <-- changed"))
            for r in self.rows:
                if (r.subject, r.claim) == (subject, claim):
                    out.append("    " + format_row(r))
        for subject, what in self.fingerprints.items():
            out += [f"{subject}: fingerprint moved: {line}" for line in what]
        accepted = " (accepted: --accept-changed-bounds)" if self.accept_changed else "   <-- changed"
        out += [f"{line}{accepted}" for line in self.changes]
        if self.skipped:
            out.append(f"not compared (baseline subjects the new run did not measure): {', '.join(self.skipped)}")
        return out

    def verdict_line(self) -> str:
        if not self.problems:
            rest = f"; not compared: {len(self.skipped)} baseline subject(s)" if self.skipped else ""
            accepted = f"; {len(self.changes)} changed bound(s) or parameter(s) accepted" if self.changes else ""
            return (f"drift gate: passed ({len(self.verdicts)} claims compared, no verdict flipped, nothing moved "
                    f"beyond tolerance{accepted}{rest})")
        return f"drift gate: FAILED, {len(self.problems)} problem(s):\n  " + "\n  ".join(self.problems)


def fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.4f}"


def format_row(r: Row) -> str:
    change = "-" if r.change is None else f"{r.change:+.4f}"
    tol = "" if r.tolerance is None else f" (tolerance {r.tolerance:.4f})"
    flag = {"moved": "   <-- moved", "only old": "   <-- missing in new", "only new": "   (new)"}.get(r.status, "")
    return f"{r.kind:5} {r.what}: {fmt(r.old)} -> {fmt(r.new)}, change {change}{tol}{flag}"


def tolerance(record: ClaimRecord, old: Measured, new: Measured) -> float:
    """`record` is the baseline's: a candidate never sets its own tolerance."""
    if record.max_drift is not None:
        return record.max_drift
    # the candidate's interval may narrow the tolerance, never widen it past the baseline's own: a
    # ledger claiming a wide interval would otherwise let a moved value through
    return math.hypot(old.half_width, min(new.half_width, old.half_width))


def paired(old: list[Measured], new: list[Measured]) -> list[tuple[Measured | None, Measured | None]]:
    """Lines of one claim, old with new. The same definition prints the same lines in the same
    order, though a line's words may name what it found (e.g. which task broke most): pair by
    position when both have the same kinds of lines, else by their words."""
    if [m.kind for m in old] == [m.kind for m in new]:
        return list(zip(old, new))
    by_what = {m.what: m for m in new}
    pairs = [(m, by_what.pop(m.what, None)) for m in old]
    return pairs + [(None, m) for m in new if m.what in by_what]


def bounds_of(m: Measured) -> str:
    if m.bound_lo is None and m.bound_hi is None:
        return "unbounded"
    return " and ".join(t for t in (m.bound_lo is not None and f">= {m.bound_lo:.6g}", m.bound_hi is not None and f"<= {m.bound_hi:.6g}") if t)


def changed(label: str, old: ClaimRecord, new: ClaimRecord, pairs) -> list[str]:
    """What the candidate declares differently from the baseline: parameters, tolerance, expectation, bounds."""
    where = f"{label} / {old.claim}"
    out = []
    for key in sorted(set(old.params) | set(new.params)):
        if old.params.get(key) != new.params.get(key):
            out.append(f"{where}: parameter {key} changed: {old.params.get(key)!r} -> {new.params.get(key)!r}")
    if old.max_drift != new.max_drift:
        out.append(f"{where}: max_drift changed: {old.max_drift} -> {new.max_drift} (the baseline's is used)")
    if old.expect != new.expect:
        out.append(f"{where}: expect changed: {old.expect} -> {new.expect}")
    for a, b in pairs:
        if a is not None and b is not None and a.kind == b.kind == "check" and (a.bound_lo, a.bound_hi) != (b.bound_lo, b.bound_hi):
            out.append(f"{where}: bounds of {b.what} changed: {bounds_of(a)} -> {bounds_of(b)}")
    return out


def compare(old: Ledger, new: Ledger, rename: dict[str, str] | None = None, accept_changed: bool = False,
            require_all: bool = False) -> Comparison:
    """`rename` maps a subject of `old` onto the subject of `new` to compare it with (a new
    checkpoint's). `accept_changed`: bounds, parameters and max_drift that differ from the
    baseline's are reported, not failed. `require_all`: a baseline subject the new run did not
    measure fails the gate. Ledgers that contradict themselves raise LedgerError."""
    rename = rename or {}
    verified(old, "the baseline")
    verified(new, "the new ledger")
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
    result = Comparison(accept_changed=accept_changed)
    result.skipped = sorted(({r.subject for r in old.records} | set(old.subjects)) - compared)
    if require_all:
        result.problems += [f"{name}: in the baseline, not measured by the new run (--require-all)" for name in result.skipped]
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
        pairs = paired(record.checks, counterpart.checks)
        changes = changed(label, record, counterpart, pairs)
        result.changes += changes
        if not accept_changed:
            result.problems += [f"{line} (accept a reviewed change with --accept-changed-bounds)" for line in changes]
        for a, b in pairs:
            if a is not None and b is not None and a.kind != b.kind:
                result.problems.append(f"{label} / {record.claim}: {b.what}: was a {a.kind}, is a {b.kind}: "
                                       f"a judged line is never turned into a reported one (or back)")
            result.rows.append(row(label, record, a, b))
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
    if not result.verdicts:
        in_old = sorted({r.subject for r in old.records} | set(old.subjects))
        result.problems.append(f"no claim compared: the new ledger has none of the baseline's claims for its subjects "
                               f"(baseline: {', '.join(in_old) or 'none'}; new: {', '.join(sorted(in_new)) or 'none'}; "
                               f"a renamed subject needs --as OLD=NEW)")
    return result


def row(subject: str, record: ClaimRecord, a: Measured | None, b: Measured | None) -> Row:
    """One line of `record` (the baseline's: its tolerance) old against new."""
    if a is None or b is None:
        m = a or b
        return Row(subject, record.claim, m.what, m.kind, a and a.value, b and b.value, None, "only old" if b is None else "only new")
    if a.kind == "note":
        return Row(subject, record.claim, b.what, "note", a.value, b.value, None, "note")
    tol = tolerance(record, a, b)
    same = a.value == b.value or (a.value is not None and b.value is not None and abs(b.value - a.value) <= tol + EPSILON)
    return Row(subject, record.claim, b.what, "check", a.value, b.value, tol, "ok" if same else "moved", (a.passed, b.passed))
