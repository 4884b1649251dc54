"""The whole pipeline through LocalDagRunner on a tiny slice of the sample, as a user runs it."""

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

from tests.history import command_line
from tfx_embeddings.components import embedding_artifact, vocabulary_file
from tfx_embeddings.components.types import PretrainedEmbedding, Vocabulary
from tfx_embeddings.pipeline.demo import preprocessing


@pytest.fixture(scope="module")
def pipeline_run(history):
    """The history's first run (tests/history.py): its work directory, its CompletedProcess."""
    return history, history.run("first")


def test_run_reports_what_it_built(pipeline_run):
    history, result = pipeline_run
    for text in ("vocabulary size:", "vocabulary coverage:", "corpus token coverage:",
                 "checkpoint shards:      3", "eval accuracy, pretrained embedding:",
                 "model:                  blessed by the Evaluator",
                 f"pushed to:              {history.serving}/"):
        assert text in result.stdout


def test_a_run_prints_what_a_person_reads_and_logs_the_rest(pipeline_run):
    """The terminal: a line per component start and end, the summary, the log's path; no
    traceback, no warning about anything but the run, no download attempt. The full log has
    all of TFX, Beam and TensorFlow."""
    history, result = pipeline_run
    terminal = result.stdout + result.stderr
    assert len(terminal.splitlines()) <= 60, terminal
    for unwanted in ("Traceback", "FutureWarning", "Warning:", "prism", "Prism", "download"):
        assert unwanted not in terminal, unwanted
    log_path = terminal.split("the full log: ", 1)[1].split()[0]
    assert log_path.startswith(os.path.join(history.root, "logs"))
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
    history, _ = pipeline_run
    embedding = history.output("EmbeddingGen", "first", "embedding")
    assert embedding.type == PretrainedEmbedding.TYPE_NAME
    assert embedding.id in history.inputs("EmbeddingTrainer", "first")
    manifest = embedding_artifact.EmbeddingArtifact(embedding.uri).manifest
    assert len(manifest.shards) == 3
    assert embedding.custom_properties["num_shards"].int_value == 3


def test_trained_model_started_from_the_checkpoint_rows(pipeline_run):
    """A token seen by no training example keeps its pretrained row in the exported model."""
    history, _ = pipeline_run
    embedding = history.output("EmbeddingGen", "first", "embedding")
    model = history.output("EmbeddingTrainer", "first", "model")
    pretrained = tf.train.load_variable(
        os.path.join(embedding.uri, embedding_artifact.CHECKPOINT_PREFIX),
        embedding_artifact.TENSOR_NAME)
    loaded = tf.saved_model.load(os.path.join(model.uri, "Format-Serving"))
    parts = sorted((v for v in loaded.variables if "embeddings/part_" in v.name),
                   key=lambda v: int(v.name.split("part_")[1].split(":")[0]))
    assert len(parts) == 3  # One variable per checkpoint shard.
    trained = np.concatenate([v.numpy() for v in parts])
    assert not np.array_equal(trained, pretrained)  # Trainable: rows moved...
    np.testing.assert_array_equal(trained[-1], pretrained[-1])  # ...but not the OOV row,
    unchanged = (np.abs(trained - pretrained).max(axis=1) == 0).sum()
    assert unchanged > 0.2 * len(trained)  # nor eval-only tokens.


def test_transform_graph_maps_with_the_vocabulary_gen_file(pipeline_run):
    """The fast vocabulary is the TransformGraph's asset and EmbeddingGen's rows, byte for byte."""
    history, _ = pipeline_run
    produced = history.output("VocabularyGen", "first", "vocabulary")
    assert produced.type == Vocabulary.TYPE_NAME
    graph = history.output("Transform", "first", "transform_graph")
    embedding = history.output("EmbeddingGen", "first", "embedding")
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
    history, _ = pipeline_run
    pushed = history.output("Pusher", "first", "pushed_model").custom_properties[
        "pushed_destination"].string_value
    embedding_gen = os.path.join(history.root, "EmbeddingGen")
    hidden = os.path.join(history.work, "hidden")
    os.rename(embedding_gen, hidden)
    try:
        result = subprocess.run([sys.executable, "-c", SERVING_PROBE, pushed],
                                capture_output=True, text=True, check=True)
    finally:
        os.rename(hidden, embedding_gen)
    scores = json.loads(result.stdout.strip().splitlines()[-1])
    probabilities = scores["predict_text"]
    assert len(probabilities) == 3 and all(0 <= p <= 1 for p in probabilities)
    assert probabilities[0] > 0.5 > probabilities[1]  # Positive and negative common adjectives.
    assert scores["serving_default"] == pytest.approx([probabilities[0]], abs=1e-6)


def test_bad_vector_file_fails_the_run_and_publishes_nothing(pipeline_run):
    history, _ = pipeline_run
    bad = os.path.join(history.work, "bad_vectors.txt")
    with open(bad, "w") as f:
        f.write("brikaka 0.1 0.2 0.3\nbrisaka 0.1 0.2\n")
    live_before = {a.id for a in history.store().get_artifacts_by_type(
        PretrainedEmbedding.TYPE_NAME) if a.state == a.LIVE}
    result = command_line(history.config("first", vectors=bad))
    assert result.returncode != 0
    assert f"{bad} line 2 (byte offset 20): expected 3 values after the token, found 2" \
        in result.stderr
    embeddings = history.store().get_artifacts_by_type(PretrainedEmbedding.TYPE_NAME)
    assert {a.id for a in embeddings if a.state == a.LIVE} == live_before  # None published.
    for artifact in embeddings:
        if artifact.state != artifact.LIVE and os.path.exists(artifact.uri):
            assert os.listdir(artifact.uri) == []
    history.config("first")  # The config file as it was.


def test_bad_config_key_is_named(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("pipeline_name: p\npipeline_root: r\nserving_dir: s\n"
                      "data: {examples: e, vectors: v}\ntrainer: {epoch: 3}\n")
    result = command_line(str(config))
    assert result.returncode != 0
    assert f"error: {config}: trainer.epoch: unknown key" in result.stderr


def test_the_same_run_with_root_data_and_serving_in_a_bucket(pipeline_run):
    """Object storage: the command line on this module's config with the pipeline root, the
    serving directory, the examples and the vector file in an S3 bucket (moto's server,
    emulators/s3.py; the metadata store local): blessed and pushed there, with the same
    vocabulary, embedding artifact and pushed model, byte for byte, as the run on local disk
    (but for the local paths its manifest and projector config name)."""
    from emulators.s3 import S3Emulator, differing, local_tree

    history, local = pipeline_run
    work = history.work
    bucket = "pipeline"
    with S3Emulator(buckets=[bucket]) as s3:
        s3.upload_tree(os.path.join(work, "sample"), bucket, "sample")
        s3.upload_tree(os.path.join(work, "corpus", "first"), bucket, "corpus/first")
        with open(history.config("first")) as f:
            text = f.read()
        for local_path, remote in ((f"{work}/root", f"s3://{bucket}/root"),
                                   (f"{work}/serving", f"s3://{bucket}/serving"),
                                   (f"{work}/sample", f"s3://{bucket}/sample"),
                                   (f"{work}/corpus", f"s3://{bucket}/corpus")):
            text = text.replace(local_path, remote)
        config = os.path.join(work, "s3.yaml")
        with open(config, "w") as f:
            f.write(text + f"metadata_path: {work}/s3/metadata.sqlite\n")
        result = command_line(config, env={**os.environ, **s3.env()})
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]

        def summary(stdout, label):
            [line] = [line for line in stdout.splitlines() if line.startswith(label)]
            return line[len(label):].strip()

        assert summary(result.stdout, "model:") == "blessed by the Evaluator"
        embedding = summary(result.stdout, "embedding artifact:")
        assert embedding.startswith(f"s3://{bucket}/root/EmbeddingGen/embedding/")
        renames = [(os.path.join(work, "sample"), f"s3://{bucket}/sample"),
                   (history.root, f"s3://{bucket}/root")]
        prefix = len(f"s3://{bucket}/")
        compared = [(summary(local.stdout, "embedding artifact:"), embedding)]
        vocabulary = history.output("VocabularyGen", "first", "vocabulary").uri
        compared.append((vocabulary, vocabulary.replace(work, f"s3://{bucket}")))
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
