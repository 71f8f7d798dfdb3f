"""Fine-tuning heads on top of `modeling.BertModel`, and their losses.

Shared by the training scripts and by the TF-Lite export, so the graph that is
trained and the graph that is exported are built by the same code.  Variable
names are those of the original scripts: `cls/squad/output_{weights,bias}` for
SQuAD and top-level `output_{weights,bias}` for classification.
"""

import tensorflow.compat.v1 as tf

import modeling

CLASSIFIER_DROPOUT_PROB = 0.1


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
