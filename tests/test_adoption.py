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
import re
import subprocess
import textwrap
import zipfile

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
from ml_metadata.metadata_store import metadata_store
from tfx.orchestration import metadata

from tests.conftest import ROOT
from tfx_embeddings.pipeline.demo import sample_data

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
    assert "tfx_embeddings/schemas/schema.pbtxt" in names  # What the components need ships,
    for module in ("_word_counter", "_example_reader"):  # Compiled code included.
        assert any(name.startswith(f"tfx_embeddings/components/vocabulary_gen/{module}.cpython-310")
                   and name.endswith(".so") for name in names), module
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


@pytest.fixture(scope="module")
def user_runs(image, project):
    """The user's two scheduled runs, in order (the second warm-starts from the first, across a
    layout change): {run: (its CompletedProcess, the ML Metadata store then, its Model,
    its TransformGraph)}."""
    runs = {}
    for run, layout in ((1, "tft"), (2, "padded")):
        result = subprocess.run([image, "pipeline.py", layout, str(project / "root")],
                                cwd=project, capture_output=True, text=True,
                                env=_temporary_directory_in(project, os.environ))
        assert result.returncode == 0, result.stderr[-5000:]
        store = metadata_store.MetadataStore(metadata.sqlite_metadata_connection_config(
            str(project / "root" / "metadata.sqlite")))
        runs[run] = (result, _latest(store, "Model"), _latest(store, "TransformGraph"))
    return runs


@pytest.mark.parametrize("run, layout", [(1, "tft"), (2, "padded")])
def test_a_user_pipeline_restores_rows_that_line_up(image, project, user_runs, run, layout):
    result, model, graph = user_runs[run]
    tft_output = tft.TFTransformOutput(graph.uri)
    with open(tft_output.vocabulary_file_by_name("body_vocabulary"), "rb") as f:
        vocabulary = f.read().decode().splitlines()
    vectors = _vectors(project / "vectors.txt")
    known = [token for token in vocabulary if token in vectors]
    assert len(known) > 100 and len(known) < len(vocabulary)

    # The user's own ids, from the TransformGraph; the rows the pushed model looks them up at.
    [pushed] = sorted(glob.glob(str(project / "serving" / "*")))[run - 1:run]
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
    assert len(served["probability"]) == len(known)
    assert all(0.0 <= p <= 1.0 for p in served["probability"])

    mask = {"tft": "mask_zero off: id 0 is the row of token 0, not padding",
            "padded": "mask_zero on: id 0 is the padding row (zeros), the TransformGraph's "
                      "padding"}[layout]
    for statement in ("EmbeddingGen: vocabulary 'body_vocabulary' (",
                      f"pretrained_embedding: layer 'embedding': {mask}"):
        assert result.stderr.count(statement) == 1, (statement, result.stderr[-5000:])

    export = os.path.join(model.uri, "Format-Embedding", "manifest.json")
    with open(export) as f:
        manifest = json.load(f)
    assert manifest["layout"]["name"] == layout
    if run == 2:  # Warm-started across the layout change: rows remapped by token, not shifted.
        assert manifest["warm_start"]["previous_model"] == len(vocabulary) + 1
        assert manifest["warm_start"]["initializer"] == 1  # The new padding row.


# A second user's project, written as TFX's own IMDB example (imdb_utils_native_keras.py) is:
# `from tensorflow import keras` (Keras 3 in TFX's trainer), MirroredStrategy, a BiLSTM, its
# preprocessing_fn as it is (no vocab_filename; unknown tokens by `default_value=_VOCAB_SIZE`
# with top_k=_VOCAB_SIZE, more than the sample's tokens; padding -1, then ids plus one), saved
# with tf.saved_model.save and a serving signature that parses tf.Examples, and an Evaluator.
# Only the README's steps are applied: EmbeddingGen and EmbeddingTrainer in the pipeline,
# pretrained_embedding (for its keras.layers.Embedding) and LazyAdam in the module.

KERAS3_PREPROCESSING = """
import tensorflow as tf
import tensorflow_transform as tft

_VOCAB_SIZE = 8000
_MAX_LEN = 16


def _tokenize_review(review):
    review_sparse = tf.strings.split(tf.reshape(review, [-1])).to_sparse()
    # As the example: oov value _VOCAB_SIZE, padding -1, then 1 added to every id.
    review_indices = tft.compute_and_apply_vocabulary(
        review_sparse, default_value=_VOCAB_SIZE, top_k=_VOCAB_SIZE)
    dense = tf.sparse.to_dense(review_indices, default_value=-1)
    padding_config = [[0, 0], [0, _MAX_LEN]]
    dense = tf.pad(dense, padding_config, "CONSTANT", -1)
    padded = tf.slice(dense, [0, 0], [-1, _MAX_LEN])
    padded += 1
    return padded


def preprocessing_fn(inputs):
    text = tf.strings.regex_replace(tf.strings.lower(inputs["text"]), r"<br />|[^a-z ]", " ")
    return {"label_xf": inputs["label"], "text_xf": _tokenize_review(text)}
"""

KERAS3_TRAINER = """
import os

import tensorflow as tf
from tensorflow import keras
import tensorflow_transform as tft
from tfx_bsl.public import tfxio

import tfx_embeddings

MAX_LEN = 16
_VOCAB_SIZE = 8000
_EMBEDDING_UNITS = 64


def _dataset(fn_args, files, tft_output):
    return fn_args.data_accessor.tf_dataset_factory(
        files, tfxio.TensorFlowDatasetOptions(batch_size=8, label_key="label_xf"),
        tft_output.transformed_metadata.schema).repeat()


def run_fn(fn_args):
    tft_output = tft.TFTransformOutput(fn_args.transform_output)
    uri = fn_args.custom_config[tfx_embeddings.EMBEDDING_URI_KEY]
    strategy = tf.distribute.MirroredStrategy()
    with strategy.scope():
        embedding = tfx_embeddings.pretrained_embedding(   # was keras.layers.Embedding(
            uri, transform_output=tft_output, trainable=False,  # _VOCAB_SIZE + 2,
            input_dim=_VOCAB_SIZE + 2, output_dim=_EMBEDDING_UNITS,  # _EMBEDDING_UNITS)
            base_model=fn_args.base_model)
        ids = keras.layers.Input(shape=(MAX_LEN,), dtype="int64", name="text_xf")
        lstm = keras.layers.Bidirectional(keras.layers.LSTM(8))(embedding(ids))
        model = keras.Model({"text_xf": ids}, keras.layers.Dense(1)(
            keras.layers.Dense(8, activation="relu")(lstm)))
        model.compile(optimizer=tfx_embeddings.LazyAdam(1e-2),
                      loss=keras.losses.BinaryCrossentropy(from_logits=True),
                      metrics=["accuracy"])
    model.fit(_dataset(fn_args, fn_args.train_files, tft_output), steps_per_epoch=10, epochs=2,
              validation_data=_dataset(fn_args, fn_args.eval_files, tft_output),
              validation_steps=2, verbose=0)

    model.tft_layer = tft_output.transform_features_layer()

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve_tf_examples_fn(serialized):
        spec = tft_output.raw_feature_spec()
        spec.pop("label")
        transformed = model.tft_layer(tf.io.parse_example(serialized, spec))
        return {"outputs": tf.sigmoid(model({"text_xf": transformed["text_xf"]}))}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def ids_of(text):
        raw = {"text": text, "label": tf.zeros_like(text, tf.int64)}
        return {"text_xf": model.tft_layer(raw)["text_xf"]}

    tf.saved_model.save(model, fn_args.serving_model_dir,
                        signatures={"serving_default": serve_tf_examples_fn, "ids_of": ids_of})
    tfx_embeddings.export_trained_embedding(
        embedding.partitions, uri, os.path.dirname(fn_args.serving_model_dir),
        embedding.warm_start)
    tf.io.gfile.makedirs(fn_args.model_run_dir)  # Any filesystem: a bucket on Kubeflow.
    with tf.io.gfile.GFile(os.path.join(fn_args.model_run_dir, "keras.txt"), "w") as f:
        f.write(type(embedding).__name__ + " " + type(model.optimizer).__name__)
"""

KERAS3_PIPELINE = """
import os
import sys

import tensorflow_model_analysis as tfma
from tfx import v1 as tfx

import tfx_embeddings

HERE = os.path.dirname(os.path.abspath(__file__))


def create_pipeline(root, layout="auto", metadata_path=None):
    example_gen = tfx.components.CsvExampleGen(
        input_base=os.path.join(HERE, "data"), input_config=tfx.proto.Input(splits=[
            tfx.proto.Input.Split(name="train", pattern="train/*"),
            tfx.proto.Input.Split(name="eval", pattern="eval/*")]))
    schema_gen = tfx.components.ImportSchemaGen(schema_file=os.path.join(HERE, "schema.pbtxt"))
    transform = tfx.components.Transform(examples=example_gen.outputs["examples"],
                                         schema=schema_gen.outputs["schema"],
                                         module_file=os.path.join(HERE, "preprocessing.py"))
    embedding_gen = tfx_embeddings.EmbeddingGen(
        transform_graph=transform.outputs["transform_graph"],
        vectors_path=os.path.join(HERE, "vectors.txt"), vocabulary_has_counts=False,
        **({} if layout == "auto" else {"row_layout": layout}))
    # As TFX's IMDB example: the latest blessed model, the Evaluator's baseline; here also the
    # trainer's warm start.
    model_resolver = tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
    ).with_id("latest_blessed_model_resolver")
    trainer = tfx_embeddings.EmbeddingTrainer(
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        embedding=embedding_gen.outputs["embedding"], base_model=model_resolver.outputs["model"],
        module_file=os.path.join(HERE, "trainer.py"),
        train_args=tfx.proto.TrainArgs(num_steps=20), eval_args=tfx.proto.EvalArgs(num_steps=2))
    evaluator = tfx.components.Evaluator(
        examples=example_gen.outputs["examples"], model=trainer.outputs["model"],
        baseline_model=model_resolver.outputs["model"],
        eval_config=tfma.EvalConfig(
            model_specs=[tfma.ModelSpec(label_key="label")], slicing_specs=[tfma.SlicingSpec()],
            metrics_specs=[tfma.MetricsSpec(metrics=[tfma.MetricConfig(
                class_name="BinaryAccuracy", threshold=tfma.MetricThreshold(
                    value_threshold=tfma.GenericValueThreshold(lower_bound={"value": 0.0}),
                    change_threshold=tfma.GenericChangeThreshold(
                        direction=tfma.MetricDirection.HIGHER_IS_BETTER,
                        absolute={"value": -1.0})))])]))
    pusher = tfx.components.Pusher(
        model=trainer.outputs["model"], model_blessing=evaluator.outputs["blessing"],
        push_destination=tfx.proto.PushDestination(filesystem=tfx.proto.PushDestination
                                                   .Filesystem(base_directory=os.path.join(
                                                       HERE, "serving"))))
    return tfx.dsl.Pipeline(
        pipeline_name="imdb-keras3", pipeline_root=root, enable_cache=True,
        metadata_connection_config=metadata_path and
        tfx.orchestration.metadata.sqlite_metadata_connection_config(metadata_path),
        components=[example_gen, schema_gen, transform, embedding_gen, model_resolver, trainer,
                    evaluator, pusher],
        beam_pipeline_args=["--runner=FnApiRunner", "--direct_running_mode=in_memory"])


def kubeflow_pipeline():
    \"\"\"For `tfx-embeddings compile --pipeline pipeline:kubeflow_pipeline`: Kubeflow keeps
    the metadata; TFX puts the module files' wheels under this root when compiling.\"\"\"
    return create_pipeline(os.path.join(HERE, "code-root"))


if __name__ == "__main__":
    layout, root = sys.argv[1], sys.argv[2]
    tfx.orchestration.LocalDagRunner().run(
        create_pipeline(root, layout, metadata_path=root + "/metadata.sqlite"))
"""

KERAS3_SERVE = """
import json, sys
import tensorflow as tf
model = tf.saved_model.load(sys.argv[1])
print(json.dumps(model.signatures["ids_of"](tf.constant(sys.argv[2:]))["text_xf"].numpy()
                 .tolist()))
"""


def _keras3_project(path):
    sample_data.write_sample(str(path / "sample"), n_train=120, n_eval=40)
    os.rename(path / "sample" / "corpus", path / "data")
    os.rename(path / "sample" / "vectors" / "glove.sample.50d.txt", path / "vectors.txt")
    with open(os.path.join(ROOT, "schemas", "schema.pbtxt")) as f:
        (path / "schema.pbtxt").write_text(f.read())
    for name, text in (("preprocessing.py", KERAS3_PREPROCESSING),
                       ("trainer.py", KERAS3_TRAINER), ("pipeline.py", KERAS3_PIPELINE)):
        (path / name).write_text(textwrap.dedent(text))
    return path


@pytest.fixture(scope="module")
def keras3_project(tmp_path_factory):
    return _keras3_project(tmp_path_factory.mktemp("keras3_project"))


def _temporary_directory_in(project, environment):
    """environment with the project's own temporary directory: a user's LocalDagRunner run
    (not run_local) leaves there the package TFX builds of itself per Beam step (about 49 MB),
    which pytest's temporary directories then bound, not /tmp."""
    os.makedirs(project / "tmp", exist_ok=True)
    return {**environment, "TMPDIR": str(project / "tmp")}


def _user_environment():
    """The user's shell: TF_USE_LEGACY_KERAS unset, so TFX's trainer gives modules Keras 3."""
    return {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}


# -- the Keras 3 project on open-source Kubeflow Pipelines -------------------------------------
#
# Compiled with the public API, then one history of runs under run-spec (the open-source
# backend's rules and records), shared by the tests below: two scheduled runs of the spec with
# new rows between; a run under a new pipeline root, a stock install's minio:// (on an S3
# emulator); two runs of the same spec nested in another pipeline (the kfp SDK's compile).

COMPILE = """
import tfx_embeddings
import pipeline

tfx_embeddings.compile_for_kubeflow(
    pipeline.kubeflow_pipeline(), "registry/imdb-keras3:1", "pipeline.yaml",
    resources={"EmbeddingTrainer": {"cpu_request": "1", "memory_limit": "6Gi"}})
"""

NEST = """
import sys
from kfp import compiler, components, dsl

imdb = components.load_component_from_file(sys.argv[1])


@dsl.pipeline(name="reviews-nightly")
def nightly():
    imdb()


compiler.Compiler().compile(nightly, sys.argv[2])
print(imdb.name, sorted(imdb.component_spec.platform_spec.platforms))
"""

TRAINER_RESOURCES = "EmbeddingTrainer: COMPLETE"
NEW_ROOT = "minio://mlpipeline/v2/artifacts"  # A stock install's default pipeline root.


class KubeflowHistory:
    """The runs: {name: run ID}, each run's run-spec output, the ML Metadata records, what the
    new root's bucket held."""

    def __init__(self, project):
        self.project, self.runs, self.outputs, self.bucket = project, {}, {}, {}
        self.metadata_path = str(project / "metadata.sqlite")

    def run(self, image, name, spec, root, *extra):
        result = subprocess.run(
            [image, "-m", "tfx_embeddings.pipeline", "run-spec", spec, "--python", image,
             "--pipeline-root", root, "--metadata", self.metadata_path, *extra],
            cwd=self.project, capture_output=True, text=True)
        assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
        self.runs[name] = re.search(r"^run (\S+) of ", result.stdout, re.M).group(1)
        self.outputs[name] = result.stdout

    def tasks(self, name):
        from tfx_embeddings.pipeline.demo.kubeflow import run_tasks
        from tfx_embeddings.pipeline.kubeflow.metadata import sqlite_store

        return run_tasks(sqlite_store(self.metadata_path), self.runs[name])


@pytest.fixture(scope="module")
def kubeflow_history(image, tmp_path_factory):
    from emulators.s3 import S3Emulator

    subprocess.run(["make", "-s", "kfp-sdk"], cwd=ROOT, check=True, capture_output=True)
    kfp_sdk = os.path.join(ROOT, "build", "kfp-sdk", "bin", "python")
    project = _keras3_project(tmp_path_factory.mktemp("keras3_kubeflow"))
    compiled = subprocess.run([image, "-c", COMPILE], cwd=project, capture_output=True,
                              text=True, env=_user_environment())
    assert compiled.returncode == 0, compiled.stderr[-5000:]
    nested = subprocess.run([kfp_sdk, "-c", NEST, "pipeline.yaml", "nested.yaml"], cwd=project,
                            capture_output=True, text=True)
    assert nested.returncode == 0, nested.stderr[-5000:]
    history = KubeflowHistory(project)
    history.nest_output = nested.stdout
    history.run(image, "first", "pipeline.yaml", str(project / "root"))
    rows = project / "new_rows"
    os.makedirs(rows / "corpus" / "train")
    os.rename(sample_data.add_train_rows(str(rows), 40), project / "data" / "train" / "more.csv")
    history.run(image, "second", "pipeline.yaml", str(project / "root"))
    with S3Emulator(buckets=["mlpipeline"]) as s3:
        history.run(image, "new_root", "pipeline.yaml", NEW_ROOT, "--minio-endpoint",
                    s3.endpoint.split("://", 1)[1])
        history.bucket = s3.tree("mlpipeline", "v2/artifacts/imdb-keras3")
    history.run(image, "nested_first", "nested.yaml", str(project / "root"))
    history.run(image, "nested_second", "nested.yaml", str(project / "root"))
    return history


def _property(item, key):
    value = item.custom_properties[key]
    return getattr(value, value.WhichOneof("value"))


def _embedding_export(model_uri):
    with open(os.path.join(model_uri, "Format-Embedding", "manifest.json")) as f:
        return json.load(f)


def test_the_kfp_sdk_loads_the_users_spec_and_nests_it(kubeflow_history):
    assert kubeflow_history.nest_output.split() == ["imdb-keras3", "['kubernetes']"]
    tasks = kubeflow_history.tasks("nested_first")
    # The driver's records: the pipeline context is the outermost pipeline's; the nested
    # pipeline is a DAG execution, the parent of its tasks.
    assert _property(tasks["latest_blessed_model_resolver"][0], "parent_dag_id") == \
        tasks["imdb-keras3"][0].id


def test_scheduled_runs_read_new_rows_warm_start_and_compare(kubeflow_history):
    one, two = kubeflow_history.tasks("first"), kubeflow_history.tasks("second")
    # Run 1: nothing blessed yet; the trainer starts from the pretrained vectors.
    assert _property(one["latest_blessed_model_resolver"][1]["model"], "found") == 0.0
    assert _embedding_export(one["EmbeddingTrainer"][1]["model"].uri)["warm_start"][
        "previous_model"] == 0
    # Run 2, after new rows: ExampleGen reads them (its input fingerprint changed), the trainer
    # warm-starts from run 1's blessed model and the Evaluator compares with it.
    assert _state(two["CsvExampleGen"][0]) == "COMPLETE"
    assert _state(two["ImportSchemaGen"][0]) == "CACHED"
    assert [_count(tasks["CsvExampleGen"][1]["examples"].uri) for tasks in (one, two)] == \
        [120, 160]
    previous = one["EmbeddingTrainer"][1]["model"]
    base = two["latest_blessed_model_resolver"][1]["model"]
    assert _property(base, "found") == 1.0 and _property(base, "model_uri") == previous.uri
    assert base.uri.startswith(str(kubeflow_history.project / "root" / "imdb-keras3" /
                                   kubeflow_history.runs["second"]))  # This run's own URI.
    assert _embedding_export(two["EmbeddingTrainer"][1]["model"].uri)["warm_start"][
        "previous_model"] > 30
    assert _property(two["Evaluator"][1]["blessing"], "baseline_model") == previous.uri
    # The trainer's pod got the resources compile_for_kubeflow was given.
    [line] = [line for line in kubeflow_history.outputs["second"].splitlines()
              if line.startswith(TRAINER_RESOURCES)]
    assert line.endswith("; requests cpu 1; limits memory 6.442450944G)")


def test_a_run_under_a_new_pipeline_root_starts_from_the_pretrained_vectors(kubeflow_history):
    new = kubeflow_history.tasks("new_root")
    latest = new["latest_blessed_model_resolver"]
    assert _property(latest[1]["model"], "found") == 0.0
    with open(os.path.join(kubeflow_history.project, "logs", kubeflow_history.runs["new_root"],
                           "latest_blessed_model_resolver.log")) as f:
        log = f.read()
    second_model = kubeflow_history.tasks("second")["EmbeddingTrainer"][1]["model"]
    assert (f"skipped model {second_model.id} (blessed by blessing "
            f"{kubeflow_history.tasks('second')['Evaluator'][1]['blessing'].id}): "
            f"{second_model.uri} is not under this run's pipeline root {NEW_ROOT}/" in log)
    # The trainer wrote to the stock install's MinIO (as s3://), and its artifacts are
    # recorded as minio://, under the run's bucket prefix.
    model = new["EmbeddingTrainer"][1]["model"]
    prefix = f"{NEW_ROOT}/imdb-keras3/{kubeflow_history.runs['new_root']}/EmbeddingTrainer/"
    assert model.uri.startswith(prefix)
    export = json.loads(kubeflow_history.bucket[
        model.uri[len(f"{NEW_ROOT}/imdb-keras3/"):] + "/Format-Embedding/manifest.json"])
    assert export["warm_start"]["previous_model"] == 0
    assert export["warm_start"]["pretrained"] > 30


def test_nested_in_another_pipeline_it_finds_its_own_model(kubeflow_history):
    first, second = (kubeflow_history.tasks(name) for name in ("nested_first", "nested_second"))
    # The first run of the pipeline that nests it: its own pipeline, nothing blessed yet (the
    # unnested runs' models are another pipeline's).
    assert _property(first["latest_blessed_model_resolver"][1]["model"], "found") == 0.0
    base = second["latest_blessed_model_resolver"][1]["model"]
    assert _property(base, "model_uri") == first["EmbeddingTrainer"][1]["model"].uri
    assert _embedding_export(second["EmbeddingTrainer"][1]["model"].uri)["warm_start"][
        "previous_model"] > 30
    for task in ("CsvExampleGen", "Transform", "EmbeddingGen"):  # Nothing new: cached.
        assert _state(second[task][0]) == "CACHED", task


def _state(execution):
    from ml_metadata.proto import metadata_store_pb2

    return metadata_store_pb2.Execution.State.Name(execution.last_known_state)


def _count(examples_uri):
    files = glob.glob(os.path.join(examples_uri, "Split-train", "*"))
    return sum(1 for _ in tf.data.TFRecordDataset(files, compression_type="GZIP"))


def test_a_keras3_module_trains_evaluates_and_pushes_the_vector_rows(image, kubeflow_history):
    tasks = kubeflow_history.tasks("second")
    with open(os.path.join(tasks["EmbeddingTrainer"][1]["model_run"].uri, "keras.txt")) as f:
        assert f.read() == "Keras3PartitionedEmbedding Keras3LazyAdam"  # Keras 3 all along.
    assert _property(tasks["Evaluator"][1]["blessing"], "blessed") == 1.0
    with open(os.path.join(tasks["EmbeddingGen"][1]["embedding"].uri, "manifest.json")) as f:
        manifest = json.load(f)
    tft_output = tft.TFTransformOutput(tasks["Transform"][1]["transform_graph"].uri)
    name = "vocab_compute_and_apply_vocabulary_vocabulary"  # tft's, found by EmbeddingGen.
    with open(tft_output.vocabulary_file_by_name(name), "rb") as f:
        vocabulary = f.read().decode().splitlines()
    # The table the example's own Embedding(_VOCAB_SIZE + 2) had: padding 0, the tokens, the
    # OOV bucket row, then extra rows up to unknown tokens' id, _VOCAB_SIZE + 1.
    assert 30 < len(vocabulary) < 8000
    assert manifest["layout"] == {
        "name": "padded", "vocabulary_size": len(vocabulary), "num_oov_buckets": 1,
        "padding_row": 0, "first_token_row": 1, "oov_rows": [len(vocabulary) + 1,
                                                            len(vocabulary) + 2],
        "num_extra_rows": 8000 - len(vocabulary), "extra_rows": [len(vocabulary) + 2, 8002]}
    assert manifest["token_ids"] == {"feature": "text_xf", "offset": 1, "oov_ids": [8001],
                                     "padding_id": 0}
    # Each change to the model stated once, in the step's log (its executor-logs).
    logs = {}
    for task in ("EmbeddingGen", "EmbeddingTrainer"):
        with open(tasks[task][1]["executor-logs"].uri, errors="replace") as f:
            logs[task] = f.read()
    for task, statement in (
            ("EmbeddingGen", f"EmbeddingGen: vocabulary {name!r} ({len(vocabulary)} tokens): the "
                             f"TransformGraph's feature 'text_xf' gives token i id i + 1 (padded "
                             f"layout); unknown tokens: id 8001 (extra row 8001, past the "
                             f"vocabulary, from the initializer); padding: id 0"),
            ("EmbeddingGen", f"EmbeddingGen: {8000 - len(vocabulary)} extra rows "
                             f"({len(vocabulary) + 2}-8001)"),
            ("EmbeddingTrainer", "pretrained_embedding: layer 'embedding': 8002 rows"),
            ("EmbeddingTrainer", "pretrained_embedding: layer 'embedding': mask_zero on: id 0 is "
                                 "the padding row (zeros), the TransformGraph's padding; the "
                                 "layers after it skip those positions (mask_zero=False turns "
                                 "it off)"),
            ("EmbeddingTrainer", "pretrained_embedding: layer 'embedding': width 50, the vector "
                                 "file's dimension, where the model's own Embedding had 64: the "
                                 "layers after it take 50 values per token; 8002 rows, as the "
                                 "model's own Embedding")):
        assert logs[task].count(statement) == 1, (statement, logs[task][-5000:])
    vectors = _vectors(kubeflow_history.project / "vectors.txt")
    known = [token for token in vocabulary if token in vectors]
    assert len(known) > 30
    [pushed] = sorted(glob.glob(str(kubeflow_history.project / "serving" / "*")))[-1:]
    served = json.loads(subprocess.run(
        [image, "-c", KERAS3_SERVE, pushed, *known, "qzxwv"], cwd="/", capture_output=True,
        text=True, check=True, env=_user_environment()).stdout.splitlines()[-1])
    ids = np.array(served)[:, 0]
    np.testing.assert_array_equal(ids[:-1], [vocabulary.index(t) + 1 for t in known])
    assert ids[-1] == 8001  # An unknown token: default_value _VOCAB_SIZE, plus one.
    saved = tf.train.load_checkpoint(os.path.join(pushed, "variables", "variables"))
    parts = sorted((name for name in saved.get_variable_to_shape_map()
                    if re.search(r"/partitions/\d+/", name) and not name.startswith("optimizer")),
                   key=lambda name: int(re.search(r"/partitions/(\d+)/", name).group(1)))
    matrix = np.concatenate([saved.get_tensor(name) for name in parts])
    assert matrix.shape == (8002, 50)
    np.testing.assert_array_equal(matrix[ids[:-1]], np.stack([vectors[t] for t in known]))
    np.testing.assert_array_equal(matrix[0], np.zeros(50))  # Padding.
    assert 0 < np.abs(matrix[8001]).max() <= 0.05  # Unknown tokens: an initializer row.


def test_the_wrong_layout_fails_before_training(image, keras3_project):
    result = subprocess.run([image, "pipeline.py", "tft", str(keras3_project / "wrong")],
                            cwd=keras3_project, capture_output=True, text=True,
                            env=_temporary_directory_in(keras3_project, _user_environment()))
    assert result.returncode != 0
    assert ("row_layout is 'tft' but the TransformGraph's "
            "'vocab_compute_and_apply_vocabulary_vocabulary' ids (feature 'text_xf') are "
            "token index + 1: the 'padded' layout" in result.stderr)
    store = metadata_store.MetadataStore(metadata.sqlite_metadata_connection_config(
        str(keras3_project / "wrong" / "metadata.sqlite")))
    assert not store.get_artifacts_by_type("Model")  # The trainer never ran.
