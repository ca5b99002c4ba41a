"""Manifest errors name the file and the field; the shipped manifests are valid and hash-true."""

import dataclasses
import os
import re
import shutil
import tomllib
from pathlib import Path

import pytest
import tomlkit
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from verify import sources
from verify.cli.manifest_tables import update_manifest
from verify.manifest import MAX_CHAIN, ManifestError
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
    if m.model.weights and not sources.is_hub(m.model.weights):  # a pretrained name's files are the hub's
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


# --- extends: a manifest that starts from another's tables --------------------------------------------

STAGE1 = CULTURE_TINY.parents[1] / "culture-tiny-series" / "stage1" / "model.safetensors"


def extending(folder: Path, body: str, parent: Path = CULTURE_TINY, name: str = "child") -> Path:
    """A manifest in `folder` that extends `parent` by a path relative to `folder`, then says `body`."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.toml"
    path.write_text(f'extends = "{os.path.relpath(parent, folder)}"\nname = "{name}"\n{body}')
    return path


def test_a_child_in_another_folder_keeps_the_parents_files_and_pins(tmp_path):
    parent = read_manifest(CULTURE_TINY)
    path = extending(tmp_path / "deeper" / "series", f'[model]\nweights = "{STAGE1}"\nsha256 = {{ weights = "{sources.sha256_of(STAGE1)}" }}\n')
    m = read_manifest(path)
    assert m.name == "child" and m.path == path and m.domain == parent.domain and m.data == parent.data
    assert m.model.weights == str(STAGE1) and m.model.loader == parent.model.loader
    assert m.model.sha256 == {"weights": sources.sha256_of(STAGE1), "config": parent.model.sha256["config"]}
    # the parent's relative paths name the parent's files, not files beside the child
    assert sources.local_path(m.model.config, m.dir).resolve() == sources.local_path(parent.model.config, parent.dir).resolve()
    assert sources.local_path(m.saes["mlp3"].path, m.dir).resolve() == sources.local_path(parent.saes["mlp3"].path, parent.dir).resolve()
    assert m.saes["mlp3"].sha256 == parent.saes["mlp3"].sha256 and m.claims == parent.claims


def test_a_child_in_another_folder_keeps_the_parents_dataset_and_tokenizer(tmp_path):
    model = SUBJECTS_DIR.parent / "induction-tiny"
    parent = written(tmp_path / "parent.toml", f'name = "text"\ndomain = "tokens"\n[model]\nloader = "hooked_transformer"\n'
                     f'weights = "{model}/model.safetensors"\nconfig = "{model}/model_config.json"\n'
                     '[data]\nsource = "tokens-dataset"\npath = "text/rows.jsonl"\nsize = 4\nselection_seed = 0\n'
                     'confirmation_seed = 1\nlength = 8\ntokenizer = "text/tokenizer.json"\n')
    m = read_manifest(extending(tmp_path / "deeper" / "child", "", parent=parent))
    assert sources.local_path(m.data.path, m.dir).resolve() == (tmp_path / "text" / "rows.jsonl").resolve()
    assert sources.local_path(m.data.options.tokenizer, m.dir).resolve() == (tmp_path / "text" / "tokenizer.json").resolve()


def test_a_child_overrides_one_key_of_a_claim_and_inherits_the_rest(tmp_path):
    parent = read_manifest(CULTURE_TINY).claims["ablation_breaks_one_task"]
    m = read_manifest(extending(tmp_path, "[claims.ablation_breaks_one_task]\nmin_broken = 0.5\n"))
    assert m.claims["ablation_breaks_one_task"] == dataclasses.replace(parent, min_broken=0.5) != parent


def test_a_chain_of_the_longest_length_resolves(tmp_path):
    path = CULTURE_TINY
    for depth in range(1, MAX_CHAIN):  # each in its own folder, so every level's paths are rebased
        path = extending(tmp_path / f"level{depth}", f'description = "level {depth}"\n', parent=path, name=f"level{depth}")
    m = read_manifest(path)
    assert m.name == f"level{MAX_CHAIN - 1}" and m.description == f"level {MAX_CHAIN - 1}"
    assert sources.local_path(m.model.weights, m.dir).is_file()


def written(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def cycle(tmp_path: Path) -> Path:
    a = extending(tmp_path / "a", "", parent=tmp_path / "b" / "b.toml", name="a")
    extending(tmp_path / "b", "", parent=a, name="b")
    return a


def too_deep(tmp_path: Path) -> Path:
    path = CULTURE_TINY
    for depth in range(MAX_CHAIN):
        path = extending(tmp_path, "", parent=path, name=f"level{depth}")
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: extending(d, "", parent=d / "nope.toml"), r"extends: no such manifest file .*nope.toml"),
        (lambda d: extending(d, "", parent=d / ("a" * 5000)), r"extends: no such manifest file .*aaaa"),
        (cycle, r"extends: .*a\.toml is already in the chain .*: a cycle"),
        (too_deep, rf"extends: .* would make a chain of more than {MAX_CHAIN} manifests"),
        (lambda d: written(d / "child.toml", 'extends = 3\nname = "child"\n'), r"extends: expected the path of a manifest \(a string\), got 3"),
        (lambda d: written(d / "child.toml", f'extends = "{CULTURE_TINY}"\n'), r"name: a manifest that extends another must give its own name"),
        (lambda d: extending(d, "", parent=extending(d, "colour = 1\n", name="parent")), r"parent.toml: unknown key 'colour'"),
        (lambda d: extending(d, f'[model]\nweights = "{STAGE1}"\n'),
         r"\[model\] sha256\['weights'\]: the pin inherited from .*culture-tiny.toml is the hash of its file"),
        (lambda d: extending(d, f'[saes.mlp3]\npath = "{d}"\nsha256 = {{ "cfg.json" = "{"0" * 64}" }}\n'),
         r"\[saes.mlp3\] sha256\['sae_weights.safetensors'\]: the pin inherited from"),
    ],
    ids=["missing-parent", "name-too-long", "cycle", "too-deep", "not-a-string", "no-name", "parent-unknown-key", "moved-weights-unpinned", "moved-sae-unpinned"],
)
def test_extends_errors_are_one_line_naming_the_file(tmp_path, make, message):
    path = make(tmp_path)
    with pytest.raises(ManifestError, match=message) as err:
        read_manifest(path)
    assert re.match(rf"{re.escape(str(tmp_path))}/[\w/.-]+\.toml: ", str(err.value)) and "\n" not in str(err.value), str(err.value)


def test_a_rebuild_tool_writes_an_extending_manifests_own_tables_only(tmp_path):
    """update_manifest (every rebuild and discovery tool writes through it) edits the file as
    written: the parent's tables are not copied in, and the child still extends its parent."""
    path = extending(tmp_path, "[claims.ablation_breaks_one_task]\nmin_broken = 0.5\n")
    update_manifest(path, {"claims.sae_splice_restores": {"min_restored": 0.3}})
    raw = tomllib.loads(path.read_text())
    assert raw == {"extends": os.path.relpath(CULTURE_TINY, tmp_path), "name": "child",
                   "claims": {"ablation_breaks_one_task": {"min_broken": 0.5}, "sae_splice_restores": {"min_restored": 0.3}}}
    m = read_manifest(path)
    assert m.claims["sae_splice_restores"].min_restored == 0.3 and m.claims["sae_splice_restores"].sae == "mlp3"


# --- max_drift: the drift a gate accepts between two runs of a claim ------------------------------------

def test_max_drift_is_read_apart_from_the_claims_parameters(tmp_path):
    path = copy_manifest(tmp_path, lambda t: t.replace("[claims.solved_rate]\n", "[claims.solved_rate]\nmax_drift = 0.05\n")
                         .replace("[claims.sae_splice_restores]\n", "[claims.sae_splice_restores]\nmax_drift = 0\n"), CULTURE_TINY)
    m = read_manifest(path)
    assert m.max_drift == {"solved_rate": 0.05, "sae_splice_restores": 0.0} and isinstance(m.max_drift["sae_splice_restores"], float)
    assert m.claims == read_manifest(CULTURE_TINY).claims
    assert read_manifest(CULTURE_TINY).max_drift == {}


def test_max_drift_is_inherited_and_overridden(tmp_path):
    parent = copy_manifest(tmp_path, lambda t: t.replace("[claims.solved_rate]\n", "[claims.solved_rate]\nmax_drift = 0.05\n")
                           .replace("[claims.sae_splice_restores]\n", "[claims.sae_splice_restores]\nmax_drift = 0.1\n"), CULTURE_TINY)
    m = read_manifest(extending(tmp_path / "child", "[claims.solved_rate]\nmax_drift = 0.02\n", parent=parent))
    assert m.max_drift == {"solved_rate": 0.02, "sae_splice_restores": 0.1}


@pytest.mark.parametrize("value", ["-0.01", '"0.05"', "inf", "nan", "true", "[0.1]"])
def test_a_bad_max_drift_is_one_line_naming_the_claim(tmp_path, value):
    path = copy_manifest(tmp_path, lambda t: t.replace("[claims.solved_rate]\n", f"[claims.solved_rate]\nmax_drift = {value}\n"), CULTURE_TINY)
    with pytest.raises(ManifestError, match=r"\[claims.solved_rate\] max_drift: .* must be a finite number >= 0") as err:
        read_manifest(path)
    assert str(err.value).startswith(f"{path}: ") and "\n" not in str(err.value)


# values a careless user writes, and the paths and names that reach the file system
VALUES = st.one_of(st.integers(-(2**63), 2**63 - 1), st.floats(), st.text(max_size=30), st.booleans(),
                   st.lists(st.floats(), max_size=2), st.dictionaries(st.text(min_size=1, max_size=5), st.integers(), max_size=2),
                   st.sampled_from(["culture-tiny.toml", ".", "/", "a" * 5000, "../culture-tiny/model.safetensors", "hf://a/b/c"]))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.sampled_from([("extends",), ("claims", "solved_rate", "max_drift"), ("model", "weights"), ("saes", "mlp3", "path")]),
       VALUES)
def test_any_value_in_a_new_key_is_a_manifest_error_or_a_manifest(tmp_path, where, value):
    """`extends`, `max_drift`, and the paths an extending manifest rebases, given any TOML value."""
    doc = {"extends": os.path.relpath(CULTURE_TINY, tmp_path), "name": "child"}
    table = doc
    for key in where[:-1]:
        table = table.setdefault(key, {})
    table[where[-1]] = value
    path = tmp_path / "child.toml"
    try:
        path.write_text(tomlkit.dumps(doc))
    except (ValueError, TypeError):  # a value TOML cannot hold (tomlkit refuses to write it)
        return
    try:
        read_manifest(path)
    except ManifestError as err:
        assert str(err).startswith(f"{path}: ") and "\n" not in str(err), str(err)
