"""A manifest's hook shapes kept on disk (verify.skeletons): read again without TransformerLens,
remade when a config changes, and never trusted when damaged or forged."""

import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import ROOT, SUBJECTS_DIR
from verify import diskcache, skeletons
from verify.loaders import CheckpointError
from verify.loaders.pretrained import official_name
from verify.manifest import ManifestError
from verify.subjects import check_files, read_manifest

READ_TWICE = """
import sys
from pathlib import Path
from verify.subjects import SubjectSet, manifest_paths
found = SubjectSet(manifest_paths(Path(sys.argv[1])), "cpu")
print(sorted(found.manifests), "transformer_lens" in sys.modules)
"""


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(diskcache.ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


def induction_copy(tmp_path):
    """induction-tiny's manifest and model files in a folder of the test's own (its config editable)."""
    folder = tmp_path / "subject"
    shutil.copytree(ROOT / "fixtures" / "induction-tiny", folder / "induction-tiny")
    (folder / "subjects").mkdir()
    text = (SUBJECTS_DIR / "induction-tiny.toml").read_text()
    (folder / "subjects" / "induction-tiny.toml").write_text(re.sub(r', config = "[0-9a-f]+"', "", text))  # config unpinned
    return folder / "subjects" / "induction-tiny.toml", folder / "induction-tiny" / "model_config.json"


def test_a_second_process_reads_the_subjects_without_transformer_lens(cache):
    runs = [subprocess.run([sys.executable, "-c", READ_TWICE, str(SUBJECTS_DIR)], capture_output=True, text=True, timeout=300,
                           cwd=ROOT, env={**__import__("os").environ, diskcache.ENV: str(cache)}) for _ in range(2)]
    assert all(run.returncode == 0 for run in runs), runs[0].stderr + runs[1].stderr
    first, second = (run.stdout.strip() for run in runs)
    assert first.endswith("True") and second.endswith("False")  # the first built the skeletons, the second read them
    assert first.rsplit(" ", 1)[0] == second.rsplit(" ", 1)[0]


def test_the_kept_shapes_are_those_of_the_skeleton(cache):
    built = check_files(read_manifest(SUBJECTS_DIR / "induction-tiny.toml"))
    kept = check_files(read_manifest(SUBJECTS_DIR / "induction-tiny.toml"))
    assert kept == built and kept.hooks["blocks.1.hook_attn_out"] == (2, 64)


def test_an_edited_config_is_seen_at_once(cache, tmp_path):
    manifest, config = induction_copy(tmp_path)
    cfg = json.loads(config.read_text())
    config.write_text(json.dumps(cfg))
    assert "blocks.1.hook_attn_out" in check_files(read_manifest(manifest)).hooks
    before = config.stat()
    config.write_text(json.dumps({**cfg, "n_layers": 1}))
    os.utime(config, ns=(before.st_atime_ns, before.st_mtime_ns))  # as a copy that keeps times would leave it
    assert config.stat().st_size == before.st_size
    with pytest.raises(ManifestError, match="no hook point 'blocks.1.hook_attn_out'"):
        read_manifest(manifest)


def test_a_config_the_skeleton_refuses_is_refused_every_time(cache, tmp_path):
    manifest, config = induction_copy(tmp_path)
    config.write_text(json.dumps({**json.loads(config.read_text()), "n_layers": 0}))
    for _ in range(2):
        with pytest.raises(ManifestError, match="n_layers: 0 must be an integer"):
            read_manifest(manifest)


@pytest.mark.parametrize("forged", [
    {"hooks": {"blocks.1.hook_attn_out": [2, 32]}, "bridge_problem": None, "extra": 1},
    {"hooks": {"blocks.1.hook_attn_out": [2, -64]}, "bridge_problem": None},
    {"hooks": {"blocks.1.hook_attn_out": [2.0, 64.0]}, "bridge_problem": None},
    {"hooks": [["blocks.1.hook_attn_out", [2, 64]]], "bridge_problem": None},
    {"hooks": None, "bridge_problem": 3},
    "not a record",
])
def test_a_forged_entry_is_made_again(cache, forged, monkeypatch):
    entries = []
    real = diskcache.cached_json
    monkeypatch.setattr(diskcache, "cached_json", lambda kind, key, make, valid: entries.append((kind, key)) or real(kind, key, make, valid))
    built = check_files(read_manifest(SUBJECTS_DIR / "induction-tiny.toml"))
    kind, key = next((k, v) for k, v in entries if k == "skeleton")
    text = json.dumps(key, sort_keys=True)
    diskcache.write_entry(diskcache.entry_path(kind, key), text, np.frombuffer(json.dumps(forged).encode(), dtype=np.uint8))
    assert not skeletons.is_record(forged)
    assert check_files(read_manifest(SUBJECTS_DIR / "induction-tiny.toml")) == built


def test_what_transformer_lens_says_of_a_name_is_kept_and_refusals_stay_refusals(cache, tmp_path, monkeypatch):
    assert official_name("gpt2-small") == official_name("gpt2-small") == "gpt2"
    for _ in range(2):
        with pytest.raises(CheckpointError, match="not a model TransformerLens supports"):
            official_name("no-such-model-anywhere")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "gpt2").mkdir()  # checked at every call, not kept: it depends on the working directory
    with pytest.raises(CheckpointError, match="working directory holds 'gpt2'"):
        official_name("gpt2-small")
