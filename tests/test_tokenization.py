"""Tests for tokenization.py and build_vocab.py.

build_vocab.py is only run as a command: importing a script would define its
absl flags in the test process, where they clash with other scripts' flags of
the same name (--do_lower_case).

Expected tokens are written out by hand from BERT's documented behaviour
(docs/architecture.md, section 6); SentencePiece results are checked against the
sentencepiece library itself.
"""

import json
import os
import random
import subprocess
import sys

import pytest

import script_helpers
import tokenization

REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

# A hand-made WordPiece vocab; ids are the list indices.
HAND_VOCAB = SPECIALS + [
    "un", "##want", "##ed", "want", "wa", "##nt", "run", "runn", "##ing",
    "##ning", "##s", ",", "a", "##a", "hello", "world", "!",
]


def _write_lines(path, lines):
  with open(str(path), "w", encoding="utf-8") as writer:
    for line in lines:
      writer.write(line + "\n")
  return str(path)


@pytest.fixture
def hand_tokenizer(tmp_path):
  vocab_file = _write_lines(tmp_path / "vocab.txt", HAND_VOCAB)
  return tokenization.FullTokenizer(vocab_file, do_lower_case=True)


# --- BasicTokenizer ----------------------------------------------------------


def test_accents_stripped_only_when_lower_casing():
  lower = tokenization.BasicTokenizer(do_lower_case=True)
  cased = tokenization.BasicTokenizer(do_lower_case=False)
  assert lower.tokenize(u"Héllo WÖRLD") == ["hello", "world"]
  assert cased.tokenize(u"Héllo WÖRLD") == [u"Héllo", u"WÖRLD"]
  # An already decomposed accent (e + U+0301) is stripped as well.
  assert lower.tokenize(u"Cafe\u0301") == ["cafe"]


def test_cjk_ideographs_are_single_tokens():
  tokenizer = tokenization.BasicTokenizer(do_lower_case=True)
  assert tokenizer.tokenize(u"ab中文cd") == ["ab", u"中", u"文", "cd"]
  # CJK Extension B (U+20000) is an ideograph block too.
  assert tokenizer.tokenize(u"x\U00020000y") == ["x", u"\U00020000", "y"]
  # Hiragana is not an ideograph block: it stays one word.
  assert tokenizer.tokenize(u"こんにちは") == [u"こんにちは"]


def test_punctuation_is_split_off():
  tokenizer = tokenization.BasicTokenizer(do_lower_case=False)
  assert tokenizer.tokenize("hi,there!  ok.") == [
      "hi", ",", "there", "!", "ok", "."]
  # Unicode punctuation (categories Pi, Pf, Pd, Po).
  assert tokenizer.tokenize(u"«oui»—non¿") == [
      u"«", "oui", u"»", u"—", "non", u"¿"]
  # ASCII symbols that Unicode does not call punctuation are split too ...
  assert tokenizer.tokenize("$5^2`x") == ["$", "5", "^", "2", "`", "x"]
  # ... but a non-ASCII symbol (the euro sign, category Sc) is not.
  assert tokenizer.tokenize(u"5€") == [u"5€"]


def test_mixed_whitespace():
  tokenizer = tokenization.BasicTokenizer(do_lower_case=True)
  text = u" a\tb\u3000c\xa0d\ne\r f  "
  assert tokenizer.tokenize(text) == ["a", "b", "c", "d", "e", "f"]


def test_control_characters_are_dropped():
  tokenizer = tokenization.BasicTokenizer(do_lower_case=True)
  # NUL, BEL (Cc), zero-width space and soft hyphen (Cf), U+FFFD.
  text = u"a\x00b\x07c\u200bd\xade\ufffdf"
  assert tokenizer.tokenize(text) == ["abcdef"]


def test_bytes_input_is_decoded():
  tokenizer = tokenization.BasicTokenizer(do_lower_case=True)
  assert tokenizer.tokenize(u"Héllo".encode("utf-8") + b"\xff") == ["hello"]
  with pytest.raises(ValueError, match="Unsupported string type"):
    tokenization.convert_to_unicode(42)


def test_character_classes():
  assert tokenization._is_whitespace(u"\u3000")
  assert tokenization._is_whitespace(u"\xa0")
  assert not tokenization._is_whitespace("a")
  assert tokenization._is_control(u"\x07")
  assert tokenization._is_control(u"\u200b")
  assert not tokenization._is_control("\t")
  assert not tokenization._is_control("\n")
  assert tokenization._is_punctuation("-")
  assert tokenization._is_punctuation(u"、")
  assert not tokenization._is_punctuation("A")
  assert not tokenization._is_punctuation(" ")


# --- WordPiece ---------------------------------------------------------------


def test_greedy_longest_match_first():
  vocab = {token: i for i, token in enumerate(HAND_VOCAB)}
  tokenizer = tokenization.WordpieceTokenizer(vocab)
  assert tokenizer.tokenize("unwanted") == ["un", "##want", "##ed"]
  # Longest first: "runn" + "##ing", not "run" + "##ning".
  assert tokenizer.tokenize("running") == ["runn", "##ing"]
  assert tokenizer.tokenize("wants want") == ["want", "##s", "want"]
  assert tokenizer.tokenize("") == []


def test_unknown_pieces_make_the_whole_word_unk():
  vocab = {token: i for i, token in enumerate(HAND_VOCAB)}
  tokenizer = tokenization.WordpieceTokenizer(vocab)
  # "##x" is missing, so "unwantedx" cannot be covered: one [UNK] for the word.
  assert tokenizer.tokenize("unwantedx running") == ["[UNK]", "runn", "##ing"]
  assert tokenizer.tokenize("zebra") == ["[UNK]"]


def test_words_longer_than_200_characters_are_unk():
  vocab = {token: i for i, token in enumerate(HAND_VOCAB)}
  tokenizer = tokenization.WordpieceTokenizer(vocab)
  assert tokenizer.tokenize("a" * 200) == ["a"] + ["##a"] * 199
  assert tokenizer.tokenize("a" * 201) == ["[UNK]"]


def test_full_tokenizer(hand_tokenizer):
  assert hand_tokenizer.tokenize(u"UNwant\u00E9d,running") == [
      "un", "##want", "##ed", ",", "runn", "##ing"]
  assert hand_tokenizer.tokenize(u"Hello  wörld!") == ["hello", "world", "!"]


def test_id_round_trip(hand_tokenizer):
  tokens = ["[CLS]", "un", "##want", "##ed", ",", "runn", "##ing", "[SEP]"]
  ids = hand_tokenizer.convert_tokens_to_ids(tokens)
  assert ids == [2, 5, 6, 7, 16, 12, 13, 3]
  assert hand_tokenizer.convert_ids_to_tokens(ids) == tokens
  assert hand_tokenizer.vocab["[MASK]"] == 4
  assert hand_tokenizer.inv_vocab[0] == "[PAD]"
  assert len(hand_tokenizer.vocab) == len(HAND_VOCAB)
  with pytest.raises(KeyError):
    hand_tokenizer.convert_tokens_to_ids(["zebra"])


def test_duplicate_vocab_line_keeps_first_id(tmp_path):
  vocab_file = _write_lines(tmp_path / "vocab.txt",
                            ["[UNK]", "a", "b", "a", "c"])
  vocab = tokenization.load_vocab(vocab_file)
  assert list(vocab.items()) == [("[UNK]", 0), ("a", 1), ("b", 2), ("c", 4)]
  tokenizer = tokenization.FullTokenizer(vocab_file)
  assert tokenizer.convert_tokens_to_ids(["a", "c"]) == [1, 4]
  assert tokenizer.convert_ids_to_tokens([3, 4]) == ["a", "c"]


def test_missing_vocab_file_names_the_path(tmp_path):
  path = str(tmp_path / "nope" / "vocab.txt")
  with pytest.raises(ValueError, match="nope"):
    tokenization.FullTokenizer(path)


@pytest.mark.parametrize("lines", [[], ["", "  ", ""]])
def test_empty_vocab_file_names_the_path(tmp_path, lines):
  path = _write_lines(tmp_path / "empty_vocab.txt", lines)
  with pytest.raises(ValueError, match="empty_vocab.txt.*empty"):
    tokenization.FullTokenizer(path)


def test_vocab_without_unk_names_the_path(tmp_path):
  path = _write_lines(tmp_path / "no_unk.txt", ["[CLS]", "a", "##b"])
  with pytest.raises(ValueError, match=r"no_unk.txt.*\[UNK\]"):
    tokenization.FullTokenizer(path)


def test_validate_case_matches_checkpoint():
  uncased = "/models/uncased_L-12_H-768_A-12/bert_model.ckpt"
  cased = "/models/cased_L-12_H-768_A-12/bert_model.ckpt"
  tokenization.validate_case_matches_checkpoint(True, uncased)
  tokenization.validate_case_matches_checkpoint(False, cased)
  with pytest.raises(ValueError, match="do_lower_case=True"):
    tokenization.validate_case_matches_checkpoint(False, uncased)
  with pytest.raises(ValueError, match="do_lower_case=False"):
    tokenization.validate_case_matches_checkpoint(True, cased)
  # MobileBERT checkpoint names are not recognised, as in BERT.
  tokenization.validate_case_matches_checkpoint(
      False,
      "/m/uncased_L-24_H-128_B-512_A-4_F-4_OPT/mobilebert_variables.ckpt")
  tokenization.validate_case_matches_checkpoint(False, None)


# --- SentencePiece -----------------------------------------------------------

_SPM_WORDS = ("the quick brown fox jumps over a lazy dog while many small "
              "birds sing in green trees near quiet rivers").split()


# Trains one SentencePiece model per JSON argument.  It runs in a separate
# process because SentencePiece training segfaults in a process that has
# imported TensorFlow 1.15 (loading and encoding are fine).
_SPM_TRAIN_SCRIPT = """
import json, sys
import sentencepiece
corpus, prefix, options = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
sentencepiece.SentencePieceTrainer.train(
    input=corpus, model_prefix=prefix, vocab_size=60, hard_vocab_limit=False,
    character_coverage=1.0, minloglevel=2, **options)
"""


@pytest.fixture(scope="module")
def spm_models(tmp_path_factory):
  """Trains three tiny SentencePiece models on generated lower-case text."""
  pytest.importorskip("sentencepiece")
  model_dir = tmp_path_factory.mktemp("spm")
  rng = random.Random(1234)
  sentences = [" ".join(rng.choice(_SPM_WORDS) for _ in range(8))
               for _ in range(300)]
  corpus = _write_lines(model_dir / "corpus.txt", sentences)

  def train(name, **options):
    prefix = str(model_dir / name)
    subprocess.run(
        [sys.executable, "-c", _SPM_TRAIN_SCRIPT, corpus, prefix,
         json.dumps(options)],
        check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        timeout=120)
    return prefix + ".model"

  return {
      "user_defined": train("user_defined", user_defined_symbols=SPECIALS),
      # The recipe of the SentencePieceTokenizer docstring.
      "control": train("control", pad_id=0, pad_piece="[PAD]", unk_id=1,
                       unk_piece="[UNK]", bos_id=-1, eos_id=-1,
                       control_symbols=["[CLS]", "[SEP]", "[MASK]"]),
      "plain": train("plain"),
  }


def _processor(model_file):
  import sentencepiece  # pylint: disable=g-import-not-at-top
  processor = sentencepiece.SentencePieceProcessor()
  processor.Load(model_file)
  return processor


@pytest.mark.parametrize("kind", ["user_defined", "control"])
def test_sentencepiece_round_trip(spm_models, kind):
  model_file = spm_models[kind]
  processor = _processor(model_file)
  tokenizer = tokenization.create_tokenizer(spm_model_file=model_file)
  text = "The Quick brown fox jumps over a LAZY dog"
  lowered = text.lower()

  tokens = tokenizer.tokenize(text)
  assert tokens == processor.EncodeAsPieces(lowered)
  ids = tokenizer.convert_tokens_to_ids(tokens)
  assert ids == processor.EncodeAsIds(lowered)
  assert tokenizer.convert_ids_to_tokens(ids) == tokens
  assert "".join(tokens).replace(u"\u2581", " ").strip() == lowered

  assert len(tokenizer.vocab) == processor.GetPieceSize()
  for token in SPECIALS:
    assert tokenizer.vocab[token] == processor.PieceToId(token)
    assert tokenizer.inv_vocab[tokenizer.vocab[token]] == token


def test_sentencepiece_docstring_recipe_gives_ids_0_to_4(spm_models):
  tokenizer = tokenization.create_tokenizer(
      spm_model_file=spm_models["control"])
  assert [tokenizer.vocab[token] for token in SPECIALS] == [0, 1, 2, 3, 4]


def test_sentencepiece_case_and_unknown_characters(spm_models):
  model_file = spm_models["user_defined"]
  cased = tokenization.SentencePieceTokenizer(model_file, do_lower_case=False)
  lower = tokenization.SentencePieceTokenizer(model_file, do_lower_case=True)
  # The corpus has no capital letters and no Greek: both are unknown.
  assert lower.tokenize("Fox") == lower.tokenize("fox")
  assert "[UNK]" not in lower.tokenize("Fox")
  cased_tokens = cased.tokenize(u"Fox Ω")
  assert cased_tokens.count("[UNK]") == 2
  ids = cased.convert_tokens_to_ids(cased_tokens)
  assert ids.count(cased.vocab["[UNK]"]) == 2


def test_sentencepiece_missing_special_tokens(spm_models):
  with pytest.raises(ValueError) as error:
    tokenization.SentencePieceTokenizer(spm_models["plain"])
  message = str(error.value)
  assert "plain.model" in message
  for token in SPECIALS:
    assert token in message


def test_sentencepiece_bad_files(tmp_path):
  with pytest.raises(ValueError, match="missing.model"):
    tokenization.SentencePieceTokenizer(str(tmp_path / "missing.model"))
  garbage = tmp_path / "garbage.model"
  garbage.write_bytes(b"not a model")
  with pytest.raises(ValueError, match="garbage.model"):
    tokenization.SentencePieceTokenizer(str(garbage))


def test_sentencepiece_missing_package(monkeypatch, tmp_path):
  monkeypatch.setitem(sys.modules, "sentencepiece", None)
  with pytest.raises(ImportError, match="pip install sentencepiece"):
    tokenization.SentencePieceTokenizer(str(tmp_path / "any.model"))


# --- create_tokenizer --------------------------------------------------------


def test_create_tokenizer_arguments(tmp_path, spm_models):
  vocab_file = _write_lines(tmp_path / "vocab.txt", HAND_VOCAB)
  with pytest.raises(ValueError, match="One of vocab_file .* or spm_model_file"):
    tokenization.create_tokenizer()
  with pytest.raises(ValueError, match="only one"):
    tokenization.create_tokenizer(vocab_file=vocab_file,
                                  spm_model_file=spm_models["user_defined"])
  wordpiece = tokenization.create_tokenizer(vocab_file=vocab_file,
                                            do_lower_case=False)
  assert isinstance(wordpiece, tokenization.FullTokenizer)
  assert wordpiece.tokenize("Hello hello") == ["[UNK]", "hello"]
  sentencepiece_tokenizer = tokenization.create_tokenizer(
      vocab_file="", spm_model_file=spm_models["user_defined"])
  assert isinstance(sentencepiece_tokenizer,
                    tokenization.SentencePieceTokenizer)


# --- build_vocab -------------------------------------------------------------

# Worked by hand.  Words: walking 1, talking 1, "," 1, talked 1.
# Characters: a, k, l x3; g, i, n, t x2; ",", d, e, w x1 ("," sorts before
# letters).  Word-final pieces ending two words: ##alking ##lking ##king ##ing
# ##ng (2 each); ##alked ##lked ##ked ##ed end only "talked" and are left
# out.  Whole words of two or more characters count 1 each.
WALK_TEXT = ["Walking talking,", "TALKED"]
WALK_CHARS = ["a", "k", "l", "g", "i", "n", "t", ",", "d", "e", "w"]
WALK_VOCAB = (SPECIALS + WALK_CHARS + ["##" + c for c in WALK_CHARS] +
              ["##alking", "##ing", "##king", "##lking", "##ng",
               "talked", "talking", "walking"])


def test_build_wordpiece_vocab_hand_computed():
  assert tokenization.build_wordpiece_vocab(WALK_TEXT, 1000, True) == (
      WALK_VOCAB)
  assert tokenization.build_wordpiece_vocab(WALK_TEXT, 29, True) == (
      WALK_VOCAB[:29])
  # Without lower-casing, "Walking" and "talking" share no two-letter tail
  # with "TALKED", and capitals are separate characters.
  cased = tokenization.build_wordpiece_vocab(WALK_TEXT, 1000, False)
  assert "W" in cased and "##D" in cased and "TALKED" in cased


def test_build_wordpiece_vocab_too_small():
  with pytest.raises(ValueError, match="vocab_size=20 .*27 entries"):
    tokenization.build_wordpiece_vocab(WALK_TEXT, 20, True)
  with pytest.raises(ValueError, match="no words"):
    tokenization.build_wordpiece_vocab(["", "  \t"], 100, True)


def test_built_vocab_covers_its_text(tmp_path):
  rng = random.Random(7)
  words = ("Mobile BERT compresses a large teacher into a thin student, "
           "keeping accuracy on question answering and classification; "
           "distillation transfers feature maps and attention. Ünïcode "
           "words, 中文 and numbers like 2020 appear too!").split()
  lines = [" ".join(rng.choice(words) for _ in range(12)) for _ in range(200)]
  vocab = tokenization.build_wordpiece_vocab(lines, 80, True)
  assert len(vocab) == 80
  assert vocab[:5] == SPECIALS
  assert len(set(vocab)) == len(vocab)
  vocab_file = _write_lines(tmp_path / "vocab.txt", vocab)
  tokenizer = tokenization.FullTokenizer(vocab_file, do_lower_case=True)
  for line in lines:
    tokens = tokenizer.tokenize(line)
    assert "[UNK]" not in tokens
    # No characters are lost: the pieces spell out the lower-cased words.
    assert "".join(t[2:] if t.startswith("##") else t for t in tokens) == (
        "".join(tokenization.BasicTokenizer(True).tokenize(line)))
  # "and" is listed twice above, so it is the most frequent word.
  assert "and" in vocab
  assert "##中" in vocab and u"ü" not in vocab


def test_build_vocab_script(tmp_path):
  _write_lines(tmp_path / "part1.txt", WALK_TEXT[:1])
  _write_lines(tmp_path / "part2.txt", WALK_TEXT[1:])
  output_file = str(tmp_path / "vocab.txt")
  script_helpers.run_script("build_vocab.py", [
      "--input_file=%s" % (tmp_path / "part*.txt"),
      "--output_file=%s" % output_file, "--vocab_size=29", "--do_lower_case"])
  with open(output_file, encoding="utf-8") as reader:
    written = reader.read().split("\n")
  assert written[-1] == ""
  assert written[:-1] == WALK_VOCAB[:29]

  code, output = script_helpers.run_script(
      "build_vocab.py", ["--input_file=%s" % (tmp_path / "nothing*.txt"),
                         "--output_file=%s" % output_file],
      expect_success=False)
  assert code == 1
  assert "--input_file" in output and "matches no file" in output


def test_truncate_longer_first_pops_the_longer_end():
  a, b = list("abcde"), list("xyz")
  tokenization.truncate_longer_first(a, b, 5)
  # 8 -> 5: a loses e and d (5 > 3, 4 > 3), then the tie 3 = 3 trims b.
  assert (a, b) == (list("abc"), list("xy"))


class _ScriptedCoin(object):
  """random.Random stand-in whose random() replays fixed values."""

  def __init__(self, values):
    self.values = list(values)

  def random(self):
    return self.values.pop(0)


def test_truncate_longer_at_random_end_uses_the_coin():
  a, b = list("abcdef"), list("xy")
  # < 0.5 deletes the front, otherwise the back.
  tokenization.truncate_longer_at_random_end(a, b, 5, _ScriptedCoin([0.1, 0.9,
                                                                   0.2]))
  assert (a, b) == (list("cde"), list("xy"))
  a, b = list("ab"), list("xyz")
  tokenization.truncate_longer_at_random_end(a, b, 4, random.Random(0))
  assert a == list("ab") and len(b) == 2 and "".join(b) in ("xy", "yz")


def test_build_vocab_bad_flags_end_in_one_line_each(tmp_path):
  code, output = script_helpers.run_script(
      "build_vocab.py", ["--input_file=%s" % (tmp_path / "none*.txt"),
                         "--output_file=%s" % (tmp_path / "vocab.txt"),
                         "--vocab_size=3"], expect_success=False)
  assert code == 1 and "Traceback" not in output
  lines = [l for l in output.splitlines() if l.startswith("build_vocab.py: ")]
  assert len(lines) == 2, output[-3000:]
  assert "--vocab_size=3 must be larger than the 5 special tokens" in lines[0]
  assert "--input_file" in lines[1] and "none*.txt" in lines[1]
  assert not os.path.exists(str(tmp_path / "vocab.txt"))
  code, output = script_helpers.run_script("build_vocab.py", [],
                                           expect_success=False)
  assert code == 1 and "FATAL" not in output
  assert [l for l in output.splitlines() if l.startswith("build_vocab.py: ")
         ] == ["build_vocab.py: --input_file is required.",
               "build_vocab.py: --output_file is required."], output[-2000:]
