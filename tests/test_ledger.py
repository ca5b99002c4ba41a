"""The ledger, the drift gate and sharding, end to end on two embedded subjects of two domains
(induction-tiny: token sequences; othello-tiny: games). culture-tiny, the slowest to measure, goes
through the same plumbing in the claims run and the series tests; here it would add minutes and no
path of its own.

The claims run for real, in subprocesses: the subjects' claims split into two shards (one per
subject, run at once with one torch thread each, as two CI jobs would run them) and merged; the
same claims again under `pytest -n 2` against the merged ledger as baseline (same seeds: identical
numbers, the gate passes); and othello-tiny with mutated weights under the same name against it
(the gate fails and names what moved).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from tests.conftest import OTHELLO_TINY, ROOT
from verify import drift, ledger
from verify.recording import plain_nodeid
from verify.sources import sha256_of

EMBEDDED = ("--subject", "induction-tiny", "--subject", "othello-tiny")
SHARDS = {1: "induction-tiny", 2: "othello-tiny"}  # whole subjects, sorted by name


def pytest_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "pytest", "claims/", "-p", "no:cacheprovider", "--device", "cpu", *args]


def pytest_run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(pytest_command(*args), cwd=cwd, capture_output=True, text=True, timeout=1800)


def finished(job: subprocess.Popen) -> subprocess.CompletedProcess:
    stdout, stderr = job.communicate(timeout=1800)
    return subprocess.CompletedProcess(job.args, job.returncode, stdout, stderr)


def verify_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "verify.cli", *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


def claims_section(stdout: str) -> list[str]:
    """The printed 'claims: measured against thresholds' lines (test ids and measured numbers)."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if "claims: measured against thresholds" in line)
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("claims executed:"))
    return lines[start + 1 : end]


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> dict:
    """The subjects' claims in two shards (induction-tiny, othello-tiny), run at once as two CI jobs
    would be, one torch thread each, then merged."""
    out = tmp_path_factory.mktemp("shards")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    jobs = [subprocess.Popen(pytest_command(*EMBEDDED, "--subject-shard", f"{k}/2", "--claims-report", str(out / f"part{k}")),
                             cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for k in SHARDS]
    runs = [finished(job) for job in jobs]
    for r in runs:
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    merged = verify_cli("merge", str(out / "part1"), str(out / "part2"), "--out", str(out / "merged"))
    assert merged.returncode == 0, merged.stdout + merged.stderr
    return {"dir": out, "runs": runs, "merged": out / "merged"}


@pytest.fixture(scope="module")
def parallel(shards) -> subprocess.CompletedProcess:
    """The same claims under `pytest -n 2`, gated on the merged shards' ledger."""
    return pytest_run(*EMBEDDED, "-n", "2", "-v", "--claims-baseline", str(shards["merged"]),
                      "--claims-report", str(shards["dir"] / "parallel"))


def mutated_subjects_dir(tmp_path: Path) -> Path:
    """A subjects folder whose othello-tiny has one MLP's output weights scaled by 1.5."""
    weights = tmp_path / "weights"
    shutil.copytree(OTHELLO_TINY.parent.parent / "othello-tiny", weights)
    state = load_file(str(weights / "model.safetensors"))
    key = next(k for k in state if k.endswith("mlp.W_out"))
    state[key] = state[key] * 1.5
    save_file(state, str(weights / "model.safetensors"))
    folder = tmp_path / "subjects"
    folder.mkdir()
    text = "\n".join(line for line in OTHELLO_TINY.read_text().splitlines() if not line.startswith("sha256"))
    (folder / "othello-tiny.toml").write_text(text.replace('"../othello-tiny/', f'"{weights}/') + "\n")
    return folder


def test_each_shard_writes_a_ledger_that_validates(shards):
    for k, subject in SHARDS.items():
        part = ledger.read(shards["dir"] / f"part{k}")
        assert set(part.subjects) == {subject}, "a shard holds whole subjects"
        assert part.schema_version == ledger.SCHEMA_VERSION
        assert part.environment.packages["torch"] == torch.__version__
        assert part.environment.git_commit and len(part.environment.git_commit) == 40
        record = part.subjects[subject]
        assert record.available and record.files and record.device == "cpu" and record.dtype == "torch.float32"
        for f in record.files:
            assert f.sha256 == sha256_of(Path(f.path))
        assert record.fingerprint is not None and record.fingerprint.hooks and record.fingerprint.top1
        for r in (r for r in part.records if r.subject == subject):
            assert r.verdict == ("absent" if r.expect == "absent" else "held"), r  # a finding declared absent stays absent
            assert r.checks and all(m.kind in ("check", "note") for m in r.checks)
            assert r.claim_version is not None and r.params


def test_a_corrupt_ledger_is_refused_with_what_is_wrong(shards, tmp_path):
    raw = json.loads((shards["merged"] / "ledger.json").read_text())
    raw["records"][0]["verdict"] = "maybe"
    (tmp_path / "bad.json").write_text(json.dumps(raw))
    with pytest.raises(ledger.LedgerError, match=r"bad.json: not a valid ledger: records.0.verdict"):
        ledger.read(tmp_path / "bad.json")
    raw["schema_version"] = 99
    (tmp_path / "future.json").write_text(json.dumps(raw))
    with pytest.raises(ledger.LedgerError, match="schema version 99"):
        ledger.read(tmp_path / "future.json")


def test_merge_joins_the_shards_into_one_ledger_and_report(shards):
    merged = ledger.read(shards["merged"])
    assert set(merged.subjects) == set(SHARDS.values())
    parts = [ledger.read(shards["dir"] / f"part{k}") for k in (1, 2)]
    assert sorted(r.key for r in merged.records) == sorted(r.key for p in parts for r in p.records)
    assert (shards["merged"] / "report.html").stat().st_size > 10_000
    assert "## Subject othello-tiny" in (shards["merged"] / "report.md").read_text()


def test_merge_refuses_parts_that_disagree(shards, tmp_path):
    raw = json.loads((shards["dir"] / "part2" / "ledger.json").read_text())
    check = raw["records"][0]["checks"][0]
    check["value"] += 1e-4 if check["bound_hi"] is None or check["value"] + 1e-4 <= check["bound_hi"] else -1e-4  # still passing
    (tmp_path / "other.json").write_text(json.dumps(raw))
    result = verify_cli("merge", str(shards["dir"] / "part2"), str(tmp_path / "other.json"), "--out", str(tmp_path / "m"))
    assert result.returncode == 2 and "with other values" in result.stderr, result.stderr
    # a value moved below its bound but still marked passed: the part contradicts itself
    check["value"], check["passed"] = (check["bound_lo"] or 0.0) - 0.5, True
    (tmp_path / "edited.json").write_text(json.dumps(raw))
    result = verify_cli("merge", str(shards["dir"] / "part2"), str(tmp_path / "edited.json"), "--out", str(tmp_path / "m"))
    assert result.returncode == 2 and "edited.json: the ledger contradicts itself:" in result.stderr, result.stderr
    assert f"says passed=True but its value {check['value']}" in result.stderr


def test_xdist_prints_the_same_numbers_as_serial_shards(shards, parallel):
    assert parallel.returncode == 0, parallel.stdout[-3000:]
    serial = sorted(line for r in shards["runs"] for line in claims_section(r.stdout))
    assert sorted(claims_section(parallel.stdout)) == serial
    records = ledger.read(shards["merged"]).records
    counted = re.search(rf"claims executed: {len(records)} \((\d+) held, 0 failed(?:, (\d+) expected absent)?\)", parallel.stdout)
    assert counted, parallel.stdout[-2000:]
    absent = sum(r.verdict == "absent" for r in records)
    assert (int(counted.group(1)), int(counted.group(2) or 0)) == (len(records) - absent, absent)


def test_xdist_runs_each_subject_s_claims_on_one_worker(parallel):
    """The plugin's loadgroup reaches the workers (they parse the command line themselves): every claim
    of a subject runs on the worker that loaded it, so its data and clean runs are made once."""
    ran = re.findall(r"^\[(gw\d+)\] \[ *\d+%\] (?:PASSED|XFAIL|FAILED) \S+@(\S+)", parallel.stdout, re.M)
    workers = {}
    for worker, subject in ran:
        workers.setdefault(subject, set()).add(worker)
    assert set(workers) == set(SHARDS.values()), parallel.stdout[-3000:]
    assert all(len(w) == 1 for w in workers.values()), workers


@pytest.mark.parametrize("nodeid, plain", [
    ("claims/test_culture.py::test_solved_rate[culture-tiny]@culture-tiny", "claims/test_culture.py::test_solved_rate[culture-tiny]"),
    ("claims/test_culture.py::test_solved_rate[culture-tiny]", "claims/test_culture.py::test_solved_rate[culture-tiny]"),
    ("tests/test_x.py::test_y[a@b]", "tests/test_x.py::test_y[a@b]"),  # an "@" of the parametrize id stays
    ("tests/test_x.py::test_y[a@b]@group", "tests/test_x.py::test_y[a@b]"),
    ("tests/test_x.py::test_y@group", "tests/test_x.py::test_y"),
    ("tests/me@home/test_x.py::test_y", "tests/me@home/test_x.py::test_y"),  # an "@" of the path stays
])
def test_a_record_s_id_drops_only_xdist_s_group_suffix(nodeid, plain):
    assert plain_nodeid(nodeid) == plain


def test_same_seeds_give_identical_ledger_values(shards, parallel):
    first, second = ledger.read(shards["merged"]), ledger.read(shards["dir"] / "parallel")
    assert [(r.key, r.verdict, r.checks, r.params) for r in first.records] == \
           [(r.key, r.verdict, r.checks, r.params) for r in second.records]
    assert {n: s.fingerprint for n, s in first.subjects.items()} == {n: s.fingerprint for n, s in second.subjects.items()}
    assert "drift gate: passed" in parallel.stdout


def test_drift_gate_fails_a_mutated_checkpoint_and_names_what_moved(shards, tmp_path):
    folder = mutated_subjects_dir(tmp_path)
    run = pytest_run("--subjects-dir", str(folder), "--claims-baseline", str(shards["dir"] / "part2"),
                     "--claims-report", str(tmp_path / "mutated"))
    assert run.returncode == 1, run.stdout[-3000:]
    assert "drift gate: FAILED" in run.stdout and "fingerprint moved" in run.stdout
    compared = verify_cli("compare", str(shards["dir"] / "part2"), str(tmp_path / "mutated"))
    assert compared.returncode == 1
    assert re.search(r"othello-tiny / legal_move_rate: .*->", compared.stdout)
    assert "fingerprint moved: blocks." in compared.stdout
    moved = [line for line in compared.stdout.splitlines() if "<-- moved" in line]
    assert moved, compared.stdout
    # under another name, --as maps the old subject onto the new one
    renamed = json.loads((tmp_path / "mutated" / "ledger.json").read_text().replace('"othello-tiny"', '"othello-tiny-v2"'))
    (tmp_path / "renamed.json").write_text(json.dumps(renamed))
    mapped = verify_cli("compare", str(shards["dir"] / "part2"), str(tmp_path / "renamed.json"), "--as", "othello-tiny=othello-tiny-v2")
    assert mapped.returncode == 1 and "othello-tiny -> othello-tiny-v2" in mapped.stdout


def test_compare_refuses_other_definition_versions(shards, tmp_path):
    raw = json.loads((shards["dir"] / "part2" / "ledger.json").read_text())
    raw["records"][0]["claim_version"] += 1
    (tmp_path / "v.json").write_text(json.dumps(raw))
    result = verify_cli("compare", str(shards["dir"] / "part2"), str(tmp_path / "v.json"))
    assert result.returncode == 1 and "incomparable: metric definition v" in result.stdout


def test_compare_writes_a_missing_baseline(shards, tmp_path):
    result = verify_cli("compare", str(tmp_path / "baseline.json"), str(shards["dir"] / "part2"))
    assert result.returncode == 0 and "wrote it" in result.stdout
    assert ledger.read(tmp_path / "baseline.json") == ledger.read(shards["dir"] / "part2")


def test_report_is_rebuilt_from_the_ledger(shards, tmp_path):
    result = verify_cli("report", str(shards["merged"]), "--baseline", str(shards["dir"] / "part2"), "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "report.md").read_text()
    assert "## Drift against the baseline" in text and "## Subject induction-tiny" in text
    images = re.findall(r"!\[[^\]]*\]\((figures/[^)]+)\)", text)
    assert images and all((tmp_path / i).stat().st_size > 1000 for i in images)


def test_drift_tolerance_comes_from_max_drift_or_the_intervals():
    def line(value, lo, hi):
        return ledger.Measured(what="x", kind="check", value=value, lo=lo, hi=hi, bound_lo=0.0, passed=True)

    record = ledger.ClaimRecord(subject="s", claim="c", claim_version=1, params={}, verdict="held")
    # the new interval narrows the tolerance, never widens it past the baseline's half-width
    assert drift.tolerance(record, line(0.5, 0.45, 0.55), line(0.5, 0.42, 0.58)) == pytest.approx((0.05**2 + 0.05**2) ** 0.5)
    assert drift.tolerance(record, line(0.5, 0.45, 0.55), line(0.5, 0.48, 0.52)) == pytest.approx((0.05**2 + 0.02**2) ** 0.5)
    assert drift.tolerance(record.model_copy(update={"max_drift": 0.01}), line(0.5, 0.4, 0.6), line(0.5, 0.4, 0.6)) == 0.01
    assert drift.row("s", record, line(0.5, 0.5, 0.5), line(0.5000001, 0.5000001, 0.5000001)).status == "moved"
    assert drift.row("s", record, line(0.5, 0.45, 0.55), line(0.52, 0.47, 0.57)).status == "ok"


# --- the report in a browser -------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# what the page reports about itself once loaded: how many images, how many did not decode or
# render, how many are blank (one colour), and every error the page raised or logged
PROBE = """<script>
window.__errors = [];
window.addEventListener('error', e => window.__errors.push(String(e.message || (e.target && e.target.src || '').slice(0, 40))), true);
const logged = console.error; console.error = (...a) => { window.__errors.push(a.join(' ')); logged(...a); };
window.addEventListener('load', () => {
  const images = [...document.images];
  const broken = images.filter(i => !(i.complete && i.naturalWidth > 0 && i.getBoundingClientRect().width > 0));
  const blank = images.filter(i => {
    const c = document.createElement('canvas'); c.width = i.naturalWidth; c.height = i.naturalHeight;
    const g = c.getContext('2d'); g.drawImage(i, 0, 0);
    const d = g.getImageData(0, 0, c.width, c.height).data;
    for (let k = 4; k < d.length; k += 4) if (d[k] !== d[0] || d[k + 1] !== d[1] || d[k + 2] !== d[2]) return false;
    return true;
  });
  document.body.setAttribute('data-probe', JSON.stringify({images: images.length, broken: broken.length, blank: blank.length, errors: window.__errors}));
});
</script>"""


def chromium(*args: str, user_dir: Path) -> subprocess.CompletedProcess:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", f"--user-data-dir={user_dir}"]
    return subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=180)


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed here (.ci/run installs it; apt-get install chromium)")
def test_report_renders_in_headless_chromium(shards, tmp_path):
    from PIL import Image

    report = shards["merged"] / "report.html"
    probed = tmp_path / "probed.html"
    probed.write_text(report.read_text().replace("<head>", "<head>" + PROBE, 1))
    dom = chromium("--virtual-time-budget=20000", "--dump-dom", probed.as_uri(), user_dir=tmp_path / "profile1")
    found = re.search(r"data-probe=\"([^\"]*)\"", dom.stdout)
    assert found, f"the page never finished loading: {dom.stderr[-2000:]}"
    probe = json.loads(found.group(1).replace("&quot;", '"'))
    assert probe["images"] >= 10, probe  # claims charts, board maps, histograms
    assert probe["broken"] == 0 and probe["blank"] == 0 and probe["errors"] == [], probe
    shot = tmp_path / "report.png"
    chromium(f"--screenshot={shot}", "--window-size=1200,3000", "--hide-scrollbars", report.as_uri(), user_dir=tmp_path / "profile2")
    image = Image.open(shot).convert("L")
    assert image.size == (1200, 3000)
    assert len(set(image.getdata())) > 50, "the screenshot is (nearly) one colour: nothing rendered"


def test_a_skipped_subject_is_recorded_with_its_reason(pytester, tmp_path):
    from tests.test_plugin import CLAIMS, hub_manifest, run

    result = run(pytester, CLAIMS, "--subject-file", str(hub_manifest(tmp_path)), "--subject", "tiny-on-hub",
                 "--claims-report", str(tmp_path / "out"), env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")})
    result.assert_outcomes(skipped=4)
    found = ledger.read(tmp_path / "out")
    assert {r.verdict for r in found.records} == {"skipped"} and len(found.records) == 4
    assert all("not available offline: verify-test/absent/model.safetensors" in r.reason for r in found.records)
    assert not found.subjects["tiny-on-hub"].available
    assert "not available offline" in (tmp_path / "out" / "report.md").read_text()


def test_help_documents_the_record_options(pytester):
    from tests.test_plugin import run

    result = run(pytester, "--help")
    for option in ("--claims-report=DIR", "--claims-baseline=LEDGER", "--claims-durations", "--subject-shard=K/N"):
        result.stdout.fnmatch_lines([f"*{option}*"])


@pytest.mark.parametrize("command", ["subjects", "compare", "report", "merge"])
def test_console_commands_explain_themselves(command):
    result = verify_cli(command, "--help")
    assert result.returncode == 0 and "usage: verify " + command in result.stdout


def test_verify_subjects_says_what_is_available_and_why_not():
    result = verify_cli("subjects")
    assert result.returncode == 0, result.stderr
    assert re.search(r"^othello-tiny \[othello\] available$", result.stdout, re.M)
    assert re.search(r"^culture-gpt-0 \[culture\] NOT available: not available offline", result.stdout, re.M) or \
        "culture-gpt-0 [culture] available" in result.stdout  # a machine with the hub cache has it
    assert "claim feature_tracks_empty_square (definition v1)" in result.stdout
    assert re.search(r"sae_weights.safetensors sha256 [0-9a-f]{64} \(pinned\)", result.stdout)
