"""Teacher-forced verdicts equal greedy generation's, with and without hooks; bad input is named;
solved rates split by block structure add up to the whole."""

import tomllib

import pytest
import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from verify.interventions import random_like, shuffled_decoder
from verify.culture.evaluate import greedy_answers, greedy_verdicts, teacher_forced_verdicts
from verify.interventions import sae_splice, zero_ablation
from verify.culture.layout import PuzzleLayout
from verify.culture.structures import solved_by_structure
from verify.culture.tasks import generate_task
from verify.culture import findings as f

LAYOUT = PuzzleLayout(3, 4, 4, True)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    cfg = HookedTransformerConfig(n_layers=2, d_model=32, n_heads=2, d_head=16, d_mlp=64, d_vocab=15, n_ctx=LAYOUT.length,
                                  act_fn="relu", normalization_type="LN", device="cpu")
    return HookedTransformer(cfg).eval()


@pytest.fixture(scope="module")
def sae(model):
    from sae_lens import StandardSAE, StandardSAEConfig

    return random_like(StandardSAE(StandardSAEConfig(d_in=32, d_sae=64, device="cpu")), 0)


def half_solved(model, hooks) -> torch.Tensor:
    """Puzzles whose answer is the model's own greedy output for half of them (solved by
    construction) and the generator's answer for the rest (almost surely not solved)."""
    puzzles = generate_task("replace_color", 24, 0, LAYOUT)
    puzzles[:12, LAYOUT.answer_slice] = greedy_answers(model, puzzles[:12], LAYOUT, hooks)
    return puzzles


@pytest.mark.parametrize("hooks", ["none", "ablation", "splice"])
def test_teacher_forced_equals_greedy(model, sae, hooks):
    hook_list = {"none": [], "ablation": [zero_ablation("blocks.0.hook_mlp_out")],
                 "splice": [sae_splice("blocks.1.hook_mlp_out", sae)]}[hooks]
    puzzles = half_solved(model, hook_list)
    tf = teacher_forced_verdicts(model, puzzles, LAYOUT, hook_list, batch_size=5)
    greedy = greedy_verdicts(model, puzzles, LAYOUT, hook_list)
    assert tf[:12].all() and tf.tolist() == greedy.tolist()
    assert not greedy[12:].all()  # both outcomes occur: the equality is not vacuous


def test_hooks_change_verdicts(model):
    puzzles = half_solved(model, [])
    ablated = teacher_forced_verdicts(model, puzzles, LAYOUT, [zero_ablation("blocks.1.hook_mlp_out")])
    assert not ablated[:12].all()


def test_bad_input_is_named(model):
    good = generate_task("frame", 2, 0, LAYOUT)
    with pytest.raises(ValueError, match=f"expected sequences of {LAYOUT.length} tokens"):
        teacher_forced_verdicts(model, good[:, :-1], LAYOUT)
    bad = good.clone()
    bad[0, 3] = 99
    with pytest.raises(ValueError, match="token 99 at puzzle 0, position 3"):
        teacher_forced_verdicts(model, bad, LAYOUT)
    with pytest.raises(KeyError, match="no hook point 'blocks.7.hook_mlp_out'"):
        teacher_forced_verdicts(model, good, LAYOUT, [zero_ablation("blocks.7.hook_mlp_out")])


def test_discovery_picks_the_most_selective_pair():
    from verify.cli.discover_culture import most_selective

    table = {"blocks.0.hook_mlp_out": {"contact": 0.3, "frame": 0.25, "grow": 0.0},
             "blocks.1.hook_mlp_out": {"contact": 0.2, "frame": 0.01, "grow": 0.0},
             "blocks.1.hook_attn_out": {"contact": 0.9, "frame": 0.9, "grow": 0.9}}
    assert most_selective(table) == ("blocks.1.hook_mlp_out", "contact", 0.2, 0.01)


def test_discovery_writes_the_claim_table(tmp_path):
    from verify.cli.discover_culture import write_claim

    path = tmp_path / "m.toml"
    path.write_text('name = "x"\n\n[claims.ablation_breaks_one_task]\nhook = "old"\n\n[claims.solved_rate]\nmin_rate = 0.9\n')
    write_claim(path, "blocks.2.hook_mlp_out", "grow", {"grow": 0.2, "frame": 0.01, "contact": 0.0},
                {"grow": 300, "frame": 400, "contact": 250})
    table = tomllib.loads(path.read_text())["claims"]
    margin_se = (2 * 0.2 * 0.8 / 300 + 2 * 0.01 * 0.99 / 400) ** 0.5  # each rate on its own task's count
    assert table["ablation_breaks_one_task"] == {
        "hook": "blocks.2.hook_mlp_out", "task": "grow", "min_broken": 0.1,
        "max_broken_other": round(0.01 + 3 * (2 * 0.01 * 0.99 / 250) ** 0.5, 4),  # 3 standard errors > 0.02, fewest count
        "min_margin": round(0.19 - 3 * margin_se, 4)}
    assert table["solved_rate"] == {"min_rate": 0.9}
    write_claim(path, "blocks.2.hook_mlp_out", "grow", {"grow": 0.06, "frame": 0.01}, {"grow": 100, "frame": 100})
    assert tomllib.loads(path.read_text())["claims"]["ablation_breaks_one_task"]["min_margin"] == 0.02  # the floor


def test_culture_tiny_names_its_sae_after_the_hook():
    from verify.cli.build_culture_tiny import sae_name

    assert sae_name("blocks.2.hook_mlp_out") == "mlp2" and sae_name("blocks.0.hook_attn_out") == "attn0"


def test_culture_tiny_claims_only_tasks_whose_bound_can_fail():
    from verify.stats import Estimate
    from verify.cli.build_culture_tiny import solved_bounds

    bounds = solved_bounds({"frame": Estimate(0.9, 0.87, 0.93), "grow": Estimate(0.99, 0.98, 1.0),
                            "translate": Estimate(0.01, 0.0, 0.02)}, 400)
    assert bounds == {"frame": round(0.9 - 3 * (2 * 0.9 * 0.1 / 400) ** 0.5, 4), "grow": 0.94}  # 3 SE, or the 0.05 floor


def test_solved_by_structure_partitions_the_split(culture_tiny):
    for task, row in solved_by_structure(culture_tiny, "confirmation").items():
        flags = f.verdicts(culture_tiny, task)
        assert all(n > 0 for _, n in row.values()), (task, row)  # the generator draws all four structures
        assert sum(n for _, n in row.values()) == len(flags)
        assert abs(sum(e.value * n for e, n in row.values() if n) - flags.sum()) < 1e-6, task


def test_the_shuffled_dictionary_permutes_decoder_rows_only(sae):
    shuffled = shuffled_decoder(sae, seed=3)
    assert torch.equal(shuffled.W_enc, sae.W_enc) and torch.equal(shuffled.b_dec, sae.b_dec)
    assert not torch.equal(shuffled.W_dec, sae.W_dec)  # rows moved in the copy only (shared storage would compare equal)
    rows = lambda w: sorted(map(tuple, w.tolist()))  # noqa: E731
    assert rows(shuffled.W_dec) == rows(sae.W_dec)
    assert torch.equal(shuffled_decoder(sae, seed=3).W_dec, shuffled.W_dec)  # seeded
