"""Tests for the bench/ plumbing: the multiply-add count behind the physical
bound, the timing/subprocess helpers, and run_all's table (ratios, missing or
failed scripts, peers not installed).  No timing is asserted here."""

import argparse
import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH_DIR = os.path.join(REPO_ROOT, "bench")
if BENCH_DIR not in sys.path:
  sys.path.insert(0, BENCH_DIR)

import bench_litert  # pylint: disable=g-import-not-at-top,wrong-import-position
import bench_util  # pylint: disable=g-import-not-at-top,wrong-import-position
import modeling  # pylint: disable=g-import-not-at-top,wrong-import-position
import physical_bound  # pylint: disable=g-import-not-at-top,wrong-import-position
import run_all  # pylint: disable=g-import-not-at-top,wrong-import-position

OPT_CONFIG = os.path.join(REPO_ROOT, "config",
                          "uncased_L-24_H-128_B-512_A-4_F-4_OPT.json")

# Kernel shapes of one OPT layer, copied from docs/architecture.md 5.1.  Every
# kernel [in, out] costs in*out multiply-adds per token.
OPT_LAYER_KERNELS = (
    [(512, 128), (512, 128),            # bottleneck input / attention
     (128, 128), (128, 128), (512, 128),  # query, key, value
     (128, 128)]                        # attention output
    + [(128, 512), (512, 128)] * 4      # three ffn_layer_j + the final FFN
    + [(128, 512)])                     # output bottleneck


def _opt_multiply_adds_by_hand(seq):
  per_token_layer = sum(i * o for i, o in OPT_LAYER_KERNELS)
  assert per_token_layer == 835584
  embedding = seq * 384 * 512           # trigram [S, 384] x [384, 512]
  # Scores and context: per head S*S*32 each, 4 heads.
  attention = 24 * 2 * seq * seq * 4 * 32
  squad_head = seq * 512 * 2
  return embedding + 24 * seq * per_token_layer + attention + squad_head


@pytest.mark.parametrize("seq", [128, 384])
def test_opt_multiply_adds_match_the_spec_shapes(seq):
  config = modeling.BertConfig.from_json_file(OPT_CONFIG)
  counts = physical_bound.multiply_adds(config, seq)
  assert counts["total"] == _opt_multiply_adds_by_hand(seq)
  assert counts["value"] == 24 * seq * 512 * 128
  assert counts["feed_forward"] == 24 * 4 * 2 * seq * 128 * 512
  assert sum(v for k, v in counts.items() if k != "total") == counts["total"]


def test_squad_head_can_be_left_out():
  config = modeling.BertConfig.from_json_file(OPT_CONFIG)
  counts = physical_bound.multiply_adds(config, 128, include_squad_head=False)
  assert counts["squad_head"] == 0
  assert counts["total"] == _opt_multiply_adds_by_hand(128) - 128 * 512 * 2


def test_plain_bert_multiply_adds():
  # BERT-base: 12 layers of 4*768^2 (q, k, v, output) + 2*768*3072 (FFN) per
  # token, no embedding projection, no bottleneck.
  config = modeling.BertConfig(vocab_size=100, hidden_size=768,
                               num_hidden_layers=12, num_attention_heads=12,
                               intermediate_size=3072)
  seq = 64
  expected = (seq * 12 * (4 * 768 * 768 + 2 * 768 * 3072) +
              12 * 2 * seq * seq * 768 + seq * 768 * 2)
  counts = physical_bound.multiply_adds(config, seq)
  assert counts["total"] == expected
  assert counts["embedding_projection"] == 0
  assert counts["output_bottleneck"] == 0


def test_bound_ms_and_bad_arguments():
  # 1e9 multiply-adds = 2e9 FLOP; at 100 GFLOP/s that is 20 ms.
  assert physical_bound.bound_ms(1e9, 100.0) == pytest.approx(20.0)
  with pytest.raises(ValueError, match="peak_gflops"):
    physical_bound.bound_ms(1e9, 0.0)
  config = modeling.BertConfig.from_json_file(OPT_CONFIG)
  with pytest.raises(ValueError, match="seq_length"):
    physical_bound.multiply_adds(config, 0)


def test_latency_summary_against_numpy():
  times = [5.0, 1.0, 3.0, 9.0, 7.0, 2.0]
  summary = bench_util.latency_summary(times)
  assert summary["median"] == pytest.approx(np.median(times))
  assert summary["mean"] == pytest.approx(np.mean(times))
  assert summary["min"] == 1.0
  assert summary["runs"] == 6
  with pytest.raises(ValueError):
    bench_util.latency_summary([])


def test_make_inputs_layout():
  inputs = bench_util.make_inputs(2000, 2, 16, np.int32)
  assert inputs["input_ids"].dtype == np.int32
  assert inputs["input_ids"].shape == (2, 16)
  assert (inputs["input_ids"][:, 0] == 101).all()
  assert ((inputs["input_ids"] >= 1000) | (inputs["input_ids"] == 101)).all()
  assert (inputs["input_mask"] == 1).all()
  np.testing.assert_array_equal(inputs["segment_ids"][0], [0] * 4 + [1] * 12)
  again = bench_util.make_inputs(2000, 2, 16, np.int64)
  np.testing.assert_array_equal(again["input_ids"], inputs["input_ids"])


def test_run_child_reports_result_and_failure(tmp_path):
  result_file = str(tmp_path / "r.json")
  ok = bench_util.run_child(
      [sys.executable, "-c",
       "import json, sys; json.dump({'x': 4}, open(sys.argv[1], 'w'))",
       result_file], result_file, timeout=60)
  assert ok["status"] == "ok" and ok["x"] == 4
  assert not os.path.exists(result_file)       # read, then removed
  failed = bench_util.run_child(
      [sys.executable, "-c", "import sys; print('boom'); sys.exit(3)"],
      result_file, timeout=60)
  assert failed["status"] == "failed"
  assert "exit code 3" in failed["error"] and "boom" in failed["error"]
  assert not os.path.exists(result_file)


def test_parse_seq_lengths_accepts_both_flag_forms_and_names_bad_values():
  assert bench_util.parse_seq_lengths("128,384", 512, "c.json") == [
      128, 384]
  assert bench_util.parse_seq_lengths("32, 64", 512, "c.json") == [32, 64]
  with pytest.raises(ValueError, match="positive integers, got '0'"):
    bench_util.parse_seq_lengths("0", 512, "c.json")
  with pytest.raises(ValueError, match="got 'x'"):
    bench_util.parse_seq_lengths("x", 512, "c.json")
  with pytest.raises(ValueError,
                     match="600 exceeds max_position_embeddings 512 of c.json"):
    bench_util.parse_seq_lengths("128,600", 512, "c.json")


def test_check_minimums_names_the_first_flag_below_its_minimum():
  flag_values = argparse.Namespace(runs=3, warmup_runs=-1, num_threads=0)
  bench_util.check_minimums(flag_values, {"runs": 1})
  with pytest.raises(ValueError, match="--warmup_runs must be >= 0, got -1"):
    bench_util.check_minimums(flag_values, {"runs": 1, "warmup_runs": 0,
                                            "num_threads": 1})


def test_child_command_copies_flags(tmp_path):
  flag_values = argparse.Namespace(runs=20, seq_lengths="128,384")
  command = bench_util.child_command("bench/x.py", flag_values,
                                     ("seq_lengths", "runs"), ["--measure", "a"])
  assert command == [sys.executable, os.path.abspath("bench/x.py"),
                     "--measure", "a", "--seq_lengths", "128,384",
                     "--runs", "20"]
  result_file = str(tmp_path / "child.json")
  bench_util.write_child_result(result_file, {"latency_ms": {"median": 1.0}})
  with open(result_file) as f:
    written = json.load(f)
  assert written["latency_ms"] == {"median": 1.0}
  # The child's own high-water mark: this test process holds numpy and
  # TensorFlow, so it is well above a bare interpreter's few MB.
  assert written["peak_rss_mb"] > 50


def test_bench_litert_finds_bench_tflite_exports(tmp_path):
  for relative in ("export_seq128/model_float.tflite",
                   "export_seq128/model_int8.tflite",
                   "export_seq384/model_float.tflite",
                   "export_seq384/model_qat_int8.tflite",   # not benched
                   "export_seq384/notes.txt",
                   "export_seq32/model_float.tflite",       # not asked for
                   "random/model_float.tflite"):            # not an export
    path = tmp_path / relative
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(b"")
  models = bench_litert.find_models(str(tmp_path), [128, 384])
  assert models == {
      "float": {128: str(tmp_path / "export_seq128/model_float.tflite"),
                384: str(tmp_path / "export_seq384/model_float.tflite")},
      "int8": {128: str(tmp_path / "export_seq128/model_int8.tflite")}}
  assert bench_litert.input_name("serving_default_input_mask:0") == (
      "input_mask")
  assert bench_litert.input_name("segment_ids") == "segment_ids"


@pytest.mark.parametrize("script", ["bench_litert.py", "bench_paired.py"])
def test_litert_scripts_name_a_bad_config_or_length(tmp_path, script):
  config = tmp_path / "config.json"
  config.write_text(json.dumps({"vocab_size": 50,
                                "max_position_embeddings": 64}))
  cases = [(["--bert_config_file", str(tmp_path / "absent.json")],
            "--bert_config_file %s cannot be read as JSON: [Errno 2] No "
            "such file" % (tmp_path / "absent.json")),
           (["--bert_config_file", str(config), "--seq_lengths", "8,128"],
            "--seq_lengths value 128 exceeds max_position_embeddings 64")]
  for flags, message in cases:
    completed = subprocess.run(
        [sys.executable, os.path.join(BENCH_DIR, script), "--output_file",
         str(tmp_path / "result.json")] + flags,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        universal_newlines=True, timeout=120)
    assert completed.returncode == 2, completed.stderr
    assert message in completed.stderr
    assert "Traceback" not in completed.stderr
    assert not (tmp_path / "result.json").exists()


@pytest.mark.parametrize("script", ["bench_litert.py", "bench_paired.py"])
def test_litert_scripts_without_litert_say_not_installed(tmp_path, script):
  if importlib.util.find_spec("ai_edge_litert") is not None:
    pytest.skip("ai-edge-litert is installed here (it belongs in .venv/bench)")
  output = tmp_path / "result.json"
  completed = subprocess.run(
      [sys.executable, os.path.join(BENCH_DIR, script),
       "--output_file", str(output), "--tflite_dir", str(tmp_path)],
      stdout=subprocess.PIPE, stderr=subprocess.PIPE,
      universal_newlines=True, timeout=120)
  assert completed.returncode == 0, completed.stderr
  assert "ai-edge-litert is not installed" in completed.stderr
  assert json.loads(output.read_text())["status"] == "not installed"


def _runs(tflite=None, peers=None, squad=None, bound=None, pretraining=None,
          litert=None, paired=None):
  """Run records as run_all.main builds them."""
  runs = {"physical_bound": {"status": "ok", "result": bound or {}},
          "bench_tflite": ({"status": "ok", "result": tflite}
                           if tflite is not None else
                           {"status": "missing (no bench/bench_tflite.py)"}),
          "bench_litert": {"status": "ok", "result": litert or {
              "status": "not installed", "missing": ["ai_edge_litert"]}},
          "bench_savedmodel": {"status": "failed (exit code 1) (see log)"},
          "bench_squad": {"status": "ok", "result": squad or {}},
          "bench_pretraining": {"status": "ok", "result": pretraining or {}}}
  runs["peers"] = {"status": "ok", "result": peers or {}}
  runs["bench_paired"] = {"status": "ok", "result": paired or {
      "status": "not installed", "missing": ["ai_edge_litert"]}}
  return runs


def _row(rows, label, peer_name):
  matches = [r for r in rows if r["measurement"] == label and
             r["peer_name"] == peer_name]
  assert len(matches) == 1, label
  return matches[0]


def _evaluate(runs):
  return [run_all.evaluate_row(row, runs)
          for row in run_all.table_rows(run_all.SEQ_LENGTHS, 384)]


def _goals(runs, int8_dot_product=True):
  return [run_all.evaluate_goal(goal, runs)
          for goal in run_all.goal_rows(run_all.SEQ_LENGTHS, int8_dot_product)]


PEERS = {"status": "ok", "measurements": {
    "ort_dynamic_int8_seq384": {"latency_ms": {"median": 55.0},
                                "peak_rss_mb": 300.0},
    "ort_fp32_seq384": {"latency_ms": {"median": 114.0}},
    "torch_fp32_seq384": {"latency_ms": {"median": 185.0}},
    "torch_finetune_b8_seq384": {"examples_per_sec": 2.0},
    "export_onnx_seq384": {"model_bytes": {"fp32": 100e6}},
}}


def test_latency_ratio_bound_and_targets():
  tflite = {"models": {"int8": {"384": {"latency_ms": {"median": 44.0},
                                        "peak_rss_mb": 120.0}},
                       "float": {"384": {"latency_ms": {"median": 100.0}},
                                 "size_bytes": 50e6}}}
  bound = {"seq_lengths": {"384": {"bound_ms": 80.0}}}
  squad = {"fine_tuning": {"examples_per_sec": 3.0},
           "fine_tuning_onednn": {"status": "ok", "examples_per_sec": 2.2,
                                  "peak_rss_mb": 4000.0},
           "featurisation": {"questions_per_sec": 400.0}}
  litert = {"status": "ok", "models": {
      "float": {"384": {"status": "ok", "latency_ms": {"median": 120.0},
                        "peak_rss_mb": 200.0}},
      "dynamic_range": {"384": {"status": "ok",
                                "latency_ms": {"median": 110.0}}}}}
  pretraining = {"distillation_step": {"status": "ok", "examples_per_sec": 1.5,
                                       "peak_rss_mb": 900.0}}
  rows = _evaluate(_runs(tflite, PEERS, squad, bound, pretraining, litert))

  int8 = _row(rows, "latency seq 384: TF-Lite int8 on TF 2.15",
              "ONNX Runtime dynamic int8")
  assert int8["ours"] == 44.0 and int8["peer"] == 55.0
  assert int8["speedup"] == pytest.approx(55.0 / 44.0)
  assert int8["ours_peak_rss_mb"] == 120.0 and int8["peer_peak_rss_mb"] == 300.0
  # Latency goals are judged in the side-by-side table only.
  assert int8["target"] == "" and int8["target_met"] is None

  float_ort = _row(rows, "latency seq 384: TF-Lite float on TF 2.15",
                   "ONNX Runtime fp32")
  assert float_ort["speedup"] == pytest.approx(1.14)
  assert float_ort["ours_over_bound"] == pytest.approx(100.0 / 80.0)
  assert float_ort["peer_over_bound"] == pytest.approx(114.0 / 80.0)

  torch = _row(rows, "latency seq 384: TF-Lite float on TF 2.15",
               "PyTorch fp32 eager")
  assert torch["speedup"] == pytest.approx(1.85)

  size = _row(rows, "model file: TF-Lite float", "ONNX fp32")
  assert size["ours"] == pytest.approx(50.0) and size["peer"] == 100.0
  assert size["speedup"] == pytest.approx(2.0)

  finetune = _row(rows, "fine-tuning b8 seq 384: TF 2.15 graph",
                  "PyTorch eager + AdamW")
  assert finetune["speedup"] == pytest.approx(1.5)   # throughput: ours/peer
  assert finetune["target_met"] is True
  onednn = _row(rows, "fine-tuning b8 seq 384: TF 2.15 graph, "
                "TF_ENABLE_ONEDNN_OPTS=1", "PyTorch eager + AdamW")
  assert onednn["speedup"] == pytest.approx(1.1)
  assert onednn["ours_peak_rss_mb"] == 4000.0
  assert onednn["target_met"] is False               # 1.1x < 1.2x

  # The same files on LiteRT: their own rows, bound and targets.
  litert_float = _row(rows, "latency seq 384: TF-Lite float on LiteRT",
                      "ONNX Runtime fp32")
  assert litert_float["ours"] == 120.0
  assert litert_float["ours_peak_rss_mb"] == 200.0
  assert litert_float["speedup"] == pytest.approx(114.0 / 120.0)
  assert litert_float["ours_over_bound"] == pytest.approx(1.5)
  litert_dynamic = _row(rows, "latency seq 384: TF-Lite dynamic-range on "
                        "LiteRT", "ONNX Runtime dynamic int8")
  assert litert_dynamic["speedup"] == pytest.approx(0.5)
  litert_int8 = _row(rows, "latency seq 384: TF-Lite int8 on LiteRT",
                     "ONNX Runtime dynamic int8")
  assert litert_int8["ours_note"] == "not in bench_litert.json"

  distill = _row(rows, "distillation step (teacher + student)", None)
  assert distill["ours"] == 1.5 and distill["ours_peak_rss_mb"] == 900.0
  assert distill["speedup"] is None

  featurisation = _row(rows, "SQuAD featurisation", None)
  # 88k questions in 180 s needs about 489 questions/s.
  assert featurisation["target_met"] is False


def _goal(goals, label, peer_name):
  matches = [g for g in goals if g["measurement"] == label and
             g["peer_name"] == peer_name]
  assert len(matches) == 1, label
  return matches[0]


# Block medians (ms) per round, as bench_paired writes them.  Round by round
# the float file takes 2.0x, 1.0x and 2.5x the int8 file's time: the median
# round is 2.0x, while the ratio of the two medians (30 / 20) is only 1.5x.
PAIRED = {"status": "ok", "rounds": 3, "block_runs": 5, "seq_lengths": {
    "384": {"block_medians_ms": {
        "litert_int8": [10.0, 30.0, 20.0],
        "litert_float": [20.0, 30.0, 50.0],
        "litert_dynamic_range": [10.0, 10.0, 10.0],
        "ort_dynamic_int8": [12.0, 14.0, 13.0]},
            "missing": {"ort_fp32": "onnxruntime is not installed"}}}}


def test_goals_are_judged_round_by_round():
  bound = {"seq_lengths": {"384": {"bound_ms": 25.0}}}
  goals = _goals(_runs(bound=bound, paired=PAIRED))
  label = "latency seq 384: TF-Lite int8 on LiteRT"
  over_float = _goal(goals, label, "TF-Lite float on LiteRT")
  assert over_float["ours"] == 20.0 and over_float["peer"] == 30.0
  assert over_float["speedup"] == pytest.approx(2.0)
  assert over_float["speedup_range"] == pytest.approx([1.0, 2.5])
  assert over_float["rounds"] == 3
  assert over_float["target"] == "speed-up >= 2.0"
  assert over_float["target_met"] is True
  over_ort = _goal(goals, label, "ONNX Runtime dynamic int8")
  # Rounds: 1.2x, 0.467x, 0.65x.
  assert over_ort["speedup"] == pytest.approx(0.65)
  assert over_ort["target_met"] is False
  dynamic = _goal(goals, "latency seq 384: TF-Lite dynamic-range on LiteRT",
                  "ONNX Runtime dynamic int8")
  assert dynamic["speedup"] == pytest.approx(1.3)   # 1.2, 1.4, 1.3
  assert dynamic["target_met"] is True
  float_ort = _goal(goals, "latency seq 384: TF-Lite float on LiteRT",
                    "ONNX Runtime fp32")
  assert float_ort["speedup"] is None
  assert float_ort["note"] == "ONNX Runtime fp32: onnxruntime is not installed"
  assert float_ort["target_met"] is None
  # No goal at 128, and nothing measured there.
  short = _goal(goals, "latency seq 128: TF-Lite int8 on LiteRT",
                "TF-Lite float on LiteRT")
  assert short["target"] == "" and short["note"].endswith(
      "not in bench_paired.json")
  markdown = "\n".join(run_all.goals_markdown(goals, _runs(paired=PAIRED)))
  assert "3 rounds of 5 timed calls per model" in markdown
  assert ("| latency seq 384: TF-Lite int8 on LiteRT (ms) | 20.0 | TF-Lite "
          "float on LiteRT | 30.0 | 2.00x | 1.00-2.50 | n/a | speed-up >= "
          "2.0 (met) |") in markdown


def test_integer_against_float_goal_depends_on_the_cpu():
  """Full-integer at least 2x float on LiteRT with int8 dot products, at
  least as fast elsewhere."""
  paired = {"status": "ok", "seq_lengths": {"384": {"block_medians_ms": {
      "litert_float": [90.0], "litert_int8": [60.0]}}}}
  label = "latency seq 384: TF-Lite int8 on LiteRT"
  with_vnni = _goal(_goals(_runs(paired=paired)), label,
                    "TF-Lite float on LiteRT")
  assert with_vnni["speedup"] == pytest.approx(1.5)
  assert with_vnni["target"] == "speed-up >= 2.0"
  assert with_vnni["target_met"] is False
  avx2_only = _goal(_goals(_runs(paired=paired), int8_dot_product=False),
                    label, "TF-Lite float on LiteRT")
  assert avx2_only["target"] == "speed-up >= 1.0"
  assert avx2_only["target_met"] is True
  not_installed = _goal(_goals(_runs()), label, "TF-Lite float on LiteRT")
  assert not_installed["note"] == "not installed"
  assert not_installed["target_met"] is None


# Two rounds at each length.  At 384 ONNX Runtime's dynamic int8 is the
# faster ORT model in round 1 and fp32 in round 2.
PAIRED_FLOAT_SOFTMAX = {"status": "ok", "rounds": 2, "block_runs": 5,
                        "seq_lengths": {
    "384": {"block_medians_ms": {
        "litert_float": [80.0, 100.0],
        "litert_dynamic_range": [30.0, 30.0],
        "litert_int8": [50.0, 50.0],
        "litert_int8_float_softmax": [36.0, 44.0],
        "ort_fp32": [60.0, 45.0],
        "ort_dynamic_int8": [40.0, 50.0]}, "missing": {}},
    "128": {"block_medians_ms": {
        "litert_float": [30.0, 30.0],
        "litert_dynamic_range": [9.0, 8.0],
        "litert_int8": [12.0, 12.0],
        "litert_int8_float_softmax": [8.5, 8.5]}, "missing": {}}}}


def test_float_softmax_goals_depend_on_the_cpu():
  """With int8 dot products: 2x our float file and 1.5x ORT's dynamic int8.
  AVX2 only: 1.15x our float file and 1.1x the faster ORT model, taken
  round by round.  At 128 on both: no slower than any other file of ours."""
  label = "latency seq 384: TF-Lite int8 float-softmax on LiteRT"
  runs = _runs(paired=PAIRED_FLOAT_SOFTMAX)
  vnni = _goals(runs)
  over_float = _goal(vnni, label, "TF-Lite float on LiteRT")
  # Rounds 80 / 36 = 2.22 and 100 / 44 = 2.27.
  assert over_float["speedup"] == pytest.approx((80 / 36 + 100 / 44) / 2)
  assert over_float["target"] == "speed-up >= 2.0"
  assert over_float["target_met"] is True
  over_ort = _goal(vnni, label, "ONNX Runtime dynamic int8")
  # Rounds 40 / 36 and 50 / 44: both about 1.1.
  assert over_ort["target"] == "speed-up >= 1.5"
  assert over_ort["target_met"] is False
  avx2 = _goals(runs, int8_dot_product=False)
  assert _goal(avx2, label, "TF-Lite float on LiteRT")["target"] == (
      "speed-up >= 1.15")
  over_faster = _goal(avx2, label,
                      "ONNX Runtime, faster of fp32 / dynamic int8")
  # Faster ORT per round: 40 then 45; ratios 40 / 36 and 45 / 44.
  assert over_faster["peer"] == pytest.approx(42.5)
  assert over_faster["speedup"] == pytest.approx((40 / 36 + 45 / 44) / 2)
  assert over_faster["target"] == "speed-up >= 1.1"
  assert over_faster["target_met"] is False
  short_label = "latency seq 128: TF-Lite int8 float-softmax on LiteRT"
  for goals in (vnni, avx2):
    short = [g for g in goals if g["measurement"] == short_label and
             g["target"]]
    assert sorted(g["peer_name"] for g in short) == [
        "TF-Lite dynamic-range on LiteRT", "TF-Lite float on LiteRT",
        "TF-Lite int8 on LiteRT"]
    met = {g["peer_name"]: g["target_met"] for g in short}
    # 8.5 against the dynamic-range file's 9.0 and 8.0: 1.06 and 0.94.
    assert met == {"TF-Lite dynamic-range on LiteRT": True,
                   "TF-Lite float on LiteRT": True,
                   "TF-Lite int8 on LiteRT": True}


def test_summary_names_the_fastest_file_per_sequence_length():
  fastest = run_all.fastest_of_ours(_runs(paired=PAIRED_FLOAT_SOFTMAX),
                                    run_all.SEQ_LENGTHS)
  assert {seq: best for seq, (best, _) in fastest.items()} == {
      128: "litert_dynamic_range", 384: "litert_dynamic_range"}
  lines = run_all.fastest_markdown(fastest)
  assert ("- seq 384: TF-Lite dynamic-range on LiteRT, 30.0 ms (TF-Lite "
          "float on LiteRT 90.0 ms, TF-Lite int8 on LiteRT 50.0 ms, TF-Lite "
          "int8 float-softmax on LiteRT 40.0 ms).") in lines
  assert run_all.fastest_markdown(run_all.fastest_of_ours(
      _runs(), run_all.SEQ_LENGTHS)) == []


def test_time_alternating_times_blocks_in_turn():
  order = []
  now = [0.0]
  # Milliseconds each call takes on a fake clock, in call order.  Every block
  # is one untimed call (slow here: 50 or 100 ms, which must not count) and
  # two timed ones.
  durations = {"a": [50.0, 2.0, 2.0, 50.0, 2.0, 4.0],
               "b": [100.0, 5.0, 5.0, 100.0, 5.0, 9.0]}

  def make(name):
    def call():
      order.append(name)
      now[0] += durations[name].pop(0) / 1e3
    return call

  medians = bench_util.time_alternating([("a", make("a")), ("b", make("b"))],
                                        rounds=2, block_runs=2,
                                        clock=lambda: now[0])
  assert order == ["a"] * 3 + ["b"] * 3 + ["a"] * 3 + ["b"] * 3
  assert medians["a"] == pytest.approx([2.0, 3.0])
  assert medians["b"] == pytest.approx([5.0, 7.0])
  with pytest.raises(ValueError, match="rounds and block_runs"):
    bench_util.time_alternating([("a", make("a"))], rounds=0, block_runs=1)


def _write_tiny_tflite(path, seq_length, vocabulary_rows):
  """A [1, seq_length] model with our three int32 inputs.

  The input_ids are looked up (GATHER) in a [vocabulary_rows, 1] table.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  spec = [tf.TensorSpec([1, seq_length], tf.int32, name=name)
          for name in ("input_ids", "input_mask", "segment_ids")]
  table = tf.constant(np.arange(vocabulary_rows, dtype=np.float32)[:, None])

  @tf.function(input_signature=spec)
  def model(input_ids, input_mask, segment_ids):
    embedded = tf.gather(table, input_ids)[:, :, 0]
    return embedded * tf.cast(input_mask + segment_ids, tf.float32)

  converter = tf.lite.TFLiteConverter.from_concrete_functions(
      [model.get_concrete_function()], model)
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_bytes(converter.convert())


def test_bench_paired_times_every_model_it_finds(tmp_path):
  if importlib.util.find_spec("ai_edge_litert") is None:
    pytest.skip("ai-edge-litert is not installed in this venv")
  if importlib.util.find_spec("onnxruntime") is not None:
    pytest.skip("onnxruntime is installed here (it belongs in .venv/bench)")
  exports = tmp_path / "tflite"
  tiny = exports / "export_seq8" / "model_float.tflite"
  _write_tiny_tflite(tiny, 8, vocabulary_rows=50)
  (tiny.parent / "model_int8.tflite").write_bytes(tiny.read_bytes())
  # From a run with a smaller vocabulary: left out, with the reason.
  _write_tiny_tflite(tiny.parent / "model_dynamic_range.tflite", 8,
                     vocabulary_rows=10)
  # A sequence length this run does not ask for: not loaded at all.
  _write_tiny_tflite(exports / "export_seq16" / "model_float.tflite", 16,
                     vocabulary_rows=10)
  config = tmp_path / "config.json"
  config.write_text(json.dumps({"vocab_size": 50,
                                "max_position_embeddings": 64}))
  output = tmp_path / "bench_paired.json"
  completed = subprocess.run(
      [sys.executable, os.path.join(BENCH_DIR, "bench_paired.py"),
       "--bert_config_file", str(config), "--seq_lengths", "8",
       "--tflite_dir", str(exports), "--onnx_dir", str(tmp_path),
       "--rounds", "3", "--block_runs", "2", "--output_file", str(output)],
      stdout=subprocess.PIPE, stderr=subprocess.PIPE,
      universal_newlines=True, timeout=300)
  assert completed.returncode == 0, completed.stderr
  result = json.loads(output.read_text())
  assert (result["rounds"], result["block_runs"]) == (3, 2)
  assert sorted(result["seq_lengths"]) == ["8"]
  record = result["seq_lengths"]["8"]
  assert sorted(record["block_medians_ms"]) == ["litert_float", "litert_int8"]
  for medians in record["block_medians_ms"].values():
    assert len(medians) == 3 and all(m > 0 for m in medians)
  assert record["missing"] == {
      "litert_dynamic_range": "%s has 10 vocabulary rows but "
                              "--bert_config_file's vocab_size is 50: it was "
                              "exported from another config"
                              % (tiny.parent / "model_dynamic_range.tflite"),
      "litert_int8_float_softmax": "no model_int8_float_softmax.tflite under "
                                   "--tflite_dir",
      "ort_fp32": "onnxruntime is not installed",
      "ort_dynamic_int8": "onnxruntime is not installed"}
  assert "bench_paired: seq 8 litert_int8: block medians" in completed.stderr


def test_cpu_int8_dot_product_flags(tmp_path):
  cpuinfo = tmp_path / "cpuinfo"
  cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f "
                     "avx512_vnni avx_vnni\n\nprocessor\t: 1\nflags\t\t: "
                     "fpu avx2 avx512f avx512_vnni avx_vnni\n")
  assert bench_util.cpu_int8_dot_product_flags(str(cpuinfo)) == [
      "avx512_vnni", "avx_vnni"]
  cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse4_2 avx2 fma\n")
  assert bench_util.cpu_int8_dot_product_flags(str(cpuinfo)) == []
  cpuinfo.write_text("processor\t: 0\nFeatures\t: fp asimd asimddp\n")
  assert bench_util.cpu_int8_dot_product_flags(str(cpuinfo)) == ["asimddp"]
  assert bench_util.cpu_int8_dot_product_flags(str(tmp_path / "none")) == []
  assert run_all.int8_features_text([]) == (
      "int8 dot product: no (e.g. AVX2 only)")


class _FakeInterpreter(object):
  """Nodes as LiteRT lists them: the model's, then one DELEGATE per
  partition (with the partition's boundary tensors)."""

  def __init__(self, nodes):
    self.nodes = nodes

  def _get_ops_details(self):  # pylint: disable=invalid-name
    return self.nodes


def test_delegation_counts_nodes_inside_partitions():
  # t0 -FC-> t1 -ADD(t1, t2)-> t3 -SOFTMAX-> t4 -FC-> t5 ; t2 is a constant.
  # XNNPACK took {FC, ADD} (t0 -> t3) and {FC} (t4 -> t5); SOFTMAX is left.
  nodes = [
      {"index": 0, "op_name": "FULLY_CONNECTED", "inputs": [0, 6, -1],
       "outputs": [1]},
      {"index": 1, "op_name": "ADD", "inputs": [1, 2], "outputs": [3]},
      {"index": 2, "op_name": "SOFTMAX", "inputs": [3], "outputs": [4]},
      {"index": 3, "op_name": "FULLY_CONNECTED", "inputs": [4, 7],
       "outputs": [5]},
      {"index": 4, "op_name": "DELEGATE", "inputs": [0, 2, 6], "outputs": [3]},
      {"index": 5, "op_name": "DELEGATE", "inputs": [4, 7], "outputs": [5]},
  ]
  assert bench_litert.delegation(_FakeInterpreter(nodes)) == {
      "delegated_nodes": 3, "total_nodes": 4, "partitions": 2,
      "not_delegated": {"SOFTMAX": 1}}
  runs = _runs(litert={"status": "ok", "models": {"int8": {"384": {
      "status": "ok", "latency_ms": {"median": 1.0},
      "delegation": {"delegated_nodes": 856, "total_nodes": 884,
                     "partitions": 26,
                     "not_delegated": {"SOFTMAX": 24, "GATHER": 3}}}}}})
  assert run_all.delegation_markdown(runs)[-1] == (
      "| TF-Lite int8 seq 384 | 856 / 884 | 26 | GATHER 3, SOFTMAX 24 |")
  assert run_all.delegation_markdown(_runs()) == []


def test_missing_failed_and_not_installed_say_so():
  rows = _evaluate(_runs(tflite=None, peers={"status": "not installed",
                                             "missing": ["torch"]}))
  float_ort = _row(rows, "latency seq 128: TF-Lite float on TF 2.15",
                   "ONNX Runtime fp32")
  assert float_ort["ours"] is None and float_ort["ours_note"] == "missing"
  assert float_ort["peer"] is None and float_ort["peer_note"] == "not installed"
  assert float_ort["speedup"] is None
  litert = _row(rows, "latency seq 128: TF-Lite float on LiteRT",
                "ONNX Runtime fp32")
  assert litert["ours"] is None and litert["ours_note"] == "not installed"
  saved = _row(rows, "latency seq 128: TF SavedModel (TF 2.15)",
               "PyTorch fp32 eager")
  assert saved["ours_note"] == "failed"
  distill = _row(rows, "distillation step (teacher + student)", None)
  assert distill["ours_note"] == "not in bench_pretraining.json"

  tflite = {"models": {"int8": {"384": {"status": "failed",
                                        "error": "exit code 1"}}}}
  rows = _evaluate(_runs(tflite, PEERS))
  int8 = _row(rows, "latency seq 384: TF-Lite int8 on TF 2.15",
              "ONNX Runtime dynamic int8")
  assert int8["ours"] is None and int8["ours_note"] == "failed"
  assert int8["peer"] == 55.0 and int8["target_met"] is None


def test_run_all_tabulates_existing_results(tmp_path):
  results = tmp_path / "results"
  results.mkdir()
  (results / "peers.json").write_text(json.dumps(PEERS))
  (results / "bench_savedmodel.json").write_text(json.dumps(
      {"seq_lengths": {"384": {"status": "ok", "latency_ms": {"median": 228.0},
                               "peak_rss_mb": 700.0}}}))
  (results / "bench_squad.json").write_text("{not json")
  completed = subprocess.run(
      [sys.executable, os.path.join(BENCH_DIR, "run_all.py"), "--skip_runs",
       "--results_dir", str(results)], stdout=subprocess.PIPE,
      stderr=subprocess.PIPE, universal_newlines=True, timeout=120)
  assert completed.returncode == 0, completed.stderr
  summary = json.loads((results / "summary.json").read_text())
  saved = _row(summary["rows"], "latency seq 384: TF SavedModel (TF 2.15)",
               "ONNX Runtime fp32")
  assert saved["speedup"] == pytest.approx(114.0 / 228.0)
  assert summary["scripts"]["bench_tflite"] == "no bench_tflite.json written"
  assert summary["scripts"]["bench_squad"].startswith("unreadable")
  markdown = (results / "summary.md").read_text()
  assert "| 228.0 | ONNX Runtime fp32 | 114.0 | 0.50x |" in markdown
  assert markdown in completed.stdout
