"""Data for `make demo`: an English corpus and a generated SQuAD question set.

Nothing is downloaded.

* The pretraining corpus is the English documentation that ships with every
  CPython: the language reference topics behind `help()` (module
  `pydoc_data.topics`, about 0.4 MB) and the interpreter's LICENSE.txt when
  the installation has one.  Code samples, tables and headings are dropped;
  the prose is written one sentence per line, with a blank line between
  documents, the input format of create_pretraining_data.py.  A section
  heading starts a new document.

* The question set is SQuAD v1.1 JSON made from short stories of facts about
  a few people ("Nora works as a baker. Omar lives in Lisbon. ...").  Every
  question names a person and a relation ("Where does Omar live?"), and a
  story holds the same relation for several people and several relations for
  each person, so the answer is found only by reading the context.  The
  generator is deterministic for a seed, and no development story appears in
  the training set.
"""

import collections
import io
import json
import os
import random
import re
import sysconfig

import pydoc_data.topics

# A prose sentence has at least this many words and this share of letters
# among its non-space characters; shorter or more symbolic lines are
# grammar rules, operators or table rows.
_MIN_SENTENCE_WORDS = 4
_MIN_LETTER_FRACTION = 0.7
# A corpus document needs two sentences to give next-sentence pairs.
_MIN_DOCUMENT_SENTENCES = 2

_HYPHEN_LINE_BREAK = re.compile(r"(?<=\w-)[ \t]*\n\s*")
_HEADING_UNDERLINE = re.compile(r"^\s*([*=\-~^#])\1{2,}\s*$")
_LIST_MARKER = re.compile(r"^\s*(?:[*\-+]|\(?[0-9a-zA-Z]{1,3}[.)])\s+")
# A sentence ends at . ! or ? followed by space and an upper-case letter or an
# opening quote/bracket; "e.g. foo" and "i.e. the" therefore stay whole.
_SENTENCE_BOUNDARY = re.compile(r"(?<=[.!?])[\"')\]]?\s+(?=[\"'(\[]?[A-Z])")

# Consecutive duplicate stories after which the generator gives up: the
# requested set is then (nearly) as large as the number of possible stories.
_MAX_REJECTED_STORIES = 10000

Relation = collections.namedtuple(
    "Relation", ["name", "statement", "question", "values"])

# {person} and {value} are filled in; every value is a single word, so answer
# spans never depend on how the tokenizer splits phrases.
RELATIONS = (
    Relation("city", "{person} lives in {value}.", "Where does {person} live?",
             ("Paris", "Berlin", "Madrid", "Lisbon", "Vienna", "Prague",
              "Dublin", "Oslo", "Rome", "Athens", "Warsaw", "Cairo", "Tokyo",
              "Lima", "Quito", "Delhi")),
    Relation("job", "{person} works as a {value}.",
             "What does {person} work as?",
             ("teacher", "baker", "doctor", "pilot", "farmer", "writer",
              "painter", "lawyer", "nurse", "engineer", "singer", "driver",
              "tailor", "chemist")),
    Relation("pet", "{person} has a pet {value}.",
             "What pet does {person} have?",
             ("dog", "cat", "parrot", "rabbit", "horse", "turtle", "goat",
              "hamster", "snake", "pony", "lizard", "duck")),
    Relation("colour", "The favourite colour of {person} is {value}.",
             "What is the favourite colour of {person}?",
             ("red", "blue", "green", "yellow", "purple", "orange", "black",
              "white", "grey", "brown", "pink", "silver")),
    Relation("year", "{person} was born in {value}.",
             "In which year was {person} born?",
             tuple(str(year) for year in range(1950, 2011))),
    Relation("food", "{person} likes to eat {value}.",
             "What does {person} like to eat?",
             ("apples", "bread", "rice", "soup", "cheese", "pasta", "beans",
              "noodles", "grapes", "salad", "pears", "cake")),
)

PEOPLE = ("Anna", "Omar", "Nora", "Liam", "Sofia", "Ivan", "Maya", "Hugo",
          "Lena", "Ravi", "Clara", "Kenji", "Zara", "Felix", "Ines", "Pablo",
          "Yara", "Tomas", "Mei", "Oscar", "Leila", "Bruno", "Ada", "Emil")


def _is_prose(sentence):
  """Whether `sentence` reads as an English sentence rather than code."""
  words = sentence.split()
  if len(words) < _MIN_SENTENCE_WORDS:
    return False
  characters = "".join(words)
  letters = sum(1 for char in characters if char.isalpha())
  return letters >= _MIN_LETTER_FRACTION * len(characters)


def split_sentences(paragraph):
  """Splits one paragraph of prose into its prose sentences.

  Args:
    paragraph: a string; line breaks inside it are treated as spaces, except
      after a hyphen ending a word ("built-" + "in" -> "built-in").

  Returns:
    A list of sentences with normalized whitespace; fragments that are not
    prose (see _is_prose) are dropped.
  """
  text = " ".join(_HYPHEN_LINE_BREAK.sub("", paragraph).split())
  return [sentence for sentence in _SENTENCE_BOUNDARY.split(text)
          if _is_prose(sentence)]


def text_to_documents(text):
  """Turns reStructuredText-like documentation into corpus documents.

  Paragraphs are separated by blank lines.  Indented paragraphs (code
  samples, tables, quoted blocks) are dropped; a heading (a line underlined
  by a run of * = - ~ ^ or #) starts a new document.

  Args:
    text: the documentation, a string.

  Returns:
    A list of documents, each a list of at least two sentences.
  """
  documents = [[]]
  for block in re.split(r"\n\s*\n", text):
    lines = [line for line in block.split("\n") if line.strip()]
    if not lines:
      continue
    if any(_HEADING_UNDERLINE.match(line) for line in lines):
      documents.append([])
      continue
    if lines[0][:1].isspace():
      continue
    lines[0] = _LIST_MARKER.sub("", lines[0])
    documents[-1].extend(split_sentences("\n".join(lines)))
  return [document for document in documents
          if len(document) >= _MIN_DOCUMENT_SENTENCES]


def python_license_path():
  """The path of the running interpreter's LICENSE.txt, or None."""
  path = os.path.join(sysconfig.get_paths()["stdlib"], "LICENSE.txt")
  return path if os.path.isfile(path) else None


def python_documentation_texts():
  """The English texts shipped with this Python, in a fixed order.

  Returns:
    A list of (name, text) pairs: every pydoc topic sorted by name, then
    LICENSE.txt if present.
  """
  texts = [("pydoc topic %s" % name, pydoc_data.topics.topics[name])
           for name in sorted(pydoc_data.topics.topics)]
  license_path = python_license_path()
  if license_path:
    with io.open(license_path, encoding="utf-8") as reader:
      texts.append((license_path, reader.read()))
  return texts


def build_corpus(texts, eval_every=10):
  """Splits texts into training and held-out corpus documents.

  Args:
    texts: a list of (name, text) pairs, as python_documentation_texts().
    eval_every: every `eval_every`-th document (counting from the first) goes
      to the held-out set.

  Returns:
    (train_documents, eval_documents), lists of distinct documents (lists of
    sentences); a document repeated in `texts` is kept once.

  Raises:
    ValueError: the texts yield no held-out or no training document.
  """
  if eval_every < 2:
    raise ValueError("eval_every=%d must be at least 2." % eval_every)
  documents = []
  seen = set()
  # Several pydoc topics repeat the same section; a repeat would leak
  # held-out text into training.
  for _, text in texts:
    for document in text_to_documents(text):
      if tuple(document) not in seen:
        seen.add(tuple(document))
        documents.append(document)
  train_documents = [document for index, document in enumerate(documents)
                     if index % eval_every]
  eval_documents = documents[::eval_every]
  if not train_documents or not eval_documents:
    raise ValueError(
        "The texts give %d documents of %d or more prose sentences: too few "
        "for a training and a held-out set (every %d-th document)."
        % (len(documents), _MIN_DOCUMENT_SENTENCES, eval_every))
  return train_documents, eval_documents


def write_corpus(documents, path):
  """Writes documents one sentence per line, a blank line after each."""
  with io.open(path, "w", encoding="utf-8") as writer:
    for document in documents:
      for sentence in document:
        writer.write(sentence + "\n")
      writer.write("\n")


def make_story(rng, num_people, num_relations):
  """One context paragraph and its facts.

  Every person of the story gets the same relations, each with its own
  value, so neither the person nor the relation alone locates an answer.

  Args:
    rng: random.Random.
    num_people: how many distinct people the story mentions.
    num_relations: how many distinct relations each person gets.

  Returns:
    (context, facts): the paragraph text and a list of
    (person, Relation, value, answer_start) with
    context[answer_start:answer_start + len(value)] == value.
  """
  people = rng.sample(PEOPLE, num_people)
  relations = rng.sample(RELATIONS, num_relations)
  statements = [(person, relation, rng.choice(relation.values))
                for person in people for relation in relations]
  rng.shuffle(statements)
  sentences = []
  facts = []
  length = 0
  for person, relation, value in statements:
    before_value, after_value = relation.statement.split("{value}")
    before_value = before_value.format(person=person)
    if sentences:
      length += 1
    facts.append((person, relation, value, length + len(before_value)))
    sentences.append(before_value + value + after_value.format(person=person))
    length += len(sentences[-1])
  return " ".join(sentences), facts


def _squad_paragraph(context, facts, questions_per_story, rng, id_prefix):
  """A SQuAD paragraph dict asking about `questions_per_story` facts."""
  qas = []
  for index, (person, relation, value, start) in enumerate(
      rng.sample(facts, questions_per_story)):
    qas.append({
        "id": "%s-q%d" % (id_prefix, index),
        "question": relation.question.format(person=person),
        "answers": [{"text": value, "answer_start": start}],
    })
  return {"context": context, "qas": qas}


def generate_squad(num_train_questions, num_dev_questions, seed,
                   num_people=3, num_relations=2, questions_per_story=3):
  """A training and a held-out development set in SQuAD v1.1 format.

  Development stories are drawn first; a training story identical to any of
  them is drawn again, so no development context (hence no development
  question in its context) is seen in training.

  Args:
    num_train_questions: questions in the training set (rounded up to a
      multiple of questions_per_story).
    num_dev_questions: questions in the development set (rounded up the same
      way).
    seed: int, the only source of randomness.
    num_people: people per story (2 to len(PEOPLE)).
    num_relations: relations stated for every person of a story (1 to
      len(RELATIONS)).
    questions_per_story: questions asked about each story, at most
      num_people * num_relations.

  Returns:
    (train, dev): two dicts {"version": "1.1", "data": [...]}.

  Raises:
    ValueError: the sizes are out of range, or there are not enough
      distinct stories for them.
  """
  if not 2 <= num_people <= len(PEOPLE):
    raise ValueError("num_people=%d must be in [2, %d]."
                     % (num_people, len(PEOPLE)))
  if not 1 <= num_relations <= len(RELATIONS):
    raise ValueError("num_relations=%d must be in [1, %d]."
                     % (num_relations, len(RELATIONS)))
  if not 1 <= questions_per_story <= num_people * num_relations:
    raise ValueError(
        "questions_per_story=%d must be in [1, num_people * num_relations = "
        "%d]." % (questions_per_story, num_people * num_relations))
  if num_train_questions < 1 or num_dev_questions < 1:
    raise ValueError("Both question counts must be positive, got %d and %d."
                     % (num_train_questions, num_dev_questions))

  rng = random.Random(seed)

  def make_set(name, num_questions, excluded_contexts):
    paragraphs = []
    contexts = set()
    rejected_in_a_row = 0
    while len(paragraphs) * questions_per_story < num_questions:
      context, facts = make_story(rng, num_people, num_relations)
      if context in excluded_contexts or context in contexts:
        rejected_in_a_row += 1
        if rejected_in_a_row > _MAX_REJECTED_STORIES:
          raise ValueError(
              "Cannot draw %d distinct %s stories with num_people=%d and "
              "num_relations=%d: ask for fewer questions or more variety."
              % (-(-num_questions // questions_per_story), name, num_people,
                 num_relations))
        continue
      rejected_in_a_row = 0
      contexts.add(context)
      paragraphs.append(_squad_paragraph(
          context, facts, questions_per_story, rng,
          "%s-%d" % (name, len(paragraphs))))
    dataset = {"version": "1.1",
               "data": [{"title": "demo-%s" % name, "paragraphs": paragraphs}]}
    return dataset, contexts

  dev, dev_contexts = make_set("dev", num_dev_questions, frozenset())
  train, _ = make_set("train", num_train_questions, dev_contexts)
  return train, dev


def write_json(data, path):
  """Writes `data` as JSON."""
  with io.open(path, "w", encoding="utf-8") as writer:
    writer.write(json.dumps(data, indent=1, ensure_ascii=False))
