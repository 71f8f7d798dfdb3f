"""MobileBERT and BERT models, checkpoint-compatible with the released MobileBERT.

One `BertModel` builds every published architecture from its `BertConfig`:

* MobileBERT (OPT): trigram embedding input, bottleneck blocks with a shared
  key/query bottleneck, four stacked FFNs, NoNorm, relu;
* MobileBERT-tiny: bottleneck attention (query, key and value all read the
  bottleneck input), two FFNs;
* the IB-BERT teacher: bottleneck width 1024, LayerNorm, gelu, pooler;
* plain BERT (no bottleneck).

Variable names and shapes are those of docs/architecture.md (section 5), so `init_from_checkpoint` loads the released
`mobilebert_variables.ckpt` with nothing left at random.
"""

import copy
import difflib
import json
import math

import numpy as np
import tensorflow.compat.v1 as tf

import file_checks
import quantization

# Letters of every einsum equation below: B batch, F "from" (query)
# positions, T "to" (key) positions, N heads, H head size, I input width,
# O output width.

# Variable scopes of the checkpoint: the model (student) and, in distillation
# checkpoints, the frozen teacher whose model sits under "teacher/bert".
MODEL_SCOPE = "bert"
TEACHER_SCOPE = "teacher"

# The additive mask of the released checkpoint's code (v2020-original) and of
# standard BERT: masked keys get -10000 before the softmax.
MASK_MODE_ADDITIVE = "additive"
# The QAT-era mask: scores are zeroed at masked keys, then set to -6, and under
# QAT clipped to [-6, 60] so that an int8 range can hold them.
MASK_MODE_NEG6 = "neg6"
MASK_MODES = (MASK_MODE_ADDITIVE, MASK_MODE_NEG6)

NORMALIZATION_TYPES = ("layer_norm", "no_norm", "manual_layer_norm")
ACTIVATIONS = ("linear", "relu", "relu6", "gelu", "tanh")
QAT_SCORE_CLIP = (-6.0, 60.0)


class BertConfig(object):
  """Configuration for `BertModel`; the keys of the published JSON configs."""

  def __init__(self,
               vocab_size,
               hidden_size=768,
               num_hidden_layers=12,
               num_attention_heads=12,
               intermediate_size=3072,
               hidden_act="gelu",
               hidden_dropout_prob=0.1,
               attention_probs_dropout_prob=0.1,
               max_position_embeddings=512,
               type_vocab_size=16,
               initializer_range=0.02,
               embedding_size=None,
               trigram_input=False,
               use_bottleneck=False,
               intra_bottleneck_size=None,
               use_bottleneck_attention=False,
               key_query_shared_bottleneck=False,
               num_feedforward_networks=1,
               normalization_type="layer_norm",
               classifier_activation=True,
               mask_mode=None):
    """Constructs BertConfig.

    Args:
      vocab_size: rows of the word-embedding table.
      hidden_size: width of the inter-block residual stream (512 in MobileBERT).
      num_hidden_layers: number of transformer blocks.
      num_attention_heads: attention heads per block.
      intermediate_size: inner width of every feed-forward network.
      hidden_act: "linear", "relu", "relu6", "gelu" (tanh form) or "tanh".
      hidden_dropout_prob: dropout on embeddings and residual branches.
      attention_probs_dropout_prob: dropout on attention probabilities.
      max_position_embeddings: longest supported sequence.
      type_vocab_size: rows of the token-type table.
      initializer_range: stddev of the truncated-normal initializers.
      embedding_size: word-embedding width; None means `hidden_size`.
      trigram_input: feed the concatenated embeddings of the next, current and
        previous token to the embedding projection.
      use_bottleneck: project each block's input to `intra_bottleneck_size`.
      intra_bottleneck_size: block-internal width; None means `hidden_size`.
      use_bottleneck_attention: query, key and value read the bottleneck input.
      key_query_shared_bottleneck: a second bottleneck feeds query and key;
        value reads the raw block input.
      num_feedforward_networks: stacked FFNs per block.
      normalization_type: "layer_norm", "no_norm" or "manual_layer_norm".
      classifier_activation: if True, the pooler is tanh(dense(h[:, 0])); if
        False the pooled output is h[:, 0] and there are no pooler variables.
      mask_mode: "additive" (-10000 on masked keys, what the released
        checkpoint was trained with) or "neg6" (the QAT-era scheme). None
        means "neg6" under quantization-aware training, "additive" otherwise.
    """
    self.vocab_size = vocab_size
    self.hidden_size = hidden_size
    self.num_hidden_layers = num_hidden_layers
    self.num_attention_heads = num_attention_heads
    self.intermediate_size = intermediate_size
    self.hidden_act = hidden_act
    self.hidden_dropout_prob = hidden_dropout_prob
    self.attention_probs_dropout_prob = attention_probs_dropout_prob
    self.max_position_embeddings = max_position_embeddings
    self.type_vocab_size = type_vocab_size
    self.initializer_range = initializer_range
    self.embedding_size = embedding_size
    self.trigram_input = trigram_input
    self.use_bottleneck = use_bottleneck
    self.intra_bottleneck_size = intra_bottleneck_size
    self.use_bottleneck_attention = use_bottleneck_attention
    self.key_query_shared_bottleneck = key_query_shared_bottleneck
    self.num_feedforward_networks = num_feedforward_networks
    self.normalization_type = normalization_type
    self.classifier_activation = classifier_activation
    self.mask_mode = mask_mode
    self._fill_defaults()
    self.validate()

  def _fill_defaults(self):
    if self.embedding_size is None:
      self.embedding_size = self.hidden_size
    if self.intra_bottleneck_size is None:
      self.intra_bottleneck_size = self.hidden_size

  @property
  def true_hidden_size(self):
    """Width inside a block: the bottleneck width, or `hidden_size`."""
    if self.use_bottleneck:
      return self.intra_bottleneck_size
    return self.hidden_size

  def validate(self):
    """Raises ValueError on values the model cannot be built with."""
    if isinstance(self.hidden_act, str):
      if self.hidden_act.lower() not in ACTIVATIONS:
        raise ValueError("Unsupported hidden_act %r; expected one of %s." %
                         (self.hidden_act, ", ".join(ACTIVATIONS)))
    if self.normalization_type not in NORMALIZATION_TYPES:
      raise ValueError("Unknown normalization_type %r; expected one of %s." %
                       (self.normalization_type, ", ".join(NORMALIZATION_TYPES)))
    if self.mask_mode is not None and self.mask_mode not in MASK_MODES:
      raise ValueError("Unknown mask_mode %r; expected one of %s." %
                       (self.mask_mode, ", ".join(MASK_MODES)))
    if self.true_hidden_size % self.num_attention_heads != 0:
      raise ValueError(
          "The block width (%d) is not a multiple of the number of attention "
          "heads (%d)." % (self.true_hidden_size, self.num_attention_heads))
    if self.num_feedforward_networks < 1:
      raise ValueError("num_feedforward_networks must be at least 1, got %d." %
                       self.num_feedforward_networks)

  @classmethod
  def from_dict(cls, json_object, source="config"):
    """Builds a config from a dict; unknown keys are kept but reported.

    Args:
      json_object: dict of config keys.
      source: where the dict came from, for messages.

    Returns:
      BertConfig.
    """
    known_keys = _constructor_keys()
    unknown = sorted(set(json_object) - set(known_keys))
    for key in unknown:
      suggestion = difflib.get_close_matches(key, known_keys, n=1)
      tf.logging.warning(
          "%s: unknown key %r%s; it is ignored by the model.", source, key,
          " (did you mean %r?)" % suggestion[0] if suggestion else "")
    if "vocab_size" not in json_object:
      raise ValueError("%s: missing required key 'vocab_size'." % source)
    config = cls(**{k: v for k, v in json_object.items() if k in known_keys})
    for key in unknown:
      setattr(config, key, json_object[key])
    return config

  @classmethod
  def from_json_file(cls, json_file):
    """Reads a config JSON file, with errors that name the file."""
    if not tf.gfile.Exists(json_file):
      raise ValueError("Config file not found: %s" % json_file)
    text = "".join(line for _, line in file_checks.text_lines(json_file))
    try:
      json_object = json.loads(text)
    except ValueError as e:
      raise ValueError("Config file %s is not valid JSON: %s" % (json_file, e))
    if not isinstance(json_object, dict):
      raise ValueError("Config file %s must hold a JSON object." % json_file)
    return cls.from_dict(json_object, source=json_file)

  def to_dict(self):
    return copy.deepcopy(self.__dict__)

  def to_json_string(self):
    return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"


def _constructor_keys():
  import inspect  # pylint: disable=g-import-not-at-top
  arg_names = list(inspect.signature(BertConfig.__init__).parameters)
  return [name for name in arg_names if name != "self"]


class BertModel(object):
  """BERT / MobileBERT encoder.

  Example:

  ```python
  config = modeling.BertConfig.from_json_file(
      "config/uncased_L-24_H-128_B-512_A-4_F-4_OPT.json")
  model = modeling.BertModel(config=config, is_training=False,
                             input_ids=input_ids, input_mask=input_mask,
                             token_type_ids=segment_ids)
  sequence_output = model.get_sequence_output()  # [batch, seq, 512]
  ```
  """

  def __init__(self,
               config,
               is_training,
               input_ids,
               input_mask=None,
               token_type_ids=None,
               use_one_hot_embeddings=False,
               use_einsum=True,
               use_quantized_training=False,
               scope=None,
               masked_key_scores=None):
    """Builds the encoder graph.

    Args:
      config: BertConfig.
      is_training: enables dropout (and, under QAT, range updates).
      input_ids: int32 Tensor [batch, seq].
      input_mask: optional int32 Tensor [batch, seq]; 1 on real tokens.
      token_type_ids: optional int32 Tensor [batch, seq].
      use_one_hot_embeddings: look words up with a one-hot matmul (TPU).
      use_einsum: use einsum for dense and attention maths; the alternative
        reshape+matmul path is numerically identical and TF-Lite friendly.
      use_quantized_training: insert fake-quant nodes (QAT) in the encoder;
        requires `hidden_act` relu6 and `normalization_type` no_norm.
      scope: variable scope; defaults to "bert".
      masked_key_scores: optional list of num_hidden_layers floats, additive
        mask mode only: layer l gives masked keys the score
        masked_key_scores[l] instead of their own score minus 10000 (see
        `_mask_attention_scores`).  The integer TF-Lite export sets it; None
        keeps the float model's -10000.

    Raises:
      ValueError: invalid config or input shapes.
    """
    config = copy.deepcopy(config)
    if not is_training:
      config.hidden_dropout_prob = 0.0
      config.attention_probs_dropout_prob = 0.0
    if use_quantized_training:
      check_quantizable(config)
    mask_mode = effective_mask_mode(config, use_quantized_training)
    if masked_key_scores is not None:
      if mask_mode != MASK_MODE_ADDITIVE:
        raise ValueError("masked_key_scores applies to the additive mask "
                         "mode only (this model uses %r)." % mask_mode)
      if len(masked_key_scores) != config.num_hidden_layers:
        raise ValueError("masked_key_scores has %d values for %d layers." %
                         (len(masked_key_scores), config.num_hidden_layers))

    input_shape = get_shape_list(input_ids, expected_rank=2, name="input_ids")
    batch_size, seq_length = input_shape[0], input_shape[1]
    if (isinstance(seq_length, int) and
        seq_length > config.max_position_embeddings):
      raise ValueError(
          "Sequence length %d exceeds max_position_embeddings %d of the "
          "config." % (seq_length, config.max_position_embeddings))
    if input_mask is None:
      input_mask = tf.ones(shape=[batch_size, seq_length], dtype=tf.int32)
    if token_type_ids is None:
      token_type_ids = tf.zeros(shape=[batch_size, seq_length], dtype=tf.int32)

    with tf.variable_scope(scope, default_name=MODEL_SCOPE):
      with tf.variable_scope("embeddings"):
        (self.word_embedding_output,
         self.embedding_table) = embedding_lookup(
             input_ids=input_ids,
             vocab_size=config.vocab_size,
             embedding_size=config.embedding_size,
             initializer_range=config.initializer_range,
             word_embedding_name="word_embeddings",
             use_one_hot_embeddings=use_one_hot_embeddings)
        self.embedding_output = embedding_postprocessor(
            word_embeddings=self.word_embedding_output,
            config=config,
            token_type_ids=token_type_ids,
            use_einsum=use_einsum)

      with tf.variable_scope("encoder"):
        attention_mask = key_mask_from_input_mask(input_mask)
        self.all_encoder_layers, self.all_attention_maps = transformer_model(
            input_tensor=self.embedding_output,
            attention_mask=attention_mask,
            config=config,
            mask_mode=mask_mode,
            use_einsum=use_einsum,
            use_quantized_training=use_quantized_training,
            is_training=is_training,
            masked_key_scores=masked_key_scores)
      self.sequence_output = self.all_encoder_layers[-1]

      with tf.variable_scope("pooler"):
        first_token_tensor = self.sequence_output[:, 0, :]
        if config.classifier_activation:
          self.pooled_output = dense_layer_2d(
              first_token_tensor, config.hidden_size,
              create_initializer(config.initializer_range), tf.tanh,
              use_einsum=use_einsum, name="dense")
        else:
          self.pooled_output = first_token_tensor

  def get_pooled_output(self):
    """[batch, hidden]: the pooler output, or the [CLS] state without pooler."""
    return self.pooled_output

  def get_sequence_output(self):
    """[batch, seq, hidden]: the last encoder layer."""
    return self.sequence_output

  def get_all_encoder_layers(self):
    """num_layers + 1 Tensors [batch, seq, hidden]; index 0 is the embedding output."""
    return self.all_encoder_layers

  def get_all_attention_maps(self):
    """num_layers Tensors [batch, heads, seq, seq] of masked pre-softmax scores."""
    return self.all_attention_maps

  def get_word_embedding_output(self):
    """[batch, seq, embedding_size]: the raw word lookup, before trigram input."""
    return self.word_embedding_output

  def get_embedding_output(self):
    """[batch, seq, hidden]: embeddings after normalization and dropout."""
    return self.embedding_output

  def get_embedding_table(self):
    """The word-embedding variable [vocab, embedding_size]."""
    return self.embedding_table


def effective_mask_mode(config, use_quantized_training):
  """The config's mask_mode, or its default: neg6 under QAT, else additive."""
  return config.mask_mode or (
      MASK_MODE_NEG6 if use_quantized_training else MASK_MODE_ADDITIVE)


def check_quantizable(config):
  """Raises ValueError unless QAT can be applied to `config` (relu6 + no_norm)."""
  problems = []
  if get_activation(config.hidden_act) is not tf.nn.relu6:
    problems.append("hidden_act must be relu6 (got %r)" % config.hidden_act)
  if config.normalization_type != "no_norm":
    problems.append("normalization_type must be no_norm (got %r)" %
                    config.normalization_type)
  if problems:
    raise ValueError(
        "Quantization-aware training needs a QAT config such as "
        "config/uncased_L-24_H-128_B-512_A-4_F-4_OPT_QAT.json: " +
        "; ".join(problems) + ".")


def gelu(x):
  """Gaussian Error Linear Unit, tanh approximation (as the original)."""
  cdf = 0.5 * (1.0 + tf.tanh(
      (math.sqrt(2 / math.pi) * (x + 0.044715 * tf.pow(x, 3)))))
  return x * cdf


def get_activation(activation_string):
  """Maps an activation name to a function; None/"" means no activation.

  A non-string argument is returned unchanged, so callables pass through.
  """
  if not isinstance(activation_string, str):
    return activation_string
  if not activation_string:
    return None
  act = activation_string.lower()
  if act == "linear":
    return None
  if act == "relu":
    return tf.nn.relu
  if act == "relu6":
    return tf.nn.relu6
  if act == "gelu":
    return gelu
  if act == "tanh":
    return tf.tanh
  raise ValueError("Unsupported activation: %s" % act)


def dropout(input_tensor, dropout_prob):
  """Dropout with drop probability `dropout_prob`; a no-op for 0 or None."""
  if dropout_prob is None or dropout_prob == 0.0:
    return input_tensor
  return tf.nn.dropout(input_tensor, rate=dropout_prob)


def layer_norm(input_tensor, normalization_type="layer_norm", name=None,
               use_quantized_training=False, is_training=False):
  """The config's normalization of the last axis of `input_tensor`.

  Args:
    input_tensor: float Tensor [..., width].
    normalization_type: "layer_norm" (epsilon 1e-12, biased variance, scope
      `LayerNorm`, uniquified as checkpoints name it), "manual_layer_norm"
      (epsilon 1e-6, scope `LayerNorm`) or "no_norm" (no normalization at
      all: `elementwise_affine`, scope `FakeLayerNorm`).
    name: scope name instead of the default.
    use_quantized_training: with "no_norm", see elementwise_affine.
    is_training: passed to the quantizers.

  Returns:
    Tensor of the same shape.
  """
  if normalization_type == "no_norm":
    return elementwise_affine(input_tensor, name or "FakeLayerNorm",
                              use_quantized_training, is_training)
  if normalization_type == "layer_norm":
    epsilon = 1e-12
    scope = tf.variable_scope(name, default_name="LayerNorm")
  elif normalization_type == "manual_layer_norm":
    epsilon = 1e-6
    scope = tf.variable_scope(name or "LayerNorm")
  else:
    raise ValueError("Unknown normalization_type %r." % normalization_type)
  width = get_shape_list(input_tensor)[-1]
  with scope:
    beta = tf.get_variable("beta", [width], initializer=tf.zeros_initializer())
    gamma = tf.get_variable("gamma", [width], initializer=tf.ones_initializer())
    mean, variance = tf.nn.moments(input_tensor, [-1], keep_dims=True)
    return tf.nn.batch_normalization(
        input_tensor, mean, variance, offset=beta, scale=gamma,
        variance_epsilon=epsilon)


def elementwise_affine(input_tensor, scope_name, use_quantized_training=False,
                       is_training=False):
  """x * gamma + beta over the last axis: MobileBERT's NoNorm.

  The published configs call it normalization_type "no_norm" and its
  variables sit under `FakeLayerNorm`: it normalizes nothing.

  Args:
    input_tensor: float Tensor [..., width].
    scope_name: the variables' scope (beta and gamma, [width] each).
    use_quantized_training: fake-quantize the input, beta, gamma and the
      product x * gamma (docs/quantization_and_export.md, section 2).
    is_training: passed to the quantizers.

  Returns:
    Tensor of the same shape.
  """
  width = get_shape_list(input_tensor)[-1]
  if use_quantized_training:
    input_tensor = quantization.quantize_activation(input_tensor, is_training)
  with tf.variable_scope(scope_name):
    beta = tf.get_variable("beta", [width], initializer=tf.zeros_initializer())
    gamma = tf.get_variable("gamma", [width], initializer=tf.ones_initializer())
    if use_quantized_training:
      beta = quantization.quantize_activation(beta, is_training)
      gamma = quantization.quantize_activation(gamma, is_training)
      scaled = quantization.quantize_activation(
          input_tensor * gamma, is_training)
    else:
      scaled = input_tensor * gamma
    return scaled + beta


def create_initializer(initializer_range=0.02):
  """Truncated normal initializer with stddev `initializer_range`."""
  return tf.truncated_normal_initializer(stddev=initializer_range)


def _dense_kernel(input_tensor, kernel_shape, output_bias_size, initializer,
                  use_quantized_training, is_training):
  """Creates kernel and bias in the current scope; quantizes the input/kernel."""
  kernel = tf.get_variable("kernel", shape=kernel_shape,
                           initializer=initializer)
  bias = tf.get_variable("bias", shape=[output_bias_size],
                         initializer=tf.zeros_initializer())
  if use_quantized_training:
    input_tensor = quantization.quantize_activation(input_tensor, is_training)
    kernel = quantization.quantize_weight(kernel, is_training)
  return input_tensor, kernel, bias


def dense_layer_2d(input_tensor, output_size, initializer, activation,
                   use_einsum, name=None, use_quantized_training=False,
                   is_training=False):
  """Dense layer on the last axis.

  Args:
    input_tensor: float Tensor [batch, seq, in] or [batch, in].
    output_size: output width.
    initializer: kernel initializer.
    activation: function or None.
    use_einsum: einsum instead of reshape + matmul.
    name: scope of `kernel` [in, out] and `bias` [out].
    use_quantized_training: fake-quantize the input and kernel.
    is_training: passed to the quantizers.

  Returns:
    float Tensor [batch, seq, out] or [batch, out].
  """
  input_shape = get_shape_list(input_tensor, expected_rank=[2, 3])
  input_width = input_shape[-1]
  with tf.variable_scope(name):
    input_tensor, kernel, bias = _dense_kernel(
        input_tensor, [input_width, output_size], output_size, initializer,
        use_quantized_training, is_training)
    if use_einsum and len(input_shape) == 3:
      output = tf.einsum("BFI,IO->BFO", input_tensor, kernel)
    elif len(input_shape) == 3:
      flat = tf.reshape(input_tensor, [-1, input_width])
      output = tf.reshape(tf.matmul(flat, kernel),
                          input_shape[:-1] + [output_size])
    else:
      output = tf.matmul(input_tensor, kernel)
    output += bias
  if activation is not None:
    return activation(output)
  return output


def dense_layer_3d(input_tensor, num_attention_heads, head_size, initializer,
                   activation, use_einsum, name=None,
                   use_quantized_training=False, is_training=False):
  """Dense layer producing per-head outputs (query, key, value).

  Args:
    input_tensor: float Tensor [batch, seq, in].
    num_attention_heads: N.
    head_size: H.
    initializer: kernel initializer.
    activation: function or None.
    use_einsum: einsum instead of reshape + matmul.
    name: scope of `kernel` [in, N*H] and `bias` [N*H].
    use_quantized_training: fake-quantize the input and kernel.
    is_training: passed to the quantizers.

  Returns:
    float Tensor [batch, seq, N, H]; head n uses kernel columns n*H..(n+1)*H-1.
  """
  input_shape = get_shape_list(input_tensor, expected_rank=3)
  input_width = input_shape[-1]
  output_width = num_attention_heads * head_size
  with tf.variable_scope(name):
    input_tensor, kernel, bias = _dense_kernel(
        input_tensor, [input_width, output_width], output_width, initializer,
        use_quantized_training, is_training)
    if use_einsum:
      per_head_kernel = tf.reshape(
          kernel, [input_width, num_attention_heads, head_size])
      output = tf.einsum("BFI,INH->BFNH", input_tensor, per_head_kernel)
      output += tf.reshape(bias, [num_attention_heads, head_size])
    else:
      flat = tf.reshape(input_tensor, [-1, input_width])
      output = tf.matmul(flat, kernel) + bias
      output = tf.reshape(output, input_shape[:2] +
                          [num_attention_heads, head_size])
  if activation is not None:
    return activation(output)
  return output


def dense_layer_3d_proj(input_tensor, hidden_size, head_size, initializer,
                        activation, use_einsum, name=None,
                        use_quantized_training=False, is_training=False):
  """Dense layer merging attention heads (the attention output projection).

  Args:
    input_tensor: float Tensor [batch, seq, N, H].
    hidden_size: output width.
    head_size: H; N * H is the input width.
    initializer: kernel initializer.
    activation: function or None.
    use_einsum: einsum instead of reshape + matmul.
    name: scope of `kernel` [N*H, hidden] and `bias` [hidden].
    use_quantized_training: fake-quantize the input and kernel.
    is_training: passed to the quantizers.

  Returns:
    float Tensor [batch, seq, hidden].
  """
  input_shape = get_shape_list(input_tensor, expected_rank=4)
  num_attention_heads = input_shape[2]
  input_width = num_attention_heads * head_size
  with tf.variable_scope(name):
    input_tensor, kernel, bias = _dense_kernel(
        input_tensor, [input_width, hidden_size], hidden_size, initializer,
        use_quantized_training, is_training)
    if use_einsum:
      per_head_kernel = tf.reshape(
          kernel, [num_attention_heads, head_size, hidden_size])
      output = tf.einsum("BFNH,NHO->BFO", input_tensor, per_head_kernel)
    else:
      flat = tf.reshape(input_tensor, [-1, input_width])
      output = tf.reshape(tf.matmul(flat, kernel),
                          input_shape[:2] + [hidden_size])
    output += bias
  if activation is not None:
    return activation(output)
  return output


def embedding_lookup(input_ids, vocab_size, embedding_size=128,
                     initializer_range=0.02,
                     word_embedding_name="word_embeddings",
                     use_one_hot_embeddings=False):
  """Looks up word embeddings.

  Args:
    input_ids: int32 Tensor [batch, seq].
    vocab_size: rows of the table.
    embedding_size: columns of the table.
    initializer_range: stddev of the initializer.
    word_embedding_name: variable name of the table.
    use_one_hot_embeddings: one-hot matmul instead of a gather (TPU-friendly).

  Returns:
    (float Tensor [batch, seq, embedding_size], table [vocab, embedding_size]).
  """
  input_shape = get_shape_list(input_ids, expected_rank=2, name="input_ids")
  embedding_table = tf.get_variable(
      name=word_embedding_name, shape=[vocab_size, embedding_size],
      initializer=create_initializer(initializer_range))
  if use_one_hot_embeddings:
    flat_ids = tf.reshape(input_ids, [-1])
    one_hot_ids = tf.one_hot(flat_ids, depth=vocab_size)
    output = tf.matmul(one_hot_ids, embedding_table)
  else:
    output = tf.gather(embedding_table, input_ids)
  output = tf.reshape(output, input_shape + [embedding_size])
  return output, embedding_table


def trigram_embeddings(word_embeddings):
  """Concatenates the next, current and previous token embeddings.

  Zeros stand in past the true sequence ends (positions 0 and seq-1); padded
  positions inside the sequence still contribute their [PAD] embedding, as the
  released checkpoint was trained (docs/architecture.md, section 2).

  Args:
    word_embeddings: float Tensor [batch, seq, width].

  Returns:
    float Tensor [batch, seq, 3 * width] ordered (next, current, previous).
  """
  next_tokens = tf.pad(word_embeddings[:, 1:], [[0, 0], [0, 1], [0, 0]])
  previous_tokens = tf.pad(word_embeddings[:, :-1], [[0, 0], [1, 0], [0, 0]])
  return tf.concat([next_tokens, word_embeddings, previous_tokens], axis=2)


def embedding_postprocessor(word_embeddings, config, token_type_ids,
                            use_einsum=True):
  """Projects word embeddings to `hidden_size` and adds type and position.

  Args:
    word_embeddings: float Tensor [batch, seq, embedding_size].
    config: BertConfig.
    token_type_ids: int32 Tensor [batch, seq].
    use_einsum: passed to the projection.

  Returns:
    float Tensor [batch, seq, hidden], normalized, with dropout applied.
  """
  input_shape = get_shape_list(word_embeddings, expected_rank=3)
  seq_length = input_shape[1]
  output = word_embeddings
  if config.trigram_input:
    output = trigram_embeddings(output)
  if config.trigram_input or config.embedding_size != config.hidden_size:
    output = dense_layer_2d(
        output, config.hidden_size,
        create_initializer(config.initializer_range), None,
        use_einsum=use_einsum, name="embedding_transformation")

  token_type_table = tf.get_variable(
      name="token_type_embeddings",
      shape=[config.type_vocab_size, config.hidden_size],
      initializer=create_initializer(config.initializer_range))
  output += tf.gather(token_type_table, token_type_ids)

  position_table = tf.get_variable(
      name="position_embeddings",
      shape=[config.max_position_embeddings, config.hidden_size],
      initializer=create_initializer(config.initializer_range))
  assert_op = tf.assert_less_equal(seq_length, config.max_position_embeddings)
  with tf.control_dependencies([assert_op]):
    position_embeddings = tf.slice(position_table, [0, 0], [seq_length, -1])
  output += tf.expand_dims(position_embeddings, 0)

  output = layer_norm(output, config.normalization_type)
  return dropout(output, config.hidden_dropout_prob)


def key_mask_from_input_mask(input_mask):
  """The attention mask that hides padded keys from every query.

  Args:
    input_mask: int32 or float Tensor [batch, to_seq]; 1 on real tokens.

  Returns:
    float Tensor [batch, 1, to_seq], which broadcasts over the queries like
    the [batch, from_seq, to_seq] mask of BERT without materialising it;
    padded queries are still computed.
  """
  batch_size, to_seq = get_shape_list(input_mask, expected_rank=2,
                                      name="input_mask")
  return tf.cast(tf.reshape(input_mask, [batch_size, 1, to_seq]), tf.float32)


def attention_mask_bias(attention_mask, mask_mode):
  """What the mask adds to the scores: -10000 or -6 at masked keys, else 0.

  Computed once per model from the [batch, 1, from or 1, to] mask and shared
  by every layer.
  """
  masked_value = -10000.0 if mask_mode == MASK_MODE_ADDITIVE else -6.0
  return (1.0 - attention_mask) * masked_value


def _mask_attention_scores(attention_scores, attention_mask, mask_bias,
                           mask_mode, use_quantized_training, is_training,
                           masked_key_score=None):
  """Applies the key mask to scaled scores [batch, heads, from, to].

  With `masked_key_score` (additive mode), masked keys get that score instead
  of their own score minus 10000: `scores * mask + (1 - mask) * value`.  Both
  leave masked keys no weight once the value lies far enough below every real
  row maximum, but only this form keeps -10000 out of the tensors, so that
  int8 ranges calibrated on them span the real scores.

  Args:
    attention_scores: float Tensor [batch, heads, from, to].
    attention_mask: float Tensor [batch, 1, from or 1, to], 1 = attend.
    mask_bias: attention_mask_bias(attention_mask, mask_mode).
    mask_mode: MASK_MODE_ADDITIVE or MASK_MODE_NEG6.
    use_quantized_training: fake-quantize the neg6 steps, then clip.
    is_training: passed to the quantizers.
    masked_key_score: optional float, see above.
  """
  if mask_mode == MASK_MODE_ADDITIVE:
    if masked_key_score is not None:
      return (attention_scores * attention_mask +
              (1.0 - attention_mask) * masked_key_score)
    return attention_scores + mask_bias
  attention_scores = attention_scores * attention_mask
  if use_quantized_training:
    attention_scores = quantization.quantize_activation(
        attention_scores, is_training)
  attention_scores += mask_bias
  if use_quantized_training:
    attention_scores = quantization.quantize_activation(
        attention_scores, is_training)
    attention_scores = tf.clip_by_value(attention_scores, *QAT_SCORE_CLIP)
  return attention_scores


def attention_layer(from_tensor, to_tensor, value_tensor, attention_mask,
                    num_attention_heads, size_per_head,
                    attention_probs_dropout_prob, initializer_range,
                    mask_mode=MASK_MODE_ADDITIVE, use_einsum=True,
                    use_quantized_training=False, is_training=False,
                    mask_bias=None, masked_key_score=None):
  """Multi-headed scaled dot-product attention.

  Args:
    from_tensor: float Tensor [batch, from_seq, query_width] (query input).
    to_tensor: float Tensor [batch, to_seq, key_width] (key input).
    value_tensor: float Tensor [batch, to_seq, value_width] (value input).
    attention_mask: float Tensor [batch, from_seq or 1, to_seq], 1 = attend.
    num_attention_heads: N.
    size_per_head: H.
    attention_probs_dropout_prob: dropout on the probabilities.
    initializer_range: kernel initializer stddev.
    mask_mode: MASK_MODE_ADDITIVE or MASK_MODE_NEG6.
    use_einsum: einsum instead of transpose + matmul.
    use_quantized_training: fake-quantize scores and context.
    is_training: passed to the quantizers.
    mask_bias: optional attention_mask_bias() of the expanded mask, when the
      caller shares one between layers.
    masked_key_score: see `_mask_attention_scores`.

  Returns:
    (context [batch, from_seq, N, H],
     masked pre-softmax scores [batch, N, from_seq, to_seq]).
  """
  initializer = create_initializer(initializer_range)
  query = dense_layer_3d(from_tensor, num_attention_heads, size_per_head,
                         initializer, None, use_einsum, "query",
                         use_quantized_training, is_training)
  key = dense_layer_3d(to_tensor, num_attention_heads, size_per_head,
                       initializer, None, use_einsum, "key",
                       use_quantized_training, is_training)
  value = dense_layer_3d(value_tensor, num_attention_heads, size_per_head,
                         initializer, None, use_einsum, "value",
                         use_quantized_training, is_training)

  scale = 1.0 / math.sqrt(float(size_per_head))
  if not use_quantized_training:
    # Scaling the query equals scaling the scores, for 1/to_seq of the work.
    # Under QAT the scores are scaled, since their raw-score quantizer comes
    # before the scaling (docs/quantization_and_export.md, section 2).
    query *= scale
  if use_einsum:
    attention_scores = tf.einsum("BTNH,BFNH->BNFT", key, query)
  else:
    attention_scores = tf.matmul(tf.transpose(query, [0, 2, 1, 3]),
                                 tf.transpose(key, [0, 2, 1, 3]),
                                 transpose_b=True)
  if use_quantized_training:
    attention_scores = quantization.quantize_activation(
        attention_scores, is_training)
    attention_scores *= scale

  attention_mask = tf.expand_dims(attention_mask, axis=1)
  if mask_bias is None:
    mask_bias = attention_mask_bias(attention_mask, mask_mode)
  attention_scores = _mask_attention_scores(
      attention_scores, attention_mask, mask_bias, mask_mode,
      use_quantized_training, is_training, masked_key_score)

  attention_probs = tf.nn.softmax(attention_scores)
  attention_probs = dropout(attention_probs, attention_probs_dropout_prob)

  if use_einsum:
    context = tf.einsum("BNFT,BTNH->BFNH", attention_probs, value)
  else:
    context = tf.matmul(attention_probs, tf.transpose(value, [0, 2, 1, 3]))
    context = tf.transpose(context, [0, 2, 1, 3])
  if use_quantized_training:
    context = quantization.quantize_activation(context, is_training)
  return context, attention_scores


class _BlockLayers(object):
  """The dense and norm layers of one model's blocks, configured once."""

  def __init__(self, config, use_einsum, use_quantized_training, is_training):
    self.config = config
    self.use_einsum = use_einsum
    self.qat = dict(use_quantized_training=use_quantized_training,
                    is_training=is_training)
    self.initializer = create_initializer(config.initializer_range)
    self.activation = get_activation(config.hidden_act)

  def dense(self, tensor, width, name, activation=None):
    return dense_layer_2d(tensor, width, self.initializer, activation,
                          self.use_einsum, name=name, **self.qat)

  def normalize(self, tensor):
    return layer_norm(tensor, self.config.normalization_type, **self.qat)


def bottleneck_in(block_input, layers):
  """Section 3.1 of docs/architecture.md: the block's narrow inputs.

  Args:
    block_input: float [batch, seq, hidden], the block input x.
    layers: _BlockLayers.

  Returns:
    (residual_input h [batch, seq, d], query_key_input [batch, seq, d or
     hidden], value_input [batch, seq, d or hidden]).
  """
  config = layers.config
  if not config.use_bottleneck:
    return block_input, block_input, block_input
  width = config.true_hidden_size
  with tf.variable_scope("bottleneck"):
    with tf.variable_scope("input"):
      residual_input = layers.normalize(layers.dense(block_input, width,
                                                     "dense"))
    if config.use_bottleneck_attention:
      return residual_input, residual_input, residual_input
    if config.key_query_shared_bottleneck:
      with tf.variable_scope("attention"):
        query_key_input = layers.normalize(layers.dense(block_input, width,
                                                        "dense"))
      return residual_input, query_key_input, block_input
  return residual_input, block_input, block_input


def attention_block(residual_input, query_key_input, value_input,
                    attention_mask, mask_bias, layers, mask_mode,
                    masked_key_score):
  """Section 3.2: self-attention, output projection, residual and norm.

  Args:
    residual_input: float [batch, seq, d], h of bottleneck_in.
    query_key_input: float [batch, seq, width], read by Q and K.
    value_input: float [batch, seq, width], read by V.
    attention_mask: float [batch, 1, seq], 1 = attend.
    mask_bias: the model's attention_mask_bias.
    layers: _BlockLayers.
    mask_mode: MASK_MODE_ADDITIVE or MASK_MODE_NEG6.
    masked_key_score: None, or this layer's score for masked keys.

  Returns:
    (attention_output [batch, seq, d], masked scores [batch, N, seq, seq]).
  """
  config = layers.config
  width = config.true_hidden_size
  head_size = width // config.num_attention_heads
  with tf.variable_scope("attention"):
    with tf.variable_scope("self"):
      context, attention_scores = attention_layer(
          from_tensor=query_key_input,
          to_tensor=query_key_input,
          value_tensor=value_input,
          attention_mask=attention_mask,
          num_attention_heads=config.num_attention_heads,
          size_per_head=head_size,
          attention_probs_dropout_prob=config.attention_probs_dropout_prob,
          initializer_range=config.initializer_range,
          mask_mode=mask_mode,
          use_einsum=layers.use_einsum,
          mask_bias=mask_bias,
          masked_key_score=masked_key_score,
          **layers.qat)
    with tf.variable_scope("output"):
      attention_output = dense_layer_3d_proj(
          context, width, head_size, layers.initializer, None,
          layers.use_einsum, "dense", **layers.qat)
      if not config.use_bottleneck:
        attention_output = dropout(attention_output,
                                   config.hidden_dropout_prob)
      # The residual is the bottleneck input, not the block input.
      return layers.normalize(attention_output + residual_input), (
          attention_scores)


def stacked_ffns(attention_output, layers):
  """Section 3.3: the first num_feedforward_networks - 1 FFNs, no dropout.

  Args:
    attention_output: float [batch, seq, d].
    layers: _BlockLayers.

  Returns:
    float [batch, seq, d].
  """
  config = layers.config
  for ffn_idx in range(config.num_feedforward_networks - 1):
    with tf.variable_scope("ffn_layer_%d" % ffn_idx):
      with tf.variable_scope("intermediate"):
        intermediate_output = layers.dense(
            attention_output, config.intermediate_size, "dense",
            layers.activation)
      with tf.variable_scope("output"):
        ffn_output = layers.dense(intermediate_output,
                                  config.true_hidden_size, "dense")
        attention_output = layers.normalize(ffn_output + attention_output)
  return attention_output


def last_ffn_and_bottleneck_out(ffn_input, block_input, layers):
  """Section 3.4: the last FFN, then the projection back to hidden width.

  Args:
    ffn_input: float [batch, seq, d], the stacked FFNs' output.
    block_input: float [batch, seq, hidden], the residual of the way out.
    layers: _BlockLayers.

  Returns:
    The block output, float [batch, seq, hidden].
  """
  config = layers.config
  with tf.variable_scope("intermediate"):
    intermediate_output = layers.dense(ffn_input, config.intermediate_size,
                                       "dense", layers.activation)
  with tf.variable_scope("output"):
    ffn_output = layers.dense(intermediate_output, config.true_hidden_size,
                              "dense")
    if not config.use_bottleneck:
      ffn_output = dropout(ffn_output, config.hidden_dropout_prob)
    layer_output = layers.normalize(ffn_output + ffn_input)
    if config.use_bottleneck:
      with tf.variable_scope("bottleneck"):
        projected = layers.dense(layer_output, config.hidden_size, "dense")
        projected = dropout(projected, config.hidden_dropout_prob)
        layer_output = layers.normalize(projected + block_input)
  return layer_output


def transformer_model(input_tensor, attention_mask, config,
                      mask_mode=MASK_MODE_ADDITIVE, use_einsum=True,
                      use_quantized_training=False, is_training=False,
                      masked_key_scores=None):
  """The stack of (bottleneck) transformer blocks (docs/architecture.md, 3).

  Args:
    input_tensor: float Tensor [batch, seq, hidden] (the embedding output).
    attention_mask: float Tensor [batch, seq or 1, seq], 1 = attend.
    config: BertConfig (dropout already zeroed when not training).
    mask_mode: MASK_MODE_ADDITIVE or MASK_MODE_NEG6.
    use_einsum: einsum instead of reshape + matmul.
    use_quantized_training: insert fake-quant nodes.
    is_training: passed to the quantizers.
    masked_key_scores: None, or one masked-key score per layer (BertModel).

  Returns:
    (list of num_layers + 1 Tensors [batch, seq, hidden], embedding output
     first; list of num_layers attention score Tensors [batch, N, seq, seq]).

  Raises:
    ValueError: the input width differs from `hidden_size`.
  """
  input_width = get_shape_list(input_tensor, expected_rank=3)[2]
  if input_width != config.hidden_size:
    raise ValueError("The embedding output width (%d) must equal hidden_size "
                     "(%d)." % (input_width, config.hidden_size))
  layers = _BlockLayers(config, use_einsum, use_quantized_training,
                        is_training)
  mask_bias = attention_mask_bias(tf.expand_dims(attention_mask, axis=1),
                                  mask_mode)
  layer_output = input_tensor
  all_layer_outputs = [input_tensor]
  all_attention_maps = []
  for layer_idx in range(config.num_hidden_layers):
    with tf.variable_scope("layer_%d" % layer_idx):
      block_input = layer_output
      residual_input, query_key_input, value_input = bottleneck_in(
          block_input, layers)
      attention_output, attention_scores = attention_block(
          residual_input, query_key_input, value_input, attention_mask,
          mask_bias, layers, mask_mode,
          None if masked_key_scores is None else masked_key_scores[layer_idx])
      all_attention_maps.append(attention_scores)
      layer_output = last_ffn_and_bottleneck_out(
          stacked_ffns(attention_output, layers), block_input, layers)
      all_layer_outputs.append(layer_output)
  return all_layer_outputs, all_attention_maps


def get_shape_list(tensor, expected_rank=None, name=None):
  """Returns the shape as a list, static ints where known, scalar Tensors else.

  Args:
    tensor: Tensor.
    expected_rank: int or list of ints; raises ValueError on another rank.
    name: name for the error message.

  Returns:
    list of ints / scalar int32 Tensors.
  """
  if expected_rank is not None:
    assert_rank(tensor, expected_rank, name)
  shape = tensor.shape.as_list()
  dynamic_dims = [i for i, dim in enumerate(shape) if dim is None]
  if not dynamic_dims:
    return shape
  dynamic_shape = tf.shape(tensor)
  for index in dynamic_dims:
    shape[index] = dynamic_shape[index]
  return shape


def assert_rank(tensor, expected_rank, name=None):
  """Raises ValueError if `tensor` does not have one of `expected_rank`."""
  if isinstance(expected_rank, int):
    expected_rank = [expected_rank]
  actual_rank = tensor.shape.ndims
  if actual_rank not in expected_rank:
    raise ValueError(
        "Tensor %s has rank %s (shape %s); expected rank %s." %
        (name or tensor.name, actual_rank, tensor.shape,
         " or ".join(str(rank) for rank in expected_rank)))


_ENCODER_SHAPES = {}


def encoder_variable_shapes(config, scope=MODEL_SCOPE):
  """{variable name: shape} of the BertModel `config` builds under `scope`.

  Built once per (config, scope) in a throwaway graph on a [1, 2] input (no
  variable's shape depends on the input size); a run that checks several
  checkpoints of one config builds it once.
  """
  key = (config.to_json_string(), scope)
  if key not in _ENCODER_SHAPES:
    with tf.Graph().as_default():
      BertModel(config, is_training=False,
                input_ids=tf.zeros([1, 2], dtype=tf.int32), scope=scope)
      _ENCODER_SHAPES[key] = {var.op.name: var.shape.as_list()
                              for var in tf.global_variables()}
  return {name: list(shape) for name, shape in _ENCODER_SHAPES[key].items()}


def count_parameters(variables):
  """Total number of scalars in `variables`."""
  return int(sum(np.prod(var.shape.as_list()) for var in variables))
