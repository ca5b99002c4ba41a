"""The pytest plugin: subject options, the `claim` marker, subject fixtures and the claims report.

Registered through the `pytest11` entry point, so it is active wherever the package is installed.
A test marked `@pytest.mark.claim("NAME")` runs once per selected subject whose manifest has a
[claims.NAME] table; NAME must be a registered claim (verify.registry). Its fixtures: `subject`
(the loaded subject), `params` (the table as the claim's parameter dataclass), `claim` (the
registered claim), `measurement` (the claim's preconditions checked and, where they hold, the claim
measured on the subject) and `verdict(checks)`, which prints every measured number against its
bounds and fails the test if any check fails. The usual claim test is one line:
`verdict(claim.checks(measurement, params))`. A failed precondition fails the claim, with the
precondition's line as the reason.

Outcomes, as a CI gate reads them: a claim measured and not holding FAILS (in the call phase; a
junit <failure>); a claim that could not be measured (its subject failed to load, the measurement
refused its data) is an ERROR (in setup; a junit <error>). Exit status: 0 every selected claim held
(or was skipped with its reason); 1 a claim does not hold, or another test failed; 4 a usage error
(a bad manifest or option, reported before anything runs); NOT_MEASURED_EXIT (6) nothing was
measured false, but some claim could not be measured.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from verify import registry as claim_registry
from verify import sources
from verify.devices import DEVICE_CHOICES, resolve_device
from verify.manifest import ManifestError
from verify.verdicts import failures

SUBJECTS = pytest.StashKey()
RESULTS = pytest.StashKey()
LOAD_ERRORS = pytest.StashKey()
OUTCOMES = pytest.StashKey()
UNAVAILABLE = "subject not available"
NOT_LOADED = "subject cannot be loaded"
NOT_MEASURED = "claim cannot be measured"
NO_SUBJECT = "no subject declares this claim"
NOT_MEASURED_EXIT = 6
DEFAULT_SUBJECTS_DIR = "fixtures/subjects"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("verify", "interpretability claims (verify)")
    group.addoption("--subject", action="append", default=[], metavar="NAME",
                    help="check only this subject (repeatable); default: every subject in the subjects folder and --subject-file")
    group.addoption("--subject-file", action="append", default=[], metavar="PATH", type=Path,
                    help="add the subject of this manifest (repeatable): how CI checks a new checkpoint")
    group.addoption("--subjects-dir", default=None, metavar="DIR",
                    help=f"folder of subject manifests (*.toml); default: the verify_subjects_dir ini value, "
                         f"else {DEFAULT_SUBJECTS_DIR} under the rootdir")
    group.addoption("--require-subjects", action="store_true", default=False,
                    help="a subject that cannot be loaded here (e.g. a hub file offline) fails its claims instead of skipping them")
    group.addoption("--device", default="auto", choices=DEVICE_CHOICES,
                    help="torch device for models and SAEs: cpu, cuda or auto (cuda when available; default)")
    parser.addini("verify_subjects_dir", f"folder of subject manifests, relative to the rootdir (default {DEFAULT_SUBJECTS_DIR})",
                  default=DEFAULT_SUBJECTS_DIR)


def pytest_configure(config: pytest.Config) -> None:
    for line in (
        "claim(name): parametrize over the selected subjects whose manifest declares [claims.<name>]",
        "slow: long work (training, big sweeps); deselected unless -m slow is given",
        "hub: needs files from the Hugging Face hub (skipped offline unless --require-subjects)",
        "gpu: needs a CUDA device",
    ):
        config.addinivalue_line("markers", line)
    config.stash[RESULTS] = []
    config.stash[LOAD_ERRORS] = {}
    config.stash[OUTCOMES] = Outcomes()
    config.pluginmanager.register(config.stash[OUTCOMES], "verify-outcomes")
    from hypothesis import HealthCheck, settings

    settings.register_profile("ci", derandomize=True, database=None, deadline=None,
                              suppress_health_check=[HealthCheck.too_slow])
    settings.register_profile("dev", deadline=None)
    settings.load_profile("ci" if os.environ.get("CI") else "dev")


def subjects_dir(config: pytest.Config) -> Path | None:
    """The subjects folder; None when the default one does not exist (a project without subjects)."""
    given = config.getoption("--subjects-dir")
    folder = Path(given or config.getini("verify_subjects_dir"))
    folder = folder if folder.is_absolute() else (Path.cwd() if given else config.rootpath) / folder
    if not folder.is_dir():
        if given or config.getini("verify_subjects_dir") != DEFAULT_SUBJECTS_DIR:
            raise pytest.UsageError(f"subjects folder {folder} does not exist")
        return None
    return folder


def pytest_sessionstart(session: pytest.Session) -> None:
    """Read the manifests before collecting, so a bad manifest or --subject is a usage error."""
    subjects(session.config)


def subjects(config: pytest.Config):
    """The session's SubjectSet. Manifests are read on first use, so `pytest --help` works even with
    a broken one; their claim tables are resolved against the claims registered so far."""
    if SUBJECTS not in config.stash:
        from verify.subjects import SubjectSet, manifest_paths

        folder = subjects_dir(config)
        try:
            found = SubjectSet((manifest_paths(folder) if folder else []) + list(config.getoption("--subject-file")),
                               resolve_device(config.getoption("--device")))
            found.select(config.getoption("--subject"))
        except (ManifestError, RuntimeError, ValueError) as err:
            raise pytest.UsageError(str(err)) from None
        config.stash[SUBJECTS] = found
    return config.stash[SUBJECTS]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    marker = metafunc.definition.get_closest_marker("claim")
    if marker is None:
        return
    where = f"{metafunc.definition.nodeid}: @pytest.mark.claim"
    if len(marker.args) != 1 or not isinstance(marker.args[0], str):
        raise pytest.Collector.CollectError(f"{where}: takes one claim name, got {marker.args!r}")
    name = marker.args[0]
    if claim_registry.get_claim(name) is None:
        raise pytest.Collector.CollectError(f"{where}({name!r}): no claim of that name is registered "
                                            f"(registered: {', '.join(sorted(claim_registry.claims()))})")
    try:
        declaring = subjects(metafunc.config).declaring(name)
    except ManifestError as err:
        raise pytest.Collector.CollectError(str(err)) from None
    cases = []
    if not declaring:  # one visible skip instead of pytest's anonymous empty parameter set
        cases.append(pytest.param(None, None, id="no-subject", marks=pytest.mark.skip(reason=f"{NO_SUBJECT}: {name}")))
    for m in declaring:
        on_hub = any(sources.is_remote(s) for s in (m.model.weights, m.model.config, m.data.path, *(s.path for s in m.saes.values())))
        cases.append(pytest.param(m.name, m.claims[name], id=m.name, marks=[pytest.mark.hub] if on_hub else []))
    metafunc.parametrize(("subject", "params"), cases, indirect=["subject"])


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items) -> None:
    """Every claim table must name a registered claim once all test modules have registered theirs."""
    try:
        subjects(config).resolve(strict=True)
    except ManifestError as err:
        raise pytest.UsageError(str(err)) from None


@pytest.fixture
def subject(request: pytest.FixtureRequest):
    """The loaded subject (model, SAEs, data) of this claim's parameter; loaded once a session."""
    from verify.loaders import CheckpointError

    name = request.param
    try:
        return subjects(request.config).load(name)
    except sources.SourceUnavailable as err:
        message = f"{UNAVAILABLE}: {name}: {err}"
        if request.config.getoption("--require-subjects"):
            pytest.fail(message + " (--require-subjects)", pytrace=False)
        pytest.skip(message)
    except (CheckpointError, ManifestError, ValueError, OSError) as err:  # bad files: one line, once per subject
        first = request.config.stash[LOAD_ERRORS].setdefault(name, request.node.nodeid)
        pytest.fail(f"{NOT_LOADED}: {name}: {err}" if first == request.node.nodeid else f"{NOT_LOADED}: {name} (see {first})",
                    pytrace=False)


@pytest.fixture
def claim(request: pytest.FixtureRequest) -> claim_registry.Claim:
    """The registered claim named by this test's `claim` marker."""
    return claim_registry.get_claim(request.node.get_closest_marker("claim").args[0])


@pytest.fixture
def measurement(subject, params, claim):
    """The claim measured on the subject, in the test's setup: a measurement that cannot be made (a
    refusal of its data, e.g. splits that overlap) is an error, never a claim that does not hold."""
    try:
        return claim.measure_on(subject, params)
    except ValueError as err:
        pytest.fail(f"{NOT_MEASURED}: {claim.name} on {subject.name}: {err}", pytrace=False)


class Outcomes:
    """What a CI gate must tell apart: claims measured false, claims not measured, other failures."""

    def __init__(self) -> None:
        self.claim_failed = self.claim_error = self.other_failed = 0

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if not report.failed:
            return
        if "claim" not in report.keywords:
            self.other_failed += 1
        elif report.when == "call":
            self.claim_failed += 1
        else:
            self.claim_error += 1


def pytest_sessionfinish(session: pytest.Session, exitstatus) -> None:
    """Only measurement errors, no claim measured false: a distinct exit status for CI gates."""
    outcomes = session.config.stash.get(OUTCOMES, None)
    if (outcomes is not None and exitstatus == pytest.ExitCode.TESTS_FAILED and outcomes.claim_error
            and not (outcomes.claim_failed or outcomes.other_failed)):
        session.exitstatus = NOT_MEASURED_EXIT


@pytest.fixture
def verdict(request: pytest.FixtureRequest):
    """verdict(checks): report each measured number with its bounds; fail if any check fails."""

    def judge(checks) -> None:
        lines = [str(c) for c in checks]
        request.config.stash[RESULTS].append((request.node.nodeid, lines))
        for line in lines:
            request.node.user_properties.append(("measured", line))
            print(line)
        bad = failures(checks)
        if bad:
            pytest.fail("claim does not hold:\n  " + "\n  ".join(lines), pytrace=False)

    return judge


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    results = config.stash.get(RESULTS, [])
    stats = terminalreporter.stats
    claim_reports = [r for key in ("passed", "failed", "skipped", "error") for r in stats.get(key, [])
                     if getattr(r, "when", "call") in ("call", "setup") and "claim" in getattr(r, "keywords", {})]
    if not results and not claim_reports:
        return
    tr = terminalreporter
    tr.section("claims: measured against thresholds")
    for nodeid, lines in results:
        tr.write_line(nodeid)
        for line in lines:
            tr.write_line("    " + line)
    held = sum(1 for r in claim_reports if r.passed and r.when == "call")
    failed = sum(1 for r in claim_reports if r.failed and r.when == "call")
    errors = sum(1 for r in claim_reports if r.failed and r.when != "call")
    skipped = [str(r.longrepr) for r in claim_reports if r.skipped]
    missing = sum(UNAVAILABLE in reason for reason in skipped)
    undeclared = sum(NO_SUBJECT in reason for reason in skipped)
    tr.write_line(f"claims executed: {held + failed} ({held} held, {failed} failed); not measurable (errors): {errors}; "
                  f"skipped for a missing subject: {missing}; no subject declares the claim: {undeclared}; "
                  f"skipped otherwise: {len(skipped) - missing - undeclared}")
