"""TransformerLens pretrained names (`[model] name = "gpt2"`) on a Hugging Face cache replica: the
exact layout huggingface_hub writes (hub/models--gpt2/blobs/<sha256>, snapshots/<commit>/<file> ->
../../blobs/<sha256>, refs/main), a gpt2-architecture model of small shapes with random weights
under the name "gpt2" (TransformerLens reads the shapes from config.json, so a known name accepts
them). Offline throughout."""

import hashlib
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

from tests.conftest import ROOT
from tests.test_plugin import run

COMMIT = "c0ffee" + "0" * 34
GPT2_SMALL_SHAPES = {"n_layer": 2, "n_embd": 32, "n_head": 2, "n_positions": 16, "n_ctx": 16, "vocab_size": 50}


def write_hub_file(cache: Path, repo: str, filename: str, data: bytes, commit: str = COMMIT) -> Path:
    """One file of a hub repo as huggingface_hub caches it: a blob named by its sha256, a snapshot link."""
    folder = cache / ("models--" + repo.replace("/", "--"))
    digest = hashlib.sha256(data).hexdigest()
    (folder / "blobs").mkdir(parents=True, exist_ok=True)
    (folder / "blobs" / digest).write_bytes(data)
    link = folder / "snapshots" / commit / filename
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(os.path.relpath(folder / "blobs" / digest, link.parent))
    (folder / "refs").mkdir(exist_ok=True)
    (folder / "refs" / "main").write_text(commit)
    return link


def write_gpt2_replica(cache: Path, seed: int = 0) -> None:
    """models--gpt2 with config.json and model.safetensors as transformers saves them, small shapes."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    saved = cache.parent / "saved-gpt2"
    GPT2LMHeadModel(GPT2Config(**GPT2_SMALL_SHAPES, architectures=["GPT2LMHeadModel"])).save_pretrained(saved, safe_serialization=True)
    for name in ("config.json", "model.safetensors"):
        write_hub_file(cache, "gpt2", name, (saved / name).read_bytes())
    shutil.rmtree(saved)


@pytest.fixture(scope="module")
def hf_home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("hf")
    write_gpt2_replica(home / "hub")
    return home


@contextmanager
def offline_hub(hub: Path, monkeypatch):
    """This process reads the cache folder `hub`, offline (huggingface_hub reads the folder per call)."""
    from verify import sources

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(hub))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    sources.hub_reachable.cache_clear()
    try:
        yield
    finally:
        sources.hub_reachable.cache_clear()


@pytest.fixture
def offline_cache(hf_home, monkeypatch):
    """This process reads the replica cache, offline."""
    with offline_hub(hf_home / "hub", monkeypatch):
        yield hf_home


def manifest(tmp_path: Path, model: str = 'name = "gpt2"', extra: str = "") -> Path:
    path = tmp_path / "gpt2-replica.toml"
    path.write_text(f'name = "gpt2-replica"\ndomain = "othello"\n[model]\n{model}\n{extra}'
                    '[data]\nsource = "othello-synthetic"\nsize = 2\n')
    return path


def test_a_pretrained_name_loads_from_the_cache_offline(tmp_path, offline_cache):
    """Hook points and widths at collection from config.json alone; the load gives TransformerLens'
    own conversion of the cached weights, exactly (no processing), equal to the transformers model."""
    from transformers import GPT2LMHeadModel

    from verify.subjects import check_files, load_subject
    from verify.manifest import load_manifest

    m = load_manifest(manifest(tmp_path, 'name = "gpt2-small"\nrevision = "main"'))
    assert (m.model.loader, m.model.name, m.model.revision) == ("pretrained", "gpt2-small", "main")
    shape = check_files(m)
    assert shape.hooks["blocks.1.hook_resid_post"] == (2, 32) and shape.hooks["blocks.0.attn.hook_pattern"] == (2, 2, 2)
    subject = load_subject(m, "cpu")
    snapshot = offline_cache / "hub" / "models--gpt2" / "snapshots" / COMMIT
    assert subject.files == {"model config": snapshot / "config.json", "model weights": snapshot / "model.safetensors"}
    tokens = torch.tensor([[1, 2, 3, 4, 5, 6]])
    hf = GPT2LMHeadModel.from_pretrained(str(snapshot)).eval()
    with torch.inference_mode():
        assert torch.allclose(subject.model(tokens), hf(tokens).logits, atol=1e-4)
    assert subject.model.cfg.tokenizer_name is None and subject.model.tokenizer is None


def test_processed_is_from_pretrained_s_processing(tmp_path, offline_cache):
    """processed = true: LayerNorm folded (LNPre), writing weights centred (each residual vector has
    mean 0 over d_model), unembedding centred: the same log-probabilities as the weights as saved."""
    from verify.manifest import load_manifest
    from verify.subjects import check_files, load_subject

    plain = load_subject(load_manifest(manifest(tmp_path, 'name = "gpt2"')), "cpu").model
    m = load_manifest(manifest(tmp_path, 'name = "gpt2"\nprocessed = true'))
    assert "blocks.0.ln1.hook_scale" in check_files(m).hooks
    processed = load_subject(m, "cpu").model
    assert processed.cfg.normalization_type == "LNPre" and plain.cfg.normalization_type == "LN"
    tokens = torch.tensor([[3, 1, 4, 1, 5, 9, 2, 6]])
    logits, cache = processed.run_with_cache(tokens)
    assert torch.allclose(logits.log_softmax(-1), plain(tokens).log_softmax(-1), atol=1e-4)
    assert cache["blocks.1.hook_resid_pre"].mean(-1).abs().max() < 1e-5


def test_a_pretrained_model_is_pinned_like_any_file(tmp_path, offline_cache):
    from verify import sources
    from verify.manifest import load_manifest
    from verify.subjects import load_subject

    snapshot = offline_cache / "hub" / "models--gpt2" / "snapshots" / COMMIT
    pins = f'sha256 = {{ weights = "{sources.sha256_of(snapshot / "model.safetensors")}", config = "{"0" * 64}" }}'
    with pytest.raises(ValueError, match=r"config.json: sha256 is [0-9a-f]{64}, but the manifest expects 0{64}"):
        load_subject(load_manifest(manifest(tmp_path, f'name = "gpt2"\n{pins}')), "cpu")


@pytest.mark.parametrize("model, error", [
    ('name = "not-a-model"', r"\[model\] name: 'not-a-model' is not a model TransformerLens supports"),
    ('name = "attn-only-1l"', r"\[model\] name: 'attn-only-1l' \(NeelNanda/Attn_Only_1L512W_C4_Code\): its weights are a pickled .pth"),
    ('name = "gpt2"\nweights = "x.safetensors"', r"\[model\] weights: a pretrained model's files follow from its name"),
    ('name = "gpt2"\nloader = "hooked_transformer"', r"\[model\] name: a pretrained model is read by the 'pretrained' loader"),
    ('weights = "x.safetensors"', r"\[model\]: missing key 'loader' \(or `name`"),
    ('loader = "hooked_transformer"\nrevision = "main"', r"\[model\] revision: a revision goes with `name`"),
    ('loader = "hooked_transformer"\nprocessed = true', r"\[model\] processed: goes with `name`"),
])
def test_bad_pretrained_names_are_one_line(tmp_path, offline_cache, model, error):
    from verify.manifest import ManifestError
    from verify.subjects import read_structure

    with pytest.raises(ManifestError, match=r"gpt2-replica.toml: " + error):
        read_structure(manifest(tmp_path, model))


def test_a_folder_of_the_model_s_name_here_is_not_read_instead(tmp_path, offline_cache, monkeypatch):
    from verify.manifest import ManifestError
    from verify.subjects import read_structure

    monkeypatch.chdir(tmp_path)
    (tmp_path / "gpt2").mkdir()
    with pytest.raises(ManifestError, match=r"\[model\] name: 'gpt2': the working directory holds 'gpt2', which TransformerLens would read"):
        read_structure(manifest(tmp_path))


def claims_run(pytester, tmp_path, home: Path, *args: str):
    (tmp_path / "subjects").mkdir(exist_ok=True)
    manifest(tmp_path / "subjects", extra='[claims.legal_move_rate]\nmin_rate = 0.0\nmax_rate = 1.0\n')
    return run(pytester, str(ROOT / "claims" / "test_othello.py"), "-rs", "--subjects-dir", str(tmp_path / "subjects"),
               "--device", "cpu", "-k", "legal_move_rate", *args, env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(home)})


def test_empty_cache_skips_with_the_reason_and_fails_under_require_subjects(pytester, tmp_path):
    result = claims_run(pytester, tmp_path, tmp_path / "empty-hf")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*not available offline: gpt2 (config.json, model.safetensors not in the local Hugging Face cache*"])
    result = claims_run(pytester, tmp_path, tmp_path / "empty-hf", "--require-subjects")
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*not available offline: gpt2*"])


# --- SAELens releases ------------------------------------------------------------------------------

RELEASE, SAE_ID = "gpt2-small-res-jb", "blocks.1.hook_resid_pre"
JB_REPO = "jbloom/GPT2-Small-SAEs-Reformatted"


def write_jb_release_replica(cache: Path, d_in: int = 32, d_sae: int = 64, seed: int = 0) -> dict[str, torch.Tensor]:
    """The folder SAELens' registry names for (gpt2-small-res-jb, blocks.1.hook_resid_pre) in its hub
    repo, with that release's cfg.json keys (the older sae_lens training config: hook_point, not hook_name)."""
    import json

    from safetensors.torch import save as save_bytes

    g = torch.Generator().manual_seed(seed)
    weights = {"W_enc": torch.randn(d_in, d_sae, generator=g) * 0.1, "b_enc": torch.zeros(d_sae),
               "W_dec": torch.randn(d_sae, d_in, generator=g) * 0.1, "b_dec": torch.zeros(d_in)}
    cfg = {"model_name": "gpt2-small", "hook_point": SAE_ID, "hook_point_layer": 1, "hook_point_head_index": None,
           "dataset_path": "Skylion007/openwebtext", "is_dataset_tokenized": False, "context_size": 128, "d_in": d_in,
           "d_sae": d_sae, "expansion_factor": d_sae // d_in, "device": "mps", "seed": 42, "dtype": "torch.float32",
           "b_dec_init_method": "geometric_median", "l1_coefficient": 8e-05, "lr": 0.0004}
    write_hub_file(cache, JB_REPO, f"{SAE_ID}/cfg.json", json.dumps(cfg).encode())
    write_hub_file(cache, JB_REPO, f"{SAE_ID}/sae_weights.safetensors", save_bytes(weights))
    return weights


@pytest.fixture(scope="module")
def hf_home_with_release(hf_home) -> Path:
    write_jb_release_replica(hf_home / "hub")
    return hf_home


SAE_TABLE = f'[saes.res]\nrelease = "{RELEASE}"\nsae_id = "{SAE_ID}"\nhook = "{SAE_ID}"\n'


def test_a_release_resolves_through_saelens_registry_and_loads_offline(tmp_path, hf_home_with_release, offline_cache):
    """The folder SAE.from_pretrained would download, from the cache: checked at collection against
    the model's hook width, loaded by the sae_lens loader, each file pinned."""
    from verify import sources
    from verify.loaders import sae_release
    from verify.manifest import load_manifest
    from verify.subjects import check_files, load_subject

    m = load_manifest(manifest(tmp_path, extra=SAE_TABLE))
    assert m.saes["res"].path == f"hf://{JB_REPO}/{SAE_ID}/"
    assert check_files(m).saes["res"].d_sae == 64
    folder = offline_cache / "hub" / ("models--" + JB_REPO.replace("/", "--")) / "snapshots" / COMMIT / SAE_ID
    pins = {name: sources.sha256_of(folder / name) for name in ("cfg.json", "sae_weights.safetensors")}
    pinned = SAE_TABLE + "sha256 = { " + ", ".join(f'"{k}" = "{v}"' for k, v in pins.items()) + " }\n"
    subject = load_subject(load_manifest(manifest(tmp_path, extra=pinned)), "cpu")
    sae = subject.saes["res"]
    assert (sae.cfg.d_in, sae.cfg.d_sae) == (32, 64)
    assert subject.files["sae res: sae_weights.safetensors"] == folder / "sae_weights.safetensors"
    wrong = pinned.replace(pins["cfg.json"], "f" * 64)
    with pytest.raises(ValueError, match="cfg.json: sha256 is .* but the manifest expects f{64}"):
        load_subject(load_manifest(manifest(tmp_path, extra=wrong)), "cpu")
    assert sae_release.published(RELEASE, SAE_ID) == {"variance_explained": 0.999, "l0": 10.0}  # pretrained_saes.yaml
    assert sae_release.published("gpt2-small-res-jb", "blocks.8.hook_resid_pre") == {"variance_explained": 0.9, "l0": 60.0}


@pytest.mark.parametrize("table, error", [
    ('release = "no-such-release"\nsae_id = "x"\nhook = "blocks.1.hook_resid_pre"', r"release: release 'no-such-release' is not in SAELens' pretrained registry"),
    (f'release = "{RELEASE}"\nsae_id = "blocks.99.hook_resid_pre"\nhook = "blocks.1.hook_resid_pre"', r"release: release 'gpt2-small-res-jb' has no sae_id 'blocks.99.hook_resid_pre' \(its ids: blocks.0.hook_resid_pre"),
    (f'release = "{RELEASE}"\nhook = "blocks.1.hook_resid_pre"', r"missing key 'sae_id'"),
    (f'release = "{RELEASE}"\nsae_id = "{SAE_ID}"\npath = "x"\nhook = "{SAE_ID}"', r"path: an SAELens release's files follow from release and sae_id"),
    ('release = "gpt2-small-hook-z-kk"\nsae_id = "blocks.0.hook_z"\nhook = "blocks.0.attn.hook_z"', r"release: release 'gpt2-small-hook-z-kk' is converted by SAELens \(connor_rob_hook_z\)"),
    ('hook = "blocks.1.hook_resid_pre"', r"missing key 'path' \(or `release` and `sae_id`"),
])
def test_bad_release_tables_are_one_line(tmp_path, table, error):
    from verify.manifest import ManifestError, load_manifest

    with pytest.raises(ManifestError, match=r"gpt2-replica.toml: \[saes.res\]:? ?" + error):
        load_manifest(manifest(tmp_path, extra=f"[saes.res]\n{table}\n"))


def test_release_lookups_are_kept_per_registry_file(tmp_path, monkeypatch):
    """Parsing SAELens' registry (about 1.3 s) happens once per registry file: the next lookup reads
    the kept entry; another pretrained_saes.yaml (an upgraded sae_lens) is parsed again; a refused
    release is refused every time."""
    import sae_lens.loading.pretrained_saes_directory as directory

    from verify.loaders import CheckpointError, sae_release

    monkeypatch.setenv("VERIFY_CACHE_DIR", str(tmp_path / "cache"))
    first = sae_release.source(RELEASE, SAE_ID), sae_release.published("gpt2-small-res-jb", "blocks.8.hook_resid_pre")
    assert first == (f"hf://{JB_REPO}/{SAE_ID}/", {"variance_explained": 0.9, "l0": 60.0})
    parse = directory.get_pretrained_saes_directory

    def parsed_again():
        raise AssertionError("the registry was parsed again")

    monkeypatch.setattr(directory, "get_pretrained_saes_directory", parsed_again)
    assert (sae_release.source(RELEASE, SAE_ID), sae_release.published("gpt2-small-res-jb", "blocks.8.hook_resid_pre")) == first
    with pytest.raises(AssertionError, match="parsed again"):  # a release not looked up before
        sae_release.source(RELEASE, "blocks.2.hook_resid_pre")
    other = tmp_path / "pretrained_saes.yaml"
    other.write_bytes(sae_release.registry_file().read_bytes() + b"\n# upgraded\n")
    monkeypatch.setattr(sae_release, "registry_file", lambda: other)
    with pytest.raises(AssertionError, match="parsed again"):
        sae_release.source(RELEASE, SAE_ID)
    monkeypatch.setattr(directory, "get_pretrained_saes_directory", parse)
    for _ in range(2):
        with pytest.raises(CheckpointError, match="is converted by SAELens"):
            sae_release.source("gpt2-small-hook-z-kk", "blocks.0.hook_z")

@pytest.mark.parametrize("forged", [b"{not json", b"\xff\xfe", b'{"repo_id": 5, "folder": "x", "published": {}}',
                                    b'{"repo_id": "evil/repo", "folder": "x", "published": {"l0": "many"}}', b"[]", b""])
def test_a_forged_release_entry_is_made_again(tmp_path, monkeypatch, forged):
    """A kept entry is data another process wrote: one that is not what `entry` writes (its digest
    checked out, its content did not) is made again from the registry and overwritten."""
    import hashlib
    import json

    import numpy as np

    from verify import diskcache
    from verify.loaders import sae_release

    monkeypatch.setenv("VERIFY_CACHE_DIR", str(tmp_path / "cache"))
    key = {"version": sae_release.ENTRY_VERSION, "release": RELEASE, "sae_id": SAE_ID,
           "registry_sha256": hashlib.sha256(sae_release.registry_file().read_bytes()).hexdigest()}
    path = diskcache.entry_path("sae-release", key)
    diskcache.write_entry(path, json.dumps(key, sort_keys=True), np.frombuffer(forged, dtype=np.uint8))
    assert diskcache.read_entry(path, json.dumps(key, sort_keys=True)) is not None  # sound as a cache file
    assert sae_release.source(RELEASE, SAE_ID) == f"hf://{JB_REPO}/{SAE_ID}/"
    kept = json.loads(diskcache.read_entry(path, json.dumps(key, sort_keys=True)).tobytes())  # overwritten
    assert sae_release.is_entry(kept) and kept["repo_id"] == JB_REPO

def test_release_not_cached_is_skipped_with_the_reason(pytester, tmp_path, hf_home):
    """The model is cached, the release's folder is not: skipped offline, naming the hub folder."""
    (tmp_path / "subjects").mkdir()
    manifest(tmp_path / "subjects", extra=SAE_TABLE.replace(SAE_ID, "blocks.0.hook_resid_pre") +
             '[claims.legal_move_rate]\nmin_rate = 0.0\nmax_rate = 1.0\n')
    result = run(pytester, str(ROOT / "claims" / "test_othello.py"), "-rs", "--subjects-dir", str(tmp_path / "subjects"),
                 "--device", "cpu", "-k", "legal_move_rate", env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(hf_home)})
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines([f"*not available offline: {JB_REPO}/blocks.0.hook_resid_pre/*"])
