"""The latency goals' ratios, timed side by side in one process.

bench_litert.py and peers.py time each model in its own subprocess, one
after another, minutes apart.  On a shared VM the machine's speed drifts
faster than that: on the 2-core AMD EPYC VM of the README's results, one
float model's 5-call medians ranged from 90 to 174 ms within a minute.  A
ratio of two figures taken at different moments carries that drift.

This script loads every model a latency goal compares, at each of
--seq_lengths, into one process:

  litert_float, litert_dynamic_range, litert_int8, litert_int8_float_softmax
      bench_tflite's files (--tflite_dir/export_seq<S>/model_<kind>.tflite,
      S in --seq_lengths) on LiteRT, as bench_litert.py loads them;
  ort_fp32, ort_dynamic_int8
      peers.py's ONNX files (--onnx_dir/mobilebert_<kind>_seq<S>.onnx) on
      ONNX Runtime, as peers.py runs them;

and times them in alternating blocks (bench_util.time_alternating: --rounds
rounds of one untimed and --block_runs timed calls per model).  run_all
judges each latency goal on the median over rounds of that round's ratio.
Same inputs (bench_util.make_inputs) and --num_threads as the other scripts.

Runs in the peer venv (.venv/bench), after bench_tflite.py and peers.py.  A
runtime that is not installed, a file that is absent, or a .tflite file
exported from another config than --bert_config_file leaves its models out
(listed under "missing"); without LiteRT it writes {"status": "not
installed"}.

Writes --output_file (bench/results/bench_paired.json):
  {"status": "ok", "versions": {...}, "rounds": R, "block_runs": B,
   "num_threads": T, "seq_lengths": {"384": {"block_medians_ms":
   {"litert_float": [R medians], ...}, "missing": {"ort_fp32": "why"}}}}
"""

import importlib.util
import os
import sys

import bench_litert
import bench_util

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))

parser = bench_util.argument_parser(__doc__)
bench_litert.add_model_flags(parser)
parser.add_argument("--onnx_dir",
                    default=os.path.join(BENCH_DIR, "results", "peers_work"),
                    help="peers.py's --work_dir (its ONNX files).")
parser.add_argument("--rounds", type=int, default=20,
                    help="Rounds of alternating blocks.")
parser.add_argument("--block_runs", type=int, default=5,
                    help="Timed calls per model per round (their median is "
                    "the round's figure).")
bench_util.add_threads_argument(parser)
bench_util.add_output_arguments(parser, "bench_paired")


def load_calls(seq_length, litert_paths, args, vocab_size, have_ort):
  """([(name, call)], {name: why missing}) for one sequence length.

  Args:
    seq_length: the sequence length of the files.
    litert_paths: {kind: .tflite path} of bench_tflite's files at seq_length.
    args: the parsed flags.
    vocab_size: bounds the random input ids.
    have_ort: whether onnxruntime is importable.
  """
  # peers imports importlib.metadata (Python 3.8+): imported here so the
  # TF 1.15 venv's tests (Python 3.7) can import this module.
  import peers  # pylint: disable=g-import-not-at-top
  calls, missing = [], {}
  for kind in bench_litert.KINDS:
    name = "litert_" + kind
    if kind not in litert_paths:
      missing[name] = "no model_%s.tflite under --tflite_dir" % kind
      continue
    try:
      model = bench_litert.load_model(litert_paths[kind], args.num_threads,
                                      vocab_size)
    except ValueError as e:
      missing[name] = str(e)
      continue
    calls.append((name, model.invoke))
  for kind, onnx_file in peers.onnx_paths(args.onnx_dir, seq_length).items():
    name = "ort_" + kind
    if not have_ort:
      missing[name] = "onnxruntime is not installed"
    elif not os.path.exists(onnx_file):
      missing[name] = "no %s (run peers.py first)" % onnx_file
    else:
      calls.append((name, peers.ort_call(onnx_file, args.num_threads,
                                         vocab_size, seq_length)))
  return calls, missing


def main():
  args = parser.parse_args()
  try:
    bench_util.check_minimums(args, {"rounds": 1, "block_runs": 1,
                                     "num_threads": 1})
    vocab_size, seq_lengths = bench_litert.read_model_flags(args)
  except ValueError as e:
    parser.error(str(e))
  if bench_litert.report_if_litert_missing("bench_paired", args.output_file):
    return
  by_seq = {}
  for kind, paths in bench_litert.find_models(args.tflite_dir,
                                             seq_lengths).items():
    for seq_length, path in paths.items():
      by_seq.setdefault(seq_length, {})[kind] = path
  if not by_seq:
    parser.error(bench_litert.NO_MODELS_MESSAGE % (args.seq_lengths,
                                                   args.tflite_dir))
  # Python 3.8+ only, like bench_litert's.
  from importlib import metadata  # pylint: disable=g-import-not-at-top
  have_ort = importlib.util.find_spec("onnxruntime") is not None
  versions = {"ai-edge-litert": metadata.version("ai-edge-litert"),
              "python": sys.version.split()[0]}
  if have_ort:
    versions["onnxruntime"] = metadata.version("onnxruntime")
  result = {"status": "ok", "versions": versions, "rounds": args.rounds,
            "block_runs": args.block_runs, "num_threads": args.num_threads,
            "seq_lengths": {}}
  for seq_length in sorted(by_seq):
    calls, missing = load_calls(seq_length, by_seq[seq_length], args,
                                vocab_size, have_ort)
    medians = bench_util.time_alternating(calls, args.rounds, args.block_runs)
    result["seq_lengths"][str(seq_length)] = {"block_medians_ms": medians,
                                              "missing": missing}
    for name, values in medians.items():
      print("bench_paired: seq %d %s: block medians %s ms" % (
          seq_length, name, " ".join("%.1f" % v for v in values)),
            file=sys.stderr)
    for name, why in sorted(missing.items()):
      print("bench_paired: seq %d %s left out: %s" % (seq_length, name, why),
            file=sys.stderr)
    del calls  # frees this length's models before the next are loaded
  bench_util.write_json(args.output_file, result)


if __name__ == "__main__":
  main()
