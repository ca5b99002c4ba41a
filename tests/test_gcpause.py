"""verify.gcpause: the collector paused around verify's start-up and restored as found; start-up's
objects frozen once per process, and only by a session that reads subjects."""

import gc

from tests.conftest import SUBJECTS_DIR
from tests.test_plugin import run
from verify import gcpause

REPORT_FREEZE = """
import gc
import sys

def test_report():
    print("torch imported:", "torch" in sys.modules, "transformer_lens imported:", "transformer_lens" in sys.modules)
    print("pydantic imported:", "pydantic" in sys.modules)
    print("frozen objects:", gc.get_freeze_count(), "collector enabled:", gc.isenabled())
"""


def test_paused_restores_the_collector_as_found():
    assert gc.isenabled()
    with gcpause.paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with gcpause.paused():
            pass
        assert not gc.isenabled()  # someone else's choice, kept
    finally:
        gc.enable()
    try:
        with gcpause.paused():
            raise KeyError("inside")
    except KeyError:
        pass
    assert gc.isenabled()


def test_freeze_once_per_process(monkeypatch):
    calls = []
    monkeypatch.setattr(gcpause.gc, "freeze", lambda: calls.append(1))
    monkeypatch.setattr(gcpause, "_frozen", False)
    assert gcpause.freeze_startup() and not gcpause.freeze_startup()
    assert calls == [1]


def test_a_session_with_subjects_freezes_and_one_without_does_not(pytester):
    """In fresh interpreters: a run reading subjects leaves start-up frozen, the collector on; a project
    without subjects (any other project in this environment) finds the collector as pytest left it."""
    pytester.makepyfile(test_report=REPORT_FREEZE)
    plain = run(pytester, "-s", "test_report.py", fresh=True)
    plain.assert_outcomes(passed=1)
    # the plugin imports nothing heavy for a run without subjects: no torch, no pydantic (the ledger's schema)
    plain.stdout.fnmatch_lines(["*torch imported: False transformer_lens imported: False", "*pydantic imported: False",
                                "*frozen objects: 0 collector enabled: True"])
    with_subjects = run(pytester, "-s", "test_report.py", "--subjects-dir", str(SUBJECTS_DIR), "--subject", "induction-tiny", fresh=True)
    with_subjects.assert_outcomes(passed=1)
    # what loading the subjects will import is imported before the freeze (no manifest check needs it now)
    with_subjects.stdout.fnmatch_lines(["*torch imported: True transformer_lens imported: True"])
    line = next(l for l in with_subjects.stdout.lines if "frozen objects:" in l).split("frozen objects:")[1]
    assert int(line.split()[0]) > 100_000 and line.endswith("collector enabled: True"), line
