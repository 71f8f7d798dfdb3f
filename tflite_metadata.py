"""TFLite Task Library metadata for exported models.

With tflite-support installed (requirements-metadata.txt) and a WordPiece
vocabulary or SentencePiece model given, `add_metadata` embeds the tokenizer
and names the tensors so that BertQuestionAnswerer (SQuAD) and
BertNLClassifier (classification) load the file; otherwise it returns the
model unchanged and logs why.
"""

import tensorflow.compat.v1 as tf

import tflite_runner


def _metadata_writers():
  """tflite-support's metadata writer modules, or None with the reason.

  Imported from `tensorflow_lite_support` directly: the `tflite_support`
  package also loads the Task runtime, which cannot share a process with
  TensorFlow.
  """
  try:
    from tensorflow_lite_support.metadata.python.metadata_writers import metadata_info  # pylint: disable=g-import-not-at-top
    from tensorflow_lite_support.metadata.python.metadata_writers import metadata_writer  # pylint: disable=g-import-not-at-top
    from tensorflow_lite_support.metadata.python.metadata_writers import writer_utils  # pylint: disable=g-import-not-at-top
  except ImportError as error:
    return None, "tflite-support is not importable (%s)" % error
  return (metadata_info, metadata_writer, writer_utils), None


def add_metadata(model, task, vocab_file, spm_model_file, do_lower_case):
  """The model with Task Library metadata, or unchanged (logged) if impossible."""
  if not (vocab_file or spm_model_file):
    tf.logging.info("TF-Lite metadata skipped: no vocab_file or "
                    "spm_model_file to embed.")
    return model
  modules, reason = _metadata_writers()
  if modules is None:
    tf.logging.warning(
        "TF-Lite metadata skipped: %s; install requirements-metadata.txt for "
        "TFLite Task Library compatible models.", reason)
    return model
  metadata_info, metadata_writer, writer_utils = modules
  if spm_model_file:
    tokenizer_md = metadata_info.SentencePieceTokenizerMd(spm_model_file)
  else:
    tokenizer_md = metadata_info.BertTokenizerMd(vocab_file)
  input_md = metadata_info.BertInputTensorsMd(
      model, *tflite_runner.INPUT_NAMES, tokenizer_md=tokenizer_md)
  model_names = writer_utils.get_output_tensor_names(model)
  if task == "squad":
    general_md = metadata_info.GeneralMd(
        name="MobileBERT question answerer",
        description="Answers questions about a passage (SQuAD) with "
                    "MobileBERT: span start and end logits over the tokens.")
    descriptions = {
        "start_logits": "Logit of each token being the answer start.",
        "end_logits": "Logit of each token being the answer end."}
  else:
    general_md = metadata_info.GeneralMd(
        name="MobileBERT classifier",
        description="Classifies a sentence or sentence pair with MobileBERT.")
    descriptions = {"probabilities": "Probability of each class."}
  # BertNLClassifier looks its scores up under the metadata name
  # "probability"; the tensor itself keeps its name.
  metadata_names = {"probabilities": "probability"}
  output_metadata = [
      metadata_info.TensorMd(name=metadata_names.get(name, name),
                             description=descriptions[name])
      .create_metadata() for name in model_names]
  writer = metadata_writer.MetadataWriter.create_from_metadata(
      model,
      model_metadata=general_md.create_metadata(),
      input_metadata=input_md.create_input_tesnor_metadata(),
      output_metadata=output_metadata,
      associated_files=input_md.get_tokenizer_associated_files(),
      input_process_units=input_md.create_input_process_unit_metadata())
  tf.logging.info("TF-Lite metadata added (Task Library %s).",
                  "BertQuestionAnswerer" if task == "squad" else
                  "BertNLClassifier")
  if not do_lower_case and not spm_model_file:
    tf.logging.warning(
        "The metadata's BertTokenizer has no casing option; make sure the "
        "Task Library's tokenization matches this cased model.")
  return bytes(writer.populate())
