"""The preprocessing_fn: token ids from the text rules of `text.tokenize` (the same function
VocabularyGen counts with), mapped by the vocabulary; the graph is exported with the model, so
vocabulary, training and serving see identical tokens."""

import tensorflow_transform as tft

from ...components.specs import VOCABULARY_FILE_KEY
from ...components.vocabulary_gen import lookup
from .text import tokenize

TEXT_KEY = "text"
LABEL_KEY = "label"
TOKEN_IDS_KEY = "token_ids"
VOCABULARY_NAME = "tokens"
PADDING_ID = 0


def preprocessing_fn(inputs, custom_config):
    """Token ids: padding 0, vocabulary token i at i + 1, OOV buckets after the vocabulary.

    The vocabulary (asset VOCABULARY_NAME, `count token` lines, so EmbeddingGen can report which
    share of the corpus its vectors cover) is VocabularyGen's file when VocabularyTransform hands
    it over (custom_config["vocabulary_file"]), else computed here by tft.vocabulary: the same
    bytes either way, mapped by the same lookup.
    """
    tokens = tokenize(inputs[TEXT_KEY])
    num_oov_buckets = custom_config["num_oov_buckets"]
    vocabulary_file = custom_config.get(VOCABULARY_FILE_KEY)
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
