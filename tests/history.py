"""Scheduled runs of the demo pipeline on one pipeline root, shared by the tests that read them.

A session has one `History` (conftest's `history` fixture). Its runs are made when a test first
asks for them, always in the same order, each through the command line as a user runs it:

- "first": the sample without the rows of NEW_WORDS (a first run: no previous model);
- "changed": without the rows of GONE_WORDS, 2 shards instead of 3 (new words appear, some go;
  warm-started from "first");
- "worse": "changed"'s corpus with its train labels inverted (not blessed, not pushed, never a
  warm start's base);
- "recovered": "changed"'s corpus again, in a new directory (blessed; warm-started from and
  evaluated against "changed", the latest blessed model, not "worse").

A test that runs more on the same root (a failing run, say) does it outside the sequence: each
run is found by its own `pipeline_run` context in ML Metadata, not by its position.
"""

import csv
import os
import subprocess
import sys
import textwrap

from ml_metadata.metadata_store import metadata_store
from tfx.orchestration import metadata

from tfx_embeddings.pipeline.demo import sample_data
from tfx_embeddings.pipeline.demo.retrain import GONE_WORDS, NEW_WORDS, vary_corpus

PIPELINE_NAME = "history"
RUNS = ("first", "changed", "worse", "recovered")


def command_line(config, env=None, timeout=1800):
    """`tfx-embeddings run --config config` in a process of its own."""
    return subprocess.run([sys.executable, "-m", "tfx_embeddings.pipeline", "run", "--config",
                           str(config)], capture_output=True, text=True, env=env,
                          timeout=timeout)


class History:
    """The runs of one pipeline root (see the module's docstring), made on demand.

    Args:
      work: a directory of its own (the sample, the corpora, the configs, the pipeline root).
    """

    def __init__(self, work):
        self.work = work
        self.root = os.path.join(work, "root")
        self.serving = os.path.join(work, "serving")
        self.sample = os.path.join(work, "sample")
        self.vectors = os.path.join(self.sample, "vectors", "glove.sample.50d.txt")
        self._results = {}  # run -> (CompletedProcess, its pipeline_run context id)
        sample_data.write_sample(self.sample, n_train=160, n_eval=80)

    def config(self, run, vectors=None, **changes):
        """The config file of a run (written if absent): the demo's, small; `changes` replace
        top-level YAML lines (`text`, `embedding`...), `vectors` the vector file."""
        corpus = os.path.join(self.work, "corpus", run)
        shards = 2 if run in ("changed", "worse", "recovered") else 3
        sections = {
            "text": "{max_tokens: 16, vocabulary_splits: [train, eval]}",
            "embedding": f"{{num_shards: {shards}}}",
            "trainer": "{epochs: 3, batch_size: 16}",
            "evaluation": "{min_accuracy: 0.6, max_accuracy_drop: 0.05}",
            "beam_pipeline_args": "[--runner=FnApiRunner, --direct_running_mode=in_memory]",
            **changes}
        path = os.path.join(self.work, f"{run}.yaml")
        with open(path, "w") as f:
            f.write(textwrap.dedent(f"""\
                pipeline_name: {PIPELINE_NAME}
                pipeline_root: {self.root}
                serving_dir: {self.serving}
                data:
                  examples: {corpus}
                  vectors: {vectors or self.vectors}
                """))
            f.writelines(f"{key}: {value}\n" for key, value in sections.items())
        return path

    def _corpus(self, run):
        corpus = os.path.join(self.work, "corpus", run)
        source = os.path.join(self.sample, "corpus")
        if run == "first":
            vary_corpus(source, corpus, NEW_WORDS)
        else:
            vary_corpus(source, corpus, GONE_WORDS)
        if run == "worse":  # Trained to say the opposite: worse on eval, whatever it starts from.
            path = os.path.join(corpus, "train", "train.csv")
            with open(path, newline="") as f:
                rows = list(csv.reader(f))
            with open(path, "w", newline="") as f:
                csv.writer(f).writerows([rows[0]] + [[text, str(1 - int(label))]
                                                     for text, label in rows[1:]])

    def run(self, run):
        """The finished run (and those before it): its CompletedProcess (returncode 0)."""
        for name in RUNS[:RUNS.index(run) + 1]:
            if name not in self._results:
                self._corpus(name)
                before = self._run_contexts()
                result = command_line(self.config(name))
                assert result.returncode == 0, (name, result.stdout[-3000:],
                                                result.stderr[-5000:])
                [context] = self._run_contexts() - before
                self._results[name] = (result, context)
        return self._results[run][0]

    def store(self):
        return metadata_store.MetadataStore(metadata.sqlite_metadata_connection_config(
            os.path.join(self.root, "metadata.sqlite")))

    def _run_contexts(self):
        if not os.path.exists(os.path.join(self.root, "metadata.sqlite")):
            return set()
        return {c.id for c in self.store().get_contexts_by_type("pipeline_run")}

    def execution(self, node, run):
        """The execution of a component (its id: EmbeddingTrainer, Evaluator...) in a run."""
        self.run(run)
        store = self.store()
        node_context = store.get_context_by_type_and_name("node", f"{PIPELINE_NAME}.{node}")
        in_run = {e.id for e in store.get_executions_by_context(self._results[run][1])}
        [execution] = [e for e in store.get_executions_by_context(node_context.id)
                       if e.id in in_run]
        return execution

    def inputs(self, node, run):
        """The ids of the artifacts a component's execution in a run read."""
        execution = self.execution(node, run)
        return {e.artifact_id for e in self.store().get_events_by_execution_ids([execution.id])
                if e.type == e.INPUT}

    def output(self, node, run, key):
        """The artifact a component's execution in a run wrote (or took from the cache) as
        `key`."""
        store = self.store()
        execution = self.execution(node, run)
        [artifact_id] = [e.artifact_id for e in store.get_events_by_execution_ids([execution.id])
                         if e.type == e.OUTPUT and e.path.steps[0].key == key]
        [artifact] = store.get_artifacts_by_id([artifact_id])
        return artifact

