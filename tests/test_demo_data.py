"""Tests for demo_data.py: the demo corpus and the generated SQuAD set."""

import json
import os
import re
import subprocess
import sys

import pytest

import demo_data

# The statement each question asks about, written out here independently of
# demo_data.RELATIONS: question regex -> statement regex with the person
# substituted and the answer as group 1.
QUESTION_TO_STATEMENT = (
    (r"Where does (\w+) live\?", r"\b{p} lives in (\w+)\."),
    (r"What does (\w+) work as\?", r"\b{p} works as a (\w+)\."),
    (r"What pet does (\w+) have\?", r"\b{p} has a pet (\w+)\."),
    (r"What is the favourite colour of (\w+)\?",
     r"The favourite colour of {p} is (\w+)\."),
    (r"In which year was (\w+) born\?", r"\b{p} was born in (\w+)\."),
    (r"What does (\w+) like to eat\?", r"\b{p} likes to eat (\w+)\."),
)


def _statement_pattern(question):
  for question_pattern, statement_pattern in QUESTION_TO_STATEMENT:
    match = re.fullmatch(question_pattern, question)
    if match:
      return statement_pattern, match.group(1)
  raise AssertionError("unexpected question %r" % question)


def _questions(dataset):
  for article in dataset["data"]:
    for paragraph in article["paragraphs"]:
      for qa in paragraph["qas"]:
        yield paragraph["context"], qa


def test_split_sentences_keeps_prose_and_drops_code():
  paragraph = ("The \"try\" clause is executed first.  If an exception\n"
               "occurs, the handler runs, e.g. the except clause! Does it then\n"
               "re-raise?  Then x = a[1:2] + b(3) ** 4 // 5 % 6 - 7.")
  assert demo_data.split_sentences(paragraph) == [
      "The \"try\" clause is executed first.",
      "If an exception occurs, the handler runs, e.g. the except clause!",
      "Does it then re-raise?",
  ]


def test_split_sentences_joins_words_hyphenated_across_lines():
  assert demo_data.split_sentences(
      "Code objects are returned by the built-\n   in compile function.") == [
          "Code objects are returned by the built-in compile function."]


def test_text_to_documents_drops_code_and_splits_at_headings():
  text = (
      "The while statement\n"
      "*******************\n"
      "\n"
      "The while statement is used for repeated execution. It runs\n"
      "as long as an expression is true.\n"
      "\n"
      "   while_stmt ::= \"while\" assignment_expression \":\" suite\n"
      "\n"
      "* A break statement executed in the first suite ends the loop.\n"
      "\n"
      "Short line.\n"
      "\n"
      "Other part\n"
      "==========\n"
      "\n"
      "Only one sentence is not enough for a document here.\n"
      "\n"
      "Third part\n"
      "----------\n"
      "\n"
      "The first sentence of the third part. The second sentence of it.\n")
  assert demo_data.text_to_documents(text) == [
      ["The while statement is used for repeated execution.",
       "It runs as long as an expression is true.",
       "A break statement executed in the first suite ends the loop."],
      ["The first sentence of the third part.",
       "The second sentence of it."],
  ]


def test_build_corpus_holds_out_every_nth_distinct_document():
  texts = [("doc%d" % i, "Heading\n=======\n\nThis is document number %d "
                          "here. It has exactly two sentences.\n" % i)
           for i in range(7)]
  texts.insert(2, texts[1])
  train, held_out = demo_data.build_corpus(texts, eval_every=3)
  number = lambda document: int(re.search(r"\d+", document[0]).group())
  assert [number(document) for document in held_out] == [0, 3, 6]
  assert [number(document) for document in train] == [1, 2, 4, 5]


def test_build_corpus_rejects_too_little_text():
  with pytest.raises(ValueError, match="too few"):
    demo_data.build_corpus([("tiny", "One sentence only in this text.")])


def test_write_corpus_is_the_create_pretraining_data_format(tmp_path):
  import pretraining_data  # pylint: disable=g-import-not-at-top

  class WhitespaceTokenizer(object):

    def tokenize(self, text):
      return text.split()

  documents = [["First document, first sentence.", "Its second sentence."],
               ["Second document, one.", "Two.", "Three."]]
  path = str(tmp_path / "corpus.txt")
  demo_data.write_corpus(documents, path)
  with open(path, encoding="utf-8") as reader:
    assert reader.read() == (
        "First document, first sentence.\nIts second sentence.\n\n"
        "Second document, one.\nTwo.\nThree.\n\n")
  assert pretraining_data.read_documents(
      [path], WhitespaceTokenizer()) == [
          [sentence.split() for sentence in document]
          for document in documents]


def test_python_documentation_corpus_is_english_prose():
  train, held_out = demo_data.build_corpus(
      demo_data.python_documentation_texts())
  sentences = [sentence for document in train + held_out
               for sentence in document]
  # pydoc_data.topics alone holds well over a thousand prose sentences on
  # every supported Python (3.7 to 3.11).
  assert len(sentences) > 1000
  assert len(held_out) >= 5
  assert not set(map(tuple, train)) & set(map(tuple, held_out))
  assert not [s for s in sentences if "::=" in s or ">>>" in s]
  assert not [s for s in sentences if s != s.strip() or "\n" in s]
  words = [word.lower().strip(".,;:\"") for s in sentences for word in s.split()]
  for common_word in ("the", "is", "of", "function", "object"):
    assert common_word in words


def test_squad_answers_match_context_offsets_and_the_stated_fact():
  train, dev = demo_data.generate_squad(60, 30, seed=7)
  for context, qa in list(_questions(train)) + list(_questions(dev)):
    (answer,) = qa["answers"]
    start = answer["answer_start"]
    assert context[start:start + len(answer["text"])] == answer["text"]
    statement_pattern, person = _statement_pattern(qa["question"])
    matches = list(re.finditer(statement_pattern.format(p=person), context))
    assert len(matches) == 1, (qa, context)
    assert matches[0].group(1) == answer["text"]
    assert matches[0].start(1) == start


def test_squad_questions_need_the_person_and_the_relation():
  train, _ = demo_data.generate_squad(90, 3, seed=3, num_people=3,
                                      num_relations=2)
  for context, qa in _questions(train):
    statement_pattern, person = _statement_pattern(qa["question"])
    same_relation = re.findall(statement_pattern.format(p=r"\w+"), context)
    assert len(same_relation) == 3
    assert len(re.findall(r"\b%s\b" % person, context)) == 2
    assert len(re.findall(r"\.( |$)", context)) == 6


def test_squad_sizes_and_ids():
  train, dev = demo_data.generate_squad(100, 20, seed=1,
                                        questions_per_story=3)
  train_questions = list(_questions(train))
  dev_questions = list(_questions(dev))
  assert len(train_questions) == 102
  assert len(dev_questions) == 21
  ids = [qa["id"] for _, qa in train_questions + dev_questions]
  assert len(set(ids)) == len(ids)
  assert train["version"] == dev["version"] == "1.1"


def test_squad_is_deterministic_for_a_seed():
  first = demo_data.generate_squad(50, 10, seed=42)
  second = demo_data.generate_squad(50, 10, seed=42)
  other = demo_data.generate_squad(50, 10, seed=43)
  assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)
  assert json.dumps(first, sort_keys=True) != json.dumps(other, sort_keys=True)


def test_squad_dev_stories_are_held_out():
  train, dev = demo_data.generate_squad(
      300, 60, seed=5, num_people=2, num_relations=1, questions_per_story=1)
  train_contexts = [context for context, _ in _questions(train)]
  dev_contexts = [context for context, _ in _questions(dev)]
  assert not set(train_contexts) & set(dev_contexts)
  assert len(set(dev_contexts)) == len(dev_contexts) == 60
  assert len(set(train_contexts)) == len(train_contexts) == 300


def test_squad_exhausts_a_small_story_space_without_overlap(monkeypatch):
  # 2 orderings of 2 people x 2 x 2 values = 8 possible stories: 3 held out,
  # so training can have exactly the other 5 and not one more.
  monkeypatch.setattr(demo_data, "PEOPLE", ("Anna", "Omar"))
  monkeypatch.setattr(demo_data, "RELATIONS", (demo_data.Relation(
      "pet", "{person} has a pet {value}.", "What pet does {person} have?",
      ("dog", "cat")),))
  train, dev = demo_data.generate_squad(5, 3, seed=0, num_people=2,
                                        num_relations=1, questions_per_story=1)
  train_contexts = {context for context, _ in _questions(train)}
  dev_contexts = {context for context, _ in _questions(dev)}
  assert len(dev_contexts) == 3 and len(train_contexts) == 5
  every_story = {"%s has a pet %s. %s has a pet %s." % (a, x, b, y)
                 for a, b in (("Anna", "Omar"), ("Omar", "Anna"))
                 for x in ("dog", "cat") for y in ("dog", "cat")}
  assert train_contexts | dev_contexts == every_story
  with pytest.raises(ValueError, match="distinct train stories"):
    demo_data.generate_squad(6, 3, seed=0, num_people=2, num_relations=1,
                             questions_per_story=1)


@pytest.mark.parametrize("kwargs, message", [
    (dict(num_people=1), "num_people"),
    (dict(num_relations=0), "num_relations"),
    (dict(num_relations=7), "num_relations"),
    (dict(questions_per_story=7, num_people=3, num_relations=2),
     "questions_per_story"),
])
def test_squad_rejects_bad_sizes(kwargs, message):
  with pytest.raises(ValueError, match=message):
    demo_data.generate_squad(10, 10, seed=0, **kwargs)


def test_squad_json_reads_back_through_squad_data(tmp_path):
  import squad_data  # pylint: disable=g-import-not-at-top

  train, _ = demo_data.generate_squad(30, 3, seed=11)
  path = str(tmp_path / "train.json")
  demo_data.write_json(train, path)
  examples, skipped = squad_data.read_squad_examples(
      path, is_training=True, version_2_with_negative=False)
  assert not skipped
  assert len(examples) == 30
  for example in examples:
    words = example.doc_tokens[example.start_position:example.end_position + 1]
    assert [word.rstrip(".") for word in words] == [example.orig_answer_text]
  with open(path, encoding="utf-8") as reader:
    assert json.load(reader) == train
  assert os.path.getsize(path) > 0


_PROGRESS_DRIVER = r"""
import io, json, sys
import demo
stream = io.StringIO()
progress = demo.ProgressLine(stream)
shown = []
for line in sys.stdin:
  if progress.update(line):
    shown.append(progress.text())
print(json.dumps(shown))
"""


def test_demo_progress_line_reads_the_scripts_log_lines():
  """The console's progress line, from log lines as the scripts print them
  (absl's prefix, console.Progress's wording)."""
  prefix = "I1205 01:07:18.058282 139845 console.py:180] "
  lines = [
      prefix + "***** Running phase 2 in /x: steps 0 -> 400, batch 8 *****",
      prefix + "Featurising: example 100 of 100, 7658.6 examples/s",
      prefix + "Training: step 1 of 400 (0%), loss 6.9000",
      "W1205 01:07:19.000000 139845 estimator.py:12] a warning",
      prefix + "Training: step 100 of 400 (25%), loss 2.2500, 4.00 steps/s, "
      "32.0 examples/s, 1m15s left",
      prefix + "Predicting: example 1000 of 3000, 250.0 examples/s, 8s left",
  ]
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  process = subprocess.run(
      [sys.executable, "-c", _PROGRESS_DRIVER], input="\n".join(lines) + "\n",
      cwd=root, env=dict(os.environ, PYTHONPATH=root, TF_CPP_MIN_LOG_LEVEL="2"),
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
      timeout=300)
  assert process.returncode == 0, process.stderr[-3000:]
  shown = json.loads(process.stdout.strip().splitlines()[-1])
  # Finished featurisation leaves the line when training starts.
  assert shown == [
      "  Featurising 100 of 100",
      "  step 1/400, loss 6.9000",
      "  step 100/400, loss 2.2500, 32 examples/s, 1m15s left",
      "  step 100/400, loss 2.2500, 32 examples/s, 1m15s left, "
      "Predicting 1000 of 3000"], shown
