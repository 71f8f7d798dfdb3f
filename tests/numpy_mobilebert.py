"""An independent numpy forward pass of MobileBERT / BERT for the tests.

Written from docs/architecture.md (sections 1-4) only, without looking
at modeling.py, so that the tests compare TensorFlow against a second,
independent reading of the spec.  Everything is computed in float64; weights
come in as a dict {checkpoint variable name: numpy array}, so a name that
differs from the spec's inventory shows up here as a KeyError.

All functions take the config as a plain dict with the published JSON keys.
"""

import math

import numpy as np

# Constructor defaults of BertConfig (docs/architecture.md, section 1).  "mask_mode" is this
# project's switch between the two attention-mask versions (docs/architecture.md, section 4).
CONFIG_DEFAULTS = {
    "vocab_size": None,
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
    "max_position_embeddings": 512,
    "type_vocab_size": 16,
    "initializer_range": 0.02,
    "embedding_size": None,
    "trigram_input": False,
    "use_bottleneck": False,
    "intra_bottleneck_size": None,
    "use_bottleneck_attention": False,
    "key_query_shared_bottleneck": False,
    "num_feedforward_networks": 1,
    "normalization_type": "layer_norm",
    "classifier_activation": True,
    "mask_mode": "additive",
}

ADDITIVE_MASK_VALUE = -10000.0
NEG6_MASK_VALUE = -6.0


def complete_config(config):
  """The config dict with defaults filled in the way `BertConfig.from_dict` does."""
  full = dict(CONFIG_DEFAULTS)
  full.update(config)
  if full["embedding_size"] is None:
    full["embedding_size"] = full["hidden_size"]
  if full["intra_bottleneck_size"] is None:
    full["intra_bottleneck_size"] = full["hidden_size"]
  return full


def gelu(x):
  """The tanh approximation of GELU."""
  return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) *
                                  (x + 0.044715 * np.power(x, 3))))


def activation(name):
  """The elementwise function for a `hidden_act` string."""
  if not name:
    return lambda x: x
  functions = {
      "linear": lambda x: x,
      "relu": lambda x: np.maximum(x, 0.0),
      "relu6": lambda x: np.clip(x, 0.0, 6.0),
      "gelu": gelu,
      "tanh": np.tanh,
  }
  return functions[name.lower()]


def norm_scope(normalization_type):
  """The variable scope name a normalization creates under its parent scope."""
  return "FakeLayerNorm" if normalization_type == "no_norm" else "LayerNorm"


def normalize(x, weights, scope, normalization_type):
  """Applies the configured normalization over the last axis.

  Args:
    x: float array [..., width].
    weights: dict of variable name -> array.
    scope: the enclosing scope, e.g. "bert/encoder/layer_0/attention/output".
    normalization_type: "layer_norm", "no_norm" or "manual_layer_norm".

  Returns:
    Array with the shape of `x`.
  """
  prefix = scope + "/" + norm_scope(normalization_type) + "/"
  gamma = weights[prefix + "gamma"]
  beta = weights[prefix + "beta"]
  if normalization_type == "no_norm":
    return x * gamma + beta
  epsilon = 1e-12 if normalization_type == "layer_norm" else 1e-6
  mean = x.mean(axis=-1, keepdims=True)
  variance = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
  return (x - mean) / np.sqrt(variance + epsilon) * gamma + beta


def dense(x, weights, scope):
  """x @ kernel + bias with the variables `<scope>/kernel` and `<scope>/bias`."""
  return x @ weights[scope + "/kernel"] + weights[scope + "/bias"]


def trigram_concat(word_embeddings):
  """[next ; current ; previous] token embeddings, zero past the sequence ends.

  Args:
    word_embeddings: [batch, seq, embedding_size].

  Returns:
    [batch, seq, 3 * embedding_size].
  """
  zeros = np.zeros_like(word_embeddings[:, :1, :])
  next_tokens = np.concatenate([word_embeddings[:, 1:, :], zeros], axis=1)
  previous_tokens = np.concatenate([zeros, word_embeddings[:, :-1, :]], axis=1)
  return np.concatenate([next_tokens, word_embeddings, previous_tokens], axis=-1)


def embeddings(config, weights, input_ids, token_type_ids):
  """The embedding block (docs/architecture.md, section 2), inference mode.

  Args:
    config: completed config dict.
    weights: dict of variable name -> array.
    input_ids: int [batch, seq].
    token_type_ids: int [batch, seq].

  Returns:
    (word_embedding_output [batch, seq, embedding_size],
     embedding_output [batch, seq, hidden]).
  """
  word = weights["bert/embeddings/word_embeddings"][input_ids]
  features = trigram_concat(word) if config["trigram_input"] else word
  if config["trigram_input"] or config["embedding_size"] != config["hidden_size"]:
    features = dense(features, weights,
                     "bert/embeddings/embedding_transformation")
  seq_length = input_ids.shape[1]
  features = (features +
              weights["bert/embeddings/token_type_embeddings"][token_type_ids] +
              weights["bert/embeddings/position_embeddings"][:seq_length][None])
  output = normalize(features, weights, "bert/embeddings",
                     config["normalization_type"])
  return word, output


def attention_scores_and_context(query, key, value, input_mask, mask_mode):
  """Scaled dot-product attention over heads with the key mask applied.

  Args:
    query: [batch, seq, heads, head_size].
    key: [batch, seq, heads, head_size].
    value: [batch, seq, heads, head_size].
    input_mask: float [batch, seq], 1 for real tokens, 0 for padding.
    mask_mode: "additive" (-10000 on masked keys) or "neg6" (scores * mask,
      then -6 on masked keys).

  Returns:
    (masked pre-softmax scores [batch, heads, seq, seq],
     context [batch, seq, heads * head_size]).
  """
  head_size = query.shape[-1]
  scores = np.einsum("bfnh,btnh->bnft", query, key) / math.sqrt(head_size)
  key_mask = input_mask[:, None, None, :]
  if mask_mode == "additive":
    scores = scores + (1.0 - key_mask) * ADDITIVE_MASK_VALUE
  elif mask_mode == "neg6":
    scores = scores * key_mask + (1.0 - key_mask) * NEG6_MASK_VALUE
  else:
    raise ValueError("Unknown mask_mode %r" % mask_mode)
  shifted = np.exp(scores - scores.max(axis=-1, keepdims=True))
  probabilities = shifted / shifted.sum(axis=-1, keepdims=True)
  context = np.einsum("bnft,btnh->bfnh", probabilities, value)
  batch, seq = context.shape[:2]
  return scores, context.reshape(batch, seq, -1)


def transformer_layer(config, weights, layer_index, x, input_mask):
  """One encoder block (docs/architecture.md, section 3), inference mode.

  Args:
    config: completed config dict.
    weights: dict of variable name -> array.
    layer_index: block number i (scope bert/encoder/layer_i).
    x: [batch, seq, hidden] block input.
    input_mask: float [batch, seq].

  Returns:
    (layer output [batch, seq, hidden], attention scores [batch, heads, seq, seq]).
  """
  scope = "bert/encoder/layer_%d/" % layer_index
  norm_type = config["normalization_type"]
  act = activation(config["hidden_act"])
  heads = config["num_attention_heads"]
  use_bottleneck = config["use_bottleneck"]

  if use_bottleneck:
    h_in = normalize(dense(x, weights, scope + "bottleneck/input/dense"),
                     weights, scope + "bottleneck/input", norm_type)
    if config["use_bottleneck_attention"]:
      q_in = k_in = v_in = h_in
    elif config["key_query_shared_bottleneck"]:
      shared = normalize(
          dense(x, weights, scope + "bottleneck/attention/dense"), weights,
          scope + "bottleneck/attention", norm_type)
      q_in = k_in = shared
      v_in = x
    else:
      q_in = k_in = v_in = x
  else:
    h_in = x
    q_in = k_in = v_in = x

  def split_heads(t):
    batch, seq, width = t.shape
    return t.reshape(batch, seq, heads, width // heads)

  query = split_heads(dense(q_in, weights, scope + "attention/self/query"))
  key = split_heads(dense(k_in, weights, scope + "attention/self/key"))
  value = split_heads(dense(v_in, weights, scope + "attention/self/value"))
  scores, context = attention_scores_and_context(query, key, value, input_mask,
                                                 config["mask_mode"])

  attention = dense(context, weights, scope + "attention/output/dense")
  attention = normalize(attention + h_in, weights, scope + "attention/output",
                        norm_type)

  for j in range(config["num_feedforward_networks"] - 1):
    ffn = scope + "ffn_layer_%d/" % j
    inner = act(dense(attention, weights, ffn + "intermediate/dense"))
    attention = normalize(dense(inner, weights, ffn + "output/dense") + attention,
                          weights, ffn + "output", norm_type)

  inner = act(dense(attention, weights, scope + "intermediate/dense"))
  output = normalize(dense(inner, weights, scope + "output/dense") + attention,
                     weights, scope + "output", norm_type)
  if use_bottleneck:
    output = normalize(
        dense(output, weights, scope + "output/bottleneck/dense") + x, weights,
        scope + "output/bottleneck", norm_type)
  return output, scores


def forward(config, weights, input_ids, input_mask=None, token_type_ids=None):
  """A full BertModel forward pass with is_training=False.

  Args:
    config: config dict (published keys; missing keys take the defaults).
    weights: dict of checkpoint variable name -> numpy array.
    input_ids: int [batch, seq].
    input_mask: int or float [batch, seq]; None means all ones.
    token_type_ids: int [batch, seq]; None means zeros.

  Returns:
    dict with "word_embedding_output" [batch, seq, embedding_size],
    "embedding_output" [batch, seq, hidden], "all_encoder_layers" (list of
    num_layers + 1 arrays [batch, seq, hidden], embedding output first),
    "attention_maps" (list of num_layers arrays [batch, heads, seq, seq]),
    "sequence_output" [batch, seq, hidden] and "pooled_output" [batch, hidden].
  """
  config = complete_config(config)
  weights = {name: np.asarray(value, dtype=np.float64)
             for name, value in weights.items()}
  input_ids = np.asarray(input_ids)
  if input_mask is None:
    input_mask = np.ones(input_ids.shape)
  if token_type_ids is None:
    token_type_ids = np.zeros(input_ids.shape, dtype=np.int64)
  input_mask = np.asarray(input_mask, dtype=np.float64)

  word, hidden = embeddings(config, weights, input_ids,
                            np.asarray(token_type_ids))
  all_layers = [hidden]
  attention_maps = []
  for i in range(config["num_hidden_layers"]):
    hidden, scores = transformer_layer(config, weights, i, hidden, input_mask)
    all_layers.append(hidden)
    attention_maps.append(scores)

  first_token = hidden[:, 0, :]
  if config["classifier_activation"]:
    pooled = np.tanh(dense(first_token, weights, "bert/pooler/dense"))
  else:
    pooled = first_token
  return {
      "word_embedding_output": word,
      "embedding_output": all_layers[0],
      "all_encoder_layers": all_layers,
      "attention_maps": attention_maps,
      "sequence_output": hidden,
      "pooled_output": pooled,
  }


def masked_lm_logits(config, weights, sequence_output, positions):
  """The pretraining head's logits at `positions`.

  transform: dense + hidden_act, then a real LayerNorm (epsilon 1e-12, also
  for no_norm models); output: h . [word_embeddings ; extra_output_weights]^T
  + output_bias (the extra columns exist when hidden > embedding size).

  Args:
    config: config dict.
    weights: dict of checkpoint variable name -> array.
    sequence_output: [batch, seq, hidden].
    positions: int [batch, predictions].

  Returns:
    [batch * predictions, vocab] float64.
  """
  config = complete_config(config)
  weights = {name: np.asarray(value, dtype=np.float64)
             for name, value in weights.items()}
  batch = sequence_output.shape[0]
  gathered = sequence_output[np.arange(batch)[:, None], positions]
  h = activation(config["hidden_act"])(
      dense(gathered.reshape(-1, sequence_output.shape[-1]), weights,
            "cls/predictions/transform/dense"))
  h = normalize(h, weights, "cls/predictions/transform", "layer_norm")
  output_weights = weights["bert/embeddings/word_embeddings"]
  if "cls/predictions/extra_output_weights" in weights:
    output_weights = np.concatenate(
        [output_weights, weights["cls/predictions/extra_output_weights"]],
        axis=1)
  return h @ output_weights.T + weights["cls/predictions/output_bias"]


def squad_logits(config, weights, input_ids, input_mask, segment_ids):
  """SQuAD start/end logits, each [batch, seq], of the `cls/squad` head."""
  sequence = forward(config, weights, input_ids, input_mask,
                     segment_ids)["sequence_output"]
  logits = (sequence @ np.asarray(weights["cls/squad/output_weights"],
                                  np.float64).T +
            weights["cls/squad/output_bias"])
  return logits[..., 0], logits[..., 1]


def classifier_probabilities(config, weights, input_ids, input_mask,
                             segment_ids):
  """Softmax of the classification head ([batch, num_labels]) on the pooled
  output (no dropout: inference)."""
  pooled = forward(config, weights, input_ids, input_mask,
                   segment_ids)["pooled_output"]
  logits = (pooled @ np.asarray(weights["output_weights"], np.float64).T +
            weights["output_bias"])
  logits = logits - logits.max(axis=-1, keepdims=True)
  return np.exp(logits) / np.exp(logits).sum(axis=-1, keepdims=True)
