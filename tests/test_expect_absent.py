"""Findings declared absent (`expect = "absent"` in a claim's table): measured against the real
bounds, an expected failure (xfail) while they do not hold, a failed run once they do.

The manifests are othello-tiny's with only legal_move_rate (cheap), on 200 games: measured about
0.967 there, so bounds of [0.99, 1] do not hold and [0.9, 1] do.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import OTHELLO_TINY
from verify import drift, ledger
from verify.manifest import ManifestError, load_manifest

FIXTURES = OTHELLO_TINY.parent.parent / "othello-tiny"


def manifest(folder: Path, name: str, claim_table: str, file: str | None = None) -> Path:
    """othello-tiny's subject (same files, 200 games) with one [claims.legal_move_rate] table."""
    head = OTHELLO_TINY.read_text().split("[claims.")[0]
    head = head.replace('name = "othello-tiny"', f'name = "{name}"').replace('"../othello-tiny/', f'"{FIXTURES}/')
    head = head.replace("size = 1000", "size = 200")
    path = folder / (file or f"{name}.toml")
    path.write_text(head + "[claims.legal_move_rate]\n" + claim_table)
    return path


def shipped_table(claim: str) -> str:
    """othello-tiny's own [claims.CLAIM] table, as the shipped manifest writes it."""
    return "[claims." + next(t for t in OTHELLO_TINY.read_text().split("[claims.")[1:] if t.startswith(claim + "]"))


ABSENT = 'min_rate = 0.99\nmax_rate = 1.0\nexpect = "absent"\nexpect_reason = "not this good at this size"\n'


@pytest.mark.parametrize("table, says", [
    ('min_rate = 0.9\nmax_rate = 1.0\nexpect = "maybe"\n', "[claims.legal_move_rate] expect: 'maybe' must be \"absent\" or \"present\""),
    ('min_rate = 0.9\nmax_rate = 1.0\nexpect = "absent"\n', "[claims.legal_move_rate] expect_reason: expect = \"absent\" needs the reason"),
    ('min_rate = 0.9\nmax_rate = 1.0\nexpect = "absent"\nexpect_reason = " "\n', "expect_reason: expect = \"absent\" needs the reason"),
    ('min_rate = 0.9\nmax_rate = 1.0\nexpect_reason = "why"\n', "expect_reason: given without expect = \"absent\""),
    ('min_rate = 0.9\nmax_rate = 1.0\nexpect = "absent"\nexpect_reason = 3\n', "expect_reason: expected a string, got 3"),
    ('min_rate = 0.9\nmax_rate = 1.0\nexpect = true\n', "expect: True must be"),
])
def test_a_bad_expectation_is_a_one_line_manifest_error(tmp_path, table, says):
    path = manifest(tmp_path, "bad", table)
    with pytest.raises(ManifestError) as err:
        load_manifest(path)
    assert says in str(err.value) and str(path) in str(err.value) and "\n" not in str(err.value)


def test_an_expectation_is_inherited_and_overridden_through_extends(tmp_path):
    parent = manifest(tmp_path, "parent", ABSENT)
    m = load_manifest(parent)
    assert m.expected_absent == {"legal_move_rate": "not this good at this size"}
    assert "expect" not in m.claim_tables["legal_move_rate"] and "expect_reason" not in m.claim_tables["legal_move_rate"]
    child = tmp_path / "child.toml"
    child.write_text(f'extends = "{parent.name}"\nname = "child"\n')
    assert load_manifest(child).expected_absent == {"legal_move_rate": "not this good at this size"}
    child.write_text(f'extends = "{parent.name}"\nname = "child"\n[claims.legal_move_rate]\nexpect = "present"\n')
    assert load_manifest(child).expected_absent == {}


@pytest.fixture(scope="module")
def absent_run(tmp_path_factory):
    """Three subjects in one run, with the other claim tests deselected by -k: the finding declared
    absent and not holding, declared absent but holding, and simply failing."""
    folder = tmp_path_factory.mktemp("absent")
    subjects = folder / "subjects"
    subjects.mkdir()
    manifest(subjects, "tiny-absent", ABSENT)
    manifest(subjects, "tiny-emerged", 'min_rate = 0.9\nmax_rate = 1.0\nexpect = "absent"\nexpect_reason = "not yet"\n')
    # a second claim, deselected by -k: the progress line must not count it
    manifest(subjects, "tiny-fails", "min_rate = 0.99\nmax_rate = 1.0\n" + shipped_table("neuron_fires_on_one_move"))
    import subprocess
    import sys

    root = OTHELLO_TINY.parent.parent.parent
    done = subprocess.run([sys.executable, "-m", "pytest", str(root / "claims" / "test_othello.py"), "-p", "no:cacheprovider",
                           "--subjects-dir", str(subjects), "--device", "cpu", "-k", "legal_move_rate", "-rA",
                           "--claims-report", str(folder / "out")], cwd=folder, capture_output=True, text=True, timeout=1200)
    return {"run": done, "dir": folder, "ledger": ledger.read(folder / "out")}


def test_absent_not_holding_is_an_expected_failure_and_holding_fails_the_run(absent_run):
    done = absent_run["run"]
    out = done.stdout
    assert done.returncode == 1, out[-3000:]
    assert "1 passed" not in out and "2 failed" in out and "1 xfailed" in out and "3 deselected" in out, out[-1500:]
    assert "XFAIL" in out and "expected absent (not this good at this size): top-1 prediction is a legal move = 0.9" in out
    assert "finding declared absent (not yet) now holds: update the manifest" in out
    assert "claims executed: 3 (0 held, 2 failed, 1 expected absent)" in out
    # the progress line counts the claims that run, not the deselected ones
    assert "[verify] measuring legal_move_rate on tiny-absent (1 of 3 claims)" in out, out[:3000]
    verdicts = {r.subject: r for r in absent_run["ledger"].records}
    assert verdicts["tiny-absent"].verdict == "absent" and verdicts["tiny-absent"].expect == "absent"
    assert verdicts["tiny-absent"].reason.startswith("expected absent (not this good at this size): top-1 prediction")
    assert verdicts["tiny-emerged"].verdict == "held" and "now holds" in verdicts["tiny-emerged"].reason
    # a claim that does not hold names its failing check, value and bounds in its reason
    assert verdicts["tiny-fails"].verdict == "failed"
    assert verdicts["tiny-fails"].reason.startswith("claim does not hold: top-1 prediction is a legal move = 0.9")
    assert verdicts["tiny-fails"].reason.endswith("required in [0.99, 1]")
    text = (absent_run["dir"] / "out" / "report.md").read_text()
    assert "absent, as declared" in text and "expected absent: 1" in text


def test_only_absent_claims_that_stay_absent_pass_the_run(absent_run, tmp_path):
    import subprocess
    import sys

    subjects = tmp_path / "subjects"
    subjects.mkdir()
    manifest(subjects, "tiny-absent", ABSENT)
    root = OTHELLO_TINY.parent.parent.parent
    done = subprocess.run([sys.executable, "-m", "pytest", str(root / "claims" / "test_othello.py"), "-p", "no:cacheprovider",
                           "--subjects-dir", str(subjects), "--device", "cpu", "--claims-baseline", str(absent_run["dir"] / "out"),
                           "--claims-report", str(tmp_path / "out")], cwd=tmp_path, capture_output=True, text=True, timeout=1200)
    out = done.stdout
    assert done.returncode == 0, out[-3000:]
    assert "claims executed: 1 (0 held, 0 failed, 1 expected absent)" in out
    assert "drift gate: passed (1 claims compared" in out and "not compared: 2 baseline subject(s)" in out
    assert "(1 of 1 claims)" in out  # the other claim tests have no subject: not counted


def test_the_gate_fails_when_an_absent_finding_emerges(absent_run):
    old = absent_run["ledger"]
    emerged = next(r for r in old.records if r.subject == "tiny-emerged")
    absent = next(r for r in old.records if r.subject == "tiny-absent")
    renamed = ledger.Ledger(environment=old.environment, subjects={}, records=[emerged.model_copy(update={"subject": "tiny-absent"})])
    result = drift.compare(ledger.Ledger(environment=old.environment, subjects={}, records=[absent]), renamed, accept_changed=True)
    assert "tiny-absent / legal_move_rate: verdict absent -> held" in result.problems
    raw = json.loads(old.model_dump_json())
    assert {r["verdict"] for r in raw["records"]} == {"absent", "held", "failed"}
