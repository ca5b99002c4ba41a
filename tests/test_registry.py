"""The claim registry and the collection-time checks it enables: a claim is declared once, every
parameter is checked against the subject's config before any weights are loaded, and the layers
below the plugin know no domain."""

import dataclasses
import shutil
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import OTHELLO_TINY, ROOT
from tests.test_manifest import copy_manifest
from tests.test_plugin import run
from verify import registry
from verify.manifest import ManifestError
from verify.subjects import read_manifest

CULTURE_TINY = OTHELLO_TINY.parent / "culture-tiny.toml"


def test_every_builtin_claim_is_registered_once_with_a_version():
    claims = registry.claims()
    assert {"legal_move_rate", "feature_tracks_empty_square", "neuron_fires_on_one_move", "board_probe",
            "solved_rate", "ablation_breaks_one_task", "sae_splice_restores"} <= set(claims)
    assert all(c.version >= 1 and c.domain in registry.domains() for c in claims.values())


def test_a_second_definition_under_a_taken_name_is_refused():
    taken = registry.get_claim("legal_move_rate")
    with pytest.raises(ValueError, match="already registered"):
        registry.register_claim(registry.Claim("legal_move_rate", "othello", taken.params, lambda s, p: None, taken.judge, 1))


@pytest.mark.parametrize(
    ("original", "edit", "message"),
    [
        (CULTURE_TINY, lambda t: t.replace('hook = "blocks.3.hook_mlp_out"\ntask', 'hook = "blocks.9.hook_mlp_out"\ntask'),
         r"\[claims.ablation_breaks_one_task\] hook: the model has no hook point 'blocks.9.hook_mlp_out'"),
        (CULTURE_TINY, lambda t: t.replace('hook = "blocks.3.hook_mlp_out"\ntask', 'hook = "blocks.3.hook_mlp_outt"\ntask'),
         r"hook: the model has no hook point 'blocks.3.hook_mlp_outt' \(did you mean blocks.3.hook_mlp_out"),
        (OTHELLO_TINY, lambda t: t.replace("feature = 417", "feature = 512"),
         r"\[claims.feature_tracks_empty_square\] feature: feature 512 is outside the SAE's 512 features"),
        (OTHELLO_TINY, lambda t: t.replace("neuron = 171", "neuron = 512"),
         r"\[claims.neuron_fires_on_one_move\] neuron: index 512 is outside the 512 units of blocks.0.mlp.hook_post"),
        (OTHELLO_TINY, lambda t: t.replace('hook = "blocks.2.hook_resid_post"', 'hook = "blocks.2.attn.hook_pattern"'),
         r"\[claims.board_probe\] hook: 'blocks.2.attn.hook_pattern' has shape .* not one vector per position"),
        (OTHELLO_TINY, lambda t: t + "\n[claims.solved_rate]\nmin_rate = 0.5\n",
         r"\[claims.solved_rate\]: solved_rate is a culture claim; this subject's domain is othello"),
        (OTHELLO_TINY, lambda t: t + "\n[claims.no_such_claim]\nx = 1\n", r"\[claims.no_such_claim\]: unknown claim"),
        (OTHELLO_TINY, lambda t: t.replace('loader = "hooked_transformer"', 'loader = "safetensors_gpt"'),
         r"\[model\] loader: unknown loader 'safetensors_gpt'"),
    ],
    ids=["missing-hook", "hook-typo", "feature-out-of-range", "neuron-out-of-range", "probe-on-attention-pattern",
         "claim-of-another-domain", "unknown-claim", "unknown-loader"],
)
def test_parameters_are_checked_against_the_config_before_loading(tmp_path, original, edit, message):
    unedited = copy_manifest(tmp_path, original=original).read_text()
    path = copy_manifest(tmp_path, edit, original)
    assert path.read_text() != unedited, "the edit did not apply: the test would prove nothing"
    with pytest.raises(ManifestError, match=message) as err:
        read_manifest(path)
    assert str(err.value).startswith(f"{path}: ")


def test_any_hook_point_transformer_lens_builds_is_accepted(tmp_path):
    """Not only a hand-kept list: an attention pattern is a hook point the ablation claim may zero."""
    path = copy_manifest(tmp_path, lambda t: t.replace('hook = "blocks.3.hook_mlp_out"\ntask', 'hook = "blocks.2.attn.hook_pattern"\ntask'),
                         CULTURE_TINY)
    assert read_manifest(path).claims["ablation_breaks_one_task"].hook == "blocks.2.attn.hook_pattern"


def test_a_misspelled_claim_marker_stops_collection_naming_the_test(pytester):
    pytester.makepyfile(test_typo=textwrap.dedent("""
        import pytest

        @pytest.mark.claim("legal_moves_rate")
        def test_rate(measurement, params, claim, verdict):
            verdict(claim.checks(measurement, params))
    """))
    result = run(pytester, "--subjects-dir", str(OTHELLO_TINY.parent), "--subject", "othello-tiny")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*test_typo.py::test_rate: @pytest.mark.claim('legal_moves_rate'): no claim of that name is registered*"])
    result.stdout.no_fnmatch_line("*Traceback*")


def test_a_claim_on_a_missing_hook_stops_the_run_as_a_usage_error(pytester, tmp_path):
    path = copy_manifest(tmp_path, lambda t: t.replace('name = "othello-tiny"', 'name = "tiny-bad-hook"')
                         .replace('hook = "blocks.2.hook_resid_post"', 'hook = "blocks.7.hook_resid_post"'))
    result = run(pytester, str(ROOT / "claims" / "test_othello.py"), "--subject-file", str(path))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{path}: [[]claims.board_probe[]] hook: the model has no hook point 'blocks.7.hook_resid_post'*"])


def test_the_domain_free_layers_import_no_domain():
    code = ("import sys, verify.subjects, verify.manifest, verify.sources, verify.loaders, verify.plugin, verify.registry; "
            "bad = sorted(m for m in sys.modules if m.startswith(('verify.othello', 'verify.culture'))); "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


# --- preconditions no claim can skip (the domain's SAE fidelity and competence checks) ------------

EXTERNAL_SAE_CLAIM = textwrap.dedent("""
    from dataclasses import dataclass

    from verify import Check, Claim, register_claim
    from verify.params import SAEName
    from verify.verdicts import point


    @dataclass(frozen=True)
    class SAEWidth:  # a claim that names an SAE and wires no fidelity check of its own
        sae: SAEName
        min_features: int


    register_claim(Claim("sae_width", "othello", SAEWidth, lambda subject, p: subject.saes[p.sae].cfg.d_sae,
                         lambda width, p: [Check(f"features of SAE {p.sae}", point(width), p.min_features)], version=1))
""")


def external_claim_project(pytester, tmp_path, zero_decoder: bool) -> list[str]:
    """A project whose conftest registers `sae_width`, on othello-tiny's model and SAE (100 games;
    the SAE's decoder zeroed if asked): the arguments that run it."""
    from safetensors.torch import load_file, save_file

    from tests.test_plugin import FIXTURES, manifest_copy

    weights = tmp_path / "weights"
    shutil.copytree(FIXTURES, weights)
    if zero_decoder:
        state = load_file(str(FIXTURES / "sae-resid" / "sae_weights.safetensors"))
        save_file({k: v.zero_() if k == "W_dec" else v for k, v in state.items()}, str(weights / "sae-resid" / "sae_weights.safetensors"))
    folder = tmp_path / "subjects"
    folder.mkdir()
    text = manifest_copy(tmp_path, "tiny-external", weights, size=100).read_text()
    (folder / "tiny-external.toml").write_text(text[: text.index("[claims.")] + "[claims.sae_width]\nsae = \"resid\"\nmin_features = 512\n")
    pytester.makeconftest(EXTERNAL_SAE_CLAIM)
    pytester.makepyfile(test_own=textwrap.dedent("""
        import pytest

        @pytest.mark.claim("sae_width")
        def test_sae_width(measurement, params, claim, verdict):
            verdict(claim.checks(measurement, params))
    """))
    return ["--subjects-dir", str(folder), "--device", "cpu"]


def test_an_external_claim_naming_an_sae_gets_the_fidelity_precondition(pytester, tmp_path):
    """No code of the claim's own checks the SAE: the framework does, for the SAE its `sae` names."""
    result = run(pytester, *external_claim_project(pytester, tmp_path, zero_decoder=False))
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*PASS precondition: SAE resid explained variance on blocks.3.hook_resid_pre*",
                                 "*PASS precondition: SAE resid loss recovered when spliced*", "*PASS features of SAE resid = 512.0000*"])


def test_an_external_claim_naming_an_sae_fails_on_a_zeroed_decoder(pytester, tmp_path):
    result = run(pytester, *external_claim_project(pytester, tmp_path, zero_decoder=True))
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*FAIL precondition: SAE resid explained variance on blocks.3.hook_resid_pre*",
                                 "*FAIL precondition: SAE resid loss recovered when spliced*"])
    result.stdout.no_fnmatch_line("*features of SAE resid*")  # not measured where a precondition fails


def test_builtin_claims_get_each_precondition_once(othello_tiny):
    checks = {name: [c.what for c in registry.get_claim(name).precondition_checks(othello_tiny, othello_tiny.manifest.claims[name])]
              for name in ("feature_tracks_empty_square", "neuron_fires_on_one_move", "board_probe")}
    legal = "precondition: top-1 prediction is a legal move"
    assert checks["feature_tracks_empty_square"] == [legal, "precondition: SAE resid explained variance on blocks.3.hook_resid_pre (fidelity v2)",
                                                     "precondition: SAE resid loss recovered when spliced (fidelity v2)"]
    assert checks["neuron_fires_on_one_move"] == checks["board_probe"] == [legal]


def test_a_claim_that_assumes_competence_gets_it_from_its_domain(othello_tiny, monkeypatch):
    """Declared with `assumes_competence`, a claim rests on the domain's competence table (a manifest
    without it is refused) and is checked against it, with no code of its own."""
    from dataclasses import dataclass

    monkeypatch.setattr(registry, "_CLAIMS", dict(registry.claims()))  # registered for this test only

    @dataclass(frozen=True)
    class Nothing:
        pass

    claim = registry.register_claim(registry.Claim("plays_along", "othello", Nothing, lambda s, p: None, lambda m, p: [], 1,
                                                   assumes_competence=True))
    assert claim.rests_on == ("legal_move_rate",)
    assert [c.what for c in claim.precondition_checks(othello_tiny, Nothing())] == ["precondition: top-1 prediction is a legal move"]
    with pytest.raises(ValueError, match="assumes competence, but domain 'culture' registers no competence check"):
        registry.register_claim(registry.Claim("solves_along", "culture", Nothing, lambda s, p: None, lambda m, p: [], 1,
                                               assumes_competence=True))


def test_a_claim_naming_an_sae_in_a_domain_without_a_fidelity_check_is_not_measurable():
    from verify.params import SAEName

    @dataclasses.dataclass(frozen=True)
    class ReadsSAE:
        sae: SAEName

    claim = registry.Claim("reads_sae", "nowhere", ReadsSAE, lambda s, p: None, lambda m, p: [], 1)
    with pytest.raises(ValueError, match="claim reads_sae reads SAE 'resid' \\(field sae\\), but domain 'nowhere' registers no SAE fidelity check"):
        claim.precondition_checks(None, ReadsSAE("resid"))
