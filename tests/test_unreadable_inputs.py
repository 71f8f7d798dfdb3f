"""Every file a script reads, when it is not UTF-8 or not in its format,
ends the run in one line naming the file (and the line, where it has one).

Each script runs as a user runs it; the scripts that define their flags at
import run many cases in one process (script_helpers.run_main_per_argv).
"""

import os

import pytest

import script_helpers
import toy_tasks

LATIN1 = b"caf\xe9 au lait\n"


@pytest.fixture(scope="module", name="files")
def fixture_files(tmp_path_factory):
  root = tmp_path_factory.mktemp("unreadable")
  (root / "latin1.txt").write_bytes(b"[PAD]\n[UNK]\n" + LATIN1)
  (root / "latin1.json").write_bytes(b'{"hidden_size": "caf\xe9"}\n')
  (root / "latin1_squad.json").write_bytes(b'{"data": ["caf\xe9"]}')
  (root / "train.tsv").write_bytes(b"sentence\tlabel\ngood\t1\n" + LATIN1)
  (root / "text.tfrecord").write_bytes(b"plain text, not records\n")
  return {"root": root, "vocab": toy_tasks.write_vocab(root / "vocab.txt"),
          # One layer of one FFN: the runs that build a graph need no depth.
          "config": script_helpers.write_cut_config(
              root / "bert_config.json", "tiny_mobilebert.json",
              num_hidden_layers=1, num_feedforward_networks=1),
          "latin1": str(root / "latin1.txt"),
          "latin1_json": str(root / "latin1.json"),
          "latin1_squad": str(root / "latin1_squad.json"),
          "data_dir": str(root), "text_tfrecord": str(root / "text.tfrecord")}


def test_run_squad_names_the_file_and_line(files):
  out = str(files["root"] / "squad_out")
  common = ["--output_dir=" + out, "--max_seq_length=32",
            "--max_query_length=12", "--doc_stride=16"]
  train = ["--do_train", "--train_file=" + files["latin1_squad"]]
  cases = [
      (["--bert_config_file=" + files["latin1_json"],
        "--vocab_file=" + files["vocab"]] + common + train,
       "--bert_config_file: %s line 1 is not UTF-8 text (byte 0xe9 at "
       "column 21)." % files["latin1_json"]),
      (["--bert_config_file=" + files["config"],
        "--vocab_file=" + files["latin1"]] + common + train,
       "--vocab_file=%s: %s line 3 is not UTF-8 text (byte 0xe9 at column "
       "4)." % (files["latin1"], files["latin1"])),
      (["--bert_config_file=" + files["config"],
        "--vocab_file=" + files["vocab"]] + common + train,
       "SQuAD file %s is not valid JSON" % files["latin1_squad"]),
  ]
  script_helpers.check_refusals("run_squad", cases)


def test_run_classifier_names_the_tsv_line(files):
  cases = [(["--task_name=sst-2", "--bert_config_file=" + files["config"],
             "--vocab_file=" + files["vocab"],
             "--data_dir=" + files["data_dir"],
             "--output_dir=" + str(files["root"] / "glue_out"), "--do_train",
             "--max_seq_length=16"],
            "%s line 3 is not UTF-8 text (byte 0xe9 at column 4)." %
            os.path.join(files["data_dir"], "train.tsv"))]
  script_helpers.check_refusals("run_classifier", cases)


def test_pretraining_scripts_name_the_file(files):
  cases = [(["--bert_config_file=" + files["config"],
             "--input_file=" + files["text_tfrecord"],
             "--output_dir=" + str(files["root"] / "pretrain_out"),
             "--do_train", "--max_seq_length=32",
             "--max_predictions_per_seq=5", "--train_batch_size=4",
             "--num_train_steps=2", "--num_warmup_steps=1"],
            "%s is not a TFRecord file, or is damaged from its first record "
            "(corrupted record at 0" % files["text_tfrecord"])]
  script_helpers.check_refusals("run_pretraining", cases)
  cases = [(["--input_file=" + files["latin1"],
             "--output_file=" + str(files["root"] / "vocab_out.txt")],
            "%s line 3 is not UTF-8 text (byte 0xe9 at column 4)." %
            files["latin1"])]
  script_helpers.check_refusals("build_vocab", cases)
  cases = [(["--input_file=" + files["latin1"],
             "--output_file=" + str(files["root"] / "out.tfrecord"),
             "--vocab_file=" + files["vocab"]],
            "%s line 3 is not UTF-8 text (byte 0xe9 at column 4)." %
            files["latin1"]),
           (["--input_file=" + files["vocab"],
             "--output_file=" + str(files["root"] / "out.tfrecord"),
             "--vocab_file=" + files["latin1"]],
            "%s line 3 is not UTF-8 text (byte 0xe9 at column 4)." %
            files["latin1"])]
  script_helpers.check_refusals("create_pretraining_data", cases)


def test_exporters_name_the_file(files, tmp_path):
  checkpoint = str(tmp_path / "model.ckpt")
  code, output = script_helpers.run_script(None, ["-c", (
      "import tensorflow.compat.v1 as tf, modeling\n"
      "config = modeling.BertConfig.from_json_file(%r)\n"
      "with tf.Graph().as_default():\n"
      "  modeling.BertModel(config, False, tf.zeros([1, 4], tf.int32))\n"
      "  with tf.Session() as s:\n"
      "    s.run(tf.global_variables_initializer())\n"
      "    tf.train.Saver().save(s, %r)\n") % (files["config"], checkpoint)])
  assert code == 0, output[-2000:]
  code, output = script_helpers.run_script("export_huggingface.py", [
      "--bert_config_file=" + files["config"], "--init_checkpoint=" + checkpoint,
      "--vocab_file=" + files["latin1"],
      "--output_dir=" + str(tmp_path / "hf")], expect_success=False)
  assert code == 1 and "Traceback" not in output
  assert script_helpers.last_line(output) == (
      "export_huggingface.py: %s line 3 is not UTF-8 text (byte 0xe9 at "
      "column 4)." % files["latin1"])
  code, output = script_helpers.run_script("export_tflite.py", [
      "--bert_config_file=" + files["config"], "--init_checkpoint=" + checkpoint,
      "--export_dir=" + str(tmp_path / "export"), "--max_seq_length=32",
      "--task=squad", "--use_post_quantization", "--activation_quantization",
      "--representative_file=" + files["text_tfrecord"]],
                                           expect_success=False)
  assert code == 1 and "Traceback" not in output
  line = script_helpers.last_line(output)
  if "needs the TF 2.15 runtime" not in line:  # TF 1.15 refuses int8 first.
    assert line.startswith(
        "export_tflite.py: %s is not a TFRecord file, or is damaged from its "
        "first record (corrupted record at 0" % files["text_tfrecord"]), line
