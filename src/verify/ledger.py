"""The ledger: what a claims run measured, on which files, under which versions, as one JSON file.

`pytest claims/ --claims-report DIR` writes DIR/ledger.json. One `ClaimRecord` per subject and
claim (every check and note with its interval and bounds, the verdict, the parameters, the claim's
metric-definition version), one `SubjectRecord` per subject (sha256 of every file read, seeds,
device, dtype, an activation fingerprint), and the run's environment (package versions, git
commit). The schema is the pydantic models below; `SCHEMA_VERSION` changes whenever a field's
meaning does, and a ledger of another schema version is refused, never reinterpreted.

Numbers that are not finite (a NaN rate over zero puzzles) are stored as null.
"""

from __future__ import annotations

import dataclasses
import json
import math
import platform
import subprocess
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

SCHEMA_VERSION = 1
VERSIONED_PACKAGES = ("torch", "transformer_lens", "sae_lens", "datasets", "numpy", "verify")
Verdict = Literal["held", "failed", "not_measurable", "skipped"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Measured(Strict):
    """One printed line of a claim: a judged check (with bounds) or a reported note."""

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


class BoardFigure(Strict):
    """An 8x8 map of one number per board square (rows A..H, columns 0..7), `marked` squares outlined."""

    kind: Literal["board"] = "board"
    title: str
    values: list[list[float | None]]
    marked: list[str] = []
    label: str = ""


class HistogramFigure(Strict):
    """Counts of one quantity over shared bin edges, one series per group (e.g. empty / occupied)."""

    kind: Literal["histogram"] = "histogram"
    title: str
    edges: list[float]
    series: dict[str, list[int]]
    label: str = ""


Figure = Annotated[BoardFigure | HistogramFigure, Field(discriminator="kind")]


class ClaimRecord(Strict):
    subject: str
    claim: str
    claim_version: int | None  # None: the claim is not registered in the process that wrote this
    params: dict[str, Any]
    verdict: Verdict
    reason: str = ""  # why it failed, was not measured or skipped
    checks: list[Measured] = []
    figures: list[Figure] = []  # claim-specific pictures for the report (Claim.figures)
    max_drift: float | None = None  # the manifest's tolerance for `verify compare`; None: from the intervals
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
    schema_version: Literal[1] = SCHEMA_VERSION
    environment: Environment
    subjects: dict[str, SubjectRecord]
    records: list[ClaimRecord]

    def record(self, subject: str, claim: str) -> ClaimRecord | None:
        return next((r for r in self.records if r.key == (subject, claim)), None)


class LedgerError(ValueError):
    """A ledger file that cannot be read: one line naming the file and what is wrong."""


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
    path = Path(path)
    if path.is_dir():
        path = path / "ledger.json"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise LedgerError(f"{path}: cannot read the ledger ({err.strerror or err})") from None
    try:
        raw = json.loads(text)
    except ValueError as err:
        raise LedgerError(f"{path}: not JSON ({err})") from None
    if isinstance(raw, dict) and raw.get("schema_version") != SCHEMA_VERSION:
        raise LedgerError(f"{path}: ledger schema version {raw.get('schema_version')!r}; this verify reads version {SCHEMA_VERSION}")
    try:
        return Ledger.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise LedgerError(f"{path}: not a valid ledger: {where}: {first['msg']} ({err.error_count()} problem(s))") from None


def write(ledger: Ledger, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(ledger.model_dump_json(indent=1) + "\n", encoding="utf-8")
    partial.replace(path)  # a reader never sees half a ledger
    return path


def merge(parts: list[Ledger], sources: list[str]) -> Ledger:
    """One ledger from the shards of one run (e.g. CI jobs split by subject). A subject or claim
    recorded by two parts with different results is refused: the parts are not of one run."""
    if not parts:
        raise LedgerError("no ledgers to merge")
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
            if old is not None and old.verdict != "skipped" and r.verdict != "skipped" and old.checks != r.checks:
                raise LedgerError(f"{source}: {r.claim} on {r.subject} was also measured by {origin[r.key]}, with other values")
            if old is None or old.verdict == "skipped":
                records[r.key], origin[r.key] = r, source
    commits = {p.environment.git_commit for p in parts}
    if len(commits) > 1:
        raise LedgerError(f"the parts come from different commits ({', '.join(sorted(map(str, commits)))}): not one run")
    env = parts[0].environment
    return Ledger(environment=env, subjects=dict(sorted(subjects.items())),
                  records=sorted(records.values(), key=lambda r: (r.subject, r.claim)))
