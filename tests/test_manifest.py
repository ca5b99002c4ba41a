"""Manifest errors name the file and the field; the shipped manifests are valid and hash-true."""

import re
import shutil
from pathlib import Path

import pytest

from verify import sources
from verify.manifest import ManifestError
from tests.conftest import SUBJECTS_DIR
from verify.subjects import SubjectSet, manifest_paths, read_manifest

TINY = Path(__file__).resolve().parents[1] / "fixtures" / "subjects" / "othello-tiny.toml"
CULTURE_TINY = TINY.parent / "culture-tiny.toml"


def copy_manifest(tmp_path: Path, edit=lambda text: text, original: Path = TINY) -> Path:
    """A copy of a shipped manifest in tmp_path whose relative paths still point at fixtures/."""
    text = original.read_text().replace('"../', f'"{original.parent.parent}/')
    path = tmp_path / "copy.toml"
    path.write_text(edit(text))
    return path


def test_builtin_manifests_parse():
    names = [read_manifest(p).name for p in manifest_paths(SUBJECTS_DIR)]
    assert "othello-tiny" in names and "culture-tiny" in names


@pytest.mark.parametrize("path", manifest_paths(SUBJECTS_DIR), ids=lambda p: p.stem)
def test_shipped_files_match_their_hashes(path):
    m = read_manifest(path)
    checked = 0
    for key, digest in m.model.sha256.items():
        source = getattr(m.model, key)
        if not sources.is_hub(source):
            sources.check_sha256(sources.local_path(source, m.dir), digest)
            checked += 1
    for sae in m.saes.values():
        if not sources.is_hub(sae.path):
            for name, digest in sae.sha256.items():
                sources.check_sha256(sources.local_path(sae.path, m.dir) / name, digest)
                checked += 1
    if not sources.is_hub(m.model.weights):
        assert checked >= 2, f"{path}: local weights without recorded sha256"


def test_a_changed_file_fails_its_hash(tmp_path):
    f = tmp_path / "w.bin"
    f.write_bytes(b"abc")
    with pytest.raises(ValueError, match="sha256"):
        sources.check_sha256(f, "0" * 64)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace('domain = "othello"', 'domain = "othello"\ncolour = 1'), "unknown key 'colour'"),
        (lambda t: t.replace('loader = "sae_lens"\nhook = "blocks.3.hook_resid_pre"', 'loader = "sae_lens"\nhook = "blocks.9.hook_resid_pre"'),
         r"\[saes.resid\] hook: the model has no hook point 'blocks.9.hook_resid_pre'"),
        (lambda t: t.replace('hook = "blocks.3.hook_resid_pre"', 'hook = "blocks.3.mlp.hook_post"'), r"\[saes.resid\] hook: the manifest says .* but the SAE's config says"),
        (lambda t: t.replace("model.safetensors", "missing.safetensors"), r"\[model\] weights: file .*missing.safetensors does not exist"),
        (lambda t: t.replace("[claims.legal_move_rate]\nmin_rate", "[claims.legal_move_rate]\nminimum_rate"), r"\[claims.legal_move_rate\]: unknown key 'minimum_rate'"),
        (lambda t: t.replace("[claims.legal_move_rate]", "[claims.legal_moves_rate]"), "unknown claim"),
        (lambda t: t.replace('min_rate = 0.95', 'min_rate = "high"'), r"\[claims.legal_move_rate\] min_rate: expected float"),
        (lambda t: t.replace('sae = "resid"', 'sae = "mlp"'), r"sae: 'mlp' is not declared"),
        (lambda t: t.replace("[data]\n", "[data]\nsplit = 3\n"), r"\[data\]: unknown key 'split'"),
        (lambda t: t + "\n[[broken", "not valid TOML"),
        (lambda t: t.replace('square = "', 'square = "Z9'), r"\[claims.feature_tracks_empty_square\]: unknown square"),
        (lambda t: t.replace('[data]\nsource = "othello-synthetic"', '[data]\nsource = "culture-dataset"'), r"\[data\] source: 'culture-dataset' is not a othello source"),
    ],
    ids=["unknown-key", "missing-hook", "width-mismatch", "missing-file", "unknown-param", "unknown-claim",
         "wrong-type", "undeclared-sae", "data-key", "bad-toml", "unknown-square", "wrong-data-source"],
)
def test_manifest_errors_name_file_and_field(tmp_path, edit, message):
    original = copy_manifest(tmp_path).read_text()
    path = copy_manifest(tmp_path, edit)
    assert path.read_text() != original, "the edit did not apply: the test would prove nothing"
    with pytest.raises(ManifestError, match=message) as err:
        read_manifest(path)
    assert str(path) in str(err.value)


def test_unknown_subject_is_named(tmp_path):
    reg = SubjectSet(manifest_paths(SUBJECTS_DIR), "cpu")
    with pytest.raises(ManifestError, match="unknown subject 'nope'"):
        reg.select(["nope"])


def test_duplicate_subject_names_are_refused(tmp_path):
    with pytest.raises(ManifestError, match="already used"):
        SubjectSet([TINY, copy_manifest(tmp_path)], "cpu")


def test_sae_folder_with_corrupt_config_is_named(tmp_path):
    folder = tmp_path / "sae"
    shutil.copytree(TINY.parent.parent / "othello-tiny" / "sae-resid", folder)
    (folder / "cfg.json").write_text("{not json")
    path = copy_manifest(tmp_path, lambda t: t.replace(f'{TINY.parent.parent / "othello-tiny"}/sae-resid', str(folder)))
    with pytest.raises(ManifestError, match="cfg.json: cannot read as JSON"):
        read_manifest(path)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace('tasks = ["contact"', 'tasks = ["contakt"'), r"\[claims.solved_rate\]: unknown task 'contakt'"),
        (lambda t: re.sub(r"min_rate_by_task = \{ ?contact", "min_rate_by_task = { contakt", t), r"\[claims.solved_rate\]: unknown task 'contakt'"),
        (lambda t: t.replace('tasks = ["contact", ', 'tasks = [1, '), r"\[claims.solved_rate\] tasks: expected str, got 1"),
        (lambda t: re.sub(r'(\[claims.ablation_breaks_one_task\][^[]*?\ntask = )"\w+"', r'\1"recolour"', t),
         r"\[claims.ablation_breaks_one_task\]: unknown task 'recolour'"),
        (lambda t: t.replace('tasks = ["contact", ', 'tasks = ['), r"bound to 'contact', which `tasks` leaves out"),
        (lambda t: t.replace("grid_height = 6", "grid_height = 6.5"), r"\[data\] grid_height: expected int"),
    ],
    ids=["unknown-task", "unknown-task-bound", "task-not-a-name", "unknown-ablation-task", "bound-for-unclaimed-task", "fractional-grid"],
)
def test_culture_manifest_errors_name_file_and_field(tmp_path, edit, message):
    original = copy_manifest(tmp_path, original=CULTURE_TINY).read_text()
    path = copy_manifest(tmp_path, edit, CULTURE_TINY)
    assert path.read_text() != original, "the edit did not apply: the test would prove nothing"
    with pytest.raises(ManifestError, match=message) as err:
        read_manifest(path)
    assert str(path) in str(err.value)
