"""Proof in a pipeline the project did not shape: a TFX user's own project (its schema, its
preprocessing_fn with tft.compute_and_apply_vocabulary, its trainer module) adds EmbeddingGen and
EmbeddingTrainer through the public API, installed from the built wheel into a fresh virtualenv
(`make image`), run by LocalDagRunner from a directory outside the checkout.

Two scheduled runs: the first in tft's row layout, the second in the padded one, warm-started
from the first. Each time, every vocabulary token's row in the pushed model is its vector from
the file, bit for bit, reached through the user's own token ids.
"""

import glob
import json
import os
import subprocess
import textwrap
import zipfile

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
from ml_metadata.metadata_store import metadata_store
from tfx.orchestration import metadata

from tfx_embeddings.pipeline import sample_data

from tests.conftest import ROOT
MAX_TOKENS = 12

SCHEMA = """
feature { name: "title" type: BYTES presence { min_fraction: 1.0 } shape {} }
feature { name: "body" type: BYTES presence { min_fraction: 1.0 } shape {} }
feature { name: "rating" type: INT int_domain { min: 1 max: 5 } presence { min_fraction: 1.0 }
          shape {} }
"""

PREPROCESSING = """
import tensorflow as tf
import tensorflow_transform as tft

MAX_TOKENS = %d


def preprocessing_fn(inputs, custom_config):
    tokens = tf.strings.split(tf.strings.lower(inputs["body"]))
    ids = tft.compute_and_apply_vocabulary(tokens, vocab_filename="body_vocabulary",
                                           num_oov_buckets=1)
    padding = 0
    if custom_config["row_layout"] == "padded":  # Row 0 is padding: shift the ids by one.
        ids, padding = ids + 1, 0
    return {"body_ids": ids[:, :MAX_TOKENS].to_tensor(default_value=padding,
                                                      shape=[None, MAX_TOKENS]),
            "liked": tf.cast(inputs["rating"] >= 4, tf.int64)}
""" % MAX_TOKENS

TRAINER = """
import os

import tensorflow as tf
import tensorflow_transform as tft
import tf_keras
from tfx_bsl.public import tfxio

import tfx_embeddings


def run_fn(fn_args):
    tft_output = tft.TFTransformOutput(fn_args.transform_output)
    uri = fn_args.custom_config[tfx_embeddings.EMBEDDING_URI_KEY]
    embedding = tfx_embeddings.pretrained_embedding(
        uri, transform_output=tft_output, vocabulary_name="body_vocabulary", trainable=False,
        base_model=fn_args.base_model)
    body_ids = tf_keras.Input(shape=(%d,), dtype=tf.int64, name="body_ids")
    pooled = tf_keras.layers.GlobalAveragePooling1D()(embedding(body_ids))
    model = tf_keras.Model(body_ids, tf_keras.layers.Dense(1)(pooled))
    model.compile(optimizer="adam", loss=tf_keras.losses.BinaryCrossentropy(from_logits=True))
    dataset = fn_args.data_accessor.tf_dataset_factory(
        fn_args.train_files, tfxio.TensorFlowDatasetOptions(batch_size=16, label_key="liked"),
        tft_output.transformed_metadata.schema)
    model.fit(dataset, steps_per_epoch=5, epochs=1, verbose=0)

    model.tft_layer = tft_output.transform_features_layer()

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def predict_body(body):
        raw = {"body": body, "title": body, "rating": tf.zeros_like(body, tf.int64)}
        ids = model.tft_layer(raw)["body_ids"]
        return {"probability": tf.sigmoid(model(ids))[:, 0], "body_ids": ids}

    model.save(fn_args.serving_model_dir, save_format="tf",
               signatures={"predict_body": predict_body})
    tfx_embeddings.export_trained_embedding(
        embedding.partitions, uri, os.path.dirname(fn_args.serving_model_dir),
        embedding.warm_start)
""" % MAX_TOKENS

PIPELINE = """
import sys

from tfx import v1 as tfx

import tfx_embeddings

layout, root = sys.argv[1], sys.argv[2]
example_gen = tfx.components.CsvExampleGen(input_base="data")
schema_gen = tfx.components.ImportSchemaGen(schema_file="schema.pbtxt")
transform = tfx.components.Transform(
    examples=example_gen.outputs["examples"], schema=schema_gen.outputs["schema"],
    module_file="preprocessing.py", custom_config={"row_layout": layout})
embedding_gen = tfx_embeddings.EmbeddingGen(
    transform_graph=transform.outputs["transform_graph"], vectors_path="vectors.txt",
    vocabulary_name="body_vocabulary", vocabulary_has_counts=False, row_layout=layout,
    num_oov_buckets=1, num_shards=3)
latest_model = tfx.dsl.Resolver(
    strategy_class=tfx.dsl.experimental.LatestArtifactStrategy,
    model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model)).with_id("latest_model")
trainer = tfx_embeddings.EmbeddingTrainer(
    examples=transform.outputs["transformed_examples"],
    transform_graph=transform.outputs["transform_graph"],
    embedding=embedding_gen.outputs["embedding"], base_model=latest_model.outputs["model"],
    module_file="trainer.py")
pusher = tfx.components.Pusher(
    model=trainer.outputs["model"], push_destination=tfx.proto.PushDestination(
        filesystem=tfx.proto.PushDestination.Filesystem(base_directory="serving")))
tfx.orchestration.LocalDagRunner().run(tfx.dsl.Pipeline(
    pipeline_name="reviews", pipeline_root=root,
    metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
        root + "/metadata.sqlite"),
    components=[example_gen, schema_gen, transform, embedding_gen, latest_model, trainer,
                pusher],
    beam_pipeline_args=["--runner=FnApiRunner", "--direct_running_mode=in_memory"]))
"""

SERVE = """
import json, sys
import tensorflow as tf
model = tf.saved_model.load(sys.argv[1])
out = model.signatures["predict_body"](tf.constant(sys.argv[2:]))
print(json.dumps({k: v.numpy().tolist() for k, v in out.items()}))
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """The user's project: its files, data and vector file, outside the checkout."""
    path = tmp_path_factory.mktemp("user_project")
    sample_data.write_sample(str(path / "sample"), n_train=120, n_eval=40)
    rows = []
    for split in ("train", "eval"):
        with open(path / "sample" / "corpus" / split / f"{split}.csv") as f:
            next(f)
            rows += [line.rstrip("\n").rsplit(",", 1) for line in f]
    (path / "data").mkdir()
    with open(path / "data" / "reviews.csv", "w") as f:
        f.write("title,body,rating\n")
        for text, label in rows:
            body = text.strip('"').replace(",", " ").replace('"', " ")
            f.write(f"{' '.join(body.split()[:3])},{body},{5 if label == '1' else 1}\n")
    os.rename(path / "sample" / "vectors" / "glove.sample.50d.txt", path / "vectors.txt")
    for name, text in (("schema.pbtxt", SCHEMA), ("preprocessing.py", PREPROCESSING),
                       ("trainer.py", TRAINER), ("pipeline.py", PIPELINE)):
        (path / name).write_text(textwrap.dedent(text))
    return path


def test_the_wheel_installs_one_import_root(image):
    [wheel] = glob.glob(os.path.join(ROOT, "build", "dist", "*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert {name.split("/")[0] for name in names} == {
        "tfx_embeddings", "tfx_pretrained_embeddings-0.2.0.dist-info"}
    assert "tfx_embeddings/schemas/schema.pbtxt" in names  # What the components need ships.
    found = subprocess.run([image, "-c", "import tfx_embeddings; print(tfx_embeddings.__file__)"],
                           cwd="/", capture_output=True, text=True, check=True).stdout
    assert found.strip().startswith(os.path.join(ROOT, "build", "image", "lib"))


def _vectors(path):
    vectors = {}
    with open(path) as f:
        for line in f:
            token, *values = line.split()
            vectors[token] = np.array([float(v) for v in values]).astype(np.float32)
    return vectors


def _latest(store, type_name):
    return max(store.get_artifacts_by_type(type_name), key=lambda a: a.id)


@pytest.mark.parametrize("run, layout", [(1, "tft"), (2, "padded")])
def test_a_user_pipeline_restores_rows_that_line_up(image, project, run, layout):
    result = subprocess.run([image, "pipeline.py", layout, str(project / "root")], cwd=project,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-5000:]
    store = metadata_store.MetadataStore(metadata.sqlite_metadata_connection_config(
        str(project / "root" / "metadata.sqlite")))
    model = _latest(store, "Model")
    tft_output = tft.TFTransformOutput(_latest(store, "TransformGraph").uri)
    with open(tft_output.vocabulary_file_by_name("body_vocabulary"), "rb") as f:
        vocabulary = f.read().decode().splitlines()
    vectors = _vectors(project / "vectors.txt")
    known = [token for token in vocabulary if token in vectors]
    assert len(known) > 100 and len(known) < len(vocabulary)

    # The user's own ids, from the TransformGraph; the rows the pushed model looks them up at.
    [pushed] = sorted(glob.glob(str(project / "serving" / "*")))[-1:]
    served = json.loads(subprocess.run(
        [image, "-c", SERVE, pushed, *known], cwd="/", capture_output=True, text=True,
        check=True).stdout.splitlines()[-1])
    ids = np.array(served["body_ids"])[:, 0]
    first_row = {"tft": 0, "padded": 1}[layout]
    np.testing.assert_array_equal(ids, [vocabulary.index(t) + first_row for t in known])
    saved = tf.train.load_checkpoint(os.path.join(pushed, "variables", "variables"))
    parts = sorted((name for name in saved.get_variable_to_shape_map()
                    if "embeddings" in name and "OPTIMIZER" not in name),
                   key=lambda name: int(name.split("part_")[1].split("/")[0]))
    matrix = np.concatenate([saved.get_tensor(name) for name in parts])
    assert matrix.shape == (len(vocabulary) + first_row + 1, 50)
    np.testing.assert_array_equal(matrix[ids], np.stack([vectors[t] for t in known]))
    assert all(0.0 <= p <= 1.0 for p in served["probability"])

    export = os.path.join(model.uri, "Format-Embedding", "manifest.json")
    with open(export) as f:
        manifest = json.load(f)
    assert manifest["layout"]["name"] == layout
    if run == 2:  # Warm-started across the layout change: rows remapped by token, not shifted.
        assert manifest["warm_start"]["previous_model"] == len(vocabulary) + 1
        assert manifest["warm_start"]["initializer"] == 1  # The new padding row.
