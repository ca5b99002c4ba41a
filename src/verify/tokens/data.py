"""A token subject's data: sequences of token ids and the position sets a claim's metric counts.

Two sources, each with the same split discipline as the games and puzzles (a selection split for
discovery, a disjoint confirmation split the claims are measured on, no sequence twice):

- `tokens-synthetic`: seeded repeated random sequences, the standard induction probe. Each sequence
  is BOS, `offset` filler tokens (offset uniform in [0, max_offset]), n distinct random tokens (n
  uniform in [min_length, max_length]), the same n tokens again, then filler up to the fixed length
  1 + max_offset + 2 max_length. Varying offset and n means no fixed position holds the copy a
  model could attend to by position alone. Filler tokens are distinct from each other and from the
  n, so the only token that occurs twice in a sequence is a repeated one. `repeat = false` draws the
  second copy afresh too (every token of the sequence distinct): sequences that never repeat.
- `tokens-dataset`: an `input_ids` column (fixed length) of a `save_to_disk` folder, parquet files
  or a jsonl file, local or `hf://datasets/...` from the local cache; selection = rows [0, size),
  confirmation = rows [size, 2 size). Boolean columns of the same length are position sets.

Position sets (a claim's `positions`, `target_positions`, `label`): "all" (every position but the
first), "first" (the first copy), "repeat" (the second copy after its first token: the tokens
induction predicts), "seen_before" (positions whose token occurred earlier in the sequence), or a
boolean column of a dataset. A loss on a set S counts the prediction of the token at each t in S from
the logits at t - 1.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from verify import timing
from verify.splits import first_distinct

BUILT_IN_SETS = ("all", "first", "repeat", "seen_before")
FINGERPRINT_SEQUENCES = 16


@dataclass(frozen=True)
class RepeatedTokens:
    """The tokens-synthetic source's own [data] keys."""

    vocab_size: int  # tokens are drawn from [0, vocab_size), BOS excluded; at most the model's d_vocab
    bos: int = 0
    min_length: int = 8  # n, the length of the repeated segment
    max_length: int = 16
    max_offset: int = 8  # filler tokens before the segment: uniform in [0, max_offset]
    repeat: bool = True  # false: the second copy is fresh tokens (sequences that never repeat)

    def __post_init__(self) -> None:
        if not 2 <= self.min_length <= self.max_length:
            raise ValueError(f"min_length {self.min_length} and max_length {self.max_length} must satisfy 2 <= min_length <= max_length")
        if self.max_offset < 0:
            raise ValueError(f"max_offset {self.max_offset} must be >= 0")
        if not 0 <= self.bos < self.vocab_size:
            raise ValueError(f"bos {self.bos} must be in [0, vocab_size = {self.vocab_size})")
        if self.vocab_size - 1 < self.distinct_needed:
            raise ValueError(f"vocab_size {self.vocab_size} leaves {self.vocab_size - 1} tokens besides BOS; a sequence of "
                             f"length {self.length} needs {self.distinct_needed} distinct ones")

    @property
    def length(self) -> int:
        return 1 + self.max_offset + 2 * self.max_length

    @property
    def distinct_needed(self) -> int:
        """Distinct non-BOS tokens in the sequence that repeats least (all of them without repeats)."""
        return self.length - 1 - (self.min_length if self.repeat else 0)


@dataclass(frozen=True)
class TokenData:
    """tokens (sequences, positions) int64; sets: name -> bool (sequences, positions)."""

    tokens: np.ndarray
    sets: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.tokens)

    def positions(self, name: str) -> np.ndarray:
        """The bool mask of a declared position set (a ValueError names the sets there are)."""
        if name == "all":
            mask = np.ones(self.tokens.shape, dtype=bool)
            mask[:, 0] = False
            return mask
        if name == "seen_before":
            return seen_before(self.tokens)
        if name not in self.sets:
            raise ValueError(f"no position set {name!r} in this data (sets: {', '.join(self.names())})")
        return self.sets[name]

    def names(self) -> list[str]:
        return ["all", "seen_before", *self.sets]

    def take(self, n: int) -> TokenData:
        return TokenData(self.tokens[:n], {k: v[:n] for k, v in self.sets.items()})


def previous_occurrence(tokens: np.ndarray) -> np.ndarray:
    """(sequences, positions): the latest earlier position holding the same token, -1 where none."""
    n, length = tokens.shape
    prev = np.full((n, length), -1, dtype=np.int64)
    for t in range(1, length):
        same = tokens[:, :t] == tokens[:, t : t + 1]
        last = np.where(same.any(1), t - 1 - np.argmax(same[:, ::-1], axis=1), -1)
        prev[:, t] = last
    return prev


def seen_before(tokens: np.ndarray) -> np.ndarray:
    return previous_occurrence(tokens) >= 0


def generate(opts: RepeatedTokens, n: int, seed: int) -> TokenData:
    """n sequences of the stream for `seed` (the first ones do not depend on n)."""
    rng = np.random.default_rng(seed)
    length = opts.length
    tokens = np.full((n, length), opts.bos, dtype=np.int64)
    first = np.zeros((n, length), dtype=bool)
    repeat = np.zeros((n, length), dtype=bool)
    others = np.array([t for t in range(opts.vocab_size) if t != opts.bos], dtype=np.int64)
    for i in range(n):
        seg = int(rng.integers(opts.min_length, opts.max_length + 1))
        offset = int(rng.integers(0, opts.max_offset + 1))
        drawn = others[rng.permutation(len(others))]
        start, second = 1 + offset, 1 + offset + seg
        body = drawn[: length - 1 - (seg if opts.repeat else 0)]  # distinct tokens for every position but BOS and the copy
        row = np.empty(length - 1, dtype=np.int64)
        k = 0
        for t in range(1, length):
            if opts.repeat and second <= t < second + seg:
                row[t - 1] = row[t - 1 - seg]
            else:
                row[t - 1] = body[k]
                k += 1
        tokens[i, 1:] = row
        first[i, start:second] = True
        repeat[i, second + 1 : second + seg] = True
    return TokenData(tokens, {"first": first, "repeat": repeat})


def distinct(data: TokenData, n: int, exclude: set[bytes]) -> tuple[TokenData, int, int]:
    """The first n rows of `data` that repeat no earlier row and none in `exclude`, and how many
    rows were skipped for each reason."""
    keep, shared, repeated = first_distinct((row.tobytes() for row in data.tokens), n, exclude)
    if len(keep) < n:
        raise ValueError(f"only {len(keep)} distinct sequences of {n} wanted")
    idx = np.array(keep)
    return TokenData(data.tokens[idx], {k: v[idx] for k, v in data.sets.items()}), shared, repeated


@timing.stage("data")
def synthetic_split(opts: RepeatedTokens, size: int, seed: int, held_out_from: TokenData | None) -> TokenData:
    exclude = {row.tobytes() for row in held_out_from.tokens} if held_out_from is not None else set()
    wanted = size
    for _ in range(8):
        try:
            data, shared, repeated = distinct(generate(opts, wanted, seed), size, exclude)
        except ValueError:
            wanted = 2 * wanted + 16
            continue
        if shared or repeated:
            warnings.warn(f"tokens-synthetic seed {seed}: {shared} sequences of the selection split and {repeated} repeats "
                          "skipped to keep the split held out and free of repeats", stacklevel=2)
        return data
    raise ValueError(f"{size} distinct sequences not found in {wanted} of seed {seed}")


def split(subject, which: str) -> TokenData:
    """The subject's selection or confirmation sequences, made once per data spec."""
    data = subject.manifest.data

    def make() -> TokenData:
        if data.source == "tokens-synthetic":
            held_out = split(subject, "selection") if which == "confirmation" else None
            made = synthetic_split(data.options, data.size, data.seed(which), held_out)
        else:
            made = dataset_split(subject.data("opened", lambda: open_manifest_dataset(subject.manifest)), data.size, which)
        d_vocab = subject.model.cfg.d_vocab
        if made.tokens.max() >= d_vocab:
            raise ValueError(f"{subject.manifest.where('[data]')}: token id {int(made.tokens.max())} is outside the model's "
                             f"vocabulary of {d_vocab}")
        if made.tokens.shape[1] > subject.model.cfg.n_ctx:
            raise ValueError(f"{subject.manifest.where('[data]')}: sequences of {made.tokens.shape[1]} tokens are longer than "
                             f"the model's context of {subject.model.cfg.n_ctx}")
        return made

    return subject.data(("tokens", which), make)


def input_tokens(subject, data: TokenData) -> torch.Tensor:
    return torch.from_numpy(data.tokens).to(subject.device)


def fingerprint_batch(subject) -> tuple[torch.Tensor, str]:
    data = split(subject, "confirmation")
    return (input_tokens(subject, data.take(FINGERPRINT_SEQUENCES)),
            f"first {FINGERPRINT_SEQUENCES} confirmation sequences ({subject.manifest.data.source}, "
            f"seed {subject.manifest.data.confirmation_seed}, size {subject.manifest.data.size})")


# --- tokens-dataset --------------------------------------------------------------------------------

@timing.stage("data")
def open_manifest_dataset(manifest):
    """The dataset named by [data] path, as a datasets.Dataset (the first split of a DatasetDict).
    An hf://datasets/... path is read from the local hub cache when the hub is unreachable (raises
    SourceUnavailable at once when it is not cached)."""
    return read_dataset(data_location(manifest))


def data_location(manifest):
    from verify import sources

    path = manifest.data.path
    return sources.cached_hub_dataset(path) if path.startswith("hf://datasets/") else sources.local_path(path, manifest.dir)


def read_dataset(path):
    import datasets

    path = Path(path)
    if path.is_file() and path.suffix in (".jsonl", ".json"):
        ds = datasets.Dataset.from_json(str(path))
    elif path.is_file() and path.suffix == ".parquet":
        ds = datasets.Dataset.from_parquet(str(path))
    elif path.is_dir() and ((path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists()):
        ds = datasets.load_from_disk(str(path))
    elif path.is_dir() and (files := sorted(path.glob("*.parquet")) or sorted(path.glob("data/*.parquet"))):
        ds = datasets.Dataset.from_parquet([str(f) for f in files])
    else:
        raise ValueError(f"{path}: not a save_to_disk folder, a parquet file or folder, or a jsonl file")
    if isinstance(ds, datasets.DatasetDict):
        ds = ds[next(iter(ds))]
    if "input_ids" not in ds.column_names:
        raise ValueError(f"{path}: no input_ids column (columns: {', '.join(ds.column_names)})")
    return ds


def dataset_files(manifest) -> list:
    """The local files the dataset is read from (hashed into the ledger)."""
    from verify import sources

    try:
        path = data_location(manifest)
    except sources.SourceUnavailable:
        return []
    return [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())


def dataset_split(ds, size: int, which: str) -> TokenData:
    start = 0 if which == "selection" else size
    if len(ds) < 2 * size:
        raise ValueError(f"the dataset has {len(ds)} rows; size {size} needs {2 * size} (selection and confirmation)")
    rows = ds.select(range(start, start + size))
    try:
        tokens = np.asarray(rows["input_ids"], dtype=np.int64)
    except ValueError:
        raise ValueError("input_ids rows differ in length: a tokens-dataset needs fixed-length rows") from None
    if tokens.ndim != 2:
        raise ValueError(f"input_ids must be rows of token ids, got shape {tokens.shape}")
    sets = {}
    for name in rows.column_names:
        if name == "input_ids":
            continue
        try:
            col = np.asarray(rows[name])
        except ValueError:
            continue
        if col.dtype == bool and col.shape == tokens.shape:
            sets[name] = col
    if which == "confirmation":
        selection = {r.tobytes() for r in dataset_split(ds, size, "selection").tokens}
        shared = sum(r.tobytes() in selection for r in tokens)
        if shared:
            raise ValueError(f"{shared} confirmation rows are also selection rows: the split would not be held out")
    return TokenData(tokens, sets)
