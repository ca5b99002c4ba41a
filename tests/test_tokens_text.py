"""tokens-dataset's text column: rows tokenized with a tokenizer.json (the `tokenizers` library) or the
model's own tokenizer, BOS prepended, truncated to `length`, shorter rows dropped and counted; the
tokenizer file hashed into the ledger; every bad input a one-line error naming the manifest and key.

The tokenizer is a WordLevel one trained here, offline, on a few words: its ids (< 64) are inside
induction-tiny's vocabulary (d_vocab 64), so that model reads them."""

import hashlib
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ROOT
from tests.test_pretrained_replica import offline_hub, write_gpt2_replica, write_hub_file
from verify import ledger, registry
from verify.manifest import ManifestError
from verify.recording import subject_record
from verify.subjects import load_subject, read_manifest
from verify.tokens import data as token_data
from verify.verdicts import failures

INDUCTION_TINY = (ROOT / "fixtures" / "induction-tiny").as_posix()
WORDS = ("the a cat dog sat ran on under mat rug big small red blue quick slow fox jumps over lazy bird sings tree "
         "house river stone").split()
LENGTH, SIZE, ROWS = 24, 20, 100


def word_tokenizer(specials=("<bos>", "<unk>")):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator([" ".join(WORDS)], trainers.WordLevelTrainer(special_tokens=list(specials)))
    return tok


def texts(seed: int = 0) -> list[str]:
    """ROWS rows of 3..39 words: about a quarter shorter than LENGTH tokens."""
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, int(rng.integers(3, 40)))) for _ in range(ROWS)]


def write_data(folder: Path, kind: str, rows: list[str]) -> str:
    import datasets

    ds = datasets.Dataset.from_dict({"text": rows, "mask": [[True] * 5 for _ in rows]})
    name = {"jsonl": "d.jsonl", "parquet": "d.parquet", "save_to_disk": "d"}[kind]
    getattr(ds, {"jsonl": "to_json", "parquet": "to_parquet", "save_to_disk": "save_to_disk"}[kind])(str(folder / name))
    return name


def write_manifest(folder: Path, data: str, claims: str = "", model: str | None = None, size: int = SIZE) -> Path:
    model = model or (f'loader = "hooked_transformer"\nweights = "{INDUCTION_TINY}/model.safetensors"\n'
                      f'config = "{INDUCTION_TINY}/model_config.json"')
    path = folder / "mine.toml"
    path.write_text(f'name = "text-subject"\ndomain = "tokens"\n[model]\n{model}\n'
                    f'[data]\nsource = "tokens-dataset"\nsize = {size}\n{data}\n{claims}')
    return path


@pytest.fixture
def project(tmp_path):
    """A folder with tokenizer.json and d.jsonl (ROWS text rows)."""
    word_tokenizer().save(str(tmp_path / "tokenizer.json"))
    write_data(tmp_path, "jsonl", texts())
    return tmp_path


TEXT_DATA = f'path = "d.jsonl"\nlength = {LENGTH}\ntokenizer = "tokenizer.json"'


def expected_rows(tok, rows: list[str], bos: int, length: int, want: int) -> tuple[np.ndarray, int]:
    """The tokenizer's own ids, BOS first, truncated; rows too short dropped and counted (up to the last kept)."""
    kept, dropped = [], 0
    for text in rows:
        if len(kept) == want:
            break
        ids = [bos, *tok.encode(text, add_special_tokens=False).ids]
        if len(ids) < length:
            dropped += 1
        else:
            kept.append(ids[:length])
    return np.array(kept), dropped


@pytest.mark.parametrize("kind", ["jsonl", "parquet", "save_to_disk"])
def test_text_rows_are_the_tokenizers_ids_bos_first_truncated_short_rows_dropped(tmp_path, kind):
    tok = word_tokenizer()
    tok.save(str(tmp_path / "tokenizer.json"))
    rows = texts()
    name = write_data(tmp_path, kind, rows)
    path = write_manifest(tmp_path, TEXT_DATA.replace("d.jsonl", name))
    want, dropped = expected_rows(tok, rows, tok.token_to_id("<bos>"), LENGTH, 2 * SIZE)
    assert 0 < dropped < ROWS - 2 * SIZE and tok.get_vocab_size() <= 64  # the data exercises dropping; ids fit d_vocab
    subject = load_subject(read_manifest(path), "cpu")
    with pytest.warns(UserWarning, match=rf"truncated to {LENGTH} tokens, {dropped} rows shorter dropped"):
        selection = token_data.split(subject, "selection")
    confirmation = token_data.split(subject, "confirmation")
    assert (selection.tokens == want[:SIZE]).all() and (confirmation.tokens == want[SIZE:]).all()
    assert (selection.tokens[:, 0] == tok.token_to_id("<bos>")).all()
    # a list-of-bool column is no position set of a text column: its positions are not the tokens'
    assert selection.names() == ["all", "seen_before"]
    with pytest.raises(ValueError, match=r"no position set 'mask' in this data \(sets: all, seen_before\); a text column's "
                                         "tokens align with no other column, so boolean columns are no position sets here"):
        selection.take(4).positions("mask")
    _, description = token_data.fingerprint_batch(subject)
    assert description == (f"first 16 confirmation sequences (tokens-dataset, size {SIZE}, text column 'text' tokenized with "
                           f"tokenizer.json, BOS 0 prepended, truncated to {LENGTH} tokens, {dropped} rows shorter dropped)")
    again = load_subject(read_manifest(path), "cpu")  # a fresh data cache: the same rows
    with pytest.warns(UserWarning):
        assert (token_data.split(again, "confirmation").tokens == confirmation.tokens).all()
    record = subject_record(subject)
    hashed = {Path(f.path).name: f.sha256 for f in record.files}
    assert hashed["tokenizer.json"] == hashlib.sha256((tmp_path / "tokenizer.json").read_bytes()).hexdigest()
    assert record.fingerprint.batch == description


def test_prepend_bos_false_and_an_explicit_bos(project):
    tok = word_tokenizer()
    path = write_manifest(project, TEXT_DATA + "\nprepend_bos = false")
    subject = load_subject(read_manifest(path), "cpu")
    with pytest.warns(UserWarning, match="no BOS, truncated"):
        rows = token_data.split(subject, "selection").tokens
    first_long = next(t for t in texts() if len(tok.encode(t, add_special_tokens=False).ids) >= LENGTH)
    assert rows[0].tolist() == tok.encode(first_long, add_special_tokens=False).ids[:LENGTH]
    path.write_text(path.read_text().replace("prepend_bos = false", "bos = 5"))
    subject = load_subject(read_manifest(path), "cpu")
    with pytest.warns(UserWarning, match="BOS 5 prepended"):
        assert (token_data.split(subject, "selection").tokens[:, 0] == 5).all()


def test_the_models_own_tokenizer_is_used_when_no_file_is_named(project):
    """A model loader that sets model.tokenizer (TransformerLens does for its pretrained models when it
    loads a tokenizer): its ids, its BOS; the description names it."""
    from transformers import PreTrainedTokenizerFast

    tok = word_tokenizer()
    path = write_manifest(project, f'path = "d.jsonl"\nlength = {LENGTH}')
    subject = load_subject(read_manifest(path), "cpu")
    subject.model.tokenizer = own = PreTrainedTokenizerFast(tokenizer_object=word_tokenizer(), bos_token="<bos>")
    want, dropped = expected_rows(tok, texts(), tok.token_to_id("<bos>"), LENGTH, 2 * SIZE)
    # its class name, which transformers 5 gives as TokenizersBackend: a tokenizer built in memory has no name_or_path
    with pytest.warns(UserWarning, match=rf"tokenized with the model's tokenizer \({type(own).__name__}\)"):
        assert (token_data.split(subject, "selection").tokens == want[:SIZE]).all()
    assert f"{dropped} rows shorter dropped" in token_data.fingerprint_batch(subject)[1]


@pytest.fixture
def gpt2_with_tokenizer(tmp_path_factory, monkeypatch):
    """A Hugging Face cache replica of "gpt2" (small shapes: vocab 50, n_ctx 16) whose repo holds a
    tokenizer.json with one special token, <|endoftext|>, as gpt2's has; offline."""
    home = tmp_path_factory.mktemp("hf")
    write_gpt2_replica(home / "hub")
    saved = home / "tokenizer.json"
    word_tokenizer(specials=("<|endoftext|>",)).save(str(saved))
    link = write_hub_file(home / "hub", "gpt2", "tokenizer.json", saved.read_bytes())
    with offline_hub(home / "hub", monkeypatch):
        yield link


def test_a_pretrained_models_own_tokenizer_json_from_the_cache(project, gpt2_with_tokenizer):
    """[model] name = "gpt2": the hub repo's tokenizer.json, read from the cache as data; its only
    special token is BOS; the file is hashed into the ledger like the model's."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(gpt2_with_tokenizer))
    path = write_manifest(project, 'path = "d.jsonl"\nlength = 8', model='name = "gpt2"')
    subject = load_subject(read_manifest(path), "cpu")
    want, dropped = expected_rows(tok, texts(), tok.token_to_id("<|endoftext|>"), 8, 2 * SIZE)
    with pytest.warns(UserWarning, match=f"{dropped} rows shorter dropped"):
        assert (token_data.split(subject, "selection").tokens == want[:SIZE]).all()
    assert (f"text column 'text' tokenized with gpt2's tokenizer.json, BOS 0 prepended, truncated to 8 tokens, {dropped} rows "
            in token_data.fingerprint_batch(subject)[1])
    hashed = {f.role: f.sha256 for f in subject_record(subject, fingerprint=False).files}
    assert hashed["data: tokenizer.json"] == hashlib.sha256(gpt2_with_tokenizer.read_bytes()).hexdigest()


# --- one-line errors -------------------------------------------------------------------------------------

@pytest.mark.parametrize("data, message", [
    (f'path = "d.jsonl"\nlength = 1\ntokenizer = "tokenizer.json"',
     r"\[data\]: length: 1 tokens per row; a loss needs at least 2"),
    ('path = "d.jsonl"\ntokenizer = "tokenizer.json"',
     r"\[data\]: tokenizer: goes with length \(a text column, tokenized\); without it column 'input_ids' is read as token ids"),
    (TEXT_DATA + "\nprepend_bos = false\nbos = 3", r"\[data\]: bos: given with prepend_bos = false"),
    (TEXT_DATA + "\nlenght = 3", r"\[data\]: unknown key 'lenght'"),
])
def test_bad_text_keys_are_manifest_errors_at_collection(project, data, message):
    path = write_manifest(project, data)
    with pytest.raises(ManifestError, match=message) as err:
        read_manifest(path)
    assert str(err.value).startswith(str(path)) and "\n" not in str(err.value)


@pytest.mark.parametrize("data, message", [
    (TEXT_DATA.replace('length', 'column = "body"\nlength'), r"\[data\] column: .*d.jsonl has no column 'body' \(columns: text, mask\)"),
    ('path = "d.jsonl"', r"\[data\] column: .*d.jsonl has no column 'input_ids' \(columns: text, mask\)"),
    ('path = "d.jsonl"\ncolumn = "text"', r"\[data\] column: 'text' holds text; give `length = N` \(tokens per row\) to tokenize it"),
    (TEXT_DATA.replace('"tokenizer.json"', '"missing.json"'), r"\[data\] tokenizer: .*missing.json does not exist"),
])
def test_bad_columns_and_files_are_one_line_errors_at_load(project, data, message):
    path = write_manifest(project, data)
    with pytest.raises(ValueError, match=message) as err:
        load_subject(read_manifest(path), "cpu")
    assert str(err.value).startswith(str(path)) and "\n" not in str(err.value)


@pytest.mark.parametrize("data, size, setup, message", [
    (f'path = "d.jsonl"\nlength = {LENGTH}', SIZE, None,
     r"\[data\] tokenizer: column 'text' is text, which needs a tokenizer, and the model \(hooked_transformer loader\) carries "
     r"none: name a tokenizer.json with tokenizer = \"path/to/tokenizer.json\""),
    (TEXT_DATA, SIZE, lambda folder: (folder / "tokenizer.json").write_text('{"version": "1.0", "model": '),
     r"\[data\] tokenizer: .*tokenizer.json is not a tokenizer.json the tokenizers library reads \("),
    (TEXT_DATA.replace(f"length = {LENGTH}", "length = 64"), SIZE, None,
     r"\[data\] length: 64 tokens per row are more than the model's context of 41"),
    (TEXT_DATA, SIZE, lambda folder: word_tokenizer(specials=("<pad>", "<unk>")).save(str(folder / "tokenizer.json")),
     r"\[data\] bos: tokenizer.json does not say which token is BOS; give bos = ID \(or prepend_bos = false\)"),
    (TEXT_DATA, 60, None,
     rf"\[data\] length: \d+ of the dataset's {ROWS} rows are at least {LENGTH} tokens long; size 60 needs 120"),
])
def test_what_only_the_data_can_tell_is_a_one_line_error_when_measured(project, data, size, setup, message):
    path = write_manifest(project, data, size=size)
    if setup is not None:
        setup(project)
    subject = load_subject(read_manifest(path), "cpu")
    with pytest.raises(ValueError, match=message) as err:
        token_data.split(subject, "selection")
    assert str(err.value).startswith(str(path)) and "\n" not in str(err.value)


def test_a_token_id_column_is_read_as_before_and_refused_as_text(tmp_path):
    """Without `length` the column (input_ids by default, or `column`) is token ids, rows as written;
    with it, a column of ids is refused: only text is tokenized."""
    import datasets

    rows = np.random.default_rng(0).integers(1, 64, size=(2 * SIZE, 12)).tolist()
    datasets.Dataset.from_dict({"ids": rows}).to_json(str(tmp_path / "d.jsonl"))
    path = write_manifest(tmp_path, 'path = "d.jsonl"\ncolumn = "ids"')
    subject = load_subject(read_manifest(path), "cpu")
    assert token_data.split(subject, "confirmation").tokens.tolist() == rows[SIZE:]
    path = write_manifest(tmp_path, 'path = "d.jsonl"\ncolumn = "ids"\nlength = 8\nbos = 0')
    with pytest.raises(ValueError, match=r"\[data\] column: 'ids' holds List\(Value\('int64'\)\), not text; `length` goes with "
                                         r"a text column \(token ids are read without it\)"):
        load_subject(read_manifest(path), "cpu")


def test_shared_rows_between_the_splits_are_refused(project):
    write_data(project, "jsonl", [" ".join(WORDS)] * ROWS)  # every row the same
    path = write_manifest(project, TEXT_DATA)
    subject = load_subject(read_manifest(path), "cpu")
    with pytest.raises(ValueError, match=f"{SIZE} confirmation rows are also selection rows"):
        token_data.split(subject, "confirmation")


# --- a project of manifests alone, on text -----------------------------------------------------------------

def test_a_manifest_only_project_measures_a_claim_on_text(pytester):
    """A pytest.ini, a manifest, a tokenizer.json and a jsonl of text: plain `pytest` measures an
    attention_pattern claim on the tokenized rows; the ledger holds the tokenizer file's sha256 and the
    data description; a bound moved past the measured value fails the claim."""
    folder = pytester.path / "subjects"
    folder.mkdir()
    word_tokenizer().save(str(folder / "tokenizer.json"))
    write_data(folder, "jsonl", texts())
    claim = ("[claims.attention_pattern]\nlayer = 0\nhead = 1\npattern = \"previous_token\"\n"
             "min_score = 0.5\nmax_score = 0.9\nmin_margin_over_random = 0.3\n")
    path = write_manifest(folder, TEXT_DATA, claim)
    pytester.makefile(".ini", pytest="[pytest]\nverify_subjects_dir = subjects\n")
    result = pytester.runpytest("-p", "no:cacheprovider", "--claims-report", "out")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*PASS head 0.1 mean attention to the previous token*"])
    written = ledger.read(pytester.path / "out" / "ledger.json")
    subject = written.subjects["text-subject"]
    hashed = {Path(f.path).name: f.sha256 for f in subject.files}
    assert hashed["tokenizer.json"] == hashlib.sha256((folder / "tokenizer.json").read_bytes()).hexdigest()
    assert f"truncated to {LENGTH} tokens" in subject.fingerprint.batch
    assert written.record("text-subject", "attention_pattern").verdict == "held"
    path.write_text(path.read_text().replace("min_score = 0.5", "min_score = 0.8"))
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(failed=1)


def test_the_claim_is_measured_on_the_text_rows(project):
    """In process: the same claim passes on the text rows and fails with its bound past the measured value."""
    claim = registry.get_claim("attention_pattern")
    path = write_manifest(project, TEXT_DATA, "[claims.attention_pattern]\nlayer = 0\nhead = 1\npattern = \"previous_token\"\n"
                          "min_score = 0.5\n")
    subject = load_subject(read_manifest(path), "cpu")
    with pytest.warns(UserWarning):
        checks = claim.check(subject, subject.manifest.claims["attention_pattern"])
    assert not failures(checks)
    score = checks[0].estimate.value
    assert 0.5 < score < 0.9 and "queries, all" in checks[0].what
    assert failures(claim.check(subject, claim.params(layer=0, head=1, pattern="previous_token", min_score=score + 0.05)))
