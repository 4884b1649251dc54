"""Mapping tokens with a `count token` vocabulary file inside a preprocessing_fn.

The file becomes an asset of the TransformGraph, so training and serving map tokens with the very
same bytes. It works for VocabularyGen's file and for tft.vocabulary(store_frequency=True)'s
deferred path alike: the table is the one tft builds for its own frequency files (key: the second
field of a line, value: the line number), and OOV tokens hash into buckets after the vocabulary.
"""

import contextlib
import os

import tensorflow as tf
import tensorflow_transform as tft


def apply_vocabulary(tokens, vocabulary_file, *, num_oov_buckets, asset_name=None):
    """Token ids (line numbers, OOV buckets after them) of string tokens (any tensor type).

    With asset_name, vocabulary_file (a path) is registered under that name, so
    tft.TFTransformOutput.vocabulary_file_by_name(asset_name) finds its copy in the graph.
    """
    if asset_name is not None:
        tft.annotate_asset(asset_name, os.path.basename(vocabulary_file))

    def lookup(x, path):
        # Like tft's own tables: built once, outside the traced function, unless the path is
        # still symbolic (tft.vocabulary's output while tft analyzes the graph).
        with contextlib.nullcontext() if tf.is_symbolic_tensor(path) else tf.init_scope():
            table = tf.lookup.StaticVocabularyTable(
                tf.lookup.TextFileInitializer(
                    path, tf.string, 1, tf.int64, tf.lookup.TextFileIndex.LINE_NUMBER,
                    delimiter=" "),
                num_oov_buckets=num_oov_buckets)
        return table.lookup(x), table.size()

    return tft.apply_vocabulary(tokens, vocabulary_file, num_oov_buckets=num_oov_buckets,
                                lookup_fn=lookup)
