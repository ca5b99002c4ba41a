"""Bad records: files handed to `verify compare`, `verify report`, `verify merge` or
`--claims-baseline` that are not ledgers, or are ledgers of an impossible shape, each end in one
line naming the file and the field; `--claims-baseline` at such a file is a usage error before
anything runs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.test_drift import make, raw_of, record, saved
from verify import ledger


@pytest.mark.parametrize("field, value", [("bound_lo", "-Infinity"), ("bound_hi", "Infinity"), ("value", "NaN"),
                                          ("lo", "-Infinity")])
def test_non_finite_numbers_in_a_check_are_refused(tmp_path, field, value):
    text = json.dumps(raw_of(make(record()))).replace(f'"{field}": ', f'"{field}": {value}, "_was": ', 1)
    raw = json.loads(text)
    raw["records"][0]["checks"][0].pop("_was")
    path = tmp_path / "ledger.json"
    path.write_text(json.dumps(raw))  # json writes Infinity / NaN as such
    assert value in path.read_text()
    with pytest.raises(ledger.LedgerError, match=rf"not a valid ledger: records\.0\.checks\.0\.{field}: .*finite"):
        ledger.read(path)


@pytest.mark.parametrize("value", ["Infinity", "NaN", "-1"])
def test_a_tolerance_that_loosens_everything_is_refused(tmp_path, value):
    raw = raw_of(make(record()))
    raw["records"][0]["max_drift"] = "__X__"
    path = tmp_path / "ledger.json"
    path.write_text(json.dumps(raw).replace('"__X__"', value))
    with pytest.raises(ledger.LedgerError, match=r"records\.0\.max_drift"):
        ledger.read(path)


def test_files_that_are_not_ledgers_are_one_line(tmp_path):
    import os

    cases = {"/dev/null": "not a regular file", str(tmp_path / "missing.json"): "no such ledger file"}
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)  # reading would block forever
    cases[str(fifo)] = "not a regular file"
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    cases[str(tmp_path / "deep.json")] = "nested too deeply"
    (tmp_path / "list.json").write_text("[1, 2]")
    cases[str(tmp_path / "list.json")] = "expected a JSON object, got list"
    (tmp_path / "binary.json").write_bytes(b"\xff\xfe\x00")
    cases[str(tmp_path / "binary.json")] = "not UTF-8 text"
    raw = raw_of(make(record()))
    raw["schema_version"] = 3
    cases[str(saved(tmp_path, raw, "v3.json"))] = "ledger schema version 3; this verify reads versions 1, 2"
    for path, says in cases.items():
        with pytest.raises(ledger.LedgerError) as err:
            ledger.read(Path(path))
        assert says in str(err.value) and path in str(err.value) and "\n" not in str(err.value), (path, err.value)


# --- figures of a valid schema but an impossible shape ------------------------------------------------

@pytest.mark.parametrize("figure, says", [
    ({"kind": "board", "title": "t", "values": [[0.0] * 8] * 8, "marked": ["Z9"]}, "marked square 'Z9' is not a board square"),
    ({"kind": "board", "title": "t", "values": [[0.0] * 8] * 7 + [[0.0] * 3]}, "board values must be 8 rows of 8"),
    ({"kind": "board", "title": "t", "values": []}, "board values must be 8 rows of 8"),
    ({"kind": "histogram", "title": "t", "edges": [0, 1, 2], "series": {"a": [1, 2, 3]}}, "histogram series 'a': 3 counts for 3 edges"),
    ({"kind": "histogram", "title": "t", "edges": [0, 2, 1], "series": {"a": [1, 2]}}, "edges must be at least two finite, increasing"),
    ({"kind": "histogram", "title": "t", "edges": [0, 1], "series": {"a": [-1]}}, "one count >= 0 per bin"),
])
def test_figures_of_an_impossible_shape_are_refused_in_one_line(tmp_path, figure, says):
    raw = raw_of(make(record()))
    raw["records"][0]["figures"] = [figure]
    with pytest.raises(ledger.LedgerError, match=r"records\.0\.figures\.0.*" + says.replace("(", r"\(")):
        ledger.read(saved(tmp_path, raw))


# --- --claims-baseline: read and checked before anything runs ---------------------------------------

def baseline_cases(tmp_path: Path) -> dict[str, tuple[list[str], str]]:
    (tmp_path / "text.json").write_text("not json")
    future = raw_of(make(record("othello-tiny")))
    future["schema_version"] = 99
    saved(tmp_path, future, "future.json")
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "ledger.json").write_text("{}")
    os.mkfifo(tmp_path / "fifo")
    edited = raw_of(make(record("othello-tiny", verdict="failed", checks=[])))
    edited["records"][0]["verdict"] = "held"
    good = saved(tmp_path, make(record("othello-tiny")), "good.json")
    return {
        "dev-null": (["--claims-baseline", "/dev/null"], "/dev/null: not a regular file"),
        "not-json": (["--claims-baseline", str(tmp_path / "text.json")], "text.json: not JSON"),
        "other-schema": (["--claims-baseline", str(tmp_path / "future.json")], "ledger schema version 99"),
        "folder": (["--claims-baseline", str(tmp_path / "folder")], "folder/ledger.json: ledger schema version None"),
        "fifo": (["--claims-baseline", str(tmp_path / "fifo")], "fifo: not a regular file"),
        "edited": (["--claims-baseline", str(saved(tmp_path, edited, "edited.json"))],
                   "contradicts itself: othello-tiny / c: verdict held but no check was judged"),
        "as-malformed": (["--claims-baseline", str(good), "--claims-baseline-as", "foo"],
                         "--claims-baseline-as 'foo': expected OLD_SUBJECT=NEW_SUBJECT"),
        "as-unknown-old": (["--claims-baseline", str(good), "--claims-baseline-as", "nope=othello-tiny"],
                           "has no subject 'nope'"),
        "as-unknown-new": (["--claims-baseline", str(good), "--claims-baseline-as", "othello-tiny=nope"],
                           "no subject 'nope' in this run"),
        "as-without-baseline": (["--claims-baseline-as", "a=b"], "need --claims-baseline"),
    }


CASES = ["dev-null", "not-json", "other-schema", "folder", "fifo", "edited", "as-malformed", "as-unknown-old",
         "as-unknown-new", "as-without-baseline"]


@pytest.mark.parametrize("case", CASES)
def test_a_bad_baseline_is_a_usage_error_before_anything_runs(pytester, tmp_path, case):
    from tests.conftest import OTHELLO_TINY
    from tests.test_plugin import CLAIMS, run

    args, says = baseline_cases(tmp_path)[case]
    result = run(pytester, CLAIMS, "--subject-file", str(OTHELLO_TINY), "--subject", "othello-tiny", "--device", "cpu", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str()[-2000:] + result.stderr.str()[-2000:]
    errors = [line for line in result.stderr.lines if line.startswith("ERROR")]
    assert len(errors) == 1 and says in errors[0] and "Traceback" not in result.stderr.str(), result.stderr.str()
    assert "[verify] measuring" not in result.stdout.str() and "collected" not in result.stdout.str()
