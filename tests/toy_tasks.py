"""Small generated tasks a tiny MobileBERT can learn in seconds.

Colour questions (SQuAD format): each context is filler words with one colour
and two animals inserted at random places, and the question asks for the
colour.  The answer's position and text change with every context, so only a
model that reads the context scores; one that answers by position alone gets
about 1 in 15.

Keyword sentences (GLUE format): "yes" or "no" somewhere in a sentence of
filler words decides the label.
"""

import json
import random
import subprocess
import sys

COLOURS = ["red", "blue", "green", "pink", "gray", "black", "white", "brown"]
ANIMALS = ["dog", "cat", "cow", "pig", "fox", "owl", "bee", "ant"]
FILLER = ["the", "a", "is", "on", "near", "big", "old", "box", "cup", "hat",
          "sat", "ran", "and", "with"]
KEYWORDS = ["yes", "no"]
QUESTION = "what color is named ?"
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = sorted(set(COLOURS + ANIMALS + FILLER + KEYWORDS + QUESTION.split() +
                   ["."]))


def write_vocab(path):
  """A WordPiece vocab.txt holding every word of these tasks."""
  with open(str(path), "w") as f:
    f.write("\n".join(SPECIAL_TOKENS + WORDS) + "\n")
  return str(path)


# How the tests run run_squad.py on colour questions.
DOC_STRIDE, MAX_QUERY_LENGTH = 16, 12


def prediction_features(squad_file, tokenizer, max_seq_length,
                        max_examples=None):
  """(examples, features) of a SQuAD file as run_squad.py predicts on them
  with --doc_stride=DOC_STRIDE --max_query_length=MAX_QUERY_LENGTH."""
  import squad_data  # pylint: disable=g-import-not-at-top
  examples, _ = squad_data.read_squad_examples(
      squad_file, is_training=False, version_2_with_negative=False,
      max_examples=max_examples)
  features = []
  squad_data.convert_examples_to_features(
      examples, tokenizer, max_seq_length, DOC_STRIDE, MAX_QUERY_LENGTH,
      is_training=False, output_fn=features.append)
  return examples, features


def colour_paragraphs(num_questions, seed, unanswerable_every=0):
  """SQuAD paragraphs of colour questions.

  Args:
    num_questions: one question per paragraph.
    seed: random seed.
    unanswerable_every: if > 0, every n-th context has no colour and its
      question is a SQuAD 2.0 impossible one.
  """
  rng = random.Random(seed)
  paragraphs = []
  for p in range(num_questions):
    words = [rng.choice(FILLER) for _ in range(rng.randint(6, 12))]
    impossible = unanswerable_every > 0 and p % unanswerable_every == 0
    colour = rng.choice(COLOURS)
    inserted = rng.sample(ANIMALS, 2) + ([] if impossible else [colour])
    for word in inserted:
      words.insert(rng.randint(0, len(words)), word)
    context = " ".join(words) + " ."
    qa = {"id": "p%d" % p, "question": QUESTION, "answers": []}
    if impossible:
      qa["is_impossible"] = True
    else:
      index = words.index(colour)
      start = len(" ".join(words[:index])) + (1 if index else 0)
      assert context[start:start + len(colour)] == colour
      qa["answers"] = [{"text": colour, "answer_start": start}]
      if unanswerable_every:
        qa["is_impossible"] = False
    paragraphs.append({"context": context, "qas": [qa]})
  return paragraphs


def write_squad_file(path, paragraphs, version="1.1"):
  with open(str(path), "w") as f:
    json.dump({"version": version,
               "data": [{"title": "colours", "paragraphs": paragraphs}]}, f)
  return str(path)


def make_colour_squad_file(path, num_questions, seed):
  return write_squad_file(path, colour_paragraphs(num_questions, seed))


def gold_answers(squad_file):
  """{question id: first answer text, or "" for an impossible question}."""
  with open(str(squad_file)) as f:
    data = json.load(f)["data"]
  return {qa["id"]: (qa["answers"][0]["text"] if qa["answers"] else "")
          for article in data for paragraph in article["paragraphs"]
          for qa in paragraph["qas"]}


def keyword_sentence(rng, label_words=("no", "yes")):
  """(sentence, label index): label i has the word label_words[i]."""
  label = rng.randrange(len(label_words))
  words = [rng.choice(FILLER + ANIMALS) for _ in range(rng.randint(3, 8))]
  words.insert(rng.randint(0, len(words)), label_words[label])
  return " ".join(words), label


# SentencePiece training segfaults in a process that has imported TF 1.15,
# so it runs in a fresh interpreter.
_SPM_TRAIN_SCRIPT = """
import sys
import sentencepiece
sentencepiece.SentencePieceTrainer.train(
    input=sys.argv[1], model_prefix=sys.argv[2], vocab_size=int(sys.argv[3]),
    hard_vocab_limit=False, character_coverage=1.0, minloglevel=2,
    pad_id=0, pad_piece="[PAD]", unk_id=1, unk_piece="[UNK]", bos_id=-1,
    eos_id=-1, control_symbols=["[CLS]", "[SEP]", "[MASK]"])
"""


def train_sentencepiece(corpus_file, model_prefix, vocab_size):
  """Trains the SentencePieceTokenizer docstring's recipe; returns the
  .model path."""
  subprocess.run([sys.executable, "-c", _SPM_TRAIN_SCRIPT, str(corpus_file),
                  str(model_prefix), str(vocab_size)],
                 check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                 timeout=120)
  return str(model_prefix) + ".model"
