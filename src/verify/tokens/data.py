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
- `tokens-dataset`: a column of a `save_to_disk` folder, parquet files or a jsonl file, local or
  `hf://datasets/...` from the local cache. Token ids (`input_ids`, fixed-length rows): selection =
  rows [0, size), confirmation = rows [size, 2 size); boolean columns of the same length are
  position sets. Text (`length` given; `text` by default): each row is tokenized by a tokenizer.json
  read with the `tokenizers` library (the `tokenizer` key, or the model's own), BOS prepended,
  truncated to `length` tokens; rows shorter than that are dropped and counted, selection = the
  first `size` rows kept, confirmation = the next `size`. A text row's tokens align with no other
  column, so boolean columns are no position sets there.

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
from typing import Callable

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
    no_sets: str = ""  # why a set the data lacks cannot be there (said when one is asked for)

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
            raise ValueError(f"no position set {name!r} in this data (sets: {', '.join(self.names())})"
                             + (f"; {self.no_sets}" if self.no_sets else ""))
        return self.sets[name]

    def names(self) -> list[str]:
        return ["all", "seen_before", *self.sets]

    def take(self, n: int) -> TokenData:
        return TokenData(self.tokens[:n], {k: v[:n] for k, v in self.sets.items()}, self.no_sets)


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
        elif data.options.is_text:
            made = text_split(subject, which)
        else:
            made = dataset_split(subject.data("opened", lambda: open_manifest_dataset(subject.manifest)), data.size, which,
                                 data.options.column)
        d_vocab = subject.model.cfg.d_vocab
        if made.tokens.max() >= d_vocab:
            raise ValueError(f"{subject.manifest.where('[data]')}: token id {int(made.tokens.max())} is outside the model's "
                             f"vocabulary of {d_vocab}")
        if made.tokens.shape[1] > subject.model.cfg.n_ctx:
            raise ValueError(f"{subject.manifest.where('[data]')}: sequences of {made.tokens.shape[1]} tokens are longer than "
                             f"the model's context of {subject.model.cfg.n_ctx}")
        return made

    return subject.data(("tokens", which, *text_key(subject.manifest)), make)


def input_tokens(subject, data: TokenData) -> torch.Tensor:
    return torch.from_numpy(data.tokens).to(subject.device)


def fingerprint_batch(subject) -> tuple[torch.Tensor, str]:
    data = split(subject, "confirmation")
    spec = subject.manifest.data
    what = (f"size {spec.size}, {text_rows(subject).description}" if spec.source == "tokens-dataset" and spec.options.is_text
            else f"seed {spec.confirmation_seed}, size {spec.size}")
    return (input_tokens(subject, data.take(FINGERPRINT_SEQUENCES)),
            f"first {FINGERPRINT_SEQUENCES} confirmation sequences ({spec.source}, {what})")


# --- tokens-dataset --------------------------------------------------------------------------------

BOS_SPELLINGS = ("<|endoftext|>", "<s>", "<bos>", "<|begin_of_text|>", "[BOS]", "<|bos|>")  # special tokens taken for BOS
TEXT_CHUNK = 256  # rows tokenized at a time: a large dataset is read only as far as the splits need


@dataclass(frozen=True)
class DatasetColumns:
    """The tokens-dataset source's own [data] keys."""

    column: str = ""  # the column read; default "input_ids" (token ids), or "text" when `length` is given
    length: int | None = None  # given: the column is text, tokenized to this many tokens per row (BOS included)
    prepend_bos: bool | None = None  # text: BOS before each row's tokens (default true)
    tokenizer: str = ""  # text: a tokenizer.json (tokenizers library), relative to the manifest; default: the model's own
    bos: int | None = None  # text: the BOS id, where the tokenizer does not say which token it is

    def __post_init__(self) -> None:
        if self.length is None:
            given = [key for key in ("prepend_bos", "tokenizer", "bos") if getattr(self, key) not in (None, "")]
            if given:
                raise ValueError(f"{given[0]}: goes with length (a text column, tokenized); without it column "
                                 f"{self.column or 'input_ids'!r} is read as token ids")
        elif self.length < 2:
            raise ValueError(f"length: {self.length} tokens per row; a loss needs at least 2 (a token and its prediction)")
        if self.bos is not None and self.bos < 0:
            raise ValueError(f"bos: {self.bos} is not a token id (>= 0)")
        if self.bos is not None and self.prepend_bos is False:
            raise ValueError("bos: given with prepend_bos = false, which prepends none")
        object.__setattr__(self, "column", self.column or ("input_ids" if self.length is None else "text"))

    @property
    def is_text(self) -> bool:
        return self.length is not None


@dataclass(frozen=True)
class TextTokenizer:
    """How a text column becomes token ids: encode(texts) -> one id list per text, no special tokens added."""

    encode: Callable[[list[str]], list[list[int]]]
    bos: int | None
    name: str  # as the data description says it
    file: Path | None = None  # hashed into the ledger with the dataset's files


@dataclass(frozen=True)
class TextRows:
    """A text column's first 2 size rows long enough, tokenized, and what was done to them."""

    tokens: np.ndarray  # (2 size, length)
    dropped: int  # rows read before the last one kept that were shorter than length
    description: str


def text_key(manifest) -> tuple:
    """What a text column's tokens depend on beyond the [data] table: the tokenizer, which may be the
    model's own, so each manifest tokenizes its own (two subjects with one data table but other
    models never share tokens)."""
    if manifest.data.source != "tokens-dataset" or not manifest.data.options.is_text:
        return ()
    return ("text", str(manifest.path))


@timing.stage("data")
def open_manifest_dataset(manifest):
    """The dataset named by [data] path, as a datasets.Dataset (the first split of a DatasetDict),
    its column checked. An hf://datasets/... path is read from the local hub cache when the hub is
    unreachable (raises SourceUnavailable at once when it is not cached); so is a text column's
    tokenizer file."""
    opts = manifest.data.options
    location = data_location(manifest)
    ds = read_dataset(location, column=None)
    if opts.column not in ds.column_names:
        raise ValueError(f"{manifest.where('[data] column')}: {location} has no column {opts.column!r} "
                         f"(columns: {', '.join(ds.column_names)})")
    feature = ds.features[opts.column]
    is_text = getattr(feature, "dtype", None) in ("string", "large_string")
    if opts.is_text and not is_text:
        raise ValueError(f"{manifest.where('[data] column')}: {opts.column!r} holds {feature}, not text; `length` goes with "
                         "a text column (token ids are read without it)")
    if not opts.is_text and is_text:
        raise ValueError(f"{manifest.where('[data] column')}: {opts.column!r} holds text; give `length = N` (tokens per row) "
                         "to tokenize it")
    if opts.is_text:
        tokenizer_file(manifest, fetch=True)  # fetched (or unavailable) now, like the model's files
    return ds


def data_location(manifest):
    from verify import sources

    path = manifest.data.path
    return sources.cached_hub_dataset(path) if path.startswith("hf://datasets/") else sources.local_path(path, manifest.dir)


def read_dataset(path, column: str | None = "input_ids"):
    """The dataset at path; with `column`, refused when it lacks that column."""
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
    if column is not None and column not in ds.column_names:
        raise ValueError(f"{path}: no {column} column (columns: {', '.join(ds.column_names)})")
    return ds


def dataset_files(manifest) -> list:
    """The local files the dataset is read from and, for a text column, the tokenizer file (hashed into the ledger)."""
    from verify import sources

    try:
        path = data_location(manifest)
    except sources.SourceUnavailable:
        return []
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    tokenizer = tokenizer_file(manifest, fetch=False) if manifest.data.options.is_text else None
    return files + ([tokenizer] if tokenizer is not None else [])


def dataset_split(ds, size: int, which: str, column: str = "input_ids") -> TokenData:
    start = 0 if which == "selection" else size
    if len(ds) < 2 * size:
        raise ValueError(f"the dataset has {len(ds)} rows; size {size} needs {2 * size} (selection and confirmation)")
    rows = ds.select(range(start, start + size))
    try:
        tokens = np.asarray(rows[column], dtype=np.int64)
    except ValueError:
        raise ValueError(f"{column} rows differ in length: a tokens-dataset needs fixed-length rows") from None
    if tokens.ndim != 2:
        raise ValueError(f"{column} must be rows of token ids, got shape {tokens.shape}")
    sets = {}
    for name in rows.column_names:
        if name == column:
            continue
        try:
            col = np.asarray(rows[name])
        except ValueError:
            continue
        if col.dtype == bool and col.shape == tokens.shape:
            sets[name] = col
    if which == "confirmation":
        refuse_shared(dataset_split(ds, size, "selection", column).tokens, tokens)
    return TokenData(tokens, sets)


def refuse_shared(selection: np.ndarray, confirmation: np.ndarray) -> None:
    seen = {r.tobytes() for r in selection}
    shared = sum(r.tobytes() in seen for r in confirmation)
    if shared:
        raise ValueError(f"{shared} confirmation rows are also selection rows: the split would not be held out")


# --- a text column: the tokenizer, and its rows -------------------------------------------------------

def tokenizer_source(manifest) -> Path:
    from verify import sources

    return sources.local_path(manifest.data.options.tokenizer, manifest.dir)


def tokenizer_file(manifest, fetch: bool) -> Path | None:
    """The tokenizer.json a text column is tokenized with: the `tokenizer` key's, else a TransformerLens
    pretrained model's own (`[model] name`: tokenizer.json of its hub repo, from the local cache,
    downloaded first when `fetch` and the hub can be reached). None: neither (the model object's
    own tokenizer, if a loader set one, is all that is left)."""
    from verify import sources

    if manifest.data.options.tokenizer:
        path = tokenizer_source(manifest)
        if not path.exists():
            raise ValueError(f"{manifest.where('[data] tokenizer')}: {path} does not exist")
        return path
    if manifest.model.loader != "pretrained":
        return None
    from huggingface_hub import try_to_load_from_cache

    from verify.loaders.pretrained import official_name

    repo, revision = official_name(manifest.model.name), manifest.model.revision or None
    found = try_to_load_from_cache(repo, "tokenizer.json", revision=revision)
    if isinstance(found, str) or not fetch:
        return Path(found) if isinstance(found, str) else None
    if not sources.hub_reachable():
        raise sources.SourceUnavailable(f"not available offline: {repo}'s tokenizer.json (a text column is tokenized with it; "
                                        "`hf download` it or name a tokenizer.json with [data] tokenizer)")
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    try:
        return Path(hf_hub_download(repo, "tokenizer.json", revision=revision))
    except EntryNotFoundError:
        raise ValueError(f"{manifest.where('[data] tokenizer')}: {repo} has no tokenizer.json; name one with "
                         "tokenizer = \"path/to/tokenizer.json\"") from None


def read_tokenizer(path: Path, manifest):
    """A tokenizers.Tokenizer from a tokenizer.json: data, no code runs."""
    from tokenizers import Tokenizer

    from verify import sources

    try:
        sources.check_regular_file(path)
        return Tokenizer.from_file(str(path))
    except Exception as err:  # noqa: BLE001 - tokenizers raises a bare Exception for a file it cannot parse
        reason = " ".join(str(err).split())
        raise ValueError(f"{manifest.where('[data] tokenizer')}: {path} is not a tokenizer.json the tokenizers library "
                         f"reads ({reason})") from None


def special_bos(tok) -> int | None:
    """The BOS of a tokenizers.Tokenizer, which has no such notion: its only special token, or the
    only one spelt like a BOS (BOS_SPELLINGS); None when that does not decide it."""
    special = {i: t.content for i, t in tok.get_added_tokens_decoder().items() if t.special}
    if len(special) == 1:
        return next(iter(special))
    named = [i for i, content in special.items() if content in BOS_SPELLINGS]
    return named[0] if len(named) == 1 else None


def text_tokenizer(subject) -> TextTokenizer:
    """The tokenizer of a text column: the `tokenizer` key's file, else the model's own (a pretrained
    model's tokenizer.json, or a tokenizer a model loader set as model.tokenizer), else an error."""
    m = subject.manifest
    path = tokenizer_file(m, fetch=True)
    if path is not None:
        tok = read_tokenizer(path, m)
        # as the manifest writes it, not the absolute path: the description is part of the fingerprint, compared across clones
        name = m.data.options.tokenizer if m.data.options.tokenizer else f"{official_name_of(m)}'s tokenizer.json"
        return TextTokenizer(lambda texts: [e.ids for e in tok.encode_batch(texts, add_special_tokens=False)],
                             special_bos(tok), name, path)
    own = getattr(subject.model, "tokenizer", None)
    if own is not None:
        return TextTokenizer(lambda texts: own(texts, add_special_tokens=False)["input_ids"], own.bos_token_id,
                             f"the model's tokenizer ({own.name_or_path or type(own).__name__})")
    raise ValueError(f"{m.where('[data] tokenizer')}: column {m.data.options.column!r} is text, which needs a tokenizer, and "
                     f"the model ({m.model.loader} loader) carries none: name a tokenizer.json with "
                     "tokenizer = \"path/to/tokenizer.json\" (relative to the manifest)")


def official_name_of(manifest) -> str:
    from verify.loaders.pretrained import official_name

    return official_name(manifest.model.name)


def text_rows(subject) -> TextRows:
    """The text column's first 2 size rows of at least `length` tokens (BOS included), truncated to it."""
    m = subject.manifest

    def make() -> TextRows:
        opts, size = m.data.options, m.data.size
        n_ctx = subject.model.cfg.n_ctx
        if opts.length > n_ctx:
            raise ValueError(f"{m.where('[data] length')}: {opts.length} tokens per row are more than the model's context of {n_ctx}")
        tok = text_tokenizer(subject)
        prepend = opts.prepend_bos is not False
        bos = opts.bos if opts.bos is not None else tok.bos
        if prepend and bos is None:
            raise ValueError(f"{m.where('[data] bos')}: {tok.name} does not say which token is BOS; give bos = ID "
                             "(or prepend_bos = false)")
        ds = subject.data("opened", lambda: open_manifest_dataset(m))
        want, kept, dropped = 2 * size, [], 0
        for start in range(0, len(ds), TEXT_CHUNK):
            texts = ds[start : start + TEXT_CHUNK][opts.column]
            if None in texts:
                raise ValueError(f"{m.where('[data] column')}: row {start + texts.index(None)} of {opts.column!r} is null, not text")
            for ids in tok.encode(texts):
                if len(kept) == want:  # rows past the last one kept are not read: not counted as dropped
                    break
                row = ([bos] if prepend else []) + list(ids)
                if len(row) < opts.length:
                    dropped += 1
                else:
                    kept.append(row[: opts.length])
            if len(kept) == want:
                break
        if len(kept) < want:
            raise ValueError(f"{m.where('[data] length')}: {len(kept)} of the dataset's {len(ds)} rows are at least {opts.length} "
                             f"tokens long; size {size} needs {want} (selection and confirmation)")
        tokens = np.asarray(kept, dtype=np.int64)
        description = (f"text column {opts.column!r} tokenized with {tok.name}, "
                       + (f"BOS {bos} prepended, " if prepend else "no BOS, ")
                       + f"truncated to {opts.length} tokens, {dropped} rows shorter dropped")
        if dropped:
            warnings.warn(f"{m.path}: tokens-dataset: {description}", stacklevel=2)
        return TextRows(tokens, dropped, description)

    return subject.data(text_key(m), make)


def text_split(subject, which: str) -> TokenData:
    """Selection = the first size rows kept, confirmation = the next size; refused when they share a row.
    A text row's tokens align with no other column: boolean columns are no position sets here."""
    rows, size = text_rows(subject).tokens, subject.manifest.data.size
    if which == "confirmation":
        refuse_shared(rows[:size], rows[size:])
    return TokenData(rows[:size] if which == "selection" else rows[size:],
                     no_sets="a text column's tokens align with no other column, so boolean columns are no position sets here")
