"""preprocessing_fn with either vocabulary: same TransformGraph asset, same ids at serving time."""

import apache_beam as beam
import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

from tfx_embeddings.components import vocabulary_file
from tfx_embeddings.components.specs import VOCABULARY_FILE_KEY
from tfx_embeddings.components.vocabulary_gen import beam_impl
from tfx_embeddings.pipeline.demo import preprocessing, text

TEXTS = ["A great movie, GREAT acting!", "dull plot<br />dull acting", "great great fun",
         "the end", ""]
SERVED = ["great acting and unseen words", "Dull! dull fun", ""]


def _transform_output(tmp_path, custom_config):
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(
        {preprocessing.TEXT_KEY: tf.io.FixedLenFeature([], tf.string)}))
    with beam.Pipeline(runner="FnApiRunner") as pipeline, \
            tft_beam.Context(temp_dir=str(tmp_path / "tmp")):
        data = pipeline | beam.Create([{preprocessing.TEXT_KEY: t} for t in TEXTS])
        transform_fn = (data, metadata) | tft_beam.AnalyzeDataset(
            lambda inputs: preprocessing.preprocessing_fn(inputs, custom_config))
        _ = transform_fn | tft_beam.WriteTransformFn(str(tmp_path / "graph"))
    return tft.TFTransformOutput(str(tmp_path / "graph"))


@pytest.mark.parametrize("max_tokens_per_document", [None, 2])
def test_fast_and_tft_vocabularies_map_alike(tmp_path, max_tokens_per_document):
    config = {"top_k": 6, "frequency_threshold": 1, "num_oov_buckets": 2, "max_tokens": 6,
              "max_tokens_per_document": max_tokens_per_document}
    file = str(tmp_path / vocabulary_file.VOCABULARY_FILE)
    with beam.Pipeline(runner="FnApiRunner") as pipeline:
        _ = pipeline | beam.Create(TEXTS) | beam_impl.WriteVocabulary(
            file, text.tokenize, top_k=6, frequency_threshold=1, store_frequency=True,
            max_tokens_per_document=max_tokens_per_document)
    fast = _transform_output(tmp_path / "fast",
                             {**config, VOCABULARY_FILE_KEY: file})
    with_tft = _transform_output(tmp_path / "tft", config)

    assets = [output.vocabulary_file_by_name(preprocessing.VOCABULARY_NAME)
              for output in (fast, with_tft)]
    assert assets[0] != file and assets[0].startswith(fast.transform_savedmodel_dir)  # A copy.
    contents = [tf.io.gfile.GFile(path, "rb").read() for path in assets]
    assert contents[0] == contents[1]
    with tf.io.gfile.GFile(file, "rb") as f:
        assert f.read() == contents[0]

    served = [output.transform_features_layer()({preprocessing.TEXT_KEY: tf.constant(SERVED)})
              [preprocessing.TOKEN_IDS_KEY].numpy().tolist() for output in (fast, with_tft)]
    assert served[0] == served[1]
    ranked = [line.split(b" ")[1] for line in contents[0].splitlines()]
    great = ranked.index(b"great") + 1  # Ids: vocabulary line + 1, padding 0, OOV after.
    assert served[0][0][0] == great and all(6 < i <= 8 for i in served[0][0][2:5])
    assert served[0][2] == [preprocessing.PADDING_ID] * 6
