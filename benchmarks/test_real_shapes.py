"""The real checkpoints' shapes, timed: every claim of the shipped culture-gpt-0 and othello-gpt
manifests, run end to end (its data, preconditions, forwards, statistics and judgement) on replicas.

A replica is random weights written in the published file formats at the published shapes
(tests/replicas.py): culture-gpt's gpt_000.pth (12 blocks, 512 wide, the 405-token layout) with its
16384-feature sae_lens SAE and the puzzles as the hub's parquet files; Othello-GPT's
synthetic_model.pth (8 blocks, 512 wide) with the widest of andyrdt's legacy SAEs (4096 features on
blocks.6.hook_resid_pre). The real loaders read them through a manifest made from the shipped one,
which differs only in local paths, in fewer puzzles or games (`SIZES`), and where random weights would
stop a claim before its own measurement: the solved and legal-move rates a claim rests on are bounded
below by 0 (so the SAE fidelity preconditions run), the splice is measured on however few broken
puzzles there are, and each claim's measurement runs whatever its preconditions say. The verdicts are
those of random weights and are not looked at; what is measured is the cost.

Per claim, on a fresh copy of the subject (no result of another claim shared; the puzzles, the
answer oracle's masks and the games come from a disk cache made beforehand, as on a second run):
profiled at two sizes, then timed at the larger one. torch's profiler counts the matmul FLOPs the
work executed and the most bytes of torch tensors alive at once; it registers no module hook
(FlopCounterMode does, which turns verify.fused's forward off), but its own buffers grow the resident
set by hundreds of MB to GB, so the timed run is a separate one: wall seconds (per stage of
verify.timing), the FLOP rate against the 2048^3 matmul measured just before it (on a shared machine
the rate within reach changes during a session), and the peak resident set (Linux: the high-water
mark is reset before the claim through /proc/self/clear_refs). The tensors' peak grows at most
linearly with the size (batches are bounded, cached activations grow with it), so its growth between
the two sizes, carried on to the shipped manifest's size and added to the measured resident peak,
bounds the full run's peak, which must fit a 24 GiB machine.

Opt-in (slow): python3 -m pytest benchmarks/test_real_shapes.py -m slow
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import gc
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter
from typing import Iterator

import pytest
import tomlkit
import torch
from torch.profiler import ProfilerActivity, profile

from benchmarks.conftest import REAL_SHAPES, REFERENCE_N, best_seconds
from tests.conftest import SUBJECTS_DIR
from tests.replicas import write_culture_hub, write_legacy_sae
from verify import registry, timing
from verify.culture import findings as culture
from verify.culture.data import TASKS
from verify.flops import forward_flops, profiled_flops
from verify.loaders.culture_pth import CULTURE_GPT_CONFIG
from verify.loaders.othello_gpt import OTHELLO_GPT_CONFIG
from verify.othello import data as othello
from verify.othello.rules import MODEL_INPUT_LENGTH
from verify.registry import Measured
from verify.subjects import Subject, load_subject, read_manifest, sae_fields

pytestmark = pytest.mark.slow

SHIPPED = {"culture-gpt": SUBJECTS_DIR / "culture-gpt-0.toml", "othello-gpt": SUBJECTS_DIR / "othello-gpt.toml"}
SIZES = {"culture-gpt": (4, 8), "othello-gpt": (64, 128)}  # puzzles per task / games per split: small, then twice that
CULTURE_SAE_WIDTH = 16384  # tommyp111/culture-sae gpt-0 blocks_8_mlp_out (docs/findings.md)
OTHELLO_SAE, OTHELLO_SAE_WIDTH = "resid6_4096", 4096  # the widest of the published Othello SAEs
MACHINE_BYTES = 24 * 2**30
GIB = 2**30


def claims_of(subject: str) -> list[str]:
    return list(tomlkit.parse(SHIPPED[subject].read_text())["claims"])


def full_size(subject: str) -> int:
    return int(tomlkit.parse(SHIPPED[subject].read_text())["data"]["size"])


# --- the replicas -----------------------------------------------------------------------------------

def culture_replica(root: Path) -> Path:
    cfg = {k: CULTURE_GPT_CONFIG[k] for k in ("n_layers", "d_model", "n_heads", "d_head", "d_mlp", "d_vocab")}
    write_culture_hub(root, cfg, CULTURE_SAE_WIDTH, 2 * max(SIZES["culture-gpt"]))  # selection and confirmation rows
    doc = tomlkit.parse(SHIPPED["culture-gpt"].read_text())
    doc["model"]["weights"] = str(root / "culture-gpt" / "gpt_000.pth")
    doc["saes"]["mlp8"]["path"] = str(root / "culture-sae" / "gpt-0" / "blocks_8_mlp_out")
    doc["data"]["path"] = str(root / "culture-puzzles-1M-partitioned")
    doc["claims"]["solved_rate"]["min_rate"] = 0.0
    doc["claims"]["sae_splice_restores"]["min_cases"] = 0
    return write_manifest(doc, root, "culture-gpt-replica")


def othello_replica(root: Path) -> Path:
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    torch.manual_seed(0)  # a TransformerLens state dict, as Baidicoot/Othello-GPT-Transformer-Lens publishes it
    model = HookedTransformer(HookedTransformerConfig(**OTHELLO_GPT_CONFIG, device="cpu"))
    torch.save(model.state_dict(), root / "synthetic_model.pth")
    doc = tomlkit.parse(SHIPPED["othello-gpt"].read_text())
    doc["model"]["weights"] = str(root / "synthetic_model.pth")
    saes = doc["saes"]
    spec = saes[OTHELLO_SAE]
    artifact = root / spec["path"].rsplit("/", 1)[-1]
    write_legacy_sae(artifact, d_in=OTHELLO_GPT_CONFIG["d_model"], d_sae=OTHELLO_SAE_WIDTH, hook_point=str(spec["hook"]))
    feature = doc["claims"]["feature_tracks_empty_square"]
    for floor in ("min_explained_variance", "min_loss_recovered"):  # the floors of the SAE the shipped claim reads
        spec[floor] = saes[feature["sae"]][floor]
    for name in [n for n in saes if n != OTHELLO_SAE]:
        del saes[name]
    spec["path"] = str(artifact)
    feature["sae"] = OTHELLO_SAE
    doc["claims"]["legal_move_rate"]["min_rate"] = 0.0
    return write_manifest(doc, root, "othello-gpt-replica")


def write_manifest(doc, root: Path, name: str) -> Path:
    doc["name"] = name
    path = root / f"{name}.toml"
    path.write_text(tomlkit.dumps(doc))
    return path


def at_size(subject: Subject, size: int) -> Subject:
    """The subject with `size` puzzles per task or games per split, sharing nothing made before."""
    m = subject.manifest
    return dataclasses.replace(subject, manifest=dataclasses.replace(m, data=dataclasses.replace(m.data, size=size)),
                               data_cache={}, results={})


def make_data(subject: Subject) -> None:
    """Everything the claims read that depends on no weights, into the disk cache (verify.diskcache)."""
    if subject.manifest.domain == "culture":
        for task in TASKS:
            culture.counted(subject, task, "confirmation", "determined")  # and the puzzles it counts
    else:
        othello.split(subject, "confirmation")  # and the selection split it is held out from


@dataclass
class Replica:
    key: str  # which shipped manifest it replicates
    subject: Subject
    path: Path
    load_seconds: float
    data_seconds: float


@pytest.fixture(scope="module")
def replica(request, tmp_path_factory) -> Replica:
    if not Path("/proc/self/clear_refs").exists():
        pytest.skip("the per-claim peak resident set is read through Linux's /proc/self/clear_refs")
    root = tmp_path_factory.mktemp(request.param)
    path = (culture_replica if request.param == "culture-gpt" else othello_replica)(root)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VERIFY_CACHE_DIR", str(root / "cache"))  # made here, not read from an earlier session's
        start = perf_counter()
        subject = load_subject(read_manifest(path), "cpu")
        loaded = perf_counter()
        for size in SIZES[request.param]:
            make_data(at_size(subject, size))
        yield Replica(request.param, subject, path, loaded - start, perf_counter() - loaded)


# --- measuring one claim ------------------------------------------------------------------------------

@dataclass
class Resident:
    start: int = 0  # bytes resident before the block
    peak: int = 0  # the resident set's high-water mark during the block


def status_bytes(field: str) -> int:
    line = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith(field + ":"))
    return int(line.split()[1]) * 1024


@contextlib.contextmanager
def resident() -> Iterator[Resident]:
    """The block's peak resident set (Linux: the high-water mark VmHWM is reset through
    /proc/self/clear_refs). Freed memory is given back to the system first (gc, glibc's malloc_trim),
    so the peak starts from what is in use."""
    gc.collect()
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except AttributeError:  # not glibc
        pass
    Path("/proc/self/clear_refs").write_text("5")
    memory = Resident(start=status_bytes("VmRSS"))
    yield memory
    memory.peak = status_bytes("VmHWM")


@dataclass
class Counted:
    flops: int = 0  # matmul FLOPs, counted as verify.flops counts them (attention full and unmasked)
    tensor_peak: int = 0  # the most bytes of torch tensors allocated in the block alive at once


@contextlib.contextmanager
def counted() -> Iterator[Counted]:
    """What torch's profiler saw the block execute: every op's shapes and FLOPs and every allocation.
    It registers no module hook (FlopCounterMode does, which turns verify.fused's forward off); its own
    buffers took 0.3 to 1.9 GB more resident memory on one 16-puzzle culture-gpt forward, so nothing
    timed or resident is measured in a profiled run."""
    count = Counted()
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True, with_flops=True, profile_memory=True) as prof:
        yield count
    count.flops = profiled_flops(prof)  # as verify.flops.executed_flops counts
    live = 0
    # the raw event list: each allocation and free is its own event (prof.events() folds them into ops)
    for event in sorted(prof.profiler.kineto_results.events(), key=lambda e: e.start_ns()):
        if event.name() == "[memory]":
            live += event.nbytes()
            count.tensor_peak = max(count.tensor_peak, live)


@dataclass
class ClaimRun:
    items: int  # puzzles (of every task) or games of the confirmation split
    seconds: float
    stages: dict[str, float]
    measured: Measured
    checks: list
    unmeasurable: str | None  # why a precondition could not be measured on these random weights


def run_claim(subject: Subject, name: str) -> ClaimRun:
    """The claim as the plugin runs it, except that it is measured whatever its preconditions say."""
    claim, params = registry.get_claim(name), subject.manifest.claims[name]
    start = perf_counter()
    with timing.collect() as stages:
        try:
            pre, unmeasurable = claim.precondition_checks(subject, params), None
        except ValueError as err:  # e.g. loss recovered: zeroing a random model's hook need not raise its loss
            pre, unmeasurable = [], str(err)
        measured = Measured(claim.measure(subject, params), pre)
        checks = claim.checks(measured, params)
    items = subject.manifest.data.size * (len(TASKS) if subject.manifest.domain == "culture" else 1)
    return ClaimRun(items, perf_counter() - start, dict(stages), measured, checks, unmeasurable)


# --- the tests ----------------------------------------------------------------------------------------

def unit(subject: Subject) -> tuple[str, int]:
    """What a claim's size counts, and the model's input positions per one."""
    if subject.manifest.domain == "culture":
        return "puzzle", culture.layout(subject).length - 1
    return "game", MODEL_INPUT_LENGTH


def inputs(subject: Subject, n: int) -> torch.Tensor:
    """The model's inputs for the first `n` confirmation puzzles (contact) or games."""
    if subject.manifest.domain == "culture":
        return culture.puzzles(subject, "contact")[:n, :-1]
    return othello.input_tokens(subject, othello.split(subject, "confirmation"))[:n]


def gib(n: float) -> str:
    return f"{n / GIB:.2f} GiB"


def matmul_now() -> float:
    """GFLOP/s of the 2048^3 fp32 matmul measured now: on a shared machine the rate within reach
    changes during a session, so each rate is compared with the matmul's just before it."""
    a, b = torch.randn(REFERENCE_N, REFERENCE_N), torch.randn(REFERENCE_N, REFERENCE_N)
    return 2 * REFERENCE_N**3 / best_seconds(lambda: a @ b, repeats=3) / 1e9


@pytest.mark.parametrize("replica", list(SHIPPED), indirect=True)
def test_replica_loads_at_the_real_shape(replica, request):
    """The loaders read the replica's files at the published shapes, and the FLOPs the claims report
    (torch's profiler's count of the matmuls, on the fused forward) are verify.flops' formula."""
    subject = replica.subject
    culture_like = subject.manifest.domain == "culture"
    published = CULTURE_GPT_CONFIG if culture_like else OTHELLO_GPT_CONFIG
    keys = ("n_layers", "d_model", "n_heads", "d_head", "d_mlp", "d_vocab", "n_ctx")
    assert {k: getattr(subject.model.cfg, k) for k in keys} == {k: published[k] for k in keys}
    (sae,) = subject.saes.values()
    assert (sae.cfg.d_in, sae.cfg.d_sae) == (published["d_model"], CULTURE_SAE_WIDTH if culture_like else OTHELLO_SAE_WIDTH)
    assert subject.files and all(path.is_relative_to(replica.path.parent) for path in subject.files.values())
    what, positions = unit(subject)
    n = min(SIZES[replica.key][0], 8)  # the first puzzles (contact) or games of the smaller size
    tokens = inputs(at_size(subject, SIZES[replica.key][0]), n)
    assert tokens.shape == (n, positions)
    forward = torch.inference_mode()(subject.model)
    reference = matmul_now()
    seconds = best_seconds(lambda: forward(tokens), repeats=3)  # unprofiled: its bookkeeping is a share of one forward
    with counted() as count:
        forward(tokens)
    flops = forward_flops(subject.model.cfg, n, positions)
    assert count.flops == flops
    rate = flops / seconds / 1e9
    request.config.stash.setdefault(REAL_SHAPES, []).append(
        f"{subject.name}: loaded in {replica.load_seconds:.1f} s; data made once (cold disk cache, both sizes) "
        f"{replica.data_seconds:.1f} s; one forward {seconds / n:.3f} s per {what} ({flops / n / 1e9:.2f} GFLOP), "
        f"{rate:.1f} GFLOP/s = {rate / reference:.0%} of the {REFERENCE_N}^3 matmul ({reference:.0f} GFLOP/s just before)")


CASES = [pytest.param(subject, name, id=f"{subject}-{name}") for subject in SHIPPED for name in claims_of(subject)]


@pytest.mark.parametrize("replica, name", CASES, indirect=["replica"])
def test_claim(benchmark, record, request, replica, name):
    """One claim end to end: profiled at two sizes (the FLOPs and the tensors' peak; the first runs
    also warm every kernel up for these shapes), then timed at the larger one, with its peak resident
    set measured: the benchmark."""
    small, large = SIZES[replica.key]
    subject = replica.subject
    with counted() as first_count:
        first = run_claim(at_size(subject, small), name)
    with counted() as count:
        profiled = run_claim(at_size(subject, large), name)
    reference = matmul_now()
    with resident() as memory:
        run = benchmark.pedantic(run_claim, (at_size(subject, large), name), rounds=1, iterations=1)
    assert [str(c) for c in profiled.checks] == [str(c) for c in run.checks]  # the profiled run did the same work
    assert run.measured.value is not None
    for sae in sae_fields(subject.manifest.claims[name]):  # its SAE's fidelity was measured: those forwards are in the time
        assert (subject.manifest.saes[sae].hook in (run.unmeasurable or "")
                or any(f"SAE {sae} " in check.what for check in run.measured.preconditions)), run.measured.preconditions
    what, positions = unit(subject)
    assert run.stages.get("forward", 0) > 0
    assert count.flops >= forward_flops(subject.model.cfg, run.items, positions, layers=1, unembed=False)

    full = full_size(replica.key) * (run.items // large)
    # the tensors' peak grows at most linearly with the size (batches are bounded, cached activations grow)
    growth = max(0.0, (count.tensor_peak - first_count.tensor_peak) / (run.items - first.items))
    full_peak = memory.peak + growth * (full - run.items)
    per_item = run.seconds / run.items
    rate = count.flops / run.seconds / 1e9
    record(count.flops, run.items * positions, size=large, items=run.items, seconds=round(run.seconds, 2),
           seconds_per_item=round(per_item, 4), stages={k: round(v, 2) for k, v in run.stages.items()},
           peak_rss_gib=round(memory.peak / GIB, 3), rss_rise_gib=round((memory.peak - memory.start) / GIB, 3),
           tensor_peak_gib=round(count.tensor_peak / GIB, 3), unmeasurable=run.unmeasurable,
           matmul_2048_gflops_before=round(reference, 1), fraction_of_matmul_before=round(rate / reference, 3),
           small_size=small, small_flops=first_count.flops, small_tensor_peak_gib=round(first_count.tensor_peak / GIB, 3),
           full_items=full, full_seconds_estimate=round(per_item * full), full_peak_rss_gib_bound=round(full_peak / GIB, 2))
    stages = ", ".join(f"{k} {v:.1f}" for k, v in sorted(run.stages.items(), key=lambda kv: -kv[1]) if v >= 0.05)
    request.config.stash.setdefault(REAL_SHAPES, []).append(
        f"{replica.key} {name}: {run.items} {what}s: {run.seconds:.1f} s ({stages}) = {per_item:.3f} s per {what}; "
        f"{count.flops / 1e12:.2f} TFLOP, {rate:.1f} GFLOP/s = {rate / reference:.0%} of the {REFERENCE_N}^3 matmul "
        f"({reference:.0f} GFLOP/s just before); peak RSS {gib(memory.peak)} (+{gib(memory.peak - memory.start)}; "
        f"tensors {gib(count.tensor_peak)}, {first.items} {what}s: {gib(first_count.tensor_peak)}); "
        f"shipped size {full} {what}s: ~{per_item * full:.0f} s, peak RSS <= {gib(full_peak)}"
        + (f"; not measurable on random weights: {run.unmeasurable.split(':')[0]}" if run.unmeasurable else ""))
    assert full_peak < MACHINE_BYTES, (f"{name} at the shipped size ({full} {what}s) would peak at {gib(full_peak)}, "
                                       f"over this {gib(MACHINE_BYTES)} machine: batch it")
