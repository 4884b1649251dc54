"""Text preprocessing, defined once: VocabularyGen runs `tokenize` on batches of documents to
count tokens, Transform runs it to map them to ids, and the same graph is exported with the
model, so vocabulary, training and serving see identical tokens."""

import tensorflow as tf
import tensorflow_transform as tft

from components.vocabulary_gen import lookup, vocabulary

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

    The vocabulary (asset VOCABULARY_NAME, `count token` lines, so EmbeddingGen can report which
    share of the corpus its vectors cover) is VocabularyGen's file when VocabularyTransform hands
    it over (custom_config["vocabulary_file"]), else computed here by tft.vocabulary: the same
    bytes either way, mapped by the same lookup.
    """
    tokens = tokenize(inputs[TEXT_KEY])
    num_oov_buckets = custom_config["num_oov_buckets"]
    vocabulary_file = custom_config.get(vocabulary.VOCABULARY_FILE_CONFIG_KEY)
    if vocabulary_file:
        ids = lookup.apply_vocabulary(tokens, vocabulary_file,
                                      num_oov_buckets=num_oov_buckets, asset_name=VOCABULARY_NAME)
    else:
        counted = tokens
        if custom_config.get("max_tokens_per_document"):
            counted = tokens[:, :custom_config["max_tokens_per_document"]]
        vocabulary_file = tft.vocabulary(
            counted,
            top_k=custom_config.get("top_k"),
            frequency_threshold=custom_config.get("frequency_threshold"),
            vocab_filename=VOCABULARY_NAME,
            store_frequency=True)
        ids = lookup.apply_vocabulary(tokens, vocabulary_file, num_oov_buckets=num_oov_buckets)
    max_tokens = custom_config["max_tokens"]
    token_ids = (ids + 1)[:, :max_tokens].to_tensor(default_value=PADDING_ID,
                                                    shape=[None, max_tokens])
    outputs = {TOKEN_IDS_KEY: token_ids}
    if LABEL_KEY in inputs:
        outputs[LABEL_KEY] = inputs[LABEL_KEY]
    return outputs
