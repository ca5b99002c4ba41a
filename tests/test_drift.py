"""The drift gate, the ledger's self-check, merge and the report, on hand-made ledgers (fast).

A ledger is read as evidence, not as a verdict: every check's pass is recomputed from its value and
bounds, every verdict from its checks; tolerances and bounds come from the baseline; a comparison
that compared nothing fails. Files that are not ledgers at all: tests/test_bad_records.py; the
end-to-end runs: tests/test_ledger.py and tests/test_expect_absent.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from verify import drift, ledger, report
from verify.report import plots


def env(**changes) -> ledger.Environment:
    base = dict(python="3.11.2", platform="Linux", packages={"torch": "2.4.0", "verify": "0.1"}, git_commit="a" * 40,
                git_dirty=False, created="2026-11-29T00:00:00+00:00")
    return ledger.Environment(**{**base, **changes})


def check(what: str = "rate", value: float | None = 0.9, lo: float | None = None, hi: float | None = None,
          bound_lo: float | None = 0.8, bound_hi: float | None = None, passed: bool | None = None) -> ledger.Measured:
    lo = value if lo is None else lo
    hi = value if hi is None else hi
    passed = ledger.within(value, bound_lo, bound_hi) if passed is None else passed
    return ledger.Measured(what=what, kind="check", value=value, lo=lo, hi=hi, bound_lo=bound_lo, bound_hi=bound_hi, passed=passed)


def note(what: str = "recall", value: float = 0.5) -> ledger.Measured:
    return ledger.Measured(what=what, kind="note", value=value, lo=value, hi=value)


def record(subject: str = "s", claim: str = "c", verdict: str = "held", checks=None, **changes) -> ledger.ClaimRecord:
    checks = [check()] if checks is None else checks
    return ledger.ClaimRecord(subject=subject, claim=claim, claim_version=1, params=changes.pop("params", {"min_rate": 0.8}),
                              verdict=verdict, checks=checks, **changes)


def make(*records: ledger.ClaimRecord, **env_changes) -> ledger.Ledger:
    names = dict.fromkeys(r.subject for r in records)
    subjects = {n: ledger.SubjectRecord(name=n, domain="othello", manifest=f"{n}.toml", available=True) for n in names}
    return ledger.Ledger(environment=env(**env_changes), subjects=subjects, records=list(records))


def saved(tmp_path: Path, found: ledger.Ledger | dict, name: str = "ledger.json") -> Path:
    path = tmp_path / name
    raw = found if isinstance(found, dict) else json.loads(found.model_dump_json())
    path.write_text(json.dumps(raw))
    return path


def raw_of(found: ledger.Ledger) -> dict:
    return json.loads(found.model_dump_json())


# --- a ledger that contradicts itself is refused, naming file, subject, claim and check ---------------

def test_a_hand_edited_ledger_marking_a_failing_value_held_is_refused(tmp_path):
    raw = raw_of(make(record(verdict="failed", checks=[check(value=0.5)])))
    raw["records"][0]["checks"][0]["passed"] = True
    raw["records"][0]["verdict"] = "held"
    path = saved(tmp_path, raw)
    with pytest.raises(ledger.LedgerError) as err:
        ledger.read(path)
    line = str(err.value)
    assert "\n" not in line and str(path) in line
    assert "s / c: check 'rate' says passed=True but its value 0.5 is outside its bounds [0.8, None]" in line


@pytest.mark.parametrize("records, says", [
    ([record(verdict="held", checks=[check(value=0.5)])], "s / c: verdict held but check 'rate' fails"),
    ([record(verdict="held", checks=[])], "s / c: verdict held but no check was judged"),
    ([record(verdict="held", checks=[note()])], "s / c: verdict held but no check was judged"),
    ([record(verdict="failed", checks=[check()])], "s / c: verdict failed but every check passes and no reason is given"),
    ([record(verdict="absent", checks=[check(value=0.5)])], "s / c: verdict absent but the finding is not declared absent"),
    ([record(verdict="absent", checks=[check()], expect="absent", expect_reason="r")], "s / c: verdict absent but every check passes"),
    ([record(), record()], "s / c: recorded twice"),
])
def test_verdicts_are_recomputed_from_their_checks(tmp_path, records, says):
    path = saved(tmp_path, make(*records))
    with pytest.raises(ledger.LedgerError, match="contradicts itself: " + says.replace("(", r"\(").replace(")", r"\)")):
        ledger.read(path)
    assert ledger.inconsistencies(make(*records))


def test_a_note_that_carries_a_judgement_is_refused(tmp_path):
    raw = raw_of(make(record(checks=[check(), note()])))
    raw["records"][0]["checks"][1]["bound_lo"] = 0.9  # a failing check disguised as a note keeps its bound
    with pytest.raises(ledger.LedgerError, match="note 'recall' carries bounds or a pass"):
        ledger.read(saved(tmp_path, raw))


def test_consistent_records_of_every_verdict_are_read(tmp_path):
    found = make(record("a", verdict="held"), record("b", verdict="failed", checks=[check(value=0.5)]),
                 record("c", verdict="failed", checks=[], reason="the test raised"),
                 record("c2", verdict="failed", checks=[check()], reason="AssertionError: an assertion after the checks"),
                 record("d", verdict="absent", checks=[check(value=0.5)], expect="absent", expect_reason="not at this size"),
                 record("e", verdict="held", expect="absent", expect_reason="not at this size"),  # declared absent, holds
                 record("f", verdict="not_measurable", checks=[]), record("g", verdict="skipped", checks=[]))
    assert ledger.read(saved(tmp_path, found)) == found


def test_a_version_1_ledger_is_read_as_expecting_every_finding_present():
    found = ledger.read(Path(__file__).resolve().parents[1] / "docs" / "culture-tiny-series")
    assert found.schema_version == 1 and {r.expect for r in found.records} == {"present"}
    assert make(record()).schema_version == ledger.SCHEMA_VERSION == 2


# --- the gate: the baseline sets the bar ------------------------------------------------------------

def test_a_candidate_that_loosens_its_own_tolerance_fails_the_gate():
    old = make(record(checks=[check(value=0.9)]))
    new = make(record(checks=[check(value=0.85)], max_drift=1.0))
    result = drift.compare(old, new)
    assert any("max_drift changed: None -> 1.0" in p for p in result.problems), result.problems
    assert any("rate: 0.9000 -> 0.8500" in p and "tolerance 0.0000" in p for p in result.problems), result.problems
    # accepting the change does not let the candidate's tolerance in: the value still moved
    accepted = drift.compare(old, new, accept_changed=True)
    assert [p for p in accepted.problems if "max_drift" in p] == [] and any("0.9000 -> 0.8500" in p for p in accepted.problems)


def test_the_tolerance_is_the_baselines_max_drift():
    old = make(record(checks=[check(value=0.9)], max_drift=0.1))
    assert not drift.compare(old, make(record(checks=[check(value=0.85)], max_drift=0.1))).problems
    tight = drift.compare(make(record(checks=[check(value=0.9)], max_drift=0.01)),
                          make(record(checks=[check(value=0.85)], max_drift=0.01)))
    assert any("tolerance 0.0100" in p for p in tight.problems)


def test_a_candidate_that_widens_its_own_interval_does_not_widen_the_tolerance():
    # baseline 0.90 [0.89, 0.91]: half-width 0.01; the candidate moved to 0.85 and claims [0.55, 1.15]
    old = make(record(checks=[check(value=0.9, lo=0.89, hi=0.91)]))
    wide = make(record(checks=[check(value=0.85, lo=0.55, hi=1.0)]))
    result = drift.compare(old, wide)
    assert any("0.9000 -> 0.8500" in p and "tolerance 0.0141" in p for p in result.problems), result.problems
    # a narrower candidate interval narrows it: the same move within sqrt(0.01^2 + 0.005^2) fails, a smaller one passes
    narrow = drift.compare(old, make(record(checks=[check(value=0.895, lo=0.89, hi=0.9)])))
    assert not narrow.problems, narrow.problems


def test_a_candidate_that_lowers_its_bounds_fails_the_gate_unless_accepted():
    old = make(record(checks=[check(value=0.9, bound_lo=0.85)], params={"min_rate": 0.85}))
    new = make(record(checks=[check(value=0.9, bound_lo=0.5)], params={"min_rate": 0.5}))
    result = drift.compare(old, new)
    assert "s / c: bounds of rate changed: >= 0.85 -> >= 0.5 (accept a reviewed change with --accept-changed-bounds)" in result.problems
    assert "s / c: parameter min_rate changed: 0.85 -> 0.5 (accept a reviewed change with --accept-changed-bounds)" in result.problems
    accepted = drift.compare(old, new, accept_changed=True)
    assert accepted.problems == [] and "1 changed" not in accepted.verdict_line()
    assert any("bounds of rate changed" in line and "(accepted" in line for line in accepted.lines())
    assert "2 changed bound(s) or parameter(s) accepted" in accepted.verdict_line()


def test_a_check_turned_into_a_note_fails_the_gate_even_when_accepted():
    old = make(record(checks=[check(value=0.9), check("other", value=0.9)]))
    new = make(record(checks=[check(value=0.9), note("other", 0.1)]))
    result = drift.compare(old, new, accept_changed=True)
    assert any("other: was a check, is a note" in p for p in result.problems), result.problems


def test_a_candidate_that_measured_nothing_fails_the_gate():
    old = make(record("othello-tiny"))
    for new in (make(), make(record("othello-tiny-v2"))):
        result = drift.compare(old, new)
        assert result.verdicts == []
        assert any(p.startswith("no claim compared") and "--as OLD=NEW" in p for p in result.problems), result.problems
        assert result.verdict_line().startswith("drift gate: FAILED")
    assert drift.compare(old, make(record("othello-tiny-v2")), {"othello-tiny": "othello-tiny-v2"}).problems == []


def test_baseline_subjects_not_measured_are_listed_and_fail_with_require_all():
    old = make(record("a"), record("b"))
    new = make(record("a"))
    result = drift.compare(old, new)
    assert result.problems == [] and result.skipped == ["b"]
    assert "not compared (baseline subjects the new run did not measure): b" in result.lines()
    assert "not compared: 1 baseline subject(s)" in result.verdict_line()
    strict = drift.compare(old, new, require_all=True)
    assert strict.problems == ["b: in the baseline, not measured by the new run (--require-all)"]


def test_expected_absent_findings_are_gated_like_any_verdict():
    absent = record(verdict="absent", checks=[check(value=0.5)], expect="absent", expect_reason="not at this size")
    assert drift.compare(make(absent), make(absent)).problems == []
    emerged = record(verdict="held", checks=[check(value=0.9)], expect="absent", expect_reason="not at this size")
    result = drift.compare(make(absent), make(emerged), accept_changed=True)
    assert "s / c: verdict absent -> held" in result.problems
    declared_present = record(verdict="failed", checks=[check(value=0.5)])
    result = drift.compare(make(absent), make(declared_present))
    assert "s / c: verdict absent -> failed" in result.problems
    assert any("expect changed: absent -> present" in p for p in result.problems)


def test_compare_refuses_ledgers_that_contradict_themselves_even_in_memory():
    bad = make(record(), record())
    with pytest.raises(ledger.LedgerError, match="the new ledger: the ledger contradicts itself: s / c: recorded twice"):
        drift.compare(make(record()), bad)


# --- merge: one run, one environment ----------------------------------------------------------------

@pytest.mark.parametrize("changes, says", [
    ({"python": "3.12.0"}, "environment python '3.12.0' differs"),
    ({"packages": {"torch": "2.5.0", "verify": "0.1"}}, "environment packages"),
    ({"git_commit": "b" * 40}, "environment git_commit"),
    ({"git_dirty": True}, "environment git_dirty True differs"),
])
def test_merge_refuses_parts_from_another_environment(changes, says):
    with pytest.raises(ledger.LedgerError, match=says):
        ledger.merge([make(record("a")), make(record("b"), **changes)], ["part1", "part2"])
    ledger.merge([make(record("a")), make(record("b"), created="later", argv=["-x"])], ["part1", "part2"])  # same run


def test_merge_refuses_parts_whose_verdicts_or_numbers_differ():
    held, failed = record(), record(verdict="failed", checks=[check(value=0.5)])
    with pytest.raises(ledger.LedgerError, match="part2: c on s was also measured by part1, with other values"):
        ledger.merge([make(held), make(failed)], ["part1", "part2"])
    with pytest.raises(ledger.LedgerError, match="p2: c on s was also measured by p1, with another verdict \\('failed' there, 'not_measurable' here\\)"):
        ledger.merge([make(record(verdict="failed", checks=[])), make(record(verdict="not_measurable", checks=[]))], ["p1", "p2"])
    with pytest.raises(ledger.LedgerError, match="with another params"):
        ledger.merge([make(held), make(record(params={"min_rate": 0.1}))], ["p1", "p2"])
    with pytest.raises(ledger.LedgerError, match="contradicts itself"):
        ledger.merge([make(record()), make(record("t", verdict="held", checks=[check(value=0.5)]))], ["part1", "part2"])


# --- the CLI -----------------------------------------------------------------------------------------

def cli(*args: str) -> tuple[int, str, str]:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "verify.cli", *args], capture_output=True, text=True, timeout=300)
    return done.returncode, done.stdout, done.stderr


def test_compare_cli_exits_1_on_a_loosened_candidate_and_2_on_bad_input(tmp_path):
    old = saved(tmp_path, make(record(checks=[check(value=0.9, bound_lo=0.85)])), "old.json")
    new = saved(tmp_path, make(record(checks=[check(value=0.9, bound_lo=0.5)])), "new.json")
    rc, out, _ = cli("compare", str(old), str(new))
    assert rc == 1 and "s / c: bounds of rate changed: >= 0.85 -> >= 0.5   <-- changed" in out
    rc, out, _ = cli("compare", str(old), str(new), "--accept-changed-bounds")
    assert rc == 0 and "(accepted: --accept-changed-bounds)" in out and "drift gate: passed" in out
    rc, _, err = cli("compare", str(old), str(new), "--as", "foo")
    assert rc == 2 and "--as 'foo': expected OLD_SUBJECT=NEW_SUBJECT" in err and "Traceback" not in err
    (tmp_path / "deep.json").write_text('{"a":' * 50_000 + "1" + "}" * 50_000)
    rc, _, err = cli("compare", str(old), str(tmp_path / "deep.json"))
    assert rc == 2 and err.strip().count("\n") == 0 and "nested too deeply" in err
    edited = raw_of(make(record(checks=[check(value=0.5, bound_lo=0.85)], verdict="failed")))
    edited["records"][0]["checks"][0]["passed"] = True
    edited["records"][0]["verdict"] = "held"
    rc, _, err = cli("compare", str(old), str(saved(tmp_path, edited, "edited.json")))
    assert rc == 2 and "edited.json: the ledger contradicts itself: s / c: check 'rate' says passed=True" in err
    rc, out, _ = cli("compare", str(old), str(saved(tmp_path, make(record("other")), "nothing.json")))
    assert rc == 1 and "no claim compared" in out


# --- the report --------------------------------------------------------------------------------------

def test_a_claim_measured_in_nats_is_charted_with_every_value_and_bound(monkeypatch, tmp_path):
    drawn = []
    monkeypatch.setattr(plots, "png", lambda fig: drawn.append(fig) or b"png")
    loss = record(verdict="failed", reason="claim does not hold: loss when spliced = 4.1100, required <= 2",
                  checks=[check("clean loss (nats)", 1.32, 1.30, 1.35, None, 1.5),
                          check("loss when spliced (nats)", 4.11, 4.0, 4.2, None, 2.0), note("tokens", 3000.0)])
    assert plots.checks_chart(loss) == b"png"
    axes = drawn[0].axes
    for ax, m in zip(axes, loss.checks):
        lo, hi = ax.get_xlim()
        shown = [v for v in (m.value, m.lo, m.hi, m.bound_lo, m.bound_hi) if v is not None]
        assert lo < min(shown) and max(shown) < hi, (m.what, ax.get_xlim())
    series = plots.series_chart("c", [loss, loss.model_copy(update={"subject": "t"})])
    assert series == b"png"
    for ax, m in zip(drawn[1].axes, loss.checks[:2]):  # one panel per check, each on its own scale
        lo, hi = ax.get_ylim()
        shown = [v for v in (m.value, m.lo, m.hi, m.bound_lo, m.bound_hi) if v is not None]
        assert lo < min(shown) and max(shown) < hi, (m.what, ax.get_ylim())
    monkeypatch.undo()
    report.write(make(loss), tmp_path)
    text = (tmp_path / "report.md").read_text()
    assert "claim does not hold: loss when spliced = 4.1100, required \\<= 2" in text
    assert "| FAIL | loss when spliced (nats) | 4.1100 \\[4.0000, 4.2000\\] | \\<= 2 |" in text


def test_odd_names_and_series_tables_under_their_claims(tmp_path):
    names = ["ckpt-$\\foo$", "a|b <script>", "_x_"]
    records = [record(n, "solved_rate", figures=[ledger.BoardFigure(title=f"{n} $x^2$", values=[[0.1] * 8] * 8, marked=["A0"],
                                                                    label="$\\alpha$"),
                                                 ledger.HistogramFigure(title="$h$", edges=[0, 1, 2], series={"$a$": [1, 2]})])
               for n in names] + [record(n, "ablation") for n in names]
    pages = report.write(make(*records), tmp_path)
    text = (tmp_path / "report.md").read_text()
    assert "## Subject ckpt-\\$\\\\foo\\$" in text and "| a\\|b \\<script> |" in text and "## Subject \\_x\\_" in text
    section = text.split("## Claims across subjects")[1].split("## Subject ")[0]
    assert section.index("### solved_rate") < section.index("![solved_rate per subject]") < section.index("### ablation") \
        < section.index("![ablation per subject]")
    assert "<script>" not in pages[0].read_text()
    # two series charts; per subject: solved_rate's chart, board and histogram, ablation's chart
    assert len(list((tmp_path / "figures").glob("*.png"))) == 2 + 3 * 4


def test_report_labels_and_counts_expected_absent_findings(tmp_path):
    absent = record(verdict="absent", checks=[check(value=0.5)], expect="absent", expect_reason="F4 has not emerged at this size",
                    reason="expected absent (F4 has not emerged at this size): rate = 0.5000, required >= 0.8")
    report.write(make(absent, record("t")), tmp_path)
    text = (tmp_path / "report.md").read_text()
    assert "1 held, 0 failed, expected absent: 1" in text
    assert "### c (definition v1): absent, as declared" in text
    assert "Declared absent on this subject: F4 has not emerged at this size" in text
    assert "tr.absent" in (tmp_path / "report.html").read_text()


def test_compare_report_and_merge_read_ledgers_without_torch(tmp_path):
    """Gating a ledger is reading JSON: the tools that only read ledgers never import torch (seconds of start-up)."""
    import subprocess
    import sys

    path = saved(tmp_path, make(record()))
    code = ("import sys; from verify.cli import compare, merge, report; "
            f"status = compare.main([{str(path)!r}, {str(path)!r}]); "
            "assert status == 0, status; assert 'torch' not in sys.modules, 'torch was imported'")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr


def test_report_shows_the_drift_of_a_renamed_subject_with_as(tmp_path):
    old = saved(tmp_path, make(record("ckpt-1", checks=[check(value=0.9)])), "old.json")
    new_dir = tmp_path / "new"
    new_dir.mkdir()
    saved(new_dir, make(record("ckpt-2", checks=[check(value=0.85)])))
    rc, out, err = cli("report", str(new_dir), "--baseline", str(old), "--as", "ckpt-1=ckpt-2")
    assert rc == 0, err
    assert "ckpt-1 -&gt; ckpt-2" in (new_dir / "report.html").read_text() or "ckpt-1 -> ckpt-2" in (new_dir / "report.md").read_text()
    rc, _, err = cli("report", str(new_dir), "--as", "ckpt-1=ckpt-2")
    assert rc == 2 and "--as needs --baseline" in err
