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
    "size-1e20": (lambda t: t.replace("size = 1000", "size = 100000000000000000000"), r"\[data\] size: 100000000000000000000 .* must be > 0 and <= 1000000"),
    "negative-seed": (lambda t: t.replace("selection_seed = 100", "selection_seed = -1"), r"\[data\] selection_seed: -1 must be in \[0, 2\*\*32\)"),
    "seed-too-large": (lambda t: t.replace("confirmation_seed = 101", f"confirmation_seed = {2**32}"), r"\[data\] confirmation_seed: 4294967296 must be in"),
    "margin-minus-inf": (lambda t: re.sub(r"^min_margin_over_random = 0\.1$", "min_margin_over_random = -inf", t, count=1, flags=re.M),
                         r"\[claims.feature_tracks_empty_square\] min_margin_over_random: -inf bounds nothing \(a check against it cannot fail\)"),
    "sae-floor-minus-inf": (lambda t: t.replace("min_explained_variance = 0.48", "min_explained_variance = -inf"),
                            r"\[saes.resid\] min_explained_variance: -inf is not a floor"),
    "pin-parent-path": (lambda t: t.replace('"cfg.json" =', '"../sae-resid/cfg.json" ='), r"\[saes.resid\] sha256: unknown key '../sae-resid/cfg.json': a key is the bare name"),
    "pin-absolute-path": (lambda t: t.replace('"cfg.json" =', '"/etc/passwd" ='), r"\[saes.resid\] sha256: unknown key '/etc/passwd': a key is the bare name"),
    "deep-toml": (lambda t: t.replace("[training]", "[training]\ndeep = " + "[" * 5000 + "]" * 5000),
                  r"nested too deeply to read \(maximum recursion depth exceeded\)"),
    "nested-toml": (lambda t: t.replace("[training]", "[training]\ndeep = " + "[" * 40 + "]" * 40), r"nested more than 32 deep"),
    "too-many-claims": (lambda t: t + "".join(f"\n[claims.c{i}]\nx = 1\n" for i in range(100_000)), r"claims: 100004 \[claims.NAME\] tables; at most 1000"),
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


# --- configs are data: nothing in a manifest's folder runs, nothing is fetched -----------------------

PAYLOAD_CODE = """open({marker!r}, "w").write("ran")
from transformers import PretrainedConfig, PreTrainedTokenizer
class EvilConfig(PretrainedConfig):
    model_type = "evil"
class EvilTokenizer(PreTrainedTokenizer):
    pass
"""


def config_copy(tmp_path, **changes):
    """A copy of othello-tiny whose model config has these keys changed; returns (manifest, config)."""
    import json

    config = tmp_path / "model_config.json"
    config.write_text(json.dumps({**json.loads((ROOT / "fixtures" / "othello-tiny" / "model_config.json").read_text()), **changes}))
    path = copy_manifest(tmp_path, lambda t: re.sub(r'config = ".*"', f'config = "{config}"', t, count=1)
                         .replace(re.search(r', config = "[0-9a-f]{64}"', t).group(0), ""))
    return path, config


def planted_tokenizer(tmp_path):
    """A folder transformers would load a tokenizer from with trust_remote_code: importing it writes the marker."""
    folder, marker = tmp_path / "payload", tmp_path / "pwned"
    folder.mkdir()
    (folder / "evil.py").write_text(PAYLOAD_CODE.format(marker=str(marker)))
    (folder / "config.json").write_text('{"model_type": "evil", "auto_map": {"AutoConfig": "evil.EvilConfig", '
                                        '"AutoTokenizer": ["evil.EvilTokenizer", null]}}')
    (folder / "tokenizer_config.json").write_text('{"auto_map": {"AutoTokenizer": ["evil.EvilTokenizer", null]}}')
    return folder, marker


def test_a_planted_tokenizer_payload_never_runs(tmp_path):
    """Before configs were read as data, this config ran evil.py during the manifest check."""
    from verify import loaders

    folder, marker = planted_tokenizer(tmp_path)
    path, config = config_copy(tmp_path, tokenizer_name=str(folder), trust_remote_code=True)
    with pytest.raises(ManifestError, match=re.escape(f"{config}: key 'tokenizer_name' is refused")) as err:
        read_manifest(path)
    assert str(err.value).startswith(f"{path}: [model]: ") and "\n" not in str(err.value)
    with pytest.raises(loaders.CheckpointError, match="key 'tokenizer_name' is refused"):  # nor at load
        loaders.load_hooked_transformer(ROOT / "fixtures" / "othello-tiny" / "model.safetensors", config, "cpu")
    assert not marker.exists(), "the planted tokenizer's code ran"


def test_a_planted_tokenizer_payload_stops_a_run_as_a_usage_error(tmp_path, pytester):
    folder, marker = planted_tokenizer(tmp_path)
    path, _ = config_copy(tmp_path, tokenizer_name=str(folder), trust_remote_code=True)
    result = run(pytester, CLAIMS, "--subject-file", str(path))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.lines if line.startswith("ERROR:")]
    assert len(errors) == 1 and "key 'tokenizer_name' is refused" in errors[0], result.stderr.str()
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    assert not marker.exists(), "the planted tokenizer's code ran"


@pytest.mark.parametrize(("changes", "message"), [
    ({"tokenizer_name": "gpt2"}, r"key 'tokenizer_name' is refused: transformer_lens would load a tokenizer"),
    ({"trust_remote_code": True}, r"key 'trust_remote_code' is refused: it lets a tokenizer's or model's own Python code run"),
    ({"load_in_4bit": True}, r"key 'load_in_4bit' is refused: it makes transformer_lens import a quantization library"),
    ({"device": "cuda"}, r"key 'device' is refused: the verifier chooses the device"),
    ({"model_name": "../../elsewhere"}, r"model_name: '../../elsewhere' looks like a path or URL"),
    ({"act_fn": "https://example.com/act"}, r"act_fn: 'https://example.com/act' looks like a path or URL"),
    ({"hf_hub_repo": "owner/repo"}, r"key 'hf_hub_repo' is not an architecture field this loader accepts"),
    ({"n_layers": 10**6}, r"n_layers: 1000000 must be an integer in \[1, 256\]"),
    ({"n_ctx": 10**6}, r"n_ctx: 1000000 must be an integer in \[1, 8192\]"),
], ids=["tokenizer-gpt2", "trust-remote-code", "quantization", "device", "path-value", "url-value", "unknown-key", "layers", "context"])
def test_a_config_key_that_could_fetch_or_run_is_refused_in_one_line(tmp_path, monkeypatch, changes, message):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # offline, "gpt2" was a 120-line INTERNALERROR; online, a download
    path, config = config_copy(tmp_path, **changes)
    with pytest.raises(ManifestError, match=message) as err:
        read_manifest(path)
    assert str(err.value).startswith(f"{path}: [model]: {config}: ") and "\n" not in str(err.value)


def test_an_sae_cfg_json_naming_downloads_loads_without_fetching(tmp_path, monkeypatch):
    """sae_lens keeps the keys that name downloads (model_from_pretrained_kwargs, dataset_path, ...)
    as metadata: SAE.load_from_disk acts on none of them (only its training code does)."""
    import json

    from verify import loaders

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = tmp_path / "sae"
    shutil.copytree(ROOT / "fixtures" / "othello-tiny" / "sae-resid", folder)
    cfg = json.loads((folder / "cfg.json").read_text())
    cfg["metadata"] |= {"model_from_pretrained_kwargs": {"trust_remote_code": True}, "dataset_path": "owner/not-a-dataset",
                        "dataset_trust_remote_code": True, "model_name": "gpt2"}
    (folder / "cfg.json").write_text(json.dumps(cfg))
    sae = loaders.load_sae_lens(folder, "cpu")
    assert sae.cfg.d_sae == 512 and sae.cfg.metadata.dataset_path == "owner/not-a-dataset"  # kept as data, not fetched


# --- regular files only; sizes, counts and depth bounded -------------------------------------------

@pytest.fixture
def alarm():
    """A hang (a reader blocked on a FIFO) fails the test after 20 s instead of blocking the suite."""
    import signal

    def hung(*_):
        raise TimeoutError("blocked: the reader waited on a FIFO")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def sae_copy(tmp_path, change=None):
    """othello-tiny with its SAE folder copied (unpinned), `change(folder)` applied to the copy."""
    folder = tmp_path / "sae"
    shutil.copytree(ROOT / "fixtures" / "othello-tiny" / "sae-resid", folder)
    if change:
        change(folder)
    return copy_manifest(tmp_path, lambda t: re.sub(r'path = ".*sae-resid"', f'path = "{folder}"', t)
                         .replace(re.search(r'\nsha256 = \{ "cfg.json".*', t).group(0), "")), folder


def fifo_cfg(folder):
    import os

    (folder / "cfg.json").unlink()
    os.mkfifo(folder / "cfg.json")


def test_a_fifo_as_an_sae_config_is_refused_not_waited_on(tmp_path, alarm):
    path, folder = sae_copy(tmp_path, fifo_cfg)
    with pytest.raises(ManifestError, match=re.escape(f"{folder}/cfg.json: a regular file is expected here, and this is a FIFO")) as err:
        read_manifest(path)
    assert "\n" not in str(err.value)


def test_a_fifo_as_model_weights_is_named_as_one(tmp_path, alarm):
    import os

    fifo = tmp_path / "model.safetensors"
    os.mkfifo(fifo)
    path = copy_manifest(tmp_path, lambda t: re.sub(r'weights = ".*"', f'weights = "{fifo}"', t, count=1)
                         .replace(re.search(r'weights = "[0-9a-f]{64}", ', t).group(0), ""))
    with pytest.raises(ManifestError, match=re.escape(f"{path}: [model] weights: {fifo}: a regular file is expected here, and this is a FIFO")):
        read_manifest(path)

def test_a_fifo_in_a_dataset_folder_is_refused_not_waited_on(tmp_path, alarm):
    import os

    build_dataset(2, 7, PuzzleLayout(6, 6)).save_to_disk(str(tmp_path / "data"))
    arrow = tmp_path / "data" / "contact" / "data-00000-of-00001.arrow"
    arrow.unlink()
    os.mkfifo(arrow)
    with pytest.raises(ValueError, match=re.escape(f"{arrow}: a regular file is expected here, and this is a FIFO")):
        culture_data.open_dataset(str(tmp_path / "data"), tmp_path)

def test_a_fifo_or_a_forged_header_in_the_disk_cache_is_remade(tmp_path, monkeypatch, alarm):
    """A FIFO blocked np.load forever; a header declaring 8 TiB had numpy allocate it (MemoryError)."""
    import io
    import os
    import zipfile

    import numpy as np

    from verify import diskcache

    monkeypatch.setenv(diskcache.ENV, str(tmp_path))
    key, text = {"case": 1}, '{"case": 1}'
    path = diskcache.entry_path("t", key)
    assert (diskcache.cached_array("t", key, lambda: np.arange(4.0)) == np.arange(4.0)).all()
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    forged = io.BytesIO()
    np.lib.format.write_array(forged, np.arange(4.0))
    members["array.npy"] = forged.getvalue().replace(b"(4,)", b"(%d,)" % 2**40)  # 8 TiB of float64
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    assert diskcache.read_entry(path, text) is None
    assert (diskcache.cached_array("t", key, lambda: np.arange(3.0)) == np.arange(3.0)).all()  # remade and rewritten
    path.unlink()
    os.mkfifo(path)
    assert diskcache.read_entry(path, text) is None
    assert (diskcache.cached_array("t", key, lambda: np.arange(2.0)) == np.arange(2.0)).all() and path.is_file()


def test_a_deeply_nested_json_config_names_its_file(tmp_path):
    path, folder = sae_copy(tmp_path, lambda f: (f / "cfg.json").write_text("[" * 100_000 + "]" * 100_000))
    with pytest.raises(ManifestError, match=re.escape(f"{folder}/cfg.json: nested too deeply to read as JSON")) as err:
        read_manifest(path)
    assert "\n" not in str(err.value)


def test_an_sae_shape_mismatch_is_one_whole_line(tmp_path):
    """cfg.json's d_sae against the tensors: was torch's two-line message (the ledger kept the first)."""
    from verify import loaders

    path, folder = sae_copy(tmp_path, lambda f: (f / "cfg.json").write_text((f / "cfg.json").read_text().replace('"d_sae": 512', '"d_sae": 1024')))
    message = re.escape(f"{folder}/sae_weights.safetensors: tensor shapes do not fit cfg.json's d_in 128, d_sae 1024: W_enc (128, 512) "
                        "(needs (128, 1024)), W_dec (512, 128) (needs (1024, 128)), b_enc (512,) (needs (1024,))")
    with pytest.raises(ManifestError, match=message) as err:
        read_manifest(path)  # at collection
    assert "\n" not in str(err.value)
    with pytest.raises(loaders.CheckpointError, match=message):
        loaders.load_sae_lens(folder, "cpu")  # and at load


def test_a_hundred_thousand_claim_tables_are_refused_at_once(tmp_path):
    import time

    path = copy_manifest(tmp_path, lambda t: t + "".join(f"\n[claims.c{i}]\nx = 1\n" for i in range(100_000)))
    start = time.perf_counter()
    with pytest.raises(ManifestError, match="at most 1000 are read"):
        read_manifest(path)
    assert time.perf_counter() - start < 20  # took minutes: a list membership test per table


def test_unresolved_claim_tables_are_looked_up_in_constant_time():
    """resolve_claims (run for every claim a session collects) with 100k tables no claim matches,
    past the manifest's bound: with a list of unknown names this took minutes (quadratic)."""
    import dataclasses
    import time

    from verify.subjects import check_files, resolve_claims

    m = read_manifest(OTHELLO_TINY)
    many = dataclasses.replace(m, claims={}, claim_tables={**m.claim_tables, **{f"c{i}": {"x": 1} for i in range(100_000)}})
    start = time.perf_counter()
    resolved = resolve_claims(many, check_files(m), strict=False)
    assert time.perf_counter() - start < 10 and resolved.claims == m.claims


# --- loader inputs ----------------------------------------------------------------------------------

def legacy_file(tmp_path, cfg, state):
    path = tmp_path / "sae.pt"
    torch.save({"cfg": cfg, "state_dict": state}, path)
    return path


def legacy_config_with_arguments():
    """A class pickled under the legacy config's name whose reduction calls it with arguments."""
    cls = type("LanguageModelSAERunnerConfig", (), {"__module__": "sae_training.config",
                                                   "__init__": lambda self, *args: None,
                                                   "__reduce__": lambda self: (type(self), (1, 2))})
    sys.modules["sae_training"], sys.modules["sae_training.config"] = types.ModuleType("sae_training"), types.ModuleType("sae_training.config")
    sys.modules["sae_training.config"].LanguageModelSAERunnerConfig = cls
    return cls()


LEGACY_WEIGHTS = {"W_enc": torch.zeros(16, 32), "b_enc": torch.zeros(32), "W_dec": torch.zeros(32, 16), "b_dec": torch.zeros(16)}


@pytest.mark.parametrize(("cfg", "state", "message"), [
    ("args", LEGACY_WEIGHTS, "the pickled sae_training.config.LanguageModelSAERunnerConfig is not plain data"),
    ({"hook_point": "blocks.3.hook_resid_pre"}, {**LEGACY_WEIGHTS, "W_enc": 5}, r"state_dict\['W_enc'\] is a int, not a float tensor"),
    ({"hook_point": "blocks.3.hook_resid_pre"}, 7, "'state_dict' is a int, not a dict of tensors"),
    ({"hook_point": "blocks.3.hook_resid_pre"}, {**LEGACY_WEIGHTS, "W_enc": torch.zeros(16)}, r"W_enc has shape \(16,\), expected \(d_in, d_sae\)"),
    ({"hook_point": 3}, LEGACY_WEIGHTS, "cfg hook_point is a int, not a hook name"),
], ids=["config-called-with-arguments", "int-for-tensor", "int-for-state-dict", "wrong-rank", "hook-not-a-string"])
def test_a_malformed_legacy_sae_is_one_checkpoint_error(tmp_path, cfg, state, message):
    """Each was an INTERNALERROR (TypeError, AttributeError, ValueError) at collection."""
    from verify import loaders
    from verify.loaders import legacy_sae

    try:
        path = legacy_file(tmp_path, legacy_config_with_arguments() if cfg == "args" else cfg, state)
    finally:
        sys.modules.pop("sae_training", None), sys.modules.pop("sae_training.config", None)
    for read in (legacy_sae.shape, lambda p: loaders.load_legacy_sae(p, "cpu")):
        with pytest.raises(loaders.CheckpointError, match=message) as err:
            read(path)
        assert str(err.value).startswith(f"{path}: ") and "\n" not in str(err.value)


def test_a_number_where_a_model_weight_belongs_is_named_before_the_model_is_allocated():
    import json

    from verify import loaders
    from verify.loaders.common import check_fits, meta_model

    folder = ROOT / "fixtures" / "othello-tiny"
    state = {**load_file(str(folder / "model.safetensors")), "blocks.1.mlp.W_in": 5}
    with pytest.raises(loaders.CheckpointError, match=r"^w.pth: blocks.1.mlp.W_in is a int, not a tensor$"):
        check_fits(meta_model(json.loads((folder / "model_config.json").read_text())), state, "w.pth")

def test_a_dataset_row_of_the_wrong_length_names_file_row_and_length(tmp_path):
    """A 100-token row among 149-token puzzles was a 116-line TypeError."""
    import datasets

    layout = PuzzleLayout(6, 6)
    dataset = build_dataset(3, 7, layout)
    rows = [list(row) for row in dataset["contact"]["input_ids"]]
    rows[1] = rows[1][:100]
    datasets.DatasetDict({"contact": datasets.Dataset.from_dict({"input_ids": rows, "label": list(dataset["contact"]["label"])})}
                         ).save_to_disk(str(tmp_path / "data"))
    opened = culture_data.open_dataset(str(tmp_path / "data"), tmp_path)
    file = tmp_path / "data" / "contact" / "data-00000-of-00001.arrow"
    with pytest.raises(ValueError, match=re.escape(f"{file}: task contact row 1 has 100 tokens; every puzzle of this layout has {layout.length}")) as err:
        culture_data.task_rows(opened, "contact", 0, 3, layout.length)
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="row 0 has 149 tokens; every puzzle of this layout has 405"):
        culture_data.task_rows(opened, "contact", 0, 1, 405)  # rows of another layout's length
    assert culture_data.task_rows(opened, "contact", 2, 3, layout.length).shape == (1, layout.length)


def test_an_empty_subject_shard_is_a_usage_error(pytester):
    result = run(pytester, CLAIMS, "--subject-shard", "", "--subjects-dir", str(pytester.path))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--subject-shard '': expected K/N with 1 <= K <= N*"])


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
