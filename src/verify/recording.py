"""From a pytest run to ledger records, the same way serially and under pytest-xdist.

What a test measured travels in its report's `user_properties` (pytest sends those from xdist
workers to the controller): "verify-claim" (subject, claim, parameters) from setup on, "measured"
(each printed line), "verify-checks" and "verify-figures" once measured, "verify-subject" with the
first claim of each subject a worker loads. The `Recorder` plugin reads them from the reports, on
whichever process sees every report, and builds the ledger's records. The ledger's schema (pydantic)
is imported where a record is made: a pytest run without claims (another project's) imports none of it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from verify import sources

if TYPE_CHECKING:
    from verify import ledger

CLAIM, CHECKS, FIGURES, SUBJECT, SECONDS, MEASURED = (
    "verify-claim", "verify-checks", "verify-figures", "verify-subject", "verify-seconds", "measured")


def claim_property(subject: str, claim, params, max_drift: float | None, absent: str | None = None) -> tuple[str, str]:
    """`absent`: the manifest's expect_reason where it declares the finding absent on the subject."""
    from verify import ledger

    version = None if claim is None else claim.version
    name = claim if isinstance(claim, str) else claim.name
    return CLAIM, json.dumps({"subject": subject, "claim": name, "claim_version": version,
                              "params": ledger.jsonable(params), "max_drift": max_drift,
                              "expect": "present" if absent is None else "absent", "expect_reason": absent or ""})


def subject_record(subject, fingerprint: bool = True) -> ledger.SubjectRecord:
    """The loaded subject's files (hashed as read), seeds, device, dtype and fingerprint."""
    from verify import ledger, registry
    from verify.fingerprint import fingerprint as take_fingerprint, hooks_read

    m = subject.manifest
    files = [ledger.FileRecord(role=role, path=str(path), sha256=sources.sha256_of(path), bytes=Path(path).stat().st_size)
             for role, path in subject.files.items()]
    found = None
    source = registry.sources()[m.data.source]
    if fingerprint and source.fingerprint_batch is not None:
        tokens, batch = source.fingerprint_batch(subject)
        found = take_fingerprint(subject.model, tokens, hooks_read(m), batch)
    return ledger.SubjectRecord(name=m.name, domain=m.domain, manifest=str(m.path), available=True, files=files,
                                seeds={"selection": m.data.selection_seed, "confirmation": m.data.confirmation_seed},
                                device=str(subject.device), dtype=str(next(subject.model.parameters()).dtype),
                                fingerprint=found)


def unavailable_record(manifest, reason: str) -> ledger.SubjectRecord:
    from verify import ledger

    return ledger.SubjectRecord(name=manifest.name, domain=manifest.domain, manifest=str(manifest.path), available=False,
                                reason=reason)


def reason_of(report: pytest.TestReport) -> str:
    if hasattr(report, "wasxfail"):
        return report.wasxfail.removeprefix("reason: ")
    if report.skipped and isinstance(report.longrepr, tuple):
        return report.longrepr[2].removeprefix("Skipped: ")
    return (report.longreprtext or "").strip().splitlines()[0] if report.longreprtext else ""


def plain_nodeid(nodeid: str) -> str:
    """A test id without the `@subject` suffix that xdist's loadgroup appends: a claim's id, and its
    ledger record, are the same serially and under `pytest -n N`. The suffix is what follows the last "@"
    after the last "]", as xdist reads it: an "@" inside a parametrize id belongs to the id."""
    at = nodeid.rfind("@")
    return nodeid[:at] if at > nodeid.rfind("]") and at > nodeid.rfind("::") else nodeid


class Recorder:
    """Collects the claims' printed lines (for the terminal summary) and ledger records, by plain test id."""

    def __init__(self) -> None:
        self.lines: dict[str, list[str]] = {}  # nodeid -> printed check lines
        self.records: dict[str, ledger.ClaimRecord] = {}  # nodeid -> record
        self.subjects: dict[str, ledger.SubjectRecord] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        props = dict(report.user_properties)  # one value per key; MEASURED is gathered below
        if SUBJECT not in props and CLAIM not in props:
            return  # no claim's report
        from verify import ledger

        if SUBJECT in props:
            found = ledger.SubjectRecord.model_validate_json(props[SUBJECT])
            if found.available or found.name not in self.subjects:
                self.subjects[found.name] = found
        if CLAIM not in props:
            return
        lines = [value for key, value in report.user_properties if key == MEASURED]
        if lines:
            self.lines[plain_nodeid(report.nodeid)] = lines
        head = json.loads(props[CLAIM])
        if report.when == "call" or (report.when == "setup" and not report.passed):
            checks = [ledger.Measured.model_validate(c) for c in json.loads(props.get(CHECKS, "[]"))]
            judged = [m for m in checks if m.kind == "check"]
            if report.passed:
                verdict = "held"
            elif report.skipped:  # an xfail is an expected failure: absent where the manifest says so
                verdict = "skipped" if not hasattr(report, "wasxfail") else "absent" if head.get("expect") == "absent" and not all(m.passed for m in judged) else "failed"
            elif report.when == "call" and head.get("expect") == "absent" and judged and all(m.passed for m in judged):
                verdict = "held"  # a finding declared absent that holds: the test fails, the finding is recorded as it is
            else:
                verdict = "failed" if report.when == "call" else "not_measurable"
            figures = json.loads(props.get(FIGURES, "[]"))
            self.records[plain_nodeid(report.nodeid)] = ledger.ClaimRecord(
                **head, verdict=verdict, reason="" if report.passed else reason_of(report), checks=checks,
                figures=figures, seconds=json.loads(props.get(SECONDS, "{}")), nodeid=plain_nodeid(report.nodeid))

    def ledger(self, environment: ledger.Environment, manifests: dict) -> ledger.Ledger:
        """The run's ledger; `manifests` (name -> Manifest) names subjects no claim reached."""
        from verify import ledger

        subjects = dict(self.subjects)
        for record in self.records.values():
            if record.subject not in subjects and record.subject in manifests:
                subjects[record.subject] = unavailable_record(manifests[record.subject], record.reason)
        records = sorted(self.records.values(), key=lambda r: (r.subject, r.claim, r.nodeid))
        return ledger.Ledger(environment=environment, subjects=dict(sorted(subjects.items())), records=records)
