"""VocabularyGen's executor: reads the text of tf.Examples and writes the vocabulary with Beam.

Its Beam workers decode the examples with tfx_bsl and need no TensorFlow where the tokenizer
allows (see beam_impl)."""

import json
import os

import apache_beam as beam
import tensorflow as tf
from tfx.dsl.components.base import base_beam_executor
from tfx.types import artifact_utils
from tfx.utils import import_utils

from .. import beam_pipelines, progress, vocabulary_file
from ..specs import (
    EXAMPLES_KEY,
    FREQUENCY_THRESHOLD_KEY,
    MAX_TOKENS_PER_DOCUMENT_KEY,
    SPLITS_KEY,
    TEXT_FEATURE_KEY,
    TOKENIZE_FN_KEY,
    TOP_K_KEY,
    VOCABULARY_KEY,
)
from . import beam_impl


class Executor(base_beam_executor.BaseBeamExecutor):
    """Runs the Beam job on the runner given by the pipeline's beam_pipeline_args."""

    def Do(self, input_dict, output_dict, exec_properties):
        examples = artifact_utils.get_single_instance(input_dict[EXAMPLES_KEY])
        output = artifact_utils.get_single_instance(output_dict[VOCABULARY_KEY])
        module, _, name = exec_properties[TOKENIZE_FN_KEY].rpartition(".")
        path = os.path.join(output.uri, vocabulary_file.VOCABULARY_FILE)
        patterns = [os.path.join(artifact_utils.get_split_uri([examples], split), "*")
                    for split in json.loads(exec_properties[SPLITS_KEY])]
        feature = exec_properties[TEXT_FEATURE_KEY]
        tf.io.gfile.makedirs(output.uri)
        pipeline = self._make_beam_pipeline()
        with beam_pipelines.local_directory_removed(pipeline), pipeline:
            _ = (
                [pipeline | f"Read[{pattern}]" >> beam_impl.ReadDocuments(pattern, feature)
                 for pattern in patterns]
                | "Documents" >> beam.Flatten()
                | "Vocabulary" >> beam_impl.WriteVocabulary(
                    path, import_utils.import_func_from_module(module, name),
                    top_k=exec_properties.get(TOP_K_KEY),
                    frequency_threshold=exec_properties.get(FREQUENCY_THRESHOLD_KEY),
                    max_tokens_per_document=exec_properties.get(MAX_TOKENS_PER_DOCUMENT_KEY),
                    store_frequency=True))
        with tf.io.gfile.GFile(path, "rb") as f:
            size = f.read().count(b"\n")
        output.set_int_custom_property("vocabulary_size", size)
        progress.report("%d tokens written to %s", size, path)

