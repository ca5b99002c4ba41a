"""The ledger: what a claims run measured, on which files, under which versions, as one JSON file.

`pytest claims/ --claims-report DIR` writes DIR/ledger.json. One `ClaimRecord` per subject and
claim (every check and note with its interval and bounds, the verdict, the parameters, the claim's
metric-definition version), one `SubjectRecord` per subject (sha256 of every file read, seeds,
device, dtype, an activation fingerprint), and the run's environment (package versions, git
commit). The schema is the pydantic models below; `SCHEMA_VERSION` changes whenever a field's
meaning does, and a ledger of another schema version is refused, never reinterpreted. Version 2
added the verdict `absent` (a finding the manifest declares absent, measured not holding) and the
record's `expect` / `expect_reason`; a version-1 ledger means the same with neither, so it is read
as it is (every version-1 claim was expected present), and ledgers are written as version 2.

Numbers that are not finite (a NaN rate over zero puzzles) are stored as null; a ledger file with
`Infinity` or `NaN` where a value, bound or tolerance belongs is refused.

`read` trusts nothing it reads: every check's `passed` is recomputed from its value and bounds,
every verdict from its checks (`inconsistencies`), and a (subject, claim) recorded twice is
refused, so a hand-edited ledger cannot mark a failing value held.
"""

from __future__ import annotations

import dataclasses
import json
import math
import platform
import re
import subprocess
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)
VERSIONED_PACKAGES = ("torch", "transformer_lens", "sae_lens", "datasets", "numpy", "verify")
# absent: the manifest declares the finding absent on this subject (expect = "absent") and it was
# measured not holding, an expected failure
Verdict = Literal["held", "failed", "not_measurable", "skipped", "absent"]
MAX_BYTES = 512 * 2**20  # a ledger is megabytes; a larger file is not one
SQUARE = re.compile(r"[A-H][0-7]")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Measured(Strict):
    """One printed line of a claim: a judged check (with bounds) or a reported note."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    what: str
    kind: Literal["check", "note"]
    value: float | None
    lo: float | None  # 95% interval; equal to value for a number without one
    hi: float | None
    bound_lo: float | None = None  # the check's bounds; None: unbounded on that side
    bound_hi: float | None = None
    passed: bool | None = None  # None for notes

    @property
    def half_width(self) -> float:
        return 0.0 if self.lo is None or self.hi is None else (self.hi - self.lo) / 2

    @property
    def within_bounds(self) -> bool:
        """The check recomputed: a value (not NaN, stored as null) inside its bounds."""
        return within(self.value, self.bound_lo, self.bound_hi)


def within(value: float | None, lo: float | None, hi: float | None) -> bool:
    return value is not None and (lo is None or value >= lo) and (hi is None or value <= hi)


class BoardFigure(Strict):
    """An 8x8 map of one number per board square (rows A..H, columns 0..7), `marked` squares outlined."""

    kind: Literal["board"] = "board"
    title: str
    values: list[list[float | None]]
    marked: list[str] = []
    label: str = ""

    @model_validator(mode="after")
    def _shape(self):
        if len(self.values) != 8 or any(len(row) != 8 for row in self.values):
            raise ValueError(f"board values must be 8 rows of 8, got rows of {[len(row) for row in self.values]}")
        bad = [s for s in self.marked if not SQUARE.fullmatch(s)]
        if bad:
            raise ValueError(f"marked square {bad[0]!r} is not a board square (A0..H7)")
        return self


class HistogramFigure(Strict):
    """Counts of one quantity over shared bin edges, one series per group (e.g. empty / occupied)."""

    kind: Literal["histogram"] = "histogram"
    title: str
    edges: list[float]
    series: dict[str, list[int]]
    label: str = ""

    @model_validator(mode="after")
    def _shape(self):
        if len(self.edges) < 2 or not all(math.isfinite(e) for e in self.edges) or \
                any(b <= a for a, b in zip(self.edges, self.edges[1:])):
            raise ValueError("histogram edges must be at least two finite, increasing numbers")
        for name, counts in self.series.items():
            if len(counts) != len(self.edges) - 1 or any(c < 0 for c in counts):
                raise ValueError(f"histogram series {name!r}: {len(counts)} counts for {len(self.edges)} edges "
                                 f"(one count >= 0 per bin)")
        return self


Figure = Annotated[BoardFigure | HistogramFigure, Field(discriminator="kind")]


class ClaimRecord(Strict):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    subject: str
    claim: str
    claim_version: int | None  # None: the claim is not registered in the process that wrote this
    params: dict[str, Any]
    verdict: Verdict
    reason: str = ""  # why it failed, was not measured or skipped
    checks: list[Measured] = []
    figures: list[Figure] = []  # claim-specific pictures for the report (Claim.figures)
    max_drift: float | None = Field(default=None, ge=0)  # the manifest's tolerance for `verify compare`; None: from the intervals
    expect: Literal["present", "absent"] = "present"  # the manifest's `expect` (absent: an expected failure)
    expect_reason: str = ""
    seconds: dict[str, float] = {}  # where the time went (verify.timing stages); not compared
    nodeid: str = ""

    @property
    def key(self) -> tuple[str, str]:
        return self.subject, self.claim


class FileRecord(Strict):
    role: str  # "model weights", "sae mlp3: cfg.json", "data: contact.parquet"
    path: str
    sha256: str
    bytes: int


class HookStats(Strict):
    shape: list[int]  # of the fingerprint batch's activations
    mean: float
    std: float
    norm: float  # mean L2 norm of the activation vectors (last axis)
    quantiles: dict[str, float]  # "0.01", "0.5", "0.99" -> value


class Fingerprint(Strict):
    """Activations of the hook points the subject's claims and SAEs read, on a fixed seeded batch:
    a library that changes what a hook point means moves these before any claim is read."""

    batch: str  # which inputs, e.g. "first 16 confirmation games (seed 1)"
    hooks: dict[str, HookStats]
    top1: list[list[int]]  # the model's top-1 prediction at each (input, position)


class SubjectRecord(Strict):
    name: str
    domain: str
    manifest: str
    available: bool
    reason: str = ""  # why not available
    files: list[FileRecord] = []
    seeds: dict[str, int] = {}
    device: str = ""
    dtype: str = ""
    fingerprint: Fingerprint | None = None


class Environment(Strict):
    python: str
    platform: str
    packages: dict[str, str | None]
    git_commit: str | None
    git_dirty: bool | None
    created: str  # UTC, ISO 8601
    argv: list[str] = []


class Ledger(Strict):
    schema_version: Literal[1, 2] = SCHEMA_VERSION
    environment: Environment
    subjects: dict[str, SubjectRecord]
    records: list[ClaimRecord]

    def record(self, subject: str, claim: str) -> ClaimRecord | None:
        return next((r for r in self.records if r.key == (subject, claim)), None)


class LedgerError(ValueError):
    """A ledger file that cannot be read: one line naming the file and what is wrong."""


def inconsistencies(ledger: Ledger) -> list[str]:
    """What the ledger says that its own numbers contradict, one line each (naming subject, claim
    and check): a check whose `passed` is not what its value and bounds give, a note that carries a
    judgement, a verdict its checks do not give (held with a failing check or none, absent undeclared
    or with every check passing, failed with every check passing and no reason), a (subject, claim)
    recorded twice."""
    found = []
    seen: set[tuple[str, str]] = set()
    for r in ledger.records:
        where = f"{r.subject} / {r.claim}"
        if r.key in seen:
            found.append(f"{where}: recorded twice")
        seen.add(r.key)
        for m in r.checks:
            if m.kind == "note" and (m.passed is not None or m.bound_lo is not None or m.bound_hi is not None):
                found.append(f"{where}: note {m.what!r} carries bounds or a pass: only checks are judged")
            elif m.kind == "check" and m.passed is not m.within_bounds:
                found.append(f"{where}: check {m.what!r} says passed={m.passed} but its value {m.value} "
                             f"is {'inside' if m.within_bounds else 'outside'} its bounds [{m.bound_lo}, {m.bound_hi}]")
        checks = [m for m in r.checks if m.kind == "check"]
        failing = [m.what for m in checks if not m.within_bounds]
        if r.verdict == "held" and (not checks or failing):
            found.append(f"{where}: verdict held but " + (f"check {failing[0]!r} fails" if failing else "no check was judged"))
        elif r.verdict == "failed" and checks and not failing and not r.reason:
            # a test may fail after its checks passed (an assertion of its own): then its reason says why
            found.append(f"{where}: verdict failed but every check passes and no reason is given")
        elif r.verdict == "absent" and (r.expect != "absent" or not failing):
            found.append(f"{where}: verdict absent but " + ("the finding is not declared absent (expect = \"absent\")"
                                                            if r.expect != "absent" else "every check passes"))
    return found


def verified(ledger: Ledger, source: str) -> Ledger:
    """`ledger` if it agrees with itself, else a LedgerError naming `source` and the first contradiction."""
    found = inconsistencies(ledger)
    if found:
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise LedgerError(f"{source}: the ledger contradicts itself: {found[0]}{more}")
    return ledger


def finite(x: float) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def measured(check) -> Measured:
    """A verify.verdicts Check or Note as a ledger line."""
    from verify.verdicts import Check

    e = check.estimate
    if isinstance(check, Check):
        return Measured(what=check.what, kind="check", value=finite(e.value), lo=finite(e.lo), hi=finite(e.hi),
                        bound_lo=finite(check.lo), bound_hi=finite(check.hi), passed=check.passed)
    return Measured(what=check.what, kind="note", value=finite(e.value), lo=finite(e.lo), hi=finite(e.hi))


def jsonable(value: Any) -> Any:
    """Claim parameters (a dataclass of str, numbers, tuples, dicts) as JSON values."""
    if dataclasses.is_dataclass(value):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, float):
        return finite(value)
    return value


def package_versions() -> dict[str, str | None]:
    found = {}
    for name in VERSIONED_PACKAGES:
        try:
            found[name] = version(name.replace("_", "-"))
        except PackageNotFoundError:
            found[name] = None
    return found


def git_state(folder: Path) -> tuple[str | None, bool | None]:
    """(commit, dirty) of the repository holding `folder`; (None, None) outside one."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, timeout=10)
        if commit.returncode != 0:
            return None, None
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=folder,
                                capture_output=True, text=True, timeout=30)
        return commit.stdout.strip(), bool(status.stdout.strip())
    except (OSError, subprocess.TimeoutExpired):
        return None, None


def environment(folder: Path, argv: list[str] | None = None) -> Environment:
    commit, dirty = git_state(folder)
    return Environment(python=platform.python_version(), platform=platform.platform(), packages=package_versions(),
                       git_commit=commit, git_dirty=dirty, created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                       argv=list(argv or []))


def read(path: Path) -> Ledger:
    """The ledger at `path` (a file, or a folder holding ledger.json), validated and checked
    against itself (`verified`); anything else is a LedgerError of one line naming the file."""
    path = Path(path)
    if path.is_dir():
        path = path / "ledger.json"
    try:
        if not path.is_file():  # a FIFO or a device would block or read as nothing
            raise LedgerError(f"{path}: " + ("not a regular file" if path.exists() else "no such ledger file"))
        if path.stat().st_size > MAX_BYTES:
            raise LedgerError(f"{path}: {path.stat().st_size} bytes, more than a ledger's {MAX_BYTES}")
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise LedgerError(f"{path}: cannot read the ledger ({err.strerror or err})") from None
    except UnicodeDecodeError as err:
        raise LedgerError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    try:
        raw = json.loads(text)
    except RecursionError:
        raise LedgerError(f"{path}: not a ledger: JSON nested too deeply") from None
    except ValueError as err:
        raise LedgerError(f"{path}: not JSON ({err})") from None
    if not isinstance(raw, dict):
        raise LedgerError(f"{path}: not a valid ledger: expected a JSON object, got {type(raw).__name__}")
    if raw.get("schema_version") not in READABLE_VERSIONS:
        raise LedgerError(f"{path}: ledger schema version {raw.get('schema_version')!r}; this verify reads versions "
                          f"{', '.join(map(str, READABLE_VERSIONS))}")
    try:
        found = Ledger.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise LedgerError(f"{path}: not a valid ledger: {where}: {first['msg']} ({err.error_count()} problem(s))") from None
    except RecursionError:
        raise LedgerError(f"{path}: not a ledger: nested too deeply") from None
    return verified(found, str(path))


def write(ledger: Ledger, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(ledger.model_dump_json(indent=1) + "\n", encoding="utf-8")
    partial.replace(path)  # a reader never sees half a ledger
    return path


def merge(parts: list[Ledger], sources: list[str]) -> Ledger:
    """One ledger from the shards of one run (e.g. CI jobs split by subject). Parts from another
    environment (Python, package versions, git commit or uncommitted changes) and a subject or claim
    recorded by two parts with different results (numbers, verdict, parameters) are refused: the
    parts are not of one run."""
    if not parts:
        raise LedgerError("no ledgers to merge")
    for part, source in zip(parts, sources):
        verified(part, source)
        differ = [f for f in ("python", "packages", "git_commit", "git_dirty")
                  if getattr(part.environment, f) != getattr(parts[0].environment, f)]
        if differ:
            f = differ[0]
            raise LedgerError(f"{source}: environment {f} {getattr(part.environment, f)!r} differs from {sources[0]}'s "
                              f"{getattr(parts[0].environment, f)!r}: not one run")
    subjects: dict[str, SubjectRecord] = {}
    records: dict[tuple[str, str], ClaimRecord] = {}
    origin: dict[Any, str] = {}
    for part, source in zip(parts, sources):
        for name, subject in part.subjects.items():
            old = subjects.get(name)
            if old is not None and old.available and subject.available and old.files != subject.files:
                raise LedgerError(f"{source}: subject {name!r} was also recorded by {origin[name]} with other files")
            if old is None or (subject.available and not old.available):
                subjects[name], origin[name] = subject, source
        for r in part.records:
            old = records.get(r.key)
            if old is not None and old.verdict != "skipped" and r.verdict != "skipped":
                what = next((f for f in ("checks", "verdict", "params", "claim_version", "max_drift", "expect")
                             if getattr(old, f) != getattr(r, f)), None)
                if what is not None:
                    shown = "other values" if what == "checks" else f"another {what} ({getattr(old, what)!r} there, {getattr(r, what)!r} here)"
                    raise LedgerError(f"{source}: {r.claim} on {r.subject} was also measured by {origin[r.key]}, with {shown}")
            if old is None or old.verdict == "skipped":
                records[r.key], origin[r.key] = r, source
    env = parts[0].environment
    return Ledger(environment=env, subjects=dict(sorted(subjects.items())),
                  records=sorted(records.values(), key=lambda r: (r.subject, r.claim)))
