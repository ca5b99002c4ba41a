"""Hub subjects checked end to end on local replicas laid out like the hub repos, and sources
resolved from a hand-populated hub cache offline."""

from pathlib import Path

import pytest
import torch

from tests.conftest import ROOT
from tests.replicas import write_culture_hub
from tests.test_plugin import run
from verify import sources

CULTURE_GPT_0 = ROOT / "fixtures" / "subjects" / "culture-gpt-0.toml"
REPLICA = {"n_layers": 12, "d_model": 32, "n_heads": 2, "d_head": 16, "d_mlp": 64, "d_vocab": 15}


@pytest.fixture(scope="module")
def hub_replica(tmp_path_factory) -> Path:
    """tommyp111/culture-gpt, culture-sae and culture-puzzles-1M-partitioned, as local folders."""
    return write_culture_hub(tmp_path_factory.mktemp("hub"), REPLICA, d_sae=64, puzzles_per_task=8)


def replica_manifest(tmp_path: Path, root: Path) -> Path:
    text = CULTURE_GPT_0.read_text().replace('name = "culture-gpt-0"', 'name = "culture-gpt-0-replica"')
    text = text.replace("hf://tommyp111/culture-gpt/", f"{root}/culture-gpt/")
    text = text.replace("hf://tommyp111/culture-sae/gpt-0/blocks_8_mlp_out/", f"{root}/culture-sae/gpt-0/blocks_8_mlp_out")
    text = text.replace("hf://datasets/tommyp111/culture-puzzles-1M-partitioned", f"{root}/culture-puzzles-1M-partitioned")
    text = text.replace("size = 100", "size = 4")
    path = tmp_path / "replica.toml"
    path.write_text(text)
    assert "hf://" not in text
    return path


def test_culture_manifest_on_a_local_replica_runs_every_claim(pytester, tmp_path, hub_replica):
    """The replica has random weights, so each culture claim executes and fails (a negative
    control for F1, F2 and F5): nothing is solved, so the ablation and splice claims fail on the
    competence they rest on."""
    path = replica_manifest(tmp_path, hub_replica)
    result = run(pytester, str(ROOT / "claims" / "test_culture.py"), "--subject-file", str(path),
                 "--subject", "culture-gpt-0-replica", "--device", "cpu")
    result.assert_outcomes(failed=3)
    result.stdout.fnmatch_lines(["*FAIL solved rate contact (determined puzzles: *) = 0.0000*", "*FAIL precondition: solved rate contact (determined puzzles) = 0.0000*",
                                 "*claims executed: 3 (0 held, 3 failed)*"])


def test_hub_subjects_are_listed_as_skipped_offline(pytester, tmp_path):
    result = run(pytester, str(ROOT / "claims"), "-rs", "--subjects-dir", str(ROOT / "fixtures" / "subjects"),
                 "--subject", "culture-gpt-0", "--subject", "othello-gpt", env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")})
    result.assert_outcomes(skipped=11)  # 7 claims of the two hub subjects, and the 4 token claims neither declares
    for line in ("*not available offline: tommyp111/culture-gpt/gpt_000.pth*",
                 "*not available offline: Baidicoot/Othello-GPT-Transformer-Lens/synthetic_model.pth*",
                 "*skipped for a missing subject: 7; no subject declares the claim: 4*"):
        result.stdout.fnmatch_lines([line])


def test_hub_file_is_read_from_a_populated_cache_offline(tmp_path, monkeypatch):
    """A cache filled by hand (or by an earlier online run) is used without the network."""
    cache = tmp_path / "hub"
    commit = "0" * 40
    snapshot = cache / "models--tommyp111--culture-gpt" / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (snapshot / "gpt_000.pth").write_bytes(b"weights")
    (cache / "models--tommyp111--culture-gpt" / "refs").mkdir()
    (cache / "models--tommyp111--culture-gpt" / "refs" / "main").write_text(commit)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(cache))
    sources.hub_reachable.cache_clear()
    assert sources.fetch("hf://tommyp111/culture-gpt/gpt_000.pth", tmp_path).read_bytes() == b"weights"
    with pytest.raises(sources.SourceUnavailable, match="not available offline: tommyp111/culture-gpt/gpt_001.pth"):
        sources.fetch("hf://tommyp111/culture-gpt/gpt_001.pth", tmp_path)
    sources.hub_reachable.cache_clear()


def test_hub_source_syntax():
    hub = sources.parse_hub("hf://owner/repo/dir/file.pth@abc123")
    assert (hub.repo_id, hub.filename, hub.revision) == ("owner/repo", "dir/file.pth", "abc123")
    with pytest.raises(ValueError, match="must look like"):
        sources.parse_hub("hf://owner/file.pth")


def test_offline_wandb_artifact_is_unavailable(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "WANDB_CACHE", tmp_path)
    with pytest.raises(sources.SourceUnavailable, match="wandb artifact andyrdt/othello_gpt_sae/x:v0"):
        sources.fetch("wandb://andyrdt/othello_gpt_sae/x:v0", tmp_path)


def test_culture_checkpoints_not_yet_fetched_share_the_published_skeleton():
    """Five culture-gpt subjects wait on the hub: collection builds their (published) architecture once."""
    from verify.loaders import culture_pth

    first, second = culture_pth.skeleton({"weights": None}), culture_pth.skeleton({"weights": None})
    assert first is second and next(first.parameters()).device == torch.device("meta")
    assert (first.cfg.n_layers, first.cfg.d_model, first.cfg.n_ctx) == tuple(culture_pth.CULTURE_GPT_CONFIG[k] for k in ("n_layers", "d_model", "n_ctx"))
