"""Scale-out helpers: one GPU per xdist worker, subject shards, grouping claims by subject."""

import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT
from tests.test_plugin import run
from verify.devices import available_cores, worker_device, worker_threads
from verify.plugin import parse_shard


def test_each_xdist_worker_takes_its_own_gpu():
    assert worker_device("cuda", "gw0", 4) == "cuda:0"
    assert worker_device("cuda", "gw5", 4) == "cuda:1"
    assert worker_device("cuda", "gw1", 1) == "cuda"  # one GPU: every worker shares it
    assert worker_device("cpu", "gw1", 4) == "cpu"
    assert worker_device("cuda", None, 4) == "cuda"  # not under xdist


def test_workers_share_the_cores_between_them():
    assert worker_threads(2, 2) == 1 and worker_threads(2, 16) == 8 and worker_threads(4, 2) == 1
    assert worker_threads(1, 8) == 8


def test_each_xdist_worker_runs_torch_on_its_share_of_the_cores(tmp_path):
    """Under -n 2 each worker's torch uses cores // 2 threads (at least one), and the header says so."""
    share = worker_threads(2, available_cores())
    (tmp_path / "test_threads.py").write_text(
        "import torch\n\n"
        f"def test_threads():\n    assert torch.get_num_threads() == {share}, torch.get_num_threads()\n")
    env = {k: v for k, v in __import__("os").environ.items() if k != "OMP_NUM_THREADS"}
    result = subprocess.run([sys.executable, "-m", "pytest", "-n", "2", "-p", "no:cacheprovider", "test_threads.py"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"torch runs {share} intra-op thread(s) in each" in result.stdout, result.stdout


@pytest.mark.parametrize("text", ["0/2", "3/2", "1", "a/b", "1/0", "-1/2"])
def test_a_bad_shard_is_refused(text):
    with pytest.raises(ValueError, match="expected K/N"):
        parse_shard(text)


def collected(*runs: tuple[str, ...]) -> list[set[str]]:
    """The claim test ids `pytest claims/ --collect-only` lists with each run's arguments (the runs at
    once: each is mostly a fresh interpreter's imports)."""
    jobs = [subprocess.Popen([sys.executable, "-m", "pytest", "claims/", "--collect-only", "-q", "-p", "no:cacheprovider", *args],
                             cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for args in runs]
    found = []
    for job in jobs:
        stdout, stderr = job.communicate(timeout=300)
        assert job.returncode == 0, stdout + stderr
        # a shard none of whose subjects declares a claim shows that claim's one "no-subject" skip
        found.append({line for line in stdout.splitlines() if "::" in line and not line.endswith("[no-subject]")})
    return found


def subject_of(test_id: str) -> str:
    return re.search(r"\[(.+)\]$", test_id).group(1)


def test_shards_split_whole_subjects_and_cover_them_all():
    everything, *shards = collected((), *(("--subject-shard", f"{k}/3") for k in (1, 2, 3)))
    assert set().union(*shards) == everything
    owners = [{subject_of(t) for t in shard} for shard in shards]
    assert all(owners) and not (owners[0] & owners[1] or owners[0] & owners[2] or owners[1] & owners[2])


def test_a_bad_shard_option_is_a_usage_error(pytester):
    result = run(pytester, "--subject-shard", "4/3")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--subject-shard '4/3': expected K/N*"])
