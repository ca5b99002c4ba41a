"""Scale-out helpers: one GPU per xdist worker, subject shards, grouping claims by subject."""

import re
import subprocess
import sys

import pytest
import torch

from tests.conftest import ROOT
from tests.test_plugin import run
from verify.coreshare import CoreShare
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


def test_busy_workers_share_the_cores_and_take_those_of_workers_done():
    first, second = CoreShare("run1", "gw0", cores=4), CoreShare("run1", "gw1", cores=4)
    before = torch.get_num_threads()
    try:
        assert first.busy() == second.busy() == 2 and first.share() == second.share() == 2
        first.refresh()
        assert torch.get_num_threads() == 2
        second.leave()
        assert first.busy() == 1 and first.share() == 4
        first.refresh()
        assert torch.get_num_threads() == 4
    finally:
        torch.set_num_threads(before)
        first.leave()
        second.leave()
    assert not first.folder.exists()  # the last one out removes the run's folder
    assert first.busy() == 1  # and a worker whose folder is gone counts itself alone rather than failing
    with pytest.raises(ValueError, match="letters and digits"):
        CoreShare("../elsewhere", "gw0", cores=2)


TWO_WORKERS = """
import time
from pathlib import Path

import pytest
import torch

from verify import plugin, timing


def wait_for(ready, what):
    deadline = time.monotonic() + 120
    while not ready():
        assert time.monotonic() < deadline, f"waited two minutes for {what}"
        time.sleep(0.05)


def threads_when(config, busy):
    share = config.stash[plugin.CORE_SHARE][0]
    wait_for(lambda: share.busy() == busy, f"{busy} busy workers")
    with timing.stage("forward"):  # a worker takes its share as each stage starts
        return torch.get_num_threads()


@pytest.mark.xdist_group("first")
def test_both_busy(pytestconfig):
    wait_for(Path("alone-started").exists, "the other test to start")  # both set up while both are busy
    assert threads_when(pytestconfig, busy=2) == SHARE


@pytest.mark.xdist_group("second")
def test_alone(pytestconfig):
    Path("alone-started").touch()
    assert torch.get_num_threads() == SHARE  # set up while the other worker was busy
    assert threads_when(pytestconfig, busy=1) == CORES  # and once it is done, in the middle of this test
"""


def test_each_xdist_worker_runs_torch_on_its_share_and_the_last_one_on_every_core(tmp_path):
    """Under -n 2 each worker's torch uses cores // 2 threads (at least one) while both are busy, the
    header says so, and the worker still measuring takes every core once the other is done."""
    cores = available_cores()
    (tmp_path / "test_threads.py").write_text(f"SHARE, CORES = {worker_threads(2, cores)}, {cores}\n" + TWO_WORKERS)
    env = {k: v for k, v in __import__("os").environ.items() if k != "OMP_NUM_THREADS"}
    result = subprocess.run([sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup", "-p", "no:cacheprovider",
                             "-v", "test_threads.py"], cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"torch runs {worker_threads(2, cores)} intra-op thread(s) in each while all are busy" in result.stdout, result.stdout
    workers = {line.split("]")[0] for line in result.stdout.splitlines() if "PASSED" in line and line.startswith("[gw")}
    assert len(workers) == 2, result.stdout  # one test on each worker


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


def test_under_xdist_a_bad_subject_is_still_a_usage_error(tmp_path):
    """The controller reads the subjects once its workers are started (their imports overlap its
    reading): a bad --subject is still the controller's usage error, no worker's traceback."""
    result = subprocess.run([sys.executable, "-m", "pytest", "-n", "2", "-p", "no:cacheprovider", "--subject", "nope",
                             str(ROOT / "claims")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == pytest.ExitCode.USAGE_ERROR, result.stdout + result.stderr
    assert "ERROR: unknown subject 'nope' (known: " in result.stderr, result.stderr
    assert "Traceback" not in result.stdout + result.stderr, result.stdout + result.stderr
