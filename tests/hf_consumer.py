"""Loads exported directories in transformers and writes their outputs.

Runs in the PyTorch venv (.venv/hf, requirements-huggingface.txt), never with
TensorFlow.  argv[1]: a JSON list of jobs {"dir", "class", "inputs" (.npz
with input_ids, attention_mask, token_type_ids), "outputs" (.npz to write),
optionally "tokenize" (a text for the directory's MobileBertTokenizer)}.
Prints one JSON line: per job the loading report (missing, unexpected and
mismatched parameters), the parameter count and the text's token ids.
"""

import json
import sys

import numpy as np
import torch
import transformers


def run(job):
  model_class = getattr(transformers, job["class"])
  model, info = model_class.from_pretrained(job["dir"],
                                            output_loading_info=True)
  model.eval()
  inputs = {name: torch.tensor(value, dtype=torch.long)
            for name, value in np.load(job["inputs"]).items()}
  with torch.no_grad():
    output = model(**inputs, output_hidden_states=True)
  arrays = {"sequence_output": output.hidden_states[-1]}
  for name in ("prediction_logits", "seq_relationship_logits", "logits",
               "start_logits", "end_logits", "pooler_output"):
    value = getattr(output, name, None)
    if value is not None:
      arrays[name] = value
  np.savez(job["outputs"], **{k: v.numpy() for k, v in arrays.items()})
  token_ids = None
  if job.get("tokenize"):
    # As the README loads it, from the exported directory.
    tokenizer = transformers.MobileBertTokenizer.from_pretrained(job["dir"])
    token_ids = tokenizer(job["tokenize"])["input_ids"]
  return {"missing": list(info["missing_keys"]),
          "token_ids": token_ids,
          "unexpected": list(info["unexpected_keys"]),
          "mismatched": [list(map(str, m)) for m in info["mismatched_keys"]],
          "parameters": sum(p.numel() for p in model.parameters()),
          "transformers": transformers.__version__,
          "tensorflow_loaded": "tensorflow" in sys.modules}


if __name__ == "__main__":
  print(json.dumps([run(job) for job in json.loads(sys.argv[1])]))
