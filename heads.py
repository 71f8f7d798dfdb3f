"""The heads on top of `modeling.BertModel`, and their losses.

Fine-tuning: SQuAD spans and GLUE labels, shared by the training scripts and
the TF-Lite export, so that the graph that is trained and the graph that is
exported are built by the same code.  Pretraining: the masked-LM head (also
the teacher's, in distillation) and next-sentence prediction.  Variable names
are those of the original scripts: `cls/squad/output_{weights,bias}` for
SQuAD, top-level `output_{weights,bias}` for classification,
`cls/predictions/...` and `cls/seq_relationship/...` for pretraining.
"""

import tensorflow.compat.v1 as tf

import modeling

CLASSIFIER_DROPOUT_PROB = 0.1
# Added to the MLM weight sum so a batch without predictions gives loss 0.
MLM_WEIGHT_EPSILON = 1e-5


def encoder(bert_config, is_training, input_ids, input_mask, segment_ids,
            use_one_hot_embeddings=False, use_einsum=False,
            use_quantized_training=False, masked_key_scores=None):
  """The encoder every head sits on, under the default "bert" scope.

  Args are those of `squad_logits`, plus masked_key_scores (see
  modeling.BertModel; the integer TF-Lite export sets it).

  Returns:
    modeling.BertModel.
  """
  return modeling.BertModel(
      config=bert_config,
      is_training=is_training,
      input_ids=input_ids,
      input_mask=input_mask,
      token_type_ids=segment_ids,
      use_one_hot_embeddings=use_one_hot_embeddings,
      use_einsum=use_einsum,
      use_quantized_training=use_quantized_training,
      masked_key_scores=masked_key_scores)


def squad_logits(bert_config, is_training, input_ids, input_mask, segment_ids,
                 use_one_hot_embeddings=False, use_einsum=False,
                 use_quantized_training=False):
  """Span start/end logits for extractive question answering.

  Args:
    bert_config: modeling.BertConfig.
    is_training: enables dropout (and QAT range updates).
    input_ids: int32 Tensor [batch, seq].
    input_mask: int32 Tensor [batch, seq].
    segment_ids: int32 Tensor [batch, seq].
    use_one_hot_embeddings: one-hot word lookup (TPU).
    use_einsum: einsum maths; False gives plain MatMul ops, which TF-Lite
      converts best.
    use_quantized_training: fake-quant nodes in the encoder.

  Returns:
    (start_logits, end_logits): float32 Tensors [batch, seq], named
    "start_logits" and "end_logits" so exports can find them by name.
  """
  return squad_head(encoder(bert_config, is_training, input_ids, input_mask,
                            segment_ids, use_one_hot_embeddings, use_einsum,
                            use_quantized_training))


def squad_head(model):
  """The SQuAD head on an encoder: see `squad_logits`."""
  sequence_output = model.get_sequence_output()
  batch_size, seq_length, hidden_size = modeling.get_shape_list(
      sequence_output, expected_rank=3)

  output_weights = tf.get_variable(
      "cls/squad/output_weights", [2, hidden_size],
      initializer=tf.truncated_normal_initializer(stddev=0.02))
  output_bias = tf.get_variable(
      "cls/squad/output_bias", [2], initializer=tf.zeros_initializer())

  flat_sequence = tf.reshape(sequence_output, [-1, hidden_size])
  # One matmul per output: an integer TF-Lite model then quantizes each
  # output on its own int8 range (docs/quantization_and_export.md, 4).
  outputs = []
  for index, name in enumerate(("start_logits", "end_logits")):
    logits = tf.matmul(flat_sequence, output_weights[index:index + 1],
                       transpose_b=True)
    logits = tf.nn.bias_add(logits, output_bias[index:index + 1])
    outputs.append(tf.reshape(logits, [batch_size, seq_length], name=name))
  return tuple(outputs)


def classifier_logits(bert_config, is_training, input_ids, input_mask,
                      segment_ids, num_labels, use_one_hot_embeddings=False,
                      use_einsum=False, use_quantized_training=False):
  """Sentence(-pair) classification or regression logits.

  The pooled output follows `classifier_activation`: the tanh pooler when it
  is set, the raw [CLS] state otherwise (all published MobileBERT configs).

  Args:
    bert_config: modeling.BertConfig.
    is_training: enables dropout (and QAT range updates).
    input_ids: int32 Tensor [batch, seq].
    input_mask: int32 Tensor [batch, seq].
    segment_ids: int32 Tensor [batch, seq].
    num_labels: classes; 1 means regression (STS-B).
    use_one_hot_embeddings: one-hot word lookup (TPU).
    use_einsum: einsum maths in the encoder.
    use_quantized_training: fake-quant nodes in the encoder.

  Returns:
    (logits [batch, num_labels], probabilities [batch, num_labels]); the
    second is named "probabilities" and is the softmax, or for regression the
    raw score.
  """
  return classifier_head(
      encoder(bert_config, is_training, input_ids, input_mask, segment_ids,
              use_one_hot_embeddings, use_einsum, use_quantized_training),
      is_training, num_labels)


def classifier_head(model, is_training, num_labels):
  """The classification head on an encoder: see `classifier_logits`."""
  pooled_output = model.get_pooled_output()
  hidden_size = modeling.get_shape_list(pooled_output, expected_rank=2)[1]

  output_weights = tf.get_variable(
      "output_weights", [num_labels, hidden_size],
      initializer=tf.truncated_normal_initializer(stddev=0.02))
  output_bias = tf.get_variable(
      "output_bias", [num_labels], initializer=tf.zeros_initializer())

  if is_training:
    pooled_output = modeling.dropout(pooled_output, CLASSIFIER_DROPOUT_PROB)
  logits = tf.matmul(pooled_output, output_weights, transpose_b=True)
  logits = tf.nn.bias_add(logits, output_bias)
  if num_labels == 1:
    probabilities = tf.identity(logits, name="probabilities")
  else:
    probabilities = tf.nn.softmax(logits, axis=-1, name="probabilities")
  return logits, probabilities


def span_loss(logits, positions):
  """Mean cross-entropy of span logits against gold positions.

  Args:
    logits: [batch, seq] float32.
    positions: [batch] int32 gold indexes.

  Returns:
    scalar float32.
  """
  seq_length = modeling.get_shape_list(logits, expected_rank=2)[1]
  one_hot_positions = tf.one_hot(positions, depth=seq_length,
                                 dtype=tf.float32)
  log_probs = tf.nn.log_softmax(logits, axis=-1)
  return -tf.reduce_mean(tf.reduce_sum(one_hot_positions * log_probs, axis=-1))


def classifier_loss(logits, label_ids, num_labels):
  """Mean cross-entropy, or mean squared error when num_labels is 1.

  Args:
    logits: [batch, num_labels] float32.
    label_ids: [batch] int32 class ids, or float32 scores for regression.
    num_labels: int.

  Returns:
    scalar float32 loss.
  """
  if num_labels == 1:
    scores = tf.squeeze(logits, axis=[-1])
    return tf.reduce_mean(tf.square(scores - tf.cast(label_ids, tf.float32)))
  log_probs = tf.nn.log_softmax(logits, axis=-1)
  one_hot_labels = tf.one_hot(label_ids, depth=num_labels, dtype=tf.float32)
  return tf.reduce_mean(-tf.reduce_sum(one_hot_labels * log_probs, axis=-1))


def gather_indexes(sequence_tensor, positions):
  """Gathers the vectors at `positions` of every sequence.

  Args:
    sequence_tensor: float [batch, seq, width].
    positions: int32 [batch, num_positions].

  Returns:
    float [batch * num_positions, width].
  """
  batch_size, seq_length, width = modeling.get_shape_list(
      sequence_tensor, expected_rank=3, name="sequence_tensor")
  flat_offsets = tf.reshape(tf.range(0, batch_size, dtype=tf.int32) *
                            seq_length, [-1, 1])
  flat_positions = tf.reshape(positions + flat_offsets, [-1])
  flat_sequence = tf.reshape(sequence_tensor, [batch_size * seq_length, width])
  return tf.gather(flat_sequence, flat_positions)


def masked_lm_logits(bert_config, sequence_output, embedding_table, positions,
                     use_einsum=True):
  """Masked-LM logits at `positions` (variables under `cls/predictions`).

  transform: dense(hidden, hidden_act) + real LayerNorm (epsilon 1e-12, even
  for no_norm models); output: h . [word_embeddings ; extra_output_weights]^T
  + output_bias, where extra_output_weights [vocab, hidden - embedding_size]
  exists only when the widths differ.

  Args:
    bert_config: BertConfig of the model the head belongs to.
    sequence_output: float [batch, seq, hidden].
    embedding_table: the word embedding variable [vocab, embedding_size].
    positions: int32 [batch, num_predictions].
    use_einsum: bool.

  Returns:
    float32 logits [batch * num_predictions, vocab].
  """
  input_tensor = gather_indexes(sequence_output, positions)
  with tf.variable_scope("cls/predictions"):
    with tf.variable_scope("transform"):
      input_tensor = modeling.dense_layer_2d(
          input_tensor, bert_config.hidden_size,
          modeling.create_initializer(bert_config.initializer_range),
          modeling.get_activation(bert_config.hidden_act),
          use_einsum=use_einsum, name="dense")
      input_tensor = modeling.layer_norm(input_tensor, "layer_norm")
    output_weights = embedding_table
    extra_width = bert_config.hidden_size - bert_config.embedding_size
    if extra_width > 0:
      extra_output_weights = tf.get_variable(
          "extra_output_weights",
          shape=[bert_config.vocab_size, extra_width],
          initializer=modeling.create_initializer(
              bert_config.initializer_range))
      output_weights = tf.concat([embedding_table, extra_output_weights],
                                 axis=1)
    output_bias = tf.get_variable(
        "output_bias", shape=[bert_config.vocab_size],
        initializer=tf.zeros_initializer())
    logits = tf.matmul(input_tensor, output_weights, transpose_b=True)
    return tf.nn.bias_add(logits, output_bias)


def masked_lm_loss(logits, targets, label_weights):
  """Weighted soft-target cross-entropy.

  Args:
    logits: float [batch * P, vocab].
    targets: float [batch * P, vocab] (rows sum to 1).
    label_weights: float [batch, P]; 0 for padding predictions.

  Returns:
    (loss scalar = sum(w * ce) / (sum(w) + 1e-5), per-example ce [batch * P],
     log_probs [batch * P, vocab]).
  """
  log_probs = tf.nn.log_softmax(logits, axis=-1)
  per_example_loss = -tf.reduce_sum(targets * log_probs, axis=-1)
  weights = tf.reshape(label_weights, [-1])
  loss = (tf.reduce_sum(weights * per_example_loss) /
          (tf.reduce_sum(weights) + MLM_WEIGHT_EPSILON))
  return loss, per_example_loss, log_probs


def next_sentence_output(bert_config, pooled_output, labels):
  """NSP head `cls/seq_relationship` (output_weights [2, hidden], bias [2]).

  Args:
    bert_config: student BertConfig.
    pooled_output: float [batch, hidden].
    labels: int32 [batch, 1] or [batch]; 0 = next, 1 = random.

  Returns:
    (mean loss, per-example loss [batch], log_probs [batch, 2]).
  """
  with tf.variable_scope("cls/seq_relationship"):
    output_weights = tf.get_variable(
        "output_weights", shape=[2, bert_config.hidden_size],
        initializer=modeling.create_initializer(bert_config.initializer_range))
    output_bias = tf.get_variable("output_bias", shape=[2],
                                  initializer=tf.zeros_initializer())
    logits = tf.nn.bias_add(
        tf.matmul(pooled_output, output_weights, transpose_b=True),
        output_bias)
    log_probs = tf.nn.log_softmax(logits, axis=-1)
    one_hot = tf.one_hot(tf.reshape(labels, [-1]), depth=2, dtype=tf.float32)
    per_example_loss = -tf.reduce_sum(one_hot * log_probs, axis=-1)
    return tf.reduce_mean(per_example_loss), per_example_loss, log_probs
