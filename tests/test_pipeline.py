"""The whole pipeline through LocalDagRunner on a tiny slice of the sample, as a user runs it."""

import glob
import json
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
from ml_metadata.metadata_store import metadata_store
from tfx.orchestration import metadata

from tfx_embeddings.components import embedding_artifact, vocabulary_file
from tfx_embeddings.components.types import PretrainedEmbedding, Vocabulary
from tfx_embeddings.pipeline.demo import preprocessing, sample_data


def _config(tmp_path, vectors, name="config.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(f"""
        pipeline_name: test-pipeline
        pipeline_root: {tmp_path}/root
        serving_dir: {tmp_path}/serving
        data:
          examples: {tmp_path}/sample/corpus
          vectors: {vectors}
        text:
          max_tokens: 16
          vocabulary_splits: [train, eval]
        embedding:
          num_shards: 3
        trainer:
          epochs: 2
          batch_size: 16
        beam_pipeline_args: [--runner=FnApiRunner, --direct_running_mode=in_memory]
    """))
    return str(path)


def _run(config):
    return subprocess.run([sys.executable, "-m", "tfx_embeddings.pipeline", "run", "--config", config],
                          capture_output=True, text=True)


@pytest.fixture(scope="module")
def pipeline_run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("pipeline")
    sample_data.write_sample(str(tmp_path / "sample"), n_train=160, n_eval=80)
    vectors = tmp_path / "sample" / "vectors" / "glove.sample.50d.txt"
    result = _run(_config(tmp_path, vectors))
    assert result.returncode == 0, result.stderr[-5000:]
    return tmp_path, result


def _store(tmp_path):
    return metadata_store.MetadataStore(
        metadata.sqlite_metadata_connection_config(str(tmp_path / "root" / "metadata.sqlite")))


def test_run_reports_what_it_built(pipeline_run):
    tmp_path, result = pipeline_run
    for text in ("vocabulary size:", "vocabulary coverage:", "corpus token coverage:",
                 "checkpoint shards:      3", "eval accuracy, pretrained embedding:",
                 "model:                  blessed by the Evaluator",
                 f"pushed to:              {tmp_path}/serving/"):
        assert text in result.stdout


def test_a_run_prints_what_a_person_reads_and_logs_the_rest(pipeline_run):
    """The terminal: a line per component start and end, the summary, the log's path; no
    traceback, no warning about anything but the run, no download attempt. The full log has
    all of TFX, Beam and TensorFlow."""
    tmp_path, result = pipeline_run
    terminal = result.stdout + result.stderr
    assert len(terminal.splitlines()) <= 60, terminal
    for unwanted in ("Traceback", "FutureWarning", "Warning:", "prism", "Prism", "download"):
        assert unwanted not in terminal, unwanted
    log_path = terminal.split("the full log: ", 1)[1].split()[0]
    assert log_path.startswith(str(tmp_path / "root" / "logs"))
    lines = terminal.splitlines()
    for component in ("CsvExampleGen", "VocabularyGen", "Transform", "EmbeddingGen",
                      "EmbeddingTrainer", "Pusher"):
        assert any(line.endswith(f"{component} started") for line in lines), component
        assert any(f"{component} complete (" in line for line in lines), component
        assert any(line.startswith(component) and "complete" in line for line in lines)
    assert any("LatestBlessedModelResolver: no previous model to start from (a first run, or "
               "none blessed yet)" in line for line in lines)
    assert any(re.search(r"EmbeddingGen: \d shards published; \d+ of the vocabulary's \d+ "
                         r"tokens have a vector \(\d+\.\d%\), \d+\.\d% of the corpus's tokens",
                         line) for line in lines)
    with open(log_path) as f:
        full = f.read()
    for text in ("Component EmbeddingGen is running.", "FutureWarning",
                 "EmbeddingGen Beam counters"):
        assert text in full, text


def test_trainer_gets_the_embedding_through_lineage(pipeline_run):
    tmp_path, _ = pipeline_run
    store = _store(tmp_path)
    [embedding] = store.get_artifacts_by_type(PretrainedEmbedding.TYPE_NAME)
    trainer_context = store.get_context_by_type_and_name("node", "test-pipeline.EmbeddingTrainer")
    [execution] = store.get_executions_by_context(trainer_context.id)
    inputs = [e.artifact_id for e in store.get_events_by_execution_ids([execution.id])
              if e.type == e.INPUT]
    assert embedding.id in inputs
    manifest = embedding_artifact.EmbeddingArtifact(embedding.uri).manifest
    assert len(manifest.shards) == 3
    assert embedding.custom_properties["num_shards"].int_value == 3


def test_trained_model_started_from_the_checkpoint_rows(pipeline_run):
    """A token seen by no training example keeps its pretrained row in the exported model."""
    tmp_path, _ = pipeline_run
    store = _store(tmp_path)
    [embedding] = store.get_artifacts_by_type(PretrainedEmbedding.TYPE_NAME)
    [model] = store.get_artifacts_by_type("Model")
    pretrained = tf.train.load_variable(
        os.path.join(embedding.uri, embedding_artifact.CHECKPOINT_PREFIX), embedding_artifact.TENSOR_NAME)
    loaded = tf.saved_model.load(os.path.join(model.uri, "Format-Serving"))
    parts = sorted((v for v in loaded.variables if "embeddings/part_" in v.name),
                   key=lambda v: int(v.name.split("part_")[1].split(":")[0]))
    assert len(parts) == 3  # One variable per checkpoint shard.
    trained = np.concatenate([v.numpy() for v in parts])
    assert not np.array_equal(trained, pretrained)  # Trainable: rows moved...
    np.testing.assert_array_equal(trained[-1], pretrained[-1])  # ...but not the OOV row,
    assert (np.abs(trained - pretrained).max(axis=1) == 0).sum() > 0.2 * len(trained)  # nor eval-only tokens.


def test_transform_graph_maps_with_the_vocabulary_gen_file(pipeline_run):
    """The fast vocabulary is the TransformGraph's asset and EmbeddingGen's rows, byte for byte."""
    tmp_path, _ = pipeline_run
    store = _store(tmp_path)
    [produced] = store.get_artifacts_by_type(Vocabulary.TYPE_NAME)
    [graph] = store.get_artifacts_by_type("TransformGraph")
    [embedding] = store.get_artifacts_by_type(PretrainedEmbedding.TYPE_NAME)
    paths = [os.path.join(produced.uri, vocabulary_file.VOCABULARY_FILE),
             tft.TFTransformOutput(graph.uri).vocabulary_file_by_name(
                 preprocessing.VOCABULARY_NAME),
             os.path.join(embedding.uri, embedding_artifact.VOCABULARY_FILE)]
    contents = [open(path, "rb").read() for path in paths]
    assert contents[0] == contents[1] == contents[2]
    assert produced.custom_properties["vocabulary_size"].int_value == contents[0].count(b"\n")
    assert contents[0].count(b"\n") > 100


SERVING_PROBE = textwrap.dedent("""
    import json, sys
    import tensorflow as tf
    model = tf.saved_model.load(sys.argv[1])
    texts = ["The movie was brikalo and brimine!", "the plot felt dulkaka. <br />Dulmine",
             "zorblax"]
    probabilities = model.signatures["predict_text"](tf.constant(texts))["probabilities"]
    example = tf.train.Example(features=tf.train.Features(feature={"text": tf.train.Feature(
        bytes_list=tf.train.BytesList(value=[texts[0].encode()]))}))
    outputs = model.signatures["serving_default"](
        tf.constant([example.SerializeToString()]))["outputs"]
    print(json.dumps({"predict_text": probabilities.numpy().tolist(),
                      "serving_default": outputs.numpy().tolist()}))
""")


def test_pushed_model_scores_raw_strings_in_a_fresh_process(pipeline_run):
    """...with the embedding checkpoint out of reach: serving never needs it."""
    tmp_path, _ = pipeline_run
    [pushed] = glob.glob(str(tmp_path / "serving" / "*"))
    embedding_gen = tmp_path / "root" / "EmbeddingGen"
    embedding_gen.rename(tmp_path / "hidden")
    try:
        result = subprocess.run([sys.executable, "-c", SERVING_PROBE, pushed],
                                capture_output=True, text=True, check=True)
    finally:
        (tmp_path / "hidden").rename(embedding_gen)
    scores = json.loads(result.stdout.strip().splitlines()[-1])
    probabilities = scores["predict_text"]
    assert len(probabilities) == 3 and all(0 <= p <= 1 for p in probabilities)
    assert probabilities[0] > 0.5 > probabilities[1]  # Positive and negative common adjectives.
    assert scores["serving_default"] == pytest.approx([probabilities[0]], abs=1e-6)


def test_bad_vector_file_fails_the_run_and_publishes_nothing(pipeline_run):
    tmp_path, _ = pipeline_run
    bad = tmp_path / "bad_vectors.txt"
    bad.write_text("brikaka 0.1 0.2 0.3\nbrisaka 0.1 0.2\n")
    result = _run(_config(tmp_path, bad, "bad.yaml"))
    assert result.returncode != 0
    assert f"{bad} line 2 (byte offset 20): expected 3 values after the token, found 2" \
        in result.stderr
    store = _store(tmp_path)
    embeddings = store.get_artifacts_by_type(PretrainedEmbedding.TYPE_NAME)
    published = [a for a in embeddings if a.state == a.LIVE]
    assert len(published) == 1  # Only the first run's.
    for artifact in embeddings:
        if artifact.state != artifact.LIVE and os.path.exists(artifact.uri):
            assert os.listdir(artifact.uri) == []


def test_bad_config_key_is_named(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("pipeline_name: p\npipeline_root: r\nserving_dir: s\n"
                      "data: {examples: e, vectors: v}\ntrainer: {epoch: 3}\n")
    result = _run(str(config))
    assert result.returncode != 0
    assert f"error: {config}: trainer.epoch: unknown key" in result.stderr


def test_the_same_run_with_root_data_and_serving_in_a_bucket(pipeline_run):
    """Object storage: the command line on this module's config with the pipeline root, the
    serving directory, the examples and the vector file in an S3 bucket (moto's server,
    emulators/s3.py; the metadata store local): blessed and pushed there, with the same
    vocabulary, embedding artifact and pushed model, byte for byte, as the run on local disk
    (but for the local paths its manifest and projector config name)."""
    from emulators.s3 import S3Emulator, differing, local_tree

    tmp_path, local = pipeline_run
    bucket = "pipeline"
    with S3Emulator(buckets=[bucket]) as s3:
        s3.upload_tree(tmp_path / "sample", bucket, "sample")
        config = _config(tmp_path, f"s3://{bucket}/sample/vectors/glove.sample.50d.txt",
                         "s3.yaml")
        text = open(config).read()
        for local_path, remote in ((f"{tmp_path}/root", f"s3://{bucket}/root"),
                                   (f"{tmp_path}/serving", f"s3://{bucket}/serving"),
                                   (f"{tmp_path}/sample", f"s3://{bucket}/sample")):
            text = text.replace(local_path, remote)
        with open(config, "w") as f:
            f.write(text + f"metadata_path: {tmp_path}/s3/metadata.sqlite\n")
        result = subprocess.run([sys.executable, "-m", "tfx_embeddings.pipeline", "run",
                                 "--config", config], capture_output=True, text=True,
                                env={**os.environ, **s3.env()}, timeout=1800)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]

        def summary(stdout, label):
            [line] = [line for line in stdout.splitlines() if line.startswith(label)]
            return line[len(label):].strip()

        assert summary(result.stdout, "model:") == "blessed by the Evaluator"
        embedding = summary(result.stdout, "embedding artifact:")
        assert embedding.startswith(f"s3://{bucket}/root/EmbeddingGen/embedding/")
        renames = [(tmp_path / "sample", f"s3://{bucket}/sample"),
                   (tmp_path / "root", f"s3://{bucket}/root")]
        prefix = len(f"s3://{bucket}/")
        compared = [(summary(local.stdout, "embedding artifact:"), embedding)]
        [vocabulary] = glob.glob(str(tmp_path / "root" / "VocabularyGen" / "vocabulary" / "*"))
        compared.append((vocabulary, vocabulary.replace(str(tmp_path), f"s3://{bucket}")))
        compared.append((summary(local.stdout, "pushed to:"),
                         summary(result.stdout, "pushed to:")))
        for local_dir, uri in compared:  # The same execution ids: the same directories.
            assert uri.startswith(f"s3://{bucket}/"), uri
            found, expected = s3.tree(bucket, uri[prefix:]), local_tree(local_dir)
            found, expected = _comparable(found), _comparable(expected, renames)
            assert differing(found, expected) == [], _first_differences(found, expected, uri)


def _comparable(tree, renames=()):
    """A SavedModel's files as they can be compared across stores and processes, with each
    local path of renames replaced by its URI in the bucket (emulators.s3.renamed): without
    fingerprint.pb (their hash), keras_metadata.pb as text, saved_model.pb as the sorted lines
    of its text with TensorFlow's process-wide counters taken out (_without_counters). Both
    protobufs hold the paths of the vocabulary asset and of the embedding's checkpoint, whose
    lengths their encoding holds: they are renamed as text."""
    from tensorflow.core.protobuf import saved_model_pb2
    from tf_keras.protobuf import saved_metadata_pb2

    from emulators.s3 import renamed

    protos = {"saved_model.pb": saved_model_pb2.SavedModel,
              "keras_metadata.pb": saved_metadata_pb2.SavedMetadata}
    texts = renamed({name: (str(protos[name].FromString(data)).encode() if name in protos
                            else data)
                     for name, data in tree.items() if name != "fingerprint.pb"}, renames)
    if "saved_model.pb" in texts:
        texts["saved_model.pb"] = _without_counters(texts["saved_model.pb"].decode()).encode()
    return texts


def _first_differences(found, expected, uri):
    """The first lines that differ between the two trees' files, for the failure message."""
    import difflib

    from emulators.s3 import differing

    lines = [uri]
    for name in differing(found, expected):
        lines.append(name)
        lines.extend(list(difflib.unified_diff(
            expected.get(name, b"").decode(errors="replace").splitlines(),
            found.get(name, b"").decode(errors="replace").splitlines(),
            "local", "bucket", n=1, lineterm=""))[:60])
    return "\n".join(lines)


def _without_counters(text):
    """The SavedModel's text lines, sorted, with every number that ends a name or a part of
    one ("_4555", "_load_4131_", "embedding_lookup/4941") or that is a whole string value
    ("121") replaced by N.

    TensorFlow numbers traced functions and captured tensors from counters of the process: the
    same model exported after a different number of earlier traces (which varies between runs
    of the same pipeline) has other numbers in its names (the vocabulary table's shared name
    and colocation attributes too), hence another order of its function library, and nothing
    else different. The lines keep every op, attribute, signature and path; the variables,
    compared byte for byte beside it, keep every value."""
    import re

    lines = (re.sub(r'((?<=\w)_|(?<=/))\d+(?=[_"/:])|(?<=s: ")\d+(?=")', "_N", line)
             for line in text.splitlines())
    return "\n".join(sorted(lines))
