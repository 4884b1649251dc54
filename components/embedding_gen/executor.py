"""EmbeddingGen's executor: the TFX wiring around `build_embedding` (build.py, TFX-free)."""

import dataclasses
import os

import tensorflow as tf
import tensorflow_transform as tft
from tfx.dsl.components.base import base_beam_executor
from tfx.types import artifact_utils

from ..specs import (
    EMBEDDING_KEY,
    REPORT_KEY,
    TRANSFORM_GRAPH_KEY,
    VECTORS_PATH_KEY,
    VOCABULARY_NAME_KEY,
)
from . import report as report_lib
from . import token_ids
from .build import build_embedding
from .parameters import EmbeddingGenParameters


class Executor(base_beam_executor.BaseBeamExecutor):
    """Checks the TransformGraph's token ids, then runs the Beam job on the runner given by the
    pipeline's beam_pipeline_args."""

    def Do(self, input_dict, output_dict, exec_properties):
        transform_output = tft.TFTransformOutput(
            artifact_utils.get_single_uri(input_dict[TRANSFORM_GRAPH_KEY]))
        embedding = artifact_utils.get_single_instance(output_dict[EMBEDDING_KEY])
        parameters = EmbeddingGenParameters.from_exec_properties(exec_properties)
        vocabulary_name, vocabulary_path, tokens = token_ids.find_vocabulary(
            transform_output, exec_properties.get(VOCABULARY_NAME_KEY),
            has_counts=parameters.vocabulary_has_counts, ids_feature=parameters.ids_feature)
        layout, ids = token_ids.check_token_ids(
            transform_output, vocabulary_name, tokens, row_layout=parameters.row_layout,
            num_oov_buckets=parameters.num_oov_buckets, ids_feature=parameters.ids_feature)
        manifest = build_embedding(
            vocabulary_path, exec_properties[VECTORS_PATH_KEY], embedding.uri,
            make_pipeline=self._make_beam_pipeline, token_ids=ids,
            **dataclasses.asdict(parameters.replace(row_layout=layout.name)))
        embedding.set_int_custom_property("vocabulary_size", manifest.layout.vocabulary_size)
        embedding.set_int_custom_property("dimension", manifest.shape[1])
        embedding.set_int_custom_property("num_shards", len(manifest.shards))
        embedding.set_string_custom_property("row_layout", manifest.layout.name)
        embedding.set_float_custom_property("vocabulary_coverage",
                                            manifest.coverage.vocabulary_share)
        for report in output_dict.get(REPORT_KEY, []):  # For Kubeflow's UI.
            with tf.io.gfile.GFile(os.path.join(embedding.uri, report_lib.REPORT_FILE)) as f:
                report.write(f.read())
