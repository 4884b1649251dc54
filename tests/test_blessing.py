"""Scheduled retraining you can trust: a run whose model is worse is not blessed, not pushed,
and never the base of the next run's warm start."""

import csv
import os
import shutil
import subprocess
import sys
import textwrap

from ml_metadata.metadata_store import metadata_store
from tfx.orchestration import metadata

from tfx_embeddings.pipeline.demo import sample_data


def _corpus(source, destination, invert_train_labels):
    shutil.copytree(source, destination)
    if invert_train_labels:  # Trained to say the opposite: worse on eval, whatever it started from.
        path = os.path.join(destination, "train", "train.csv")
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
        with open(path, "w", newline="") as f:
            csv.writer(f).writerows([rows[0]] + [[text, str(1 - int(label))]
                                                 for text, label in rows[1:]])


def _run(tmp_path, name, invert_train_labels=False):
    _corpus(tmp_path / "sample" / "corpus", tmp_path / name, invert_train_labels)
    config = tmp_path / f"{name}.yaml"
    config.write_text(textwrap.dedent(f"""
        pipeline_name: blessing
        pipeline_root: {tmp_path}/root
        serving_dir: {tmp_path}/serving
        data:
          examples: {tmp_path}/{name}
          vectors: {tmp_path}/sample/vectors/glove.sample.50d.txt
        text: {{max_tokens: 16, vocabulary_splits: [train, eval]}}
        trainer: {{epochs: 3, batch_size: 16}}
        evaluation: {{min_accuracy: 0.6, max_accuracy_drop: 0.01}}
        beam_pipeline_args: [--runner=FnApiRunner, --direct_running_mode=in_memory]
    """))
    result = subprocess.run([sys.executable, "-m", "tfx_embeddings.pipeline", "run", "--config",
                             str(config)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def _inputs(store, node, execution_index):
    context = store.get_context_by_type_and_name("node", f"blessing.{node}")
    executions = sorted(store.get_executions_by_context(context.id), key=lambda e: e.id)
    events = store.get_events_by_execution_ids([executions[execution_index].id])
    return {e.artifact_id for e in events if e.type == e.INPUT}


def test_a_worse_model_is_not_blessed_pushed_or_warm_started_from(tmp_path):
    sample_data.write_sample(str(tmp_path / "sample"), n_train=120, n_eval=60)
    first = _run(tmp_path, "run1")
    assert "model:                  blessed by the Evaluator" in first
    assert len(os.listdir(tmp_path / "serving")) == 1

    second = _run(tmp_path, "run2", invert_train_labels=True)
    assert "model:                  NOT blessed by the Evaluator: binary accuracy 0." in second
    assert "against the latest blessed model (at least -0.010 allowed)" in second
    assert "pushed:                 no (not blessed)" in second
    assert len(os.listdir(tmp_path / "serving")) == 1  # Serving keeps the first model.

    third = _run(tmp_path, "run3")
    assert "blessed by the Evaluator" in third
    store = metadata_store.MetadataStore(metadata.sqlite_metadata_connection_config(
        str(tmp_path / "root" / "metadata.sqlite")))
    models = sorted(store.get_artifacts_by_type("Model"), key=lambda a: a.id)
    blessings = sorted(store.get_artifacts_by_type("ModelBlessing"), key=lambda a: a.id)
    assert [b.custom_properties["blessed"].int_value for b in blessings] == [1, 0, 1]
    pushed = sorted(store.get_artifacts_by_type("PushedModel"), key=lambda a: a.id)
    assert [p.custom_properties["pushed"].int_value for p in pushed] == [1, 0, 1]
    # The third run warm-started from, and was evaluated against, the first run's model.
    assert models[0].id in _inputs(store, "EmbeddingTrainer", 2)
    assert models[1].id not in _inputs(store, "EmbeddingTrainer", 2)
    assert models[0].id in _inputs(store, "Evaluator", 2)
