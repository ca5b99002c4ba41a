"""The culture-tiny checkpoint series (fixtures/culture-tiny-series/): each stage's manifest extends
the embedded culture-tiny and resolves to its own pinned weights and culture-tiny's config, SAE and
claims. Running the claims on the series is `pytest claims/ --subjects-dir fixtures/culture-tiny-series`."""

import dataclasses
from pathlib import Path

import pytest

from tests.conftest import SUBJECTS_DIR
from verify import sources
from verify.subjects import SubjectSet, manifest_paths, read_manifest

SERIES = SUBJECTS_DIR.parent / "culture-tiny-series"
CULTURE_TINY = SUBJECTS_DIR / "culture-tiny.toml"
STAGES = [1, 2, 4, 5]  # the stages whose weights the repository's history kept (3 never was committed)


def local(source: str, folder: Path) -> Path:
    return sources.local_path(source, folder).resolve()


def test_the_series_holds_one_manifest_per_kept_stage():
    assert [p.name for p in manifest_paths(SERIES)] == [f"culture-tiny-stage{n}.toml" for n in STAGES]


@pytest.mark.parametrize("stage", STAGES)
def test_a_stage_has_its_own_pinned_weights_and_culture_tinys_config_sae_and_claims(stage):
    parent = read_manifest(CULTURE_TINY)
    m = read_manifest(SERIES / f"culture-tiny-stage{stage}.toml")
    assert m.name == f"culture-tiny-stage{stage}" and m.training["stage"] == stage
    # stage 5 is the embedded culture-tiny's own checkpoint; the others are copies out of history
    weights = local(parent.model.weights, parent.dir) if stage == 5 else SERIES / f"stage{stage}" / "model.safetensors"
    assert local(m.model.weights, m.dir) == weights
    sources.check_sha256(weights, m.model.sha256["weights"])
    assert local(m.model.config, m.dir) == local(parent.model.config, parent.dir)
    assert m.model.sha256["config"] == parent.model.sha256["config"]
    assert {n: local(s.path, m.dir) for n, s in m.saes.items()} == {n: local(s.path, parent.dir) for n, s in parent.saes.items()}
    assert m.saes == {n: dataclasses.replace(s, path=m.saes[n].path) for n, s in parent.saes.items()}  # hook, pins, floors
    assert m.claims == parent.claims and m.data == parent.data


def test_every_stage_is_another_checkpoint():
    pins = [read_manifest(p).model.sha256["weights"] for p in manifest_paths(SERIES)]
    assert len(set(pins)) == len(STAGES)


def test_the_series_and_the_embedded_subjects_run_together():
    """Every name is its own: the series can be added to a run of the embedded subjects."""
    subjects = SubjectSet([*manifest_paths(SUBJECTS_DIR), *manifest_paths(SERIES)], "cpu")
    assert {f"culture-tiny-stage{n}" for n in STAGES} | {"culture-tiny"} <= set(subjects.manifests)


def test_the_shipped_series_report_shows_each_claim_per_checkpoint(tmp_path):
    """docs/culture-tiny-series/ledger.json (a real run of the series) rebuilds into a report with a
    chart per claim across the four stages, in training order."""
    from verify import ledger, report

    run = ledger.read(SERIES.parent.parent / "docs" / "culture-tiny-series" / "ledger.json")
    assert list(run.subjects) == [f"culture-tiny-stage{n}" for n in STAGES]
    report.write(run, tmp_path)
    text = (tmp_path / "report.md").read_text()
    section = text.split("## Claims across subjects")[1].split("## Subject ")[0]
    for claim in ("solved_rate", "ablation_breaks_one_task", "sae_splice_restores"):
        assert f"![{claim} per subject](figures/" in section
        assert all(f"| culture-tiny-stage{n} |" in section for n in STAGES)
    verdicts = {(r.subject, r.claim): r.verdict for r in run.records}
    assert verdicts[("culture-tiny-stage5", "ablation_breaks_one_task")] == "held"
    assert verdicts[("culture-tiny-stage4", "ablation_breaks_one_task")] == "failed"
