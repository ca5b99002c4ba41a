"""Inputs a careless or hostile user gives: each is refused in one line that names the file and
the field (at collection where the manifest alone shows the problem), nothing in them runs, and a
gate can tell a claim that could not be measured from one that does not hold."""

import re
import shutil
import sys
import types

import pytest
import torch
from safetensors.torch import load_file, save_file

from tests.conftest import OTHELLO_TINY, ROOT
from tests.test_loaders_replica import Payload
from tests.test_manifest import copy_manifest
from tests.test_plugin import run
from verify import sources
from verify.culture import data as culture_data
from verify.culture.layout import PuzzleLayout
from verify.culture.tasks import build_dataset
from verify.manifest import ManifestError
from verify.subjects import read_manifest

CULTURE_TINY = OTHELLO_TINY.parent / "culture-tiny.toml"
CLAIMS = str(ROOT / "claims" / "test_othello.py")

MANIFEST_CASES = {
    "malformed-hf": (lambda t: t.replace('weights = "', 'weights = "hf://owner-only/', 1), r"\[model\] weights: hub source 'hf://owner-only/.*' must look like"),
    "malformed-wandb": (lambda t: re.sub(r'path = ".*sae-resid"', 'path = "wandb://"', t), r"\[saes.resid\] path: wandb source 'wandb://' must look like"),
    "min-above-max": (lambda t: t.replace("min_rate = 0.95", "min_rate = 0.99\nmax_rate = 0.9").replace("max_rate = 1.0\n", "", 1),
                      r"\[claims.legal_move_rate\] min_rate: 0.99 is above max_rate = 0.9"),
    "nan-bound": (lambda t: t.replace("min_correlation = 0.3942", "min_correlation = nan"), r"\[claims.feature_tracks_empty_square\] min_correlation: NaN is not a bound"),
    "rate-above-one": (lambda t: t.replace("min_rate = 0.95", "min_rate = 95"), r"\[claims.legal_move_rate\] min_rate: 95.0 is outside \[0.0, 1.0\]"),
    "size-zero": (lambda t: t.replace("size = 1000", "size = 0"), r"\[data\] size: 0 .* must be > 0"),
    "same-seeds": (lambda t: t.replace("confirmation_seed = 101", "confirmation_seed = 100"), r"\[data\] confirmation_seed: equals selection_seed"),
    "saes-not-tables": (lambda t: t.replace('domain = "othello"', 'domain = "othello"\nsaes = "x"').replace("[saes.resid]", "[unused_sae]"),
                        r"(saes: expected \[saes.NAME\] tables|unknown key)"),
    "claims-not-tables": (lambda t: t.split("[claims.")[0].replace('domain = "othello"', 'domain = "othello"\nclaims = 5'),
                          r"claims: expected \[claims.NAME\] tables"),
    "sha256-typo": (lambda t: t.replace("sha256 = { weights =", "sha256 = { weight ="), r"\[model\] sha256: unknown key 'weight'"),
    "sha256-not-hex": (lambda t: t.replace('sha256 = { weights = "e0139b', 'sha256 = { weights = "zz139b'), r"\[model\] sha256\[.weights.\]: .* is not a sha256 digest"),
    "sae-pin-missing-file": (lambda t: t.replace('"cfg.json" =', '"config.json" ='), r"\[saes.resid\] sha256: unknown key 'config.json': no file 'config.json' in folder"),
    "string-for-number": (lambda t: t.replace("neuron = 171", 'neuron = "171"'), r"\[claims.neuron_fires_on_one_move\] neuron: expected int"),
}


@pytest.mark.parametrize("case", MANIFEST_CASES, ids=list(MANIFEST_CASES))
def test_manifest_errors_are_one_line_naming_file_and_field(tmp_path, case):
    edit, message = MANIFEST_CASES[case]
    unedited = copy_manifest(tmp_path).read_text()
    path = copy_manifest(tmp_path, edit)
    assert path.read_text() != unedited, "the edit did not apply: the test would prove nothing"
    with pytest.raises(ManifestError, match=message) as err:
        read_manifest(path)
    assert str(err.value).startswith(f"{path}: ") and "\n" not in str(err.value)


def test_a_manifest_that_is_not_utf8(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes(OTHELLO_TINY.read_bytes().replace(b"Othello-GPT on", b"Othello-GPT \xe9 on"))
    with pytest.raises(ManifestError, match="not UTF-8 text"):
        read_manifest(path)


@pytest.mark.parametrize("case", ["nan-bound", "claims-not-tables", "sha256-typo"])
def test_a_bad_manifest_stops_the_run_as_a_usage_error(pytester, tmp_path, case):
    edit, message = MANIFEST_CASES[case]
    path = copy_manifest(tmp_path, lambda t: edit(t).replace('name = "othello-tiny"', 'name = "bad"'))
    result = run(pytester, CLAIMS, "--subject-file", str(path))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.lines if line.startswith("ERROR:")]
    assert len(errors) == 1 and str(path) in errors[0], result.stderr.str()
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()


def test_cuda_asked_for_without_cuda_is_a_usage_error(pytester):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    result = run(pytester, CLAIMS, "--device", "cuda")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--device cuda was asked for, but torch sees no CUDA device*"])


def test_a_single_file_sae_can_be_pinned(tmp_path):
    """A legacy SAE given as one .pt file is pinned by its file name; a wrong digest is caught."""
    from verify.subjects import pinned_file

    sae = tmp_path / "sae.pt"
    sae.write_bytes(b"weights")
    assert pinned_file(sae, "sae.pt") == sae and pinned_file(sae, "other.pt") is None
    assert pinned_file(tmp_path, "sae.pt") == sae and pinned_file(tmp_path, "missing.pt") is None
    sources.check_sha256(pinned_file(sae, "sae.pt"), sources.sha256_of(sae))
    with pytest.raises(ValueError, match="sha256 is"):
        sources.check_sha256(pinned_file(sae, "sae.pt"), "0" * 64)


# --- load errors: one line, once per subject ---------------------------------------------------------

def corrupt_copy(tmp_path, corrupt) -> str:
    weights = tmp_path / "weights"
    shutil.copytree(ROOT / "fixtures" / "othello-tiny", weights)
    corrupt(weights / "model.safetensors")
    text = OTHELLO_TINY.read_text().replace('name = "othello-tiny"', 'name = "corrupt"').replace('"../othello-tiny/', f'"{weights}/')
    text = "\n".join(line for line in text.splitlines() if not line.startswith("sha256 = { weights"))  # unpinned: the loader must catch it
    path = tmp_path / "corrupt.toml"
    path.write_text(text + "\n")
    return str(path)


def truncate(path):
    path.write_bytes(path.read_bytes()[:1000])


def huge_header(path):
    path.write_bytes((2**62).to_bytes(8, "little") + b"{}")


def passwd(path):
    path.write_bytes(open("/etc/passwd", "rb").read())


def nan_weights(path):
    state = load_file(str(path))
    state["blocks.1.mlp.W_in"][0, 0] = float("inf")
    save_file(state, str(path))


@pytest.mark.parametrize(("corrupt", "message"), [(truncate, "not a readable safetensors file"), (huge_header, "not a readable safetensors file"),
                                                  (passwd, "not a readable safetensors file"),
                                                  (nan_weights, "'blocks.1.mlp.W_in' contains NaN or infinite values")],
                         ids=["truncated", "huge-header", "etc-passwd", "inf-weights"])
def test_a_subject_that_cannot_be_loaded_is_one_error_line_per_claim(pytester, tmp_path, corrupt, message):
    result = run(pytester, CLAIMS, "--subject-file", corrupt_copy(tmp_path, corrupt), "--subject", "corrupt")
    result.assert_outcomes(errors=4)
    assert result.ret == 6, "only errors, no claim measured false: the not-measured exit status"
    out = result.stdout.str()
    reports = [line for line in result.stdout.lines if not line.startswith("ERROR ")]  # not the short summary (full-width under CI)
    assert sum("subject cannot be loaded: corrupt: " in line for line in reports) == 1 and message in out
    assert sum("subject cannot be loaded: corrupt (see " in line for line in reports) == 3
    assert "Traceback" not in out
    result.stdout.fnmatch_lines(["*claims executed: 0 (0 held, 0 failed); not measurable (errors): 4;*"])


class EvalPayload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (eval, (f"open({str(self.marker)!r}, 'w')",))


class PopenPayload(EvalPayload):
    def __reduce__(self):
        import subprocess

        return (subprocess.Popen, (["touch", str(self.marker)],))


@pytest.mark.parametrize(("payload", "name"), [(Payload, r"(posix|os)\.system"), (EvalPayload, r"(builtins\.)?eval"),
                                               (PopenPayload, r"[\w.]*Popen")], ids=["os.system", "eval", "Popen"])
def test_a_refused_pickle_names_the_global_and_never_runs(tmp_path, payload, name):
    from verify import loaders

    marker = tmp_path / "pwned"
    path = tmp_path / "model.pth"
    torch.save({"blocks.0.ln1.w": payload(marker)}, path)
    for load in (loaders.load_othello_gpt, loaders.load_culture_pth, loaders.load_legacy_sae):
        with pytest.raises(loaders.CheckpointError, match=f"needs the pickle global {name}") as err:
            load(path, "cpu")
        assert "\x1b[" not in str(err.value) and "\n" not in str(err.value)
    assert not marker.exists(), "the payload ran"


def test_no_subject_declaring_a_claim_is_said_so(pytester):
    result = run(pytester, CLAIMS, "--subjects-dir", str(pytester.path), "-rs")  # an empty subjects folder
    result.assert_outcomes(skipped=4)
    result.stdout.fnmatch_lines(["*no subject declares the claim: 4*", "*no subject declares this claim: legal_move_rate*"])


# --- split integrity --------------------------------------------------------------------------------

def parquet_folder(folder, layout, n):
    dataset = build_dataset(n, 7, layout)
    for task in dataset:
        (folder / "data").mkdir(parents=True, exist_ok=True)
        dataset[task].to_parquet(str(folder / "data" / f"{task}-00000-of-00001.parquet"))
    return dataset


def test_a_stray_backup_file_is_not_read(tmp_path):
    layout = PuzzleLayout(6, 6)
    parquet_folder(tmp_path, layout, 4)
    (tmp_path / "backup").mkdir()
    shutil.copy(tmp_path / "data" / "contact-00000-of-00001.parquet", tmp_path / "backup" / "contact.parquet")
    assert culture_data.task_files(tmp_path, "contact") == [tmp_path / "data" / "contact-00000-of-00001.parquet"]
    assert len(culture_data.open_dataset(str(tmp_path), tmp_path)["contact"]) == 4


def test_overlapping_splits_are_refused():
    rows = torch.arange(40).reshape(4, 10)
    culture_data.check_disjoint(rows[:2], rows[2:], "contact")  # disjoint: fine
    with pytest.raises(ValueError, match="1 of 2 confirmation puzzles also appear in the selection split"):
        culture_data.check_disjoint(rows[:2], torch.stack([rows[1], rows[3]]), "contact")
    with pytest.warns(UserWarning, match="1 of 2 confirmation puzzles are duplicates"):
        culture_data.check_disjoint(rows[:2], torch.stack([rows[3], rows[3]]), "contact")


def test_a_dataset_whose_splits_overlap_is_an_error_not_a_verdict(pytester, tmp_path):
    """Held-out rows equal to selection rows (a dataset duplicated into itself): every culture claim
    on it is refused as not measurable."""
    layout = PuzzleLayout(6, 6)
    dataset = build_dataset(3, 7, layout)
    import datasets

    doubled = datasets.DatasetDict({t: datasets.concatenate_datasets([dataset[t], dataset[t]]) for t in dataset})
    doubled.save_to_disk(str(tmp_path / "data"))
    text = CULTURE_TINY.read_text().replace('name = "culture-tiny"', 'name = "overlap"').replace('"../culture-tiny/', f'"{ROOT}/fixtures/culture-tiny/')
    text = text.replace('source = "culture-synthetic"', f'source = "culture-dataset"\npath = "{tmp_path / "data"}"').replace("size = 400", "size = 3")
    path = tmp_path / "overlap.toml"
    path.write_text(text)
    result = run(pytester, str(ROOT / "claims" / "test_culture.py"), "--subject-file", str(path), "--subject", "overlap")
    result.assert_outcomes(errors=3)
    assert result.ret == 6
    result.stdout.fnmatch_lines(["*claim cannot be measured: * on overlap: task contact: 3 of 3 confirmation puzzles also appear in the selection split*"])


# --- sources ------------------------------------------------------------------------------------------

def test_an_offline_hub_dataset_is_unavailable_without_asking_the_network(tmp_path, monkeypatch):
    import datasets

    monkeypatch.setattr(sources, "hub_reachable", lambda: False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: pytest.fail("datasets was asked to go online"))
    with pytest.raises(sources.SourceUnavailable, match="not available offline: dataset owner/name"):
        culture_data.open_dataset("hf://datasets/owner/name", tmp_path)


def test_an_interrupted_wandb_download_is_never_taken_as_complete(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "WANDB_CACHE", tmp_path)
    monkeypatch.setattr(sources.socket, "create_connection", lambda *a, **k: types.SimpleNamespace(close=lambda: None))
    calls = []

    class Artifact:
        def download(self, root):
            calls.append(root)
            (tmp_path / "x").mkdir(exist_ok=True)
            from pathlib import Path

            Path(root).mkdir(parents=True, exist_ok=True)
            (Path(root) / "part.pt").write_bytes(b"half")
            if len(calls) == 1:
                raise ConnectionError("connection reset")

    monkeypatch.setitem(sys.modules, "wandb", types.SimpleNamespace(Api=lambda: types.SimpleNamespace(artifact=lambda name: Artifact())))
    source = "wandb://entity/project/artifact:v0"
    with pytest.raises(ConnectionError):
        sources.fetch(source, tmp_path)
    final = sources.wandb_folder(sources.parse_wandb(source))
    assert not final.exists(), "a partial download sits where a complete one is expected"
    assert sources.fetch(source, tmp_path) == final and (final / "part.pt").exists() and len(calls) == 2


# --- property: any TOML value in any field is a ManifestError or a valid manifest ---------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

TOML_SCALARS = st.one_of(st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=30),
                         st.booleans(), st.sampled_from(["blocks.0.hook_resid_post", "../othello-tiny/model.safetensors", "hf://a/b/c",
                                                         "wandb://e/p/a:v0", "othello", "culture", "D2", "sae_lens", "resid"]))
TOML_VALUES = st.recursive(TOML_SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                                 st.dictionaries(st.text(min_size=1, max_size=8), inner, max_size=3)),
                           max_leaves=6)


def field_paths(table: dict, prefix=()) -> list[tuple]:
    paths = []
    for key, value in table.items():
        paths.append((*prefix, key))
        if isinstance(value, dict):
            paths += field_paths(value, (*prefix, key))
    return paths


BASES = [__import__("tomllib").loads(m.read_text().replace('"../', f'"{m.parent.parent}/')) for m in (OTHELLO_TINY, CULTURE_TINY)]
PATHS = [(i, path) for i, base in enumerate(BASES) for path in field_paths(base) + [("extra",), ("data", "extra")]]


@settings(max_examples=int(__import__("os").environ.get("VERIFY_FUZZ_EXAMPLES", 60)), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(PATHS), TOML_VALUES)
def test_any_value_in_any_field_is_a_manifest_error_or_a_manifest(where, value):
    """Every field of both embedded manifests (VERIFY_FUZZ_EXAMPLES sets how many cases; 8500 ran clean here)."""
    import copy
    import tempfile
    from pathlib import Path

    import tomlkit

    base, path = where
    doc = copy.deepcopy(BASES[base])
    table = doc
    for key in path[:-1]:
        table = table[key]
    table[path[-1]] = value
    with tempfile.TemporaryDirectory() as folder:
        manifest = Path(folder) / "m.toml"
        try:
            manifest.write_text(tomlkit.dumps(doc))
        except (ValueError, TypeError):  # a value TOML cannot hold (tomlkit refuses to write it)
            return
        try:
            read_manifest(manifest)
        except ManifestError as err:
            assert str(err).startswith(f"{manifest}: ") and "\n" not in str(err), str(err)
