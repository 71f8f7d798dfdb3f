"""create_pretraining_data.py output and the pretraining input_fn."""

import os
import random

import numpy as np
import pytest

import tensorflow.compat.v1 as tf

import pretraining_data
import script_helpers
import tokenization


SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = ["w%d" % i for i in range(60)]
PIECES = ["##a", "##b", "##c"]
SEQ = 32
MAX_PRED = 8


def write_corpus(tmp_path, num_docs=12, seed=0):
  """Vocab + corpus: documents of 3-8 sentences of 3-10 words (some split)."""
  rng = random.Random(seed)
  vocab_file = str(tmp_path / "vocab.txt")
  with open(vocab_file, "w") as f:
    f.write("\n".join(SPECIALS + WORDS + PIECES) + "\n")
  corpus = str(tmp_path / "corpus.txt")
  with open(corpus, "w") as f:
    for _ in range(num_docs):
      for _ in range(rng.randint(3, 8)):
        words = []
        for _ in range(rng.randint(3, 10)):
          word = rng.choice(WORDS)
          if rng.random() < 0.3:
            word += rng.choice(["a", "b", "c"])  # -> w12 ##a
          words.append(word)
        f.write(" ".join(words) + "\n")
      f.write("\n")
  return vocab_file, corpus


def read_examples(path):
  examples = []
  for record in tf.python_io.tf_record_iterator(path):
    example = tf.train.Example.FromString(record)
    feats = example.features.feature
    examples.append({
        k: (np.array(v.int64_list.value) if v.HasField("int64_list")
            else np.array(v.float_list.value))
        for k, v in feats.items()})
  return examples


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
  tmp_path = tmp_path_factory.mktemp("cpd")
  vocab_file, corpus = write_corpus(tmp_path)
  output = str(tmp_path / "out.tfrecord")
  _, output_text = script_helpers.run_script("create_pretraining_data.py", [
      "--input_file=" + corpus, "--output_file=" + output,
      "--vocab_file=" + vocab_file, "--do_lower_case=true",
      "--max_seq_length=%d" % SEQ, "--max_predictions_per_seq=%d" % MAX_PRED,
      "--masked_lm_prob=0.15", "--dupe_factor=5", "--short_seq_prob=0.1",
      "--random_seed=7"])
  vocab = {w: i for i, w in enumerate(SPECIALS + WORDS + PIECES)}
  return read_examples(output), vocab, output_text, vocab_file, corpus


def test_features_and_layout(generated):
  examples, vocab, stdout, _, _ = generated
  assert "documents: 12" in stdout
  assert ("instances: %d" % len(examples)) in stdout
  assert len(examples) > 20
  expected_lengths = {"input_ids": SEQ, "input_mask": SEQ, "segment_ids": SEQ,
                      "masked_lm_positions": MAX_PRED,
                      "masked_lm_ids": MAX_PRED, "masked_lm_weights": MAX_PRED,
                      "next_sentence_labels": 1}
  labels = []
  for ex in examples:
    assert {k: len(v) for k, v in ex.items()} == expected_lengths
    length = int(ex["input_mask"].sum())
    np.testing.assert_array_equal(ex["input_mask"][:length], 1)
    np.testing.assert_array_equal(ex["input_mask"][length:], 0)
    np.testing.assert_array_equal(ex["input_ids"][length:], 0)
    ids = ex["input_ids"][:length]
    assert ids[0] == vocab["[CLS]"] and ids[-1] == vocab["[SEP]"]
    seps = np.where(ids == vocab["[SEP]"])[0]
    assert len(seps) == 2
    # Segment A (with [CLS] and first [SEP]) is 0, segment B is 1.
    segments = ex["segment_ids"][:length]
    np.testing.assert_array_equal(segments[:seps[0] + 1], 0)
    np.testing.assert_array_equal(segments[seps[0] + 1:], 1)
    np.testing.assert_array_equal(ex["segment_ids"][length:], 0)
    labels.append(int(ex["next_sentence_labels"][0]))
  assert set(labels) == {0, 1}
  assert 0.3 < np.mean(labels) < 0.7


def test_masking_rate_and_specials(generated):
  examples, vocab, _, _, _ = generated
  special_ids = {vocab["[CLS]"], vocab["[SEP]"], vocab["[PAD]"]}
  num_masked = num_tokens = num_mask_token = num_unchanged = 0
  for ex in examples:
    length = int(ex["input_mask"].sum())
    weights = ex["masked_lm_weights"]
    count = int(weights.sum())
    np.testing.assert_array_equal(weights[:count], 1.0)
    np.testing.assert_array_equal(weights[count:], 0.0)
    assert count == min(MAX_PRED, max(1, int(round(length * 0.15))))
    positions = ex["masked_lm_positions"][:count]
    labels = ex["masked_lm_ids"][:count]
    assert list(positions) == sorted(set(positions))
    assert all(0 < p < length for p in positions)
    assert not set(labels) & special_ids
    # [CLS] and [SEP] are never replaced.
    ids = ex["input_ids"]
    assert ids[0] == vocab["[CLS]"]
    assert int(np.sum(ids == vocab["[SEP]"])) == 2
    num_mask_token += int(np.sum(ids[positions] == vocab["[MASK]"]))
    num_unchanged += int(np.sum(ids[positions] == labels))
    num_masked += count
    num_tokens += length
  assert 0.11 < num_masked / num_tokens < 0.19
  assert 0.7 < num_mask_token / num_masked < 0.9
  assert 0.04 < num_unchanged / num_masked < 0.18


def test_whole_word_masking_masks_every_piece(tmp_path):
  vocab_file, corpus = write_corpus(tmp_path, num_docs=6, seed=3)
  tokenizer = tokenization.FullTokenizer(vocab_file, do_lower_case=True)
  instances, num_docs = pretraining_data.create_training_instances(
      [corpus], tokenizer, SEQ, 4, 0.1, 0.15, MAX_PRED, random.Random(1),
      do_whole_word_mask=True)
  assert num_docs == 6
  continuation_masked = 0
  for inst in instances:
    original = list(inst.tokens)
    for pos, label in zip(inst.masked_lm_positions, inst.masked_lm_labels):
      original[pos] = label
    masked = set(inst.masked_lm_positions)
    for pos in masked:
      # Truncation may leave a segment starting with "##": it is its own word.
      if original[pos].startswith("##") and original[pos - 1] not in SPECIALS:
        continuation_masked += 1
        assert pos - 1 in masked, (original, sorted(masked))
      if pos + 1 < len(original) and original[pos + 1].startswith("##"):
        assert pos + 1 in masked
  assert continuation_masked > 0


def test_input_fn_batches(generated, tmp_path):
  examples, _, _, vocab_file, corpus = generated
  output = str(tmp_path / "again.tfrecord")
  tokenizer = tokenization.FullTokenizer(vocab_file, do_lower_case=True)
  instances, _ = pretraining_data.create_training_instances(
      [corpus], tokenizer, SEQ, 1, 0.1, 0.15, MAX_PRED, random.Random(2))
  written = pretraining_data.write_instance_to_example_files(
      instances, tokenizer, SEQ, MAX_PRED, [output])
  assert written == len(instances)
  with tf.Graph().as_default():
    input_fn = pretraining_data.input_fn_builder(
        [output], SEQ, MAX_PRED, is_training=False)
    features = tf.data.make_one_shot_iterator(
        input_fn({"batch_size": 3})).get_next()
    with tf.Session() as sess:
      batch = sess.run(features)
  first = read_examples(output)[:3]
  for name, value in batch.items():
    expected_dtype = np.float32 if name == "masked_lm_weights" else np.int32
    assert value.dtype == expected_dtype, name
    np.testing.assert_array_equal(value, np.stack([e[name] for e in first]))
  assert batch["input_ids"].shape == (3, SEQ)
  assert batch["next_sentence_labels"].shape == (3, 1)


def test_bad_flags_end_in_one_line_each(tmp_path):
  """Every problem of the flags is reported, one line each, no traceback."""
  vocab_file, corpus = write_corpus(tmp_path, num_docs=2)
  output = str(tmp_path / "o.tfrecord")
  undecodable = tmp_path / "latin1.txt"
  undecodable.write_bytes(b"caf\xe9 au lait\n")
  good = ["--input_file=" + corpus, "--output_file=" + output,
          "--vocab_file=" + vocab_file]
  results = script_helpers.run_main_per_argv("create_pretraining_data", [
      ["--input_file=" + str(tmp_path / "nope*.txt"), "--output_file=" + output,
       "--vocab_file=" + vocab_file],
      good + ["--masked_lm_prob=1.5", "--dupe_factor=0",
              "--max_seq_length=4"],
      good + ["--spm_model_file=" + vocab_file],
      ["--input_file=" + str(undecodable), "--output_file=" + output,
       "--vocab_file=" + vocab_file],
  ])
  assert all(r["exit"] == 1 and "traceback" not in r for r in results), results
  lines = [r["message"].splitlines() for r in results]
  assert len(lines[0]) == 1 and "--input_file" in lines[0][0]
  assert "nope*.txt" in lines[0][0]
  # Three independent problems, three lines, in the order they are checked.
  assert [l.split(": ", 1)[1].split(" ")[0] for l in lines[1]] == [
      "--max_seq_length", "--masked_lm_prob", "--dupe_factor"], lines[1]
  assert all(l.startswith("create_pretraining_data.py: ") for l in lines[1])
  assert "exactly one of --vocab_file and --spm_model_file" in lines[2][0]
  assert "latin1.txt line 1 is not UTF-8 text" in lines[3][0], lines[3]
  assert not os.path.exists(output)
