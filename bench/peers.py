"""What users run instead of our TF-Lite models on a CPU: the peer benchmarks.

Hugging Face transformers' PyTorch MobileBERT (`MobileBertForQuestionAnswering`)
with our published config translated to `MobileBertConfig` and random weights:

  * inference latency, batch 1, at each --seq_lengths value, with
    - PyTorch fp32 eager,
    - PyTorch dynamic int8 (`torch.ao.quantization.quantize_dynamic` on every
      nn.Linear),
    - the same model exported to ONNX (static [1, seq] inputs, like our
      TF-Lite files) and run with ONNX Runtime fp32,
    - ONNX Runtime's dynamic int8 quantisation of that file
      (`onnxruntime.quantization.quantize_dynamic`, int8 weights);
  * fine-tuning throughput: forward + backward + AdamW step of the QA model,
    --train_batch_size x --train_seq_length, examples/s.

Every measurement runs in a fresh subprocess so its peak resident memory
(the kernel's high-water mark, bench_util.peak_rss_mb) belongs to that
measurement alone.  Latency is
the median of --runs timed calls after --warmup_runs untimed ones, on
--num_threads intra-op threads (inter-op 1).

Runs in its own venv (.venv/bench, bench/requirements.txt); it imports no
TensorFlow.  Without the peer packages it writes {"status": "not installed"}
and exits 0, so `make bench` still prints our own numbers.

  .venv/bench/bin/python bench/peers.py                  # full run
  .venv/bench/bin/python bench/peers.py --bert_config_file config/tiny_mobilebert.json \
      --seq_lengths 32 --runs 3 --warmup_runs 1 --train_seq_length 32 --train_steps 2
"""

import argparse
import importlib.metadata
import importlib.util
import os
import sys

import bench_util

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(BENCH_DIR)
PEER_MODULES = ("numpy", "torch", "transformers", "onnx", "onnxruntime")

# Our activation names -> transformers'; the original's gelu is the tanh form,
# which transformers calls "gelu_new".
HF_ACTIVATIONS = {"relu": "relu", "relu6": "relu6", "gelu": "gelu_new",
                  "tanh": "tanh", "linear": "linear"}
HF_NORMALIZATIONS = ("no_norm", "layer_norm")
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT_NAMES = ("start_logits", "end_logits")

parser = bench_util.argument_parser(__doc__)
bench_util.add_config_argument(parser)
bench_util.add_seq_lengths_argument(parser)
bench_util.add_timing_arguments(parser)
parser.add_argument("--train_batch_size", type=int, default=8)
parser.add_argument("--train_seq_length", type=int, default=384)
parser.add_argument("--train_steps", type=int, default=10,
                    help="Timed fine-tuning steps (after 2 warm-up steps).")
bench_util.add_output_arguments(parser, "peers", "peers_work")
bench_util.add_result_file_argument(parser)
# One measurement in this process (used by the parent for each subprocess).
parser.add_argument("--measure", default=None, help=argparse.SUPPRESS)
parser.add_argument("--seq_length", type=int, default=0, help=argparse.SUPPRESS)


def mobilebert_config_kwargs(config):
  """Keyword arguments of transformers.MobileBertConfig for our config dict.

  Args:
    config: dict from `bench_util.read_config`.

  Returns:
    dict of MobileBertConfig arguments describing the same network.

  Raises:
    ValueError: for an activation or normalisation transformers lacks.
  """
  act = config["hidden_act"]
  if act not in HF_ACTIVATIONS:
    raise ValueError("hidden_act %r has no transformers equivalent (known: %s)"
                     % (act, ", ".join(sorted(HF_ACTIVATIONS))))
  if config["normalization_type"] not in HF_NORMALIZATIONS:
    raise ValueError("normalization_type %r has no transformers equivalent "
                     "(known: %s)" % (config["normalization_type"],
                                      ", ".join(HF_NORMALIZATIONS)))
  kwargs = {key: config[key] for key in bench_util.ORIGINAL_CONFIG_DEFAULTS}
  kwargs["vocab_size"] = config["vocab_size"]
  kwargs["hidden_act"] = HF_ACTIVATIONS[act]
  # The original's LayerNorm is contrib's, with epsilon 1e-12.
  kwargs["layer_norm_eps"] = 1e-12
  return kwargs


def make_inputs(vocab_size, batch_size, seq_length):
  """bench_util.make_inputs as int64 under transformers' input names."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  inputs = bench_util.make_inputs(vocab_size, batch_size, seq_length, np.int64)
  return {"input_ids": inputs["input_ids"],
          "attention_mask": inputs["input_mask"],
          "token_type_ids": inputs["segment_ids"]}


def _torch_setup(num_threads):
  import torch  # pylint: disable=g-import-not-at-top
  torch.set_num_threads(num_threads)
  torch.set_num_interop_threads(1)
  torch.manual_seed(0)
  return torch


def _build_torch_model(args, torch):
  import transformers  # pylint: disable=g-import-not-at-top
  config = bench_util.read_config(args.bert_config_file)
  hf_config = transformers.MobileBertConfig(**mobilebert_config_kwargs(config))
  model = transformers.MobileBertForQuestionAnswering(hf_config)
  return model, config


def measure_torch_latency(args, quantized):
  """PyTorch eager latency of the QA model, fp32 or dynamic int8."""
  torch = _torch_setup(args.num_threads)
  model, config = _build_torch_model(args, torch)
  model.eval()
  if quantized:
    model = torch.ao.quantization.quantize_dynamic(
        model, {torch.nn.Linear}, dtype=torch.qint8)
  inputs = {name: torch.from_numpy(value) for name, value in make_inputs(
      config["vocab_size"], 1, args.seq_length).items()}

  def call():
    with torch.inference_mode():
      model(**inputs)

  return {"latency_ms": bench_util.time_calls(call, args.runs,
                                              args.warmup_runs)}


def onnx_paths(work_dir, seq_length):
  return {
      "fp32": os.path.join(work_dir, "mobilebert_fp32_seq%d.onnx" % seq_length),
      "dynamic_int8": os.path.join(
          work_dir, "mobilebert_dynamic_int8_seq%d.onnx" % seq_length),
  }


def export_onnx(args):
  """Exports the fp32 QA model at [1, seq] and its ORT dynamic int8 copy."""
  torch = _torch_setup(args.num_threads)
  from onnxruntime.quantization import QuantType  # pylint: disable=g-import-not-at-top
  from onnxruntime.quantization import quantize_dynamic  # pylint: disable=g-import-not-at-top
  model, config = _build_torch_model(args, torch)
  model.eval()
  # transformers' output dataclass does not trace; export the two logits.
  model.config.return_dict = False
  inputs = tuple(torch.from_numpy(value) for value in make_inputs(
      config["vocab_size"], 1, args.seq_length).values())
  paths = onnx_paths(args.work_dir, args.seq_length)
  os.makedirs(args.work_dir, exist_ok=True)
  # The TorchScript exporter: the dynamo one needs onnxscript, which is not a
  # peer requirement, and gives the same graph for this static-shape model.
  torch.onnx.export(model, inputs, paths["fp32"], dynamo=False,
                    input_names=list(INPUT_NAMES),
                    output_names=list(OUTPUT_NAMES), opset_version=17)
  quantize_dynamic(paths["fp32"], paths["dynamic_int8"],
                   weight_type=QuantType.QInt8)
  return {"model_bytes": {kind: os.path.getsize(path)
                          for kind, path in paths.items()}}


def ort_call(path, num_threads, vocab_size, seq_length):
  """A zero-argument call running the ONNX file at `path` on make_inputs.

  One session on num_threads intra-op threads, inter-op 1, sequential, all
  graph optimisations, CPU provider: how the peers' latency is measured.
  """
  import onnxruntime as ort  # pylint: disable=g-import-not-at-top
  if not os.path.exists(path):
    raise ValueError("ONNX file %s is missing: its export failed" % path)
  options = ort.SessionOptions()
  options.intra_op_num_threads = num_threads
  options.inter_op_num_threads = 1
  options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
  options.graph_optimization_level = (
      ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
  session = ort.InferenceSession(path, options,
                                 providers=["CPUExecutionProvider"])
  feed = make_inputs(vocab_size, 1, seq_length)
  feed = {i.name: feed[i.name] for i in session.get_inputs()}

  def call():
    session.run(list(OUTPUT_NAMES), feed)

  return call


def measure_ort_latency(args, kind):
  """ONNX Runtime latency of an exported file ("fp32" or "dynamic_int8")."""
  path = onnx_paths(args.work_dir, args.seq_length)[kind]
  call = ort_call(path, args.num_threads,
                  bench_util.read_config(args.bert_config_file)["vocab_size"],
                  args.seq_length)
  return {"latency_ms": bench_util.time_calls(call, args.runs,
                                              args.warmup_runs),
          "model_bytes": os.path.getsize(path)}


def measure_torch_finetune(args):
  """Examples/s of forward + backward + AdamW step on the QA model."""
  torch = _torch_setup(args.num_threads)
  model, config = _build_torch_model(args, torch)
  model.train()
  optimizer = torch.optim.AdamW(model.parameters(), lr=4e-5,
                                weight_decay=0.01)
  inputs = {name: torch.from_numpy(value) for name, value in make_inputs(
      config["vocab_size"], args.train_batch_size,
      args.train_seq_length).items()}
  generator = torch.Generator().manual_seed(1)
  inputs["start_positions"] = torch.randint(
      0, args.train_seq_length, (args.train_batch_size,), generator=generator)
  inputs["end_positions"] = torch.randint(
      0, args.train_seq_length, (args.train_batch_size,), generator=generator)

  def step():
    optimizer.zero_grad(set_to_none=True)
    loss = model(**inputs).loss
    loss.backward()
    optimizer.step()

  summary = bench_util.time_calls(step, args.train_steps, 2)
  return {"step_ms": summary,
          "examples_per_sec": args.train_batch_size * 1e3 / summary["median"],
          "batch_size": args.train_batch_size,
          "seq_length": args.train_seq_length}


MEASUREMENTS = {
    "export_onnx": export_onnx,
    "torch_fp32": lambda args: measure_torch_latency(args, quantized=False),
    "torch_dynamic_int8": lambda args: measure_torch_latency(args,
                                                              quantized=True),
    "ort_fp32": lambda args: measure_ort_latency(args, "fp32"),
    "ort_dynamic_int8": lambda args: measure_ort_latency(args,
                                                         "dynamic_int8"),
    "torch_finetune": measure_torch_finetune,
}


def run_measurement_here(args):
  """Child mode: one measurement and its peak RSS, written to --result_file."""
  bench_util.write_child_result(args.result_file,
                                MEASUREMENTS[args.measure](args))


def run_in_subprocess(args, measure, seq_length=0):
  """Runs one measurement in a fresh interpreter; returns its result dict."""
  os.makedirs(args.work_dir, exist_ok=True)
  result_file = os.path.join(args.work_dir, "%s_seq%d.json" %
                             (measure, seq_length))
  command = bench_util.child_command(
      __file__, args, ("bert_config_file", "runs", "warmup_runs",
                       "num_threads", "train_batch_size", "train_seq_length",
                       "train_steps", "work_dir"),
      ["--measure", measure, "--seq_length", str(seq_length),
       "--result_file", result_file])
  return bench_util.run_child(command, result_file, args.timeout)


def missing_peer_modules():
  """Peer packages that are not installed (found without importing them, so
  this parent process stays small)."""
  return [name for name in PEER_MODULES
          if importlib.util.find_spec(name) is None]


def peer_versions():
  versions = {"python": sys.version.split()[0]}
  for name in PEER_MODULES:
    versions[name] = importlib.metadata.version(name)
  return versions


def validate_args(args):
  """Checks flags before any model is built; raises ValueError naming them."""
  bench_util.check_minimums(args, {
      "runs": 1, "num_threads": 1, "train_batch_size": 1,
      "train_seq_length": 1, "train_steps": 1, "timeout": 1,
      "warmup_runs": 0})
  config = bench_util.read_config(args.bert_config_file)
  mobilebert_config_kwargs(config)
  if args.train_seq_length > config["max_position_embeddings"]:
    raise ValueError("--train_seq_length %d exceeds max_position_embeddings "
                     "%d of %s" % (args.train_seq_length,
                                   config["max_position_embeddings"],
                                   args.bert_config_file))
  return bench_util.parse_seq_lengths(args.seq_lengths,
                                      config["max_position_embeddings"],
                                      args.bert_config_file)


def main():
  args = parser.parse_args()
  if args.measure:
    if args.measure not in MEASUREMENTS:
      parser.error("--measure must be one of %s" % ", ".join(MEASUREMENTS))
    run_measurement_here(args)
    return
  try:
    seq_lengths = validate_args(args)
  except ValueError as e:
    parser.error(str(e))
  missing = missing_peer_modules()
  if missing:
    print("peers: not installed: %s (pip install -r bench/requirements.txt "
          "in .venv/bench)" % ", ".join(missing), file=sys.stderr)
    bench_util.write_json(args.output_file, {"status": "not installed",
                                  "missing": missing})
    return
  measurements = {}
  for seq_length in seq_lengths:
    export = run_in_subprocess(args, "export_onnx", seq_length)
    measurements["export_onnx_seq%d" % seq_length] = export
    for name in ("torch_fp32", "torch_dynamic_int8", "ort_fp32",
                 "ort_dynamic_int8"):
      key = "%s_seq%d" % (name, seq_length)
      measurements[key] = run_in_subprocess(args, name, seq_length)
      print("peers: %s: %s" % (key, _describe(measurements[key])),
            file=sys.stderr)
  key = "torch_finetune_b%d_seq%d" % (args.train_batch_size,
                                      args.train_seq_length)
  measurements[key] = run_in_subprocess(args, "torch_finetune")
  print("peers: %s: %s" % (key, _describe(measurements[key])),
        file=sys.stderr)
  bench_util.write_json(args.output_file, {
      "status": "ok",
      "versions": peer_versions(),
      "bert_config_file": os.path.abspath(args.bert_config_file),
      "num_threads": args.num_threads,
      "runs": args.runs,
      "warmup_runs": args.warmup_runs,
      "measurements": measurements,
  })


def _describe(result):
  if result["status"] != "ok":
    return "FAILED (%s)" % result["error"]
  if "latency_ms" in result:
    return "%.1f ms median, peak RSS %.0f MB" % (result["latency_ms"]["median"],
                                                 result["peak_rss_mb"])
  return "%.2f examples/s, peak RSS %.0f MB" % (result["examples_per_sec"],
                                                result["peak_rss_mb"])


if __name__ == "__main__":
  main()
