"""Tokenizers: BERT's WordPiece tokenizer and a SentencePiece alternative.

`FullTokenizer` behaves exactly like google-research/bert's tokenizer (the
released MobileBERT checkpoint ships BERT's 30522-entry uncased `vocab.txt`),
and the SQuAD post-processing reuses `BasicTokenizer` to map predictions back
to the original text, so its behaviour must not drift from BERT's.

`SentencePieceTokenizer` is the alternative for models trained with a
SentencePiece vocabulary.  Scripts never build either class directly: they
call `create_tokenizer(vocab_file=..., spm_model_file=...)` from the
`--vocab_file` / `--spm_model_file` flags.
"""

import collections
import re
import unicodedata

import tensorflow.compat.v1 as tf

import file_checks

# Tokens every model input needs; a SentencePiece model must define all of
# them (see SentencePieceTokenizer).  A WordPiece vocab only has to define
# UNK_TOKEN for tokenization itself.
PAD_TOKEN = "[PAD]"
UNK_TOKEN = "[UNK]"
CLS_TOKEN = "[CLS]"
SEP_TOKEN = "[SEP]"
MASK_TOKEN = "[MASK]"
SPECIAL_TOKENS = (PAD_TOKEN, UNK_TOKEN, CLS_TOKEN, SEP_TOKEN, MASK_TOKEN)

# Google's original BERT checkpoints, by the directory name they were released
# under; used to catch a --do_lower_case that contradicts the checkpoint.
_LOWER_CASED_BERT_MODELS = (
    "uncased_L-24_H-1024_A-16", "uncased_L-12_H-768_A-12",
    "multilingual_L-12_H-768_A-12", "chinese_L-12_H-768_A-12")
_CASED_BERT_MODELS = (
    "cased_L-12_H-768_A-12", "cased_L-24_H-1024_A-16",
    "multi_cased_L-12_H-768_A-12")


def validate_case_matches_checkpoint(do_lower_case, init_checkpoint):
  """Checks --do_lower_case against the name of a known BERT checkpoint.

  Only Google's original BERT checkpoints are recognised, by a path of the form
  `.../<model name>/bert_model.ckpt`.  Any other checkpoint (every MobileBERT
  checkpoint, whose file is `mobilebert_variables.ckpt`, included) cannot be
  checked and passes silently, as in BERT.

  Args:
    do_lower_case: the value of --do_lower_case.
    init_checkpoint: the value of --init_checkpoint (may be None or empty).

  Raises:
    ValueError: the checkpoint is a known cased model and lower-casing is on,
      or the other way round.
  """
  if not init_checkpoint:
    return
  match = re.match("^.*?([A-Za-z0-9_-]+)/bert_model.ckpt", init_checkpoint)
  if match is None:
    return
  model_name = match.group(1)

  if model_name in _LOWER_CASED_BERT_MODELS and not do_lower_case:
    checkpoint_case = "an uncased (lower-cased)"
  elif model_name in _CASED_BERT_MODELS and do_lower_case:
    checkpoint_case = "a cased"
  else:
    return
  raise ValueError(
      "--do_lower_case=%s does not match --init_checkpoint=%s: %s is %s BERT "
      "model, so pass --do_lower_case=%s to tokenize as it was pre-trained."
      % (do_lower_case, init_checkpoint, model_name, checkpoint_case,
         not do_lower_case))


def convert_to_unicode(text):
  """Returns `text` as `str`, decoding bytes as UTF-8 and dropping bad bytes."""
  if isinstance(text, str):
    return text
  if isinstance(text, bytes):
    return text.decode("utf-8", "ignore")
  raise ValueError("Unsupported string type: %s" % type(text))


def printable_text(text):
  """Returns `text` in a form suitable for print or tf.logging."""
  return convert_to_unicode(text)


def _read_vocab_tokens(vocab_file):
  """The stripped lines of a vocabulary file; a token's id is its index.

  Raises:
    ValueError: the file does not exist or holds no token.
  """
  if not vocab_file or not tf.gfile.Exists(vocab_file):
    raise ValueError("Vocabulary file %r does not exist."
                     % (vocab_file,))
  tokens = [line.strip() for _, line in file_checks.text_lines(vocab_file)]
  if not any(tokens):
    raise ValueError("Vocabulary file %r is empty: expected one token per line."
                     % (vocab_file,))
  return tokens


def _token_to_id(tokens):
  """OrderedDict token -> index in `tokens`; repeated tokens keep the first."""
  vocab = collections.OrderedDict()
  for index, token in enumerate(tokens):
    vocab.setdefault(token, index)
  return vocab


def load_vocab(vocab_file):
  """Reads a WordPiece vocabulary file (one token per line) into a dict.

  Args:
    vocab_file: path of the vocabulary (any tf.gfile path).

  Returns:
    An OrderedDict token -> id, ids being line indices.  If a token appears
    on several lines the first line gives its id.

  Raises:
    ValueError: the file does not exist or holds no token.
  """
  return _token_to_id(_read_vocab_tokens(vocab_file))


def convert_by_vocab(vocab, items):
  """Maps every item through `vocab`; an unknown item raises KeyError."""
  return [vocab[item] for item in items]


def whitespace_tokenize(text):
  """Strips `text` and splits it on runs of whitespace."""
  text = text.strip()
  if not text:
    return []
  return text.split()


def truncate_longer_first(tokens_a, tokens_b, max_length):
  """Pops the end of the longer list, in place, until both fit `max_length`.

  Fine-tuning pairs: trimming the longer one keeps as much of the shorter
  (often the whole question or hypothesis) as possible; ties trim `tokens_b`.
  """
  while len(tokens_a) + len(tokens_b) > max_length:
    if len(tokens_a) > len(tokens_b):
      tokens_a.pop()
    else:
      tokens_b.pop()


def truncate_longer_at_random_end(tokens_a, tokens_b, max_length, rng):
  """Trims the longer list, in place, from a random end, until both fit.

  Pretraining pairs: a coin flip from `rng` (random.Random) picks the front
  or the back for each removed token, so neither end of a document is
  favoured; ties trim `tokens_b`.
  """
  while len(tokens_a) + len(tokens_b) > max_length:
    longer = tokens_a if len(tokens_a) > len(tokens_b) else tokens_b
    if rng.random() < 0.5:
      del longer[0]
    else:
      longer.pop()


def create_tokenizer(vocab_file=None, spm_model_file=None, do_lower_case=True,
                     vocab_size=None):
  """Builds the tokenizer selected by the --vocab_file / --spm_model_file flags.

  Args:
    vocab_file: a WordPiece `vocab.txt`, or None.
    spm_model_file: a SentencePiece `.model` file, or None.
    do_lower_case: whether to lower-case the input (and, for WordPiece, strip
      accents).
    vocab_size: the model's vocab_size, if known: a vocabulary with more
      tokens is refused (see check_vocab_fits_config).

  Returns:
    A FullTokenizer or a SentencePieceTokenizer.

  Raises:
    ValueError: both or neither of the files are given, the file is bad, or
      it does not fit `vocab_size`.
  """
  if vocab_file and spm_model_file:
    raise ValueError(
        "Give only one of vocab_file (%r) and spm_model_file (%r)."
        % (vocab_file, spm_model_file))
  if vocab_file:
    tokenizer = FullTokenizer(vocab_file, do_lower_case=do_lower_case)
  elif spm_model_file:
    tokenizer = SentencePieceTokenizer(spm_model_file,
                                       do_lower_case=do_lower_case)
  else:
    raise ValueError("One of vocab_file (a WordPiece vocab.txt) or "
                     "spm_model_file (a SentencePiece .model) is required.")
  if vocab_size is not None:
    check_vocab_fits_config(tokenizer, vocab_size, vocab_file, spm_model_file)
  return tokenizer


def check_vocab_fits_config(tokenizer, vocab_size, vocab_file=None,
                            spm_model_file=None):
  """Refuses a vocabulary whose ids would index past the embedding table.

  A vocabulary smaller than the config's vocab_size is allowed (unused rows,
  as in the tests' tiny models); a larger one would produce ids the model
  cannot look up, failing deep inside a session or, on TPU, silently.

  Args:
    tokenizer: a FullTokenizer or SentencePieceTokenizer.
    vocab_size: the BertConfig's vocab_size.
    vocab_file: the WordPiece file it was read from, or None.
    spm_model_file: the SentencePiece model it was read from, or None.

  Raises:
    ValueError: naming the file and both sizes.
  """
  size = len(tokenizer.inv_vocab)
  source = ("vocabulary %s" % vocab_file if vocab_file else
            "SentencePiece model %s" % spm_model_file)
  if size > vocab_size:
    raise ValueError(
        "the %s has %d tokens but the config's vocab_size is %d: ids %d..%d "
        "have no embedding. Use the vocabulary the checkpoint was trained "
        "with." % (source, size, vocab_size, vocab_size, size - 1))


class FullTokenizer(object):
  """BERT's end-to-end tokenizer: BasicTokenizer, then WordPiece.

  Attributes:
    vocab: OrderedDict token -> id.
    inv_vocab: dict id -> token.
    do_lower_case: whether the input is lower-cased and accent-stripped.
  """

  def __init__(self, vocab_file, do_lower_case=True):
    tokens = _read_vocab_tokens(vocab_file)
    self.vocab = _token_to_id(tokens)
    # Built from the lines rather than from `vocab` so that every id, even the
    # line of a repeated token, maps back to a token.
    self.inv_vocab = dict(enumerate(tokens))
    if UNK_TOKEN not in self.vocab:
      raise ValueError(
          "Vocabulary file %r has no %s token, which WordPiece needs for "
          "words it cannot split." % (vocab_file, UNK_TOKEN))
    self.do_lower_case = do_lower_case
    self.basic_tokenizer = BasicTokenizer(do_lower_case=do_lower_case)
    self.wordpiece_tokenizer = WordpieceTokenizer(vocab=self.vocab)

  def tokenize(self, text):
    """Returns the list of WordPiece tokens of `text`."""
    split_tokens = []
    for token in self.basic_tokenizer.tokenize(text):
      split_tokens.extend(self.wordpiece_tokenizer.tokenize(token))
    return split_tokens

  def convert_tokens_to_ids(self, tokens):
    return convert_by_vocab(self.vocab, tokens)

  def convert_ids_to_tokens(self, ids):
    return convert_by_vocab(self.inv_vocab, ids)


class BasicTokenizer(object):
  """Splits text into words and punctuation, exactly as BERT does.

  Steps: drop invalid and control characters and normalise whitespace; put
  spaces around CJK ideographs; split on whitespace; when lower-casing,
  lower-case and strip accents; split off every punctuation character.
  """

  def __init__(self, do_lower_case=True):
    self.do_lower_case = do_lower_case

  def tokenize(self, text):
    """Returns the list of words and punctuation marks of `text`."""
    text = convert_to_unicode(text)
    text = self._clean_text(text)
    # CJK text has no spaces between words; BERT's multilingual and Chinese
    # vocabularies treat each ideograph as a word.
    text = self._tokenize_chinese_chars(text)

    split_tokens = []
    for token in whitespace_tokenize(text):
      if self.do_lower_case:
        token = self._run_strip_accents(token.lower())
      split_tokens.extend(self._run_split_on_punc(token))
    return whitespace_tokenize(" ".join(split_tokens))

  def _run_strip_accents(self, text):
    """Drops combining marks after NFD, so "é" becomes "e"."""
    text = unicodedata.normalize("NFD", text)
    return "".join(
        char for char in text if unicodedata.category(char) != "Mn")

  def _run_split_on_punc(self, text):
    """Splits `text` so that every punctuation character is its own piece."""
    pieces = []
    start_new_piece = True
    for char in text:
      if _is_punctuation(char):
        pieces.append([char])
        start_new_piece = True
      else:
        if start_new_piece:
          pieces.append([])
        start_new_piece = False
        pieces[-1].append(char)
    return ["".join(piece) for piece in pieces]

  def _tokenize_chinese_chars(self, text):
    """Puts a space on each side of every CJK ideograph."""
    output = []
    for char in text:
      if self._is_chinese_char(ord(char)):
        output.extend((" ", char, " "))
      else:
        output.append(char)
    return "".join(output)

  def _is_chinese_char(self, cp):
    """Whether code point `cp` is in a CJK Unified Ideographs block.

    These are the ideograph blocks only: Hangul, Hiragana and Katakana are
    written with spaces (or are split by WordPiece) and are not included.
    """
    return ((0x4E00 <= cp <= 0x9FFF) or
            (0x3400 <= cp <= 0x4DBF) or
            (0x20000 <= cp <= 0x2A6DF) or
            (0x2A700 <= cp <= 0x2B73F) or
            (0x2B740 <= cp <= 0x2B81F) or
            (0x2B820 <= cp <= 0x2CEAF) or
            (0xF900 <= cp <= 0xFAFF) or
            (0x2F800 <= cp <= 0x2FA1F))

  def _clean_text(self, text):
    """Drops invalid and control characters and maps whitespace to " "."""
    output = []
    for char in text:
      cp = ord(char)
      if cp == 0 or cp == 0xFFFD or _is_control(char):
        continue
      output.append(" " if _is_whitespace(char) else char)
    return "".join(output)


class WordpieceTokenizer(object):
  """Greedy longest-match-first WordPiece segmentation."""

  def __init__(self, vocab, unk_token=UNK_TOKEN, max_input_chars_per_word=200):
    self.vocab = vocab
    self.unk_token = unk_token
    self.max_input_chars_per_word = max_input_chars_per_word

  def tokenize(self, text):
    """Splits whitespace-separated words of `text` into WordPiece tokens.

    Each word is cut left to right, taking the longest prefix in the vocab;
    pieces after the first carry the "##" prefix.  For example, with a vocab
    holding "un", "##aff" and "##able", "unaffable" gives
    ["un", "##aff", "##able"].  A word that cannot be covered completely, or
    that is longer than max_input_chars_per_word, becomes the unk token.

    Args:
      text: a word or words already passed through BasicTokenizer.

    Returns:
      A list of WordPiece tokens.
    """
    output_tokens = []
    for token in whitespace_tokenize(convert_to_unicode(text)):
      if len(token) > self.max_input_chars_per_word:
        output_tokens.append(self.unk_token)
        continue
      sub_tokens = self._split_word(token)
      if sub_tokens is None:
        output_tokens.append(self.unk_token)
      else:
        output_tokens.extend(sub_tokens)
    return output_tokens

  def _split_word(self, word):
    """The greedy segmentation of `word`, or None if some part is unknown."""
    sub_tokens = []
    start = 0
    while start < len(word):
      end = len(word)
      current = None
      while start < end:
        candidate = word[start:end]
        if start > 0:
          candidate = "##" + candidate
        if candidate in self.vocab:
          current = candidate
          break
        end -= 1
      if current is None:
        return None
      sub_tokens.append(current)
      start = end
    return sub_tokens


class SentencePieceTokenizer(object):
  """A SentencePiece tokenizer with FullTokenizer's interface.

  `tokenize` returns SentencePiece pieces (word-initial pieces start with
  "\u2581"); a character the model does not know comes out as "[UNK]", as
  in WordPiece, whatever the model's own unknown piece is called.  The
  vocabulary (`vocab`, `inv_vocab`) is the model's piece list, ids being piece
  ids.  Lower-casing (do_lower_case) is applied to the text before encoding.

  The model must contain [PAD], [UNK], [CLS], [SEP] and [MASK] as pieces.
  Train it so, for example to get the same ids 0..4 as build_vocab.py:

    spm.SentencePieceTrainer.train(
        input="corpus.txt", model_prefix="spm", vocab_size=30000,
        pad_id=0, pad_piece="[PAD]", unk_id=1, unk_piece="[UNK]",
        bos_id=-1, eos_id=-1, control_symbols=["[CLS]", "[SEP]", "[MASK]"])

  Control symbols are never produced from raw text, which keeps a literal
  "[SEP]" in the input from turning into a separator.  Alternatively, keep the
  default <unk>/<s>/</s> pieces and add all five tokens with
  `user_defined_symbols=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]`; those
  pieces are then also matched in raw text.

  Train in a process that has not imported TensorFlow 1.15 (or with the
  `spm_train` command): SentencePiece training crashes with a segmentation
  fault inside a TF 1.15 process.  Loading and encoding are not affected.

  Attributes:
    vocab: OrderedDict piece -> id.
    inv_vocab: dict id -> piece.
    do_lower_case: whether the text is lower-cased before encoding.
    sp_model: the sentencepiece.SentencePieceProcessor.
  """

  def __init__(self, spm_model_file, do_lower_case=True):
    try:
      import sentencepiece  # pylint: disable=g-import-not-at-top
    except ImportError:
      raise ImportError(
          "SentencePiece models need the `sentencepiece` package: "
          "pip install sentencepiece (it is in requirements.txt).")
    if not spm_model_file or not tf.gfile.Exists(spm_model_file):
      raise ValueError(
          "SentencePiece model %r does not exist."
          % (spm_model_file,))
    with tf.gfile.GFile(spm_model_file, "rb") as reader:
      serialized_model = reader.read()
    self.sp_model = sentencepiece.SentencePieceProcessor()
    try:
      self.sp_model.LoadFromSerializedProto(serialized_model)
    except (RuntimeError, OSError) as error:
      raise ValueError("%r is not a SentencePiece model: %s"
                       % (spm_model_file, error))

    self.do_lower_case = do_lower_case
    self.vocab = collections.OrderedDict(
        (self.sp_model.IdToPiece(i), i)
        for i in range(self.sp_model.GetPieceSize()))
    self.inv_vocab = {i: piece for piece, i in self.vocab.items()}
    missing = [token for token in SPECIAL_TOKENS if token not in self.vocab]
    if missing:
      raise ValueError(
          "SentencePiece model %r lacks the special tokens %s. Train it with "
          "them as user_defined_symbols or control_symbols (see the "
          "SentencePieceTokenizer docstring)."
          % (spm_model_file, ", ".join(missing)))

  def tokenize(self, text):
    """Returns the SentencePiece pieces of `text`."""
    text = convert_to_unicode(text)
    if self.do_lower_case:
      text = text.lower()
    # SentencePiece returns a character it does not know as its own surface
    # string, which has no id; report it as [UNK] like WordPiece does.
    return [piece if piece in self.vocab else UNK_TOKEN
            for piece in self.sp_model.EncodeAsPieces(text)]

  def convert_tokens_to_ids(self, tokens):
    return convert_by_vocab(self.vocab, tokens)

  def convert_ids_to_tokens(self, ids):
    return convert_by_vocab(self.inv_vocab, ids)


# A word-final piece is only worth an entry if it ends several different
# words; otherwise the tails of one frequent word ("##ecause", "##cause", ...)
# would crowd out productive suffixes.
_MIN_WORDS_PER_SUFFIX = 2


def _rank(counts):
  """Keys of `counts`, most frequent first, ties in alphabetical order."""
  return sorted(counts, key=lambda token: (-counts[token], token))


def build_wordpiece_vocab(texts, vocab_size, do_lower_case=True):
  """Builds a WordPiece vocabulary covering every character of `texts`.

  The vocabulary is, in order: SPECIAL_TOKENS (ids 0..4); every character
  seen, most frequent first; the "##" form of each of those characters, so
  that every word of `texts` can be segmented without [UNK]; then whole words
  (two or more characters) and word-final "##" pieces, ranked by the number of
  word occurrences containing them, until vocab_size entries.  A word-final
  piece qualifies only if it ends at least two different words.  Ties are
  broken alphabetically, so the result is deterministic.  build_vocab.py is
  the command-line front end.

  Args:
    texts: an iterable of strings (lines or documents).
    vocab_size: maximum number of entries, special tokens included.
    do_lower_case: pre-tokenize with BasicTokenizer(do_lower_case).

  Returns:
    The list of tokens; a token's id is its index.  It is shorter than
    vocab_size when the texts have fewer candidates.

  Raises:
    ValueError: the texts have no words, or vocab_size cannot hold the
      special tokens plus every character and its "##" form.
  """
  basic_tokenizer = BasicTokenizer(do_lower_case=do_lower_case)
  word_counts = collections.Counter()
  for text in texts:
    word_counts.update(basic_tokenizer.tokenize(text))
  if not word_counts:
    raise ValueError("The input texts contain no words to build a vocab from.")

  char_counts = collections.Counter()
  for word, count in word_counts.items():
    for char in word:
      char_counts[char] += count
  chars = _rank(char_counts)
  vocab = list(SPECIAL_TOKENS)
  vocab.extend(chars)
  vocab.extend("##" + char for char in chars)
  if vocab_size < len(vocab):
    raise ValueError(
        "vocab_size=%d is too small: the %d special tokens and the %d distinct "
        "characters of the input (each also as a \"##\" piece) need %d "
        "entries." % (vocab_size, len(SPECIAL_TOKENS),
                      len(chars), len(vocab)))

  piece_counts = collections.Counter()
  words_per_suffix = collections.Counter()
  for word, count in word_counts.items():
    if len(word) < 2:
      continue
    piece_counts[word] += count
    for start in range(1, len(word) - 1):
      suffix = "##" + word[start:]
      piece_counts[suffix] += count
      words_per_suffix[suffix] += 1
  candidates = [
      piece for piece in _rank(piece_counts)
      if not piece.startswith("##") or
      words_per_suffix[piece] >= _MIN_WORDS_PER_SUFFIX
  ]
  vocab.extend(candidates[:vocab_size - len(vocab)])
  return vocab


def _is_whitespace(char):
  """Whether `char` is a space, tab, newline, carriage return or category Zs."""
  if char in (" ", "\t", "\n", "\r"):
    return True
  return unicodedata.category(char) == "Zs"


def _is_control(char):
  """Whether `char` is a control or format character other than \\t\\n\\r."""
  # \t, \n and \r are categorised Cc but act as whitespace.
  if char in ("\t", "\n", "\r"):
    return False
  return unicodedata.category(char) in ("Cc", "Cf")


def _is_punctuation(char):
  """Whether `char` is punctuation: ASCII non-alphanumerics or category P*."""
  cp = ord(char)
  # ASCII symbols such as "$", "^" and "`" are not category P in Unicode, but
  # BERT splits them off like punctuation.
  if (33 <= cp <= 47) or (58 <= cp <= 64) or (91 <= cp <= 96) or (
      123 <= cp <= 126):
    return True
  return unicodedata.category(char).startswith("P")
