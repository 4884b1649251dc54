"""Text preprocessing, defined once: Transform runs it to compute the vocabulary and token ids,
and the same graph is exported with the model, so serving maps raw strings identically."""

import tensorflow as tf
import tensorflow_transform as tft

TEXT_KEY = "text"
LABEL_KEY = "label"
TOKEN_IDS_KEY = "token_ids"
VOCABULARY_NAME = "tokens"
PADDING_ID = 0

_PUNCTUATION = r"""[!"#$%&()\*\+,\-\./:;<=>?@\[\\\]^_`{|}~']"""


def standardize(text):
    """Lowercases, turns HTML line breaks into spaces and strips punctuation."""
    text = tf.strings.lower(text, encoding="utf-8")
    text = tf.strings.regex_replace(text, r"<br\s*/?>", " ")
    return tf.strings.regex_replace(text, _PUNCTUATION, "")


def tokenize(text):
    """A [batch] string tensor to a ragged [batch, None] tensor of tokens."""
    return tf.strings.split(standardize(text))


def preprocessing_fn(inputs, custom_config):
    """Token ids: padding 0, vocabulary token i at i + 1, OOV buckets after the vocabulary.

    The vocabulary (asset VOCABULARY_NAME) is stored with token counts, so EmbeddingGen can
    report which share of the corpus its vectors cover.
    """
    tokens = tokenize(inputs[TEXT_KEY])
    ids = tft.compute_and_apply_vocabulary(
        tokens,
        top_k=custom_config.get("top_k"),
        frequency_threshold=custom_config.get("frequency_threshold"),
        num_oov_buckets=custom_config["num_oov_buckets"],
        vocab_filename=VOCABULARY_NAME,
        store_frequency=True)
    max_tokens = custom_config["max_tokens"]
    token_ids = (ids + 1)[:, :max_tokens].to_tensor(default_value=PADDING_ID,
                                                    shape=[None, max_tokens])
    outputs = {TOKEN_IDS_KEY: token_ids}
    if LABEL_KEY in inputs:
        outputs[LABEL_KEY] = inputs[LABEL_KEY]
    return outputs
