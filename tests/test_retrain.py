"""Scheduled retraining through LocalDagRunner: the second run, on a changed corpus, finds the
first run's model with the Resolver and warm-starts from it."""

import json
import os
import subprocess
import sys
import textwrap

from ml_metadata.metadata_store import metadata_store
from tfx.orchestration import metadata

from tfx_embeddings.components import embedding_artifact
from tfx_embeddings.components.embedding_trainer import warmstart
from tfx_embeddings.pipeline.demo import sample_data
from tfx_embeddings.pipeline.demo.retrain import GONE_WORDS, NEW_WORDS, vary_corpus


def test_second_run_warm_starts_from_the_first(tmp_path):
    sample_data.write_sample(str(tmp_path / "sample"), n_train=120, n_eval=60)
    config = tmp_path / "config.yaml"
    for run, drop in (("run1", NEW_WORDS), ("run2", GONE_WORDS)):
        vary_corpus(str(tmp_path / "sample" / "corpus"), str(tmp_path / run), drop)
        config.write_text(textwrap.dedent(f"""
            pipeline_name: retrain
            pipeline_root: {tmp_path}/root
            serving_dir: {tmp_path}/serving
            data:
              examples: {tmp_path}/{run}
              vectors: {tmp_path}/sample/vectors/glove.sample.50d.txt
            text: {{max_tokens: 16, vocabulary_splits: [train, eval]}}
            embedding: {{num_shards: {2 if run == "run1" else 3}}}
            trainer: {{epochs: 1, batch_size: 16}}
            beam_pipeline_args: [--runner=FnApiRunner, --direct_running_mode=in_memory]
        """))
        result = subprocess.run([sys.executable, "-m", "tfx_embeddings.pipeline", "run", "--config",
                                 str(config)], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr[-5000:]

    store = metadata_store.MetadataStore(metadata.sqlite_metadata_connection_config(
        str(tmp_path / "root" / "metadata.sqlite")))
    first, second = sorted(store.get_artifacts_by_type("Model"), key=lambda a: a.id)
    context = store.get_context_by_type_and_name("node", "retrain.EmbeddingTrainer")
    executions = sorted(store.get_executions_by_context(context.id), key=lambda e: e.id)
    inputs = [e.artifact_id for e in store.get_events_by_execution_ids([executions[1].id])
              if e.type == e.INPUT]
    assert first.id in inputs  # The Resolver handed the first model to the second run.

    with open(os.path.join(store.get_artifacts_by_type("ModelRun")[-1].uri, "metrics.json")) as f:
        counts = json.load(f)["warm_start"]
    old_dir = os.path.join(first.uri, warmstart.EMBEDDING_EXPORT_DIR)
    new_dir = os.path.join(second.uri, warmstart.EMBEDDING_EXPORT_DIR)
    assert embedding_artifact.EmbeddingArtifact(new_dir).manifest.warm_start == \
        embedding_artifact.WarmStart(**counts)
    old_keys = open(os.path.join(old_dir, embedding_artifact.ROW_KEYS_FILE), "rb").read().split(b"\n")
    new_keys = open(os.path.join(new_dir, embedding_artifact.ROW_KEYS_FILE), "rb").read().split(b"\n")
    new_words = {w.encode() for w in NEW_WORDS} & set(new_keys)
    assert new_words and not new_words & set(old_keys)  # Words the first run never saw...
    assert counts["pretrained"] >= len(new_words)  # ...start from their pretrained vectors,
    assert counts["previous_model"] == len(set(old_keys) & set(new_keys) - {b""})  # the rest
    assert counts["other_weights"] == 4  # from the first model, Dense layers too.
