"""Rebuild and discovery tools rewrite only the tables they own: a claim table added by hand, and
its comments, survive a rebuild."""

import tomllib

from tests.conftest import OTHELLO_TINY
from verify.cli import discover_othello
from verify.cli.manifest_tables import update_manifest
from verify.othello.probe import BoardProbeResult
from verify.stats import Estimate

HAND_WRITTEN = '''
[claims.residual_norm]
# added by hand: a lab's own claim
hook = "blocks.1.hook_resid_post"
min_norm = 10.0
'''


def found(probe_accuracy: float) -> dict:
    """What discover_othello.discover returns, with made-up numbers."""
    e = Estimate(probe_accuracy, probe_accuracy, probe_accuracy)
    return {"feature": 7, "square": "C3", "selection_r": 0.5, "min_correlation": 0.4, "max_correlation": 0.6,
            "selection_auroc": 0.7, "min_auroc": 0.65, "min_margin_over_random": 0.1, "sae": "resid", "neuron": 3,
            "move": "D2", "hook": "blocks.0.mlp.hook_post", "neuron_seen": "precision 0.2", "neuron_held": False,
            "neuron_absent_reason": "no neuron fires on one move",
            "min_precision": 0.5, "min_lift": 20.0, "min_margin": 0.25, "min_recall": 0.2, "min_legal_rate": 0.95,
            "probe_hook": "blocks.1.hook_resid_post", "probe": BoardProbeResult(e, Estimate(0.7, 0.7, 0.7), Estimate(0.6, 0.6, 0.6),
                                                                               Estimate(0.2, 0.2, 0.2), Estimate(0.1, 0.1, 0.1), e)}


def test_discovery_keeps_a_hand_written_claim_table(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(OTHELLO_TINY.read_text() + HAND_WRITTEN)
    discover_othello.write_claims(path, found(0.8))
    text = path.read_text()
    claims = tomllib.loads(text)["claims"]
    assert claims["residual_norm"] == {"hook": "blocks.1.hook_resid_post", "min_norm": 10.0}
    assert "# added by hand: a lab's own claim" in text
    assert claims["feature_tracks_empty_square"]["feature"] == 7 and claims["board_probe"]["min_accuracy"] == 0.77
    assert tomllib.loads(text)["model"] == tomllib.loads(OTHELLO_TINY.read_text())["model"]  # not discovery's table


def test_a_rebuilt_header_keeps_the_claims(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(OTHELLO_TINY.read_text() + HAND_WRITTEN)
    before = tomllib.loads(path.read_text())
    update_manifest(path, {"model": {"loader": "hooked_transformer", "weights": "w.safetensors", "config": "c.json",
                                     "sha256": {"weights": "ab", "config": "cd"}}})
    after = tomllib.loads(path.read_text())
    assert after["model"]["sha256"] == {"weights": "ab", "config": "cd"}
    assert after["claims"] == before["claims"] and after["data"] == before["data"]


def test_setting_keys_of_an_inherited_table_is_refused_naming_the_parent(tmp_path):
    import pytest

    from verify.cli.manifest_tables import set_keys

    child = tmp_path / "child.toml"
    child.write_text(f'extends = "{OTHELLO_TINY}"\nname = "child"\n')
    with pytest.raises(ValueError, match=r"child.toml: no \[saes.resid\] table of its own .*it extends .*othello-tiny.toml"):
        set_keys(child, "saes.resid", {"min_explained_variance": 0.5})
    assert child.read_text() == f'extends = "{OTHELLO_TINY}"\nname = "child"\n'
