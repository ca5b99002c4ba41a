"""The pytest plugin: subject options, the `claim` marker, subject fixtures and the claims report.

Registered through the `pytest11` entry point, so it is active wherever the package is installed.
A test marked `@pytest.mark.claim("NAME")` runs once per selected subject whose manifest has a
[claims.NAME] table; NAME must be a registered claim (verify.registry). Its fixtures: `subject`
(the loaded subject), `params` (the table as the claim's parameter dataclass), `claim` (the
registered claim), `measurement` (the claim's preconditions checked and, where they hold, the claim
measured on the subject) and `verdict(checks)`, which prints every measured number against its
bounds and fails the test if any check fails. The usual claim test is one line:
`verdict(claim.checks(measurement, params))`. A failed precondition fails the claim, with the
precondition's line as the reason. A claim declared several times on one subject
([claims.NAME.INSTANCE] tables) runs once per instance, as `SUBJECT/INSTANCE`, each its own ledger
record. A manifest in the subjects folder is itself a test file: it collects that one-line test for
each claim it declares (unless a test module already runs it), so a project of manifests and a
pytest.ini runs with plain `pytest`.

Records: with --claims-report DIR (or --claims-baseline) the run's ledger is built (verify.ledger:
every measured number, the files' sha256, versions, activation fingerprints) from what each test
put in its report (verify.recording), which works the same under pytest-xdist; `pytest -n N`
groups the claims by subject so each worker loads a subject once. The drift gate
(--claims-baseline, verify.drift) turns a moved value, flipped verdict, changed bound or moved
fingerprint into a failed session; the baseline is read and checked before anything runs.

A claim table may declare the finding absent on its subject (`expect = "absent"`, with an
`expect_reason`): it is measured against its real bounds, and not holding is an expected failure
(pytest's xfail, recorded as `absent`); holding fails the test, like a strict xfail that passed,
until the manifest stops declaring it absent.

Outcomes, as a CI gate reads them: a claim measured and not holding FAILS (in the call phase; a
junit <failure>); a claim that could not be measured (its subject failed to load, the measurement
refused its data) is an ERROR (in setup; a junit <error>). Exit status: 0 every selected claim held
(or was skipped with its reason); 1 a claim does not hold, or another test failed; 4 a usage error
(a bad manifest, option or baseline, reported before anything runs); NOT_MEASURED_EXIT (6) nothing
was measured false, but some claim could not be measured. A claim declared absent that does not
hold is xfailed and fails nothing.
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from verify import gcpause, sources, timing
from verify import registry as claim_registry
from verify.coreshare import CoreShare
from verify.devices import DEVICE_CHOICES, available_cores, resolve_device, worker_device, worker_threads
from verify.manifest import ManifestError, claim_name
from verify.recording import (CHECKS, FIGURES, MEASURED, SECONDS, SUBJECT, Recorder, claim_property, plain_nodeid,
                              subject_record, unavailable_record)

if TYPE_CHECKING:
    from verify.verdicts import Check

SUBJECTS = pytest.StashKey()
LOADGROUP_INPUT = "verify_loadgroup"  # workerinput key: the controller grouped claims by subject
RECORDER = pytest.StashKey()
CORE_SHARE = pytest.StashKey()  # an xdist worker's (CoreShare, what stops its refresh at each stage and batch)
RECORDED_SUBJECTS = pytest.StashKey()
LOAD_SECONDS = pytest.StashKey()
PROGRESS = pytest.StashKey()
LOAD_ERRORS = pytest.StashKey()
OUTCOMES = pytest.StashKey()
BASELINE = pytest.StashKey()
INSTANCES = pytest.StashKey()  # a claim test's nodeid -> its claim table key: "NAME", or "NAME.INSTANCE" for a named instance
MANIFEST_MARK = "verify_manifest"  # the tests a manifest file collects run on that manifest's subject only
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
                    help="torch device for models and SAEs: cpu, cuda or auto (cuda when available; default); "
                         "under pytest -n N each worker takes its own GPU (cuda:K for worker gwK)")
    group.addoption("--subject-shard", default=None, metavar="K/N",
                    help="check only the K-th of N shards of the subjects (1 <= K <= N; whole subjects, sorted by name): "
                         "one CI job per shard, their --claims-report folders joined by `verify merge`")
    group.addoption("--claims-report", default=None, metavar="DIR", type=Path,
                    help="write DIR/ledger.json (every measured number, files' sha256, versions, activation fingerprints) "
                         "and DIR/report.html + report.md (the claims with pictures)")
    group.addoption("--claims-baseline", default=None, metavar="LEDGER", type=Path,
                    help="compare this run with a saved ledger (file or folder) like `verify compare`, and fail on "
                         "a flipped verdict, a value moved beyond its tolerance or a moved fingerprint; "
                         "a bound, parameter or max_drift changed from the baseline's, or no claim compared; read and "
                         "checked before anything runs (a bad file is a usage error); a baseline that does not exist yet is written")
    group.addoption("--claims-baseline-as", action="append", default=[], metavar="OLD=NEW",
                    help="gate subject NEW of this run against subject OLD of the baseline (repeatable): a renamed checkpoint")
    group.addoption("--claims-accept-changed-bounds", action="store_true", default=False,
                    help="with --claims-baseline: report bounds, parameters and max_drift that differ from the baseline's "
                         "without failing (a reviewed manifest change)")
    group.addoption("--claims-require-all", action="store_true", default=False,
                    help="with --claims-baseline: fail when a baseline subject was not measured by this run")
    group.addoption("--claims-fused", default=None, choices=("on", "off"),
                    help="the fused attention and LayerNorm forward (verify.fused) for modules no hook reads inside: "
                         "on or off; default: $VERIFY_FUSED, else on. Off runs TransformerLens' own forward everywhere")
    group.addoption("--claims-durations", action="store_true", default=False,
                    help="print where each claim's time went (subject load, data, forward passes, statistics)")
    parser.addini("verify_subjects_dir", f"folder of subject manifests, relative to the rootdir (default {DEFAULT_SUBJECTS_DIR})",
                  default=DEFAULT_SUBJECTS_DIR)


def pytest_configure(config: pytest.Config) -> None:
    for line in (
        "claim(name): parametrize over the selected subjects whose manifest declares [claims.<name>]",
        "slow: long work (training, big sweeps); deselected unless -m slow is given",
        "hub: needs files from the Hugging Face hub (skipped offline unless --require-subjects)",
        "gpu: needs a CUDA device",
        f"{MANIFEST_MARK}(path): set by the plugin on the claim tests a manifest file collects (its subject only)",
    ):
        config.addinivalue_line("markers", line)
    config.stash[INSTANCES] = {}
    config.stash[LOAD_ERRORS] = {}
    config.stash[OUTCOMES] = Outcomes()
    config.pluginmanager.register(config.stash[OUTCOMES], "verify-outcomes")
    config.stash[RECORDER] = Recorder()
    config.pluginmanager.register(config.stash[RECORDER], "verify-recorder")
    config.stash[RECORDED_SUBJECTS] = set()
    group_by_subject(config)  # nothing of another library's global state: this repository's hypothesis profiles live in its conftest.py
    join_core_share(config)


def pytest_unconfigure(config: pytest.Config) -> None:
    leave_core_share(config)  # a worker stopped before its session finished


def join_core_share(config: pytest.Config) -> None:
    """Under `pytest -n N`, each worker runs torch on its share of the cores, and those still busy
    take the cores of those done, at each test, stage and forward batch (verify.coreshare). Torch's default, every
    core in every worker, made `-n 2` slower than a serial run. OMP_NUM_THREADS, if set, is the user's."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is None or os.environ.get("OMP_NUM_THREADS"):
        return
    share = CoreShare(workerinput["testrunuid"], workerinput["workerid"], available_cores())
    with gcpause.paused():  # torch's import, without full collections over it
        share.refresh()
    config.stash[CORE_SHARE] = share, timing.on_step(share.refresh)


def leave_core_share(config: pytest.Config) -> None:
    """This worker has run its last test: its cores go to the workers still busy."""
    joined = config.stash.get(CORE_SHARE, None)
    if joined is not None:
        share, stop_refreshing = joined
        stop_refreshing()
        share.leave()
        del config.stash[CORE_SHARE]


def pytest_report_header(config: pytest.Config) -> str | None:
    workers = getattr(config.option, "numprocesses", None)
    if not isinstance(workers, int) or workers < 1 or os.environ.get("OMP_NUM_THREADS"):
        return None
    cores = available_cores()
    return (f"verify: {workers} workers on {cores} cores: torch runs {worker_threads(workers, cores)} intra-op thread(s) in each "
            "while all are busy; the workers still busy take the cores of those done")


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


# a wrapper, after every plugin's own: xdist's controller starts its workers in its sessionstart (trylast,
# but registered after this plugin, so it ran after ours and the workers waited 0.9 s for the reading)
@pytest.hookimpl(wrapper=True)
def pytest_sessionstart(session: pytest.Session):
    """Read the manifests and the baseline before collecting, so a bad manifest, --subject or
    baseline is a usage error. Start-up's objects are frozen once read (verify.gcpause)."""
    yield
    with gcpause.paused():
        found = subjects(session.config)
        if found.manifests and loads_subjects(session.config):
            import_model_libraries(found)
    if found.manifests:
        gcpause.freeze_startup()
    if not hasattr(session.config, "workerinput"):
        session.config.stash[BASELINE] = read_baseline(session.config, set(found.manifests))


def loads_subjects(config: pytest.Config) -> bool:
    """Whether this process will load subjects: it runs tests (xdist's controller hands them to its
    workers; --collect-only runs none)."""
    controller = getattr(config.option, "dist", "no") != "no" and not hasattr(config, "workerinput")
    return not (controller or config.option.collectonly)


def import_model_libraries(found) -> None:
    """TransformerLens, and SAELens where a subject has SAEs: what loading the subjects imports,
    imported while start-up's collector is paused, so their objects are frozen with start-up's
    (verify.gcpause) instead of walked by every full collection of the run. Reading the manifests no
    longer imports them (verify.skeletons)."""
    import transformer_lens  # noqa: F401

    if any(m.saes for m in found.manifests.values()):
        import sae_lens  # noqa: F401


def read_baseline(config: pytest.Config, names: set[str]):
    """(path, ledger or None where it does not exist yet, --claims-baseline-as mapping), or None
    without --claims-baseline. A file that is not a ledger, or a mapping naming a subject neither
    side has, is a usage error."""
    given = config.getoption("--claims-baseline")
    pairs = config.getoption("--claims-baseline-as")
    if given is None:
        if pairs or config.getoption("--claims-accept-changed-bounds") or config.getoption("--claims-require-all"):
            raise pytest.UsageError("--claims-baseline-as, --claims-accept-changed-bounds and --claims-require-all "
                                    "need --claims-baseline")
        return None
    from verify import ledger
    from verify.cli.compare import parse_rename

    path = given / "ledger.json" if given.is_dir() else given
    try:
        rename = parse_rename(pairs, "--claims-baseline-as")
        baseline = ledger.read(path) if path.exists() or path.is_symlink() else None
    except ValueError as err:  # LedgerError too
        raise pytest.UsageError(f"--claims-baseline: {err}") from None
    for old, new in rename.items():
        if baseline is not None and old not in baseline.subjects and not any(r.subject == old for r in baseline.records):
            raise pytest.UsageError(f"--claims-baseline-as {old}={new}: the baseline {path} has no subject {old!r} "
                                    f"(it has {', '.join(sorted(baseline.subjects)) or 'none'})")
        if new not in names:
            raise pytest.UsageError(f"--claims-baseline-as {old}={new}: no subject {new!r} in this run "
                                    f"(subjects: {', '.join(sorted(names)) or 'none'})")
    return path, baseline, rename


def subjects(config: pytest.Config):
    """The session's SubjectSet. Manifests are read on first use, so `pytest --help` works even with
    a broken one; their claim tables are resolved against the claims registered so far."""
    if SUBJECTS not in config.stash:
        from verify.subjects import SubjectSet, manifest_paths

        folder = subjects_dir(config)
        try:
            paths = (manifest_paths(folder) if folder else []) + list(config.getoption("--subject-file"))
            device, fused_forward = "cpu", None  # no subjects (another project): nothing to choose, no torch to import
            if paths or config.getoption("--device") == "cuda":  # a CUDA asked for and absent is a usage error anyway
                from verify import fused

                device = resolve_device(config.getoption("--device"))
                device = worker_device(device, os.environ.get("PYTEST_XDIST_WORKER"), gpu_count() if device == "cuda" else 0)
                fused_forward = fused.wanted(config.getoption("--claims-fused"))
            found = SubjectSet(paths, device, fused_forward)
            found.select(config.getoption("--subject"))
            if config.getoption("--subject-shard") is not None:  # an empty K/N is an error, not "no sharding"
                found.shard(*parse_shard(config.getoption("--subject-shard")))
        except (ManifestError, RuntimeError, ValueError) as err:
            raise pytest.UsageError(str(err)) from None
        config.stash[SUBJECTS] = found
    return config.stash[SUBJECTS]


def gpu_count() -> int:
    import torch

    return torch.cuda.device_count()


def parse_shard(text: str) -> tuple[int, int]:
    k, _, n = text.partition("/")
    if not (k.isdigit() and n.isdigit() and 1 <= int(k) <= int(n)):
        raise ValueError(f"--subject-shard {text!r}: expected K/N with 1 <= K <= N, e.g. 1/3")
    return int(k), int(n)


def group_by_subject(config: pytest.Config) -> None:
    """Under `pytest -n N` with no --dist of the user's, send each subject's claims to one worker
    (xdist's loadgroup), so every worker loads a subject at most once."""
    if hasattr(config, "workerinput"):
        # a worker parses the command line itself (so `--dist load`, and loadgroup off); without
        # loadgroup it leaves out the group suffix the controller schedules by, and spreads a subject
        if config.workerinput.get(LOADGROUP_INPUT):
            config.option.loadgroup = True
        return
    if not getattr(config.option, "numprocesses", None) or getattr(config.option, "dist", "no") != "load":
        return
    given = [*config.invocation_params.args, *config.getini("addopts"), *os.environ.get("PYTEST_ADDOPTS", "").split()]
    if not any(str(arg).startswith("--dist") or str(arg) == "-d" for arg in given):
        config.option.dist = "loadgroup"


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's hook: absent without it
def pytest_configure_node(node) -> None:
    """Tell each xdist worker whether the controller chose loadgroup (`group_by_subject`)."""
    node.workerinput[LOADGROUP_INPUT] = node.config.option.dist == "loadgroup"


def reporting(config: pytest.Config) -> bool:
    """Whether this run builds a ledger (and so fingerprints subjects and draws claims' figures)."""
    return bool(config.getoption("--claims-report") or config.getoption("--claims-baseline"))


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
        declared = subjects(metafunc.config).instances(name)
    except ManifestError as err:
        raise pytest.Collector.CollectError(str(err)) from None
    only = metafunc.definition.get_closest_marker(MANIFEST_MARK)
    if only is not None:
        declared = [(m, key) for m, key in declared if m.path.resolve() == Path(only.args[0]).resolve()]
    cases = []
    if not declared:  # one visible skip instead of pytest's anonymous empty parameter set
        cases.append(pytest.param(None, None, id="no-subject", marks=pytest.mark.skip(reason=f"{NO_SUBJECT}: {name}")))
    for m, key in declared:
        on_hub = bool(m.model.name) or any(sources.is_remote(s) for s in (m.model.weights, m.model.config, m.data.path,
                                                                           *(s.path for s in m.saes.values())))
        case = m.name if key == name else f"{m.name}/{key.split('.', 1)[1]}"  # a named instance: subject/INSTANCE
        metafunc.config.stash[INSTANCES][f"{metafunc.definition.nodeid}[{case}]"] = key
        cases.append(pytest.param(m.name, m.claims[key], id=case, marks=[pytest.mark.hub] if on_hub else []))
    metafunc.parametrize(("subject", "params"), cases, indirect=["subject"])


def claim_key(item) -> str:
    """The claim table a claim test measures: the claim's name, or "NAME.INSTANCE" for a named instance."""
    return item.config.stash[INSTANCES].get(plain_nodeid(item.nodeid), item.get_closest_marker("claim").args[0])


def pytest_collect_file(file_path: Path, parent: pytest.Collector):
    """A manifest in the subjects folder is a test file, as a .py file is: it collects a test per claim it
    declares (the claims/ one-liner), parametrized by its subject and named instances, so a project of
    manifests and a pytest.ini runs with plain `pytest`."""
    if file_path.suffix != ".toml":
        return None
    folder = subjects_dir(parent.config)
    if folder is None or file_path.parent.resolve() != folder.resolve():
        return None
    return ManifestFile.from_parent(parent, path=file_path)


def claim_test(measurement, params, claim, verdict):
    """The claim's checks, after its preconditions, on this manifest's subject."""
    verdict(claim.checks(measurement, params))


class ManifestFile(pytest.Module):
    """The claim tests of one manifest: a module made in memory, one `test_NAME` per registered claim
    the manifest declares, each run on this manifest's subject only (its named instances as cases)."""

    def _getobj(self):
        found = subjects(self.config)
        m = next((m for m in found.manifests.values() if m.path.resolve() == self.path.resolve()), None)
        module = types.ModuleType(f"verify_manifest_{self.path.stem}")
        names = [] if m is None else sorted({claim_name(key) for key in m.claim_tables} & set(claim_registry.claims()))
        for name in names:
            test = types.FunctionType(claim_test.__code__, claim_test.__globals__, f"test_{name}")
            test.__doc__ = claim_registry.get_claim(name).summary or claim_test.__doc__
            setattr(module, f"test_{name}", getattr(pytest.mark, MANIFEST_MARK)(str(self.path))(pytest.mark.claim(name)(test)))
        return module


@pytest.hookimpl(tryfirst=True)  # before xdist's loadgroup reads the xdist_group marks
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items) -> None:
    """Every claim table must name a registered claim once all test modules have registered theirs.
    Each claim test is grouped by its subject, for `pytest -n N`."""
    try:
        subjects(config).resolve(strict=True)
    except ManifestError as err:
        raise pytest.UsageError(str(err)) from None
    # a claim a test module already runs on a subject is not run again from that subject's manifest file
    # (a project with claim tests of its own, collected from its root, sees its manifests too)
    covered = {(subject_of(item), claim_key(item)) for item in items
               if subject_of(item) is not None and item.get_closest_marker(MANIFEST_MARK) is None}
    items[:] = [item for item in items if item.get_closest_marker(MANIFEST_MARK) is None
                or (subject_of(item), claim_key(item)) not in covered]
    for item in items:
        name = subject_of(item)
        if name is not None:
            item.add_marker(pytest.mark.xdist_group(name))


def pytest_collection_finish(session: pytest.Session) -> None:
    """The progress line's total: the claims that will run, counted once every plugin has
    deselected what it deselects (-m, -k, --subject, ...)."""
    session.config.stash[PROGRESS] = [0, sum(subject_of(item) is not None for item in session.items)]


def subject_of(item) -> str | None:
    """The subject name a claim test is parametrized with (None for other tests)."""
    callspec = getattr(item, "callspec", None)
    return callspec.params.get("subject") if callspec is not None and item.get_closest_marker("claim") else None


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Name the subject, claim and parameters in the test's reports, whatever happens next; in an
    xdist worker, take its current share of the cores."""
    joined = item.config.stash.get(CORE_SHARE, None)
    if joined is not None:
        joined[0].refresh()
    name = subject_of(item)
    if name is None:
        return
    key = claim_key(item)
    m = subjects(item.config).manifests.get(name)
    max_drift = None if m is None else m.max_drift.get(key)
    absent = None if m is None else m.expected_absent.get(key)
    registered = claim_registry.get_claim(item.get_closest_marker("claim").args[0])
    # a named instance is recorded under its own key, so the ledger and the drift gate keep instances apart
    recorded = registered if key == registered.name else dataclasses.replace(registered, name=key)
    item.user_properties.append(claim_property(name, recorded, item.callspec.params["params"], max_drift, absent))


@pytest.fixture
def subject(request: pytest.FixtureRequest):
    """The loaded subject (model, SAEs, data) of this claim's parameter; loaded once a session."""
    from verify.loaders import CheckpointError

    name = request.param
    found = subjects(request.config)
    try:
        with timing.collect() as seconds:
            loaded = found.load(name)
            if reporting(request.config) and name not in request.config.stash[RECORDED_SUBJECTS]:
                request.config.stash[RECORDED_SUBJECTS].add(name)
                request.node.user_properties.append((SUBJECT, subject_record(loaded).model_dump_json()))
        request.node.stash[LOAD_SECONDS] = seconds
        return loaded
    except sources.SourceUnavailable as err:
        message = f"{UNAVAILABLE}: {name}: {err}"
        if reporting(request.config):
            request.node.user_properties.append((SUBJECT, unavailable_record(found.manifests[name], message).model_dump_json()))
        if request.config.getoption("--require-subjects"):
            pytest.fail(message + " (--require-subjects)", pytrace=False)
        pytest.skip(message)
    except (CheckpointError, ManifestError, ValueError, OSError) as err:  # bad files: one line, once per subject
        first = request.config.stash[LOAD_ERRORS].setdefault(name, plain_nodeid(request.node.nodeid))
        pytest.fail(f"{NOT_LOADED}: {name}: {err}" if first == plain_nodeid(request.node.nodeid) else f"{NOT_LOADED}: {name} (see {first})",
                    pytrace=False)


@pytest.fixture
def claim(request: pytest.FixtureRequest) -> claim_registry.Claim:
    """The registered claim named by this test's `claim` marker."""
    return claim_registry.get_claim(request.node.get_closest_marker("claim").args[0])


@pytest.fixture
def measurement(request: pytest.FixtureRequest, subject, params, claim):
    """The claim measured on the subject, in the test's setup: a measurement that cannot be made (a
    refusal of its data, e.g. splits that overlap) is an error, never a claim that does not hold."""
    progress(request, f"measuring {claim.name} on {subject.name}")
    try:
        with timing.collect() as seconds:
            result = claim.measure_on(subject, params)
            if reporting(request.config) and claim.figures is not None and result.value is not None:
                figures = claim.figures(subject, params, result.value)
                request.node.user_properties.append((FIGURES, json.dumps([f.model_dump() for f in figures])))
    except ValueError as err:
        pytest.fail(f"{NOT_MEASURED}: {claim.name} on {subject.name}: {err}", pytrace=False)
    finally:
        spent = dict(request.node.stash.get(LOAD_SECONDS, {}))
        for stage, t in seconds.items():
            spent[stage] = spent.get(stage, 0.0) + t
        request.node.user_properties.append((SECONDS, json.dumps(spent)))
    return result


def progress(request: pytest.FixtureRequest, what: str) -> None:
    """Say what is being measured, so a slow machine never looks hung (serial runs at default
    verbosity; -v names each test anyway, and xdist workers have no terminal)."""
    tr = request.config.pluginmanager.get_plugin("terminalreporter")
    if tr is None or request.config.get_verbosity() != 0 or hasattr(request.config, "workerinput"):
        return
    state = request.config.stash.get(PROGRESS, None)
    if state is None:  # no collection of ours finished (a fixture used outside a session's collection)
        return
    state[0] += 1
    with request.config.pluginmanager.getplugin("capturemanager").global_and_fixture_disabled():  # as live logging does
        tr.write_line(f"[verify] {what} ({state[0]} of {state[1]} claims)")


GATE_LINES = pytest.StashKey()
GATE_FAILED = pytest.StashKey()


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


@pytest.fixture
def verdict(request: pytest.FixtureRequest):
    """verdict(checks): report each measured number with its bounds; fail if any check fails."""

    def judge(checks) -> None:
        from verify import ledger
        from verify.verdicts import failures

        lines = [str(c) for c in checks]
        for line in lines:
            request.node.user_properties.append((MEASURED, line))
            print(line)
        request.node.user_properties.append((CHECKS, json.dumps([ledger.measured(c).model_dump() for c in checks])))
        bad = failures(checks)
        absent = expected_absent(request.node)
        if absent is not None:
            if bad:  # the declared state of affairs: an expected failure, strict
                pytest.xfail(f"expected absent ({absent}): {failing(bad)}")
            pytest.fail(f"finding declared absent ({absent}) now holds: update the manifest (expect = \"present\")"
                        "\n  " + "\n  ".join(lines), pytrace=False)
        if bad:  # the first line (the ledger's reason) names every failing check with its value and bounds
            pytest.fail(f"claim does not hold: {failing(bad)}\n  " + "\n  ".join(lines), pytrace=False)

    return judge


def failing(bad: list[Check]) -> str:
    return "; ".join(f"{c.what} = {c.estimate.value:.4f}, required {c.bounds}" for c in bad)


def expected_absent(item: pytest.Item) -> str | None:
    """The manifest's expect_reason where it declares this claim absent on the subject, else None."""
    name = subject_of(item)
    m = None if name is None else subjects(item.config).manifests.get(name)
    return None if m is None else m.expected_absent.get(claim_key(item))


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    recorder: Recorder = config.stash[RECORDER]
    stats = terminalreporter.stats
    claim_reports = [r for key in ("passed", "failed", "skipped", "error", "xfailed") for r in stats.get(key, [])
                     if getattr(r, "when", "call") in ("call", "setup") and "claim" in getattr(r, "keywords", {})]
    if not recorder.lines and not claim_reports:
        return
    tr = terminalreporter
    tr.write_sep("=", "claims: measured against thresholds")  # write_sep ends a pending progress line first; section does not
    for nodeid in sorted(recorder.lines):  # the same order serially and under xdist
        tr.write_line(nodeid)
        for line in recorder.lines[nodeid]:
            tr.write_line("    " + line)
    if config.getoption("--claims-durations"):
        write_durations(tr, recorder)
    held = sum(1 for r in claim_reports if r.passed and r.when == "call")
    failed = sum(1 for r in claim_reports if r.failed and r.when == "call")
    errors = sum(1 for r in claim_reports if r.failed and r.when != "call")
    absent = sum(1 for r in claim_reports if r.skipped and hasattr(r, "wasxfail"))
    skipped = [str(r.longrepr) for r in claim_reports if r.skipped and not hasattr(r, "wasxfail")]
    missing = sum(UNAVAILABLE in reason for reason in skipped)
    undeclared = sum(NO_SUBJECT in reason for reason in skipped)
    shown = f", {absent} expected absent" if absent else ""  # as pytest's own summary: only when there are some
    tr.write_line(f"claims executed: {held + failed + absent} ({held} held, {failed} failed{shown}); not measurable (errors): {errors}; "
                  f"skipped for a missing subject: {missing}; no subject declares the claim: {undeclared}; "
                  f"skipped otherwise: {len(skipped) - missing - undeclared}")
    totals = summed(r.seconds for r in recorder.records.values())
    if totals:
        tr.write_line("claims time by stage: " + describe(totals) + ("" if config.getoption("--claims-durations")
                                                                             else " (per claim: --claims-durations)"))
    for line in config.stash.get(GATE_LINES, []):
        tr.write_line(line)


STAGES = ("load", "data", "forward", "statistics", "other")


def summed(stages) -> dict[str, float]:
    total: dict[str, float] = {}
    for seconds in stages:
        for stage, t in seconds.items():
            total[stage] = total.get(stage, 0.0) + t
    return total


def describe(seconds: dict[str, float]) -> str:
    order = sorted(seconds, key=lambda s: STAGES.index(s) if s in STAGES else len(STAGES))
    return ", ".join(f"{stage} {seconds[stage]:.1f} s" for stage in order) + f" (total {sum(seconds.values()):.1f} s)"


def write_durations(tr, recorder: Recorder) -> None:
    tr.write_sep("=", "claims: where the time went (seconds)")
    rows = sorted(recorder.records.values(), key=lambda r: -sum(r.seconds.values()))
    for r in rows:
        tr.write_line(f"{sum(r.seconds.values()):7.2f}  {r.claim} on {r.subject}: {describe(r.seconds)}")


def pytest_sessionfinish(session: pytest.Session, exitstatus) -> None:
    """Hand an xdist worker's cores on; write the ledger and report; run the drift gate; only
    measurement errors, no claim measured false: a distinct exit status for CI gates."""
    config = session.config
    leave_core_share(config)
    if reporting(config) and not hasattr(config, "workerinput"):
        gate_failed = write_ledger(config)
        if gate_failed and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
    outcomes = config.stash.get(OUTCOMES, None)
    if (outcomes is not None and session.exitstatus == pytest.ExitCode.TESTS_FAILED and outcomes.claim_error
            and not (outcomes.claim_failed or outcomes.other_failed) and not config.stash.get(GATE_FAILED, False)):
        session.exitstatus = NOT_MEASURED_EXIT


def write_ledger(config: pytest.Config) -> bool:
    """Build this run's ledger; write it (and the report) where asked; compare it with the baseline.
    Returns whether the drift gate failed."""
    from verify import drift, ledger, report

    run = config.stash[RECORDER].ledger(ledger.environment(config.rootpath, config.invocation_params.args),
                                        subjects(config).manifests)
    lines: list[str] = []
    comparison = None
    failed = False
    baseline = config.stash.get(BASELINE, None)
    if baseline is not None:
        path, old, rename = baseline
        if old is not None:
            try:
                comparison = drift.compare(old, run, rename, config.getoption("--claims-accept-changed-bounds"),
                                           config.getoption("--claims-require-all"))
                lines += [f"drift gate against {path} (the full table: verify compare, or the report):",
                          *[line for line in comparison.lines() if "<-- changed" in line or line.startswith("not compared")],
                          comparison.verdict_line()]
                failed = bool(comparison.problems)
            except ValueError as err:  # this run's ledger contradicts itself, or --as names a subject it did not measure
                lines.append(f"drift gate: FAILED: {err}")
                failed = True
        else:
            ledger.write(run, path)
            lines.append(f"drift gate: no baseline at {path} yet; this run's ledger is written there")
    folder = config.getoption("--claims-report")
    if folder is not None:
        ledger.write(run, folder / "ledger.json")
        written = report.write(run, folder, comparison)
        lines.append(f"claims report: {folder / 'ledger.json'}, " + ", ".join(str(p) for p in written))
    config.stash[GATE_LINES] = lines
    config.stash[GATE_FAILED] = failed
    return failed
