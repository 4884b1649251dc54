"""Scheduled retraining on open-source Kubeflow Pipelines, without a cluster: the compiled spec
run twice by `run-spec`, with new rows added to the data between the runs.

    python -m tfx_embeddings.pipeline.demo.kubeflow --config configs/kubeflow-local.yaml \\
        --sample data/sample --work build/kfp --python IMAGE_PYTHON          (make demo-kfp)

The sample is copied to the work directory (the runs' data, a stand-in for a bucket), the
pipeline compiled for open-source Kubeflow (`compile --target kubeflow`) and run, new train rows
written, and run again. Then what shows that the second run is a scheduled run done right, read
from the ML Metadata store the runs wrote as Kubeflow's backend does: ExampleGen was not taken
from the cache (its input fingerprint changed) and read the new rows, the trainer warm-started
from the first run's blessed model, and the Evaluator compared the new model with it. It ends
with the pushed model scoring raw strings.
"""

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import warnings

# Google's client libraries warn at import that Python 3.10 is old (the TFX 1.16 stack needs it).
warnings.filterwarnings("ignore", "You are using a non-supported Python version", FutureWarning)

from ml_metadata.proto import metadata_store_pb2 as mlmd  # noqa: E402 (after the filter)

from ...components.latest_blessed_model import (  # noqa: E402
    FOUND_PROPERTY,
    MODEL_URI_PROPERTY,
    NO_PREVIOUS_MODEL,
)
from ..kubeflow.metadata import sqlite_store  # noqa: E402
from ..kubeflow.run_spec import SpecRun  # noqa: E402
from . import sample_data  # noqa: E402
from .pipeline import EVALUATOR_ID, LATEST_MODEL_RESOLVER_ID, TRAINER_ID  # noqa: E402

IMAGE = "tfx-pretrained-embeddings:local"
EXAMPLE_GEN = "CsvExampleGen"
TEXTS = ("The movie was brikalo and brimine!", "the plot felt dulkaka. <br />Dulmine")


def run_tasks(store, run_id):
    """{task name: (execution, {output name: artifact})} of a run, from its PipelineRun context."""
    context = store.get_context_by_type_and_name("system.PipelineRun", run_id)
    tasks = {}
    for execution in store.get_executions_by_context(context.id):
        name = execution.custom_properties["task_name"].string_value
        if not name:
            continue  # The root DAG.
        events = [e for e in store.get_events_by_execution_ids([execution.id])
                  if e.type == mlmd.Event.OUTPUT]
        artifacts = {a.id: a for a in store.get_artifacts_by_id([e.artifact_id for e in events])}
        tasks[name] = (execution, {e.path.steps[0].key: artifacts[e.artifact_id]
                                   for e in events})
    return tasks


def count_examples(examples_uri, split):
    """The number of examples in a split of an Examples artifact (gzipped TFRecords)."""
    import tensorflow as tf

    files = tf.io.gfile.glob(os.path.join(examples_uri, f"Split-{split}", "*"))
    return int(tf.data.TFRecordDataset(files, compression_type="GZIP").reduce(
        0, lambda count, _: count + 1))


def _found(model):
    return bool(model.custom_properties[FOUND_PROPERTY].double_value)


def _previous(model):
    """The previous model LatestBlessedModel's output names (its own URI is this run's)."""
    return model.custom_properties[MODEL_URI_PROPERTY].string_value if _found(model) else None


def _state(execution):
    return mlmd.Execution.State.Name(execution.last_known_state)


def describe_runs(metadata_path, first, second, new_rows):
    """What the second run read, started from and was compared with.

    Returns:
      (lines to print, problems): a problem is a way the second run is not the scheduled run
      it should be (ExampleGen served from the cache, the new rows not read, no warm start from
      the first run's blessed model, another baseline).
    """
    store = sqlite_store(metadata_path)
    one, two = run_tasks(store, first), run_tasks(store, second)
    fingerprint = f"{EXAMPLE_GEN}-input-fingerprint"
    old, new = (tasks[fingerprint][0].custom_properties["outputs"].struct_value
                ["input_fingerprint"] for tasks in (one, two))
    examples = [count_examples(tasks[EXAMPLE_GEN][1]["examples"].uri, "train")
                for tasks in (one, two)]
    previous = one[TRAINER_ID][1]["model"].uri
    first_base, base = (tasks[LATEST_MODEL_RESOLVER_ID][1]["model"] for tasks in (one, two))
    blessing = two[EVALUATOR_ID][1]["blessing"]
    baseline = blessing.custom_properties["baseline_model"].string_value
    with open(os.path.join(two[TRAINER_ID][1]["model_run"].uri, "metrics.json")) as f:
        warm_start = json.load(f)["warm_start"]
    lines = [
        f"run 2, {EXAMPLE_GEN}: {_state(two[EXAMPLE_GEN][0])} (run 1: "
        f"{_state(one[EXAMPLE_GEN][0])}); input fingerprint {old.split()[0][:19]}... -> "
        f"{new.split()[0][:19]}...",
        f"train examples read:    run 1 {examples[0]}, run 2 {examples[1]}",
        f"run 1's base model:     "
        f"{'none: ' + NO_PREVIOUS_MODEL if not _found(first_base) else _previous(first_base)}",
        f"run 1's blessed model:  {previous}",
        f"run 2's base model:     {_previous(base) or 'none'}",
        f"run 2's warm start:     {warm_start}",
        f"run 2's Evaluator:      baseline {baseline}, blessed "
        f"{blessing.custom_properties['blessed'].double_value:.0f}",
        "run 2's task states:    " + ", ".join(f"{name} {_state(execution)}"
                                               for name, (execution, _) in sorted(two.items())),
    ]
    problems = [problem for problem, wrong in (
        ("run 2's ExampleGen was served from the cache",
         _state(two[EXAMPLE_GEN][0]) != "COMPLETE"),
        (f"run 2 did not read the {new_rows} new rows", examples[1] != examples[0] + new_rows),
        ("run 1 started from a previous model", _found(first_base)),
        ("run 2 did not start from run 1's blessed model",
         _previous(base) != previous or not warm_start["previous_model"]),
        ("run 2's Evaluator had another baseline", baseline != previous)) if wrong]
    return lines, problems


def _run(spec, work, python, report):
    run = SpecRun(
        spec, os.path.join(work, "root"), python, env={"TF_USE_LEGACY_KERAS": "1"},
        parameters={"examples": os.path.join(work, "data", "corpus"),
                    "vectors": os.path.join(work, "data", "vectors", "glove.sample.50d.txt"),
                    "push_destination": os.path.join(work, "serving")})  # A plain path.
    run.run(report=report)
    return run


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True, help="e.g. configs/kubeflow-local.yaml")
    parser.add_argument("--sample", required=True, help="the sample to copy (data/sample)")
    parser.add_argument("--work", required=True, help="work directory (emptied first)")
    parser.add_argument("--python", required=True, help="the image's python (make image)")
    parser.add_argument("--new-rows", type=int, default=200, help="train rows added for run 2")
    args = parser.parse_args(argv)

    def report(line):
        print(line, flush=True)

    work = os.path.abspath(args.work)
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(args.sample, os.path.join(work, "data"))
    spec = os.path.join(work, "pipeline.yaml")
    log_path = os.path.join(work, "compile.log")
    with open(log_path, "w") as log:  # TFX's compiler is talkative: its output goes to a file.
        compiled = subprocess.run(
            [args.python, "-m", "tfx_embeddings.pipeline", "compile", "--config",
             os.path.abspath(args.config), "--image", IMAGE, "--output", spec],
            stdout=log, stderr=subprocess.STDOUT, cwd=work)
    if compiled.returncode != 0:
        with open(log_path) as log:
            sys.exit(f"error: compile failed; its log: {log_path}\n{log.read()[-3000:]}")
    report(f"compiled for open-source Kubeflow Pipelines: {spec} (log: {log_path})")
    report("-- run 1")
    first = _run(spec, work, args.python, report)
    added = sample_data.add_train_rows(os.path.join(work, "data"), args.new_rows)
    report(f"-- {args.new_rows} new train rows: {added}")
    report("-- run 2")
    second = _run(spec, work, args.python, report)
    report("--")
    lines, problems = describe_runs(second.metadata_path, first.run_id, second.run_id,
                                    args.new_rows)
    for line in lines:
        report(line)
    if problems:
        sys.exit("error: " + "; ".join(problems))
    pushed = sorted(glob.glob(os.path.join(work, "serving", "*")))
    report(f"pushed models:          {len(pushed)}; scoring with {pushed[-1]}")

    import tensorflow as tf

    model = tf.saved_model.load(pushed[-1])
    scores = model.signatures["predict_text"](tf.constant(TEXTS))["probabilities"].numpy()
    for text, score in zip(TEXTS, scores):
        report(f"{score:.3f}  {text}")


if __name__ == "__main__":
    main()
