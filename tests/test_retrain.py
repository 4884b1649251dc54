"""Scheduled retraining through LocalDagRunner: the second run, on a changed corpus, finds the
first run's model with the Resolver and warm-starts from it; a run whose model is worse is not
blessed, not pushed, and never the base of the next run's warm start (tests/history.py's runs)."""

import json
import os

from tfx_embeddings.components import embedding_artifact
from tfx_embeddings.components.embedding_trainer import warmstart
from tfx_embeddings.pipeline.demo.retrain import NEW_WORDS


def test_second_run_warm_starts_from_the_first(history):
    first = history.output("EmbeddingTrainer", "first", "model")
    second = history.output("EmbeddingTrainer", "changed", "model")
    assert first.id in history.inputs("EmbeddingTrainer", "changed")  # The Resolver's answer.

    run = history.output("EmbeddingTrainer", "changed", "model_run")
    with open(os.path.join(run.uri, "metrics.json")) as f:
        counts = json.load(f)["warm_start"]
    old_dir = os.path.join(first.uri, warmstart.EMBEDDING_EXPORT_DIR)
    new_dir = os.path.join(second.uri, warmstart.EMBEDDING_EXPORT_DIR)
    assert embedding_artifact.EmbeddingArtifact(new_dir).manifest.warm_start == \
        embedding_artifact.WarmStart(**counts)
    with open(os.path.join(old_dir, embedding_artifact.ROW_KEYS_FILE), "rb") as f:
        old_keys = f.read().split(b"\n")
    with open(os.path.join(new_dir, embedding_artifact.ROW_KEYS_FILE), "rb") as f:
        new_keys = f.read().split(b"\n")
    new_words = {w.encode() for w in NEW_WORDS} & set(new_keys)
    assert new_words and not new_words & set(old_keys)  # Words the first run never saw...
    assert counts["pretrained"] >= len(new_words)  # ...start from their pretrained vectors,
    assert counts["previous_model"] == len(set(old_keys) & set(new_keys) - {b""})  # the rest
    assert counts["other_weights"] == 4  # from the first model, Dense layers too.


def test_a_worse_model_is_not_blessed_pushed_or_warm_started_from(history):
    assert "model:                  blessed by the Evaluator" in history.run("changed").stdout
    worse = history.run("worse").stdout
    assert "model:                  NOT blessed by the Evaluator: binary accuracy 0." in worse
    assert "against the latest blessed model (at least -0.050 allowed)" in worse
    assert "pushed:                 no (not blessed)" in worse
    assert "model:                  blessed by the Evaluator" in history.run("recovered").stdout

    runs = ("first", "changed", "worse", "recovered")
    blessed = [history.output("Evaluator", run, "blessing").custom_properties["blessed"]
               .int_value for run in runs]
    assert blessed == [1, 1, 0, 1]
    pushed = [history.output("Pusher", run, "pushed_model") for run in runs]
    assert [p.custom_properties["pushed"].int_value for p in pushed] == [1, 1, 0, 1]
    # Serving holds the blessed runs' models, nothing of the worse one's.
    assert sorted(os.listdir(history.serving)) == sorted(
        os.path.basename(p.custom_properties["pushed_destination"].string_value)
        for p in pushed if p.custom_properties["pushed"].int_value)
    # The last run warm-started from, and was evaluated against, the latest blessed model.
    latest_blessed = history.output("EmbeddingTrainer", "changed", "model").id
    worse_model = history.output("EmbeddingTrainer", "worse", "model").id
    assert latest_blessed in history.inputs("EmbeddingTrainer", "recovered")
    assert worse_model not in history.inputs("EmbeddingTrainer", "recovered")
    assert latest_blessed in history.inputs("Evaluator", "recovered")
