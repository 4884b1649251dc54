"""Whole-pipeline benchmark (make bench-pipeline): the project's pipeline against the same pipeline
done the usual way, on an IMDB-sized corpus and a 400,000 x 300 vector file, both generated.

  python -m benchmarks.bench_pipeline                     # everything; writes results/pipeline.json
  BENCH_RESUME=1 python -m benchmarks.bench_pipeline      # keeps a variant that already ran
  python -m benchmarks.bench_pipeline run VARIANT WORK    # one pipeline run, in this process
  python -m benchmarks.bench_pipeline steps [ROWS]         # the step figures only (ROWS: 1x)
  python -m benchmarks.bench_pipeline step KERAS WORK     # one Keras's step figures, here
  python -m benchmarks.bench_pipeline profile KERAS WORK  # a step's time by TensorFlow op

The corpus: 25,000 train and 25,000 eval documents of 50-400 tokens, Zipf-distributed over
500,000 types, 400,000 of which have a vector; each document carries a few tokens of its label's
sentiment, so the model learns and both variants end with a blessed, pushed model. The vector
file is bench-ingest's (benchmarks/work/vectors_400000x300.txt, 1.0 GB).

project: CsvExampleGen, StatisticsGen, ImportSchemaGen, VocabularyGen, Transform, EmbeddingGen,
EmbeddingTrainer (restore in the graph, LazyAdam), Evaluator, Pusher: the demo pipeline.
usual: CsvExampleGen, StatisticsGen, ImportSchemaGen, Transform with tft.vocabulary, TFX's
Trainer whose run_fn loads the vectors with gensim into a Keras Embedding with a Constant
initializer and trains with stock Adam (benchmarks/usual_trainer.py), Evaluator, Pusher.
Same model, data, epochs (2), batch (64) and tokens per document (256).

Each variant runs in a process of its own, on an idle machine: the project's through
tfx_embeddings.run_local (LocalDagRunner with the project's wheel for the Beam steps, so TFX
builds no package per step), the usual one through LocalDagRunner alone. seconds: per
component, as LocalDagRunner ran it; total: the whole run (imports excluded). peak_rss_mb:
the largest sum of the RSS of the run's process and its children (Beam's workers) while the
component ran; LocalDagRunner runs every component in one process, so memory an earlier
component left allocated counts too.

step_ms: the project's model's training step on one batch (64 x 256 token ids, the same in every
mode), for tf_keras and for Keras 3 (a process each), with the embedding trainable (LazyAdam),
frozen, and trainable with a vocabulary 4 times as large. The three variants live in one process
and are interleaved: after WARMUP steps of each, STEP_ROUNDS rounds each time a block of
STEPS_PER_BLOCK steps of every variant (the order rotating from round to round, the garbage
collector off inside a block); a variant's figure is the median of its blocks' per-step times,
its spread the interquartile range of those as a share of the median. A ratio (4x against 1x,
trainable against frozen) is the median of the ratios within each round, so that what the
machine does meanwhile weighs on both sides alike; its spread likewise.
"""

import json
import os
import subprocess
import sys
import threading
import time

import numpy as np

from benchmarks import accounting, common

WORK = os.path.join(common.WORK_DIR, "pipeline")
RESULTS = os.path.join(common.RESULTS_DIR, "pipeline.json")
DOCUMENTS = int(os.environ.get("BENCH_DOCUMENTS", 25_000))  # Per split; smaller for a try.
TYPES, WITH_VECTORS, DIMENSION = 500_000, 400_000, 300
MAX_TOKENS, BATCH, EPOCHS = 256, 64, 2
STEP_ROUNDS, STEPS_PER_BLOCK, WARMUP = 60, 5, 20
STEP_MODES = ("trainable", "frozen", "trainable_4x_vocabulary")
KERASES = ("tf_keras", "keras3")
BEAM_ARGS = ["--runner=FnApiRunner", "--direct_running_mode=multi_processing",
             "--direct_num_workers=2"]


def _token(i):
    return f"w{i}" if i < WITH_VECTORS else f"u{i}"


def write_corpus(directory, seed=3):
    """train/ and eval/ CSVs (text, label): Zipf 1.07 over TYPES, sentiment tokens by label."""
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, TYPES + 1) ** 1.07
    p /= p.sum()
    words = np.array([_token(i) for i in range(TYPES)])
    positive, negative = words[2000:2500], words[2500:3000]
    for split in ("train", "eval"):
        os.makedirs(os.path.join(directory, split), exist_ok=True)
        lengths = rng.integers(50, 401, size=DOCUMENTS)
        ids = rng.choice(TYPES, size=int(lengths.sum()), p=p)
        labels = rng.integers(0, 2, size=DOCUMENTS)
        documents = np.split(words[ids], np.cumsum(lengths)[:-1])
        path = os.path.join(directory, split, f"{split}.csv")
        with open(path + ".tmp", "w") as f:
            f.write("text,label\n")
            for document, label in zip(documents, labels):
                marks = rng.choice(positive if label else negative, size=6)
                spots = rng.integers(0, min(len(document), MAX_TOKENS), size=6)
                document = document.copy()
                document[spots] = marks
                f.write(f"{' '.join(document)},{label}\n")
        os.replace(path + ".tmp", path)


def prepare():
    """The corpus and vector file (generated once) and the two variants' configs."""
    from benchmarks import bench_ingest

    corpus = os.path.join(WORK, f"corpus_{DOCUMENTS}")
    if not os.path.exists(os.path.join(corpus, "eval", "eval.csv")):
        print("generating the corpus", file=sys.stderr, flush=True)
        write_corpus(corpus)
    vectors = os.path.join(common.WORK_DIR, f"vectors_{WITH_VECTORS}x{DIMENSION}.txt")
    if not os.path.exists(vectors):  # bench-ingest's file, if it made it already.
        print(f"generating {vectors}", file=sys.stderr, flush=True)
        bench_ingest.write_glove(vectors, WITH_VECTORS, DIMENSION, seed=0)
    return corpus, vectors


def _config(variant, corpus, vectors):
    from tfx_embeddings.pipeline.demo.config import PipelineConfig

    root = os.path.join(WORK, variant)
    return PipelineConfig.model_validate({
        "pipeline_name": f"bench-{variant}", "pipeline_root": os.path.join(root, "root"),
        "serving_dir": os.path.join(root, "serving"),
        "metadata_path": os.path.join(root, "root", "metadata.sqlite"),
        "data": {"examples": corpus, "vectors": vectors},
        "text": {"max_tokens": MAX_TOKENS, "vocabulary_splits": ["train"],
                 "vocabulary": "fast" if variant == "project" else "tft"},
        "trainer": {"epochs": EPOCHS, "batch_size": BATCH, "learning_rate": 0.001},
        "evaluation": {"min_accuracy": 0.6, "max_accuracy_drop": 1.0},
        "beam_pipeline_args": BEAM_ARGS, "enable_cache": False})


def usual_pipeline(config):
    """The same pipeline as TFX users build it without this project."""
    from tfx import v1 as tfx

    from tfx_embeddings.pipeline.demo import pipeline as project

    example_gen = tfx.components.CsvExampleGen(
        input_base=config.data.examples,
        input_config=tfx.proto.Input(splits=[
            tfx.proto.Input.Split(name="train", pattern="train/*"),
            tfx.proto.Input.Split(name="eval", pattern="eval/*")]))
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    schema_gen = tfx.components.ImportSchemaGen(
        schema_file=project.schema.schema_path(config.data.schema_file))
    transform = tfx.components.Transform(
        examples=example_gen.outputs["examples"], schema=schema_gen.outputs["schema"],
        preprocessing_fn="tfx_embeddings.pipeline.demo.preprocessing.preprocessing_fn",
        splits_config=tfx.proto.SplitsConfig(analyze=["train"], transform=["train", "eval"]),
        custom_config=config.text.model_dump(exclude={"vocabulary_splits", "vocabulary"}))
    trainer = tfx.components.Trainer(
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        run_fn="benchmarks.usual_trainer.run_fn",
        custom_config={**config.trainer.model_dump(), "max_tokens": config.text.max_tokens,
                       "num_oov_buckets": config.text.num_oov_buckets,
                       "vectors": config.data.vectors})
    evaluator = tfx.components.Evaluator(
        examples=example_gen.outputs["examples"], model=trainer.outputs["model"],
        example_splits=["eval"], eval_config=project.eval_config(config.evaluation))
    pusher = tfx.components.Pusher(
        model=trainer.outputs["model"], model_blessing=evaluator.outputs["blessing"],
        push_destination=tfx.proto.PushDestination(filesystem=tfx.proto.PushDestination.Filesystem(
            base_directory=config.serving_dir)))
    return tfx.dsl.Pipeline(
        pipeline_name=config.pipeline_name, pipeline_root=config.pipeline_root,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            config.metadata_path),
        components=[example_gen, statistics_gen, schema_gen, transform, trainer, evaluator,
                    pusher],
        enable_cache=False, beam_pipeline_args=config.beam_pipeline_args)


def _tree_rss(process):
    import psutil

    total = 0
    for member in [process] + process.children(recursive=True):
        try:
            total += member.memory_info().rss
        except psutil.Error:
            pass
    return total


def run_variant(variant, work):
    """Runs one variant in this process; writes its rows to work/<variant>.json."""
    import shutil

    import psutil

    from tfx_embeddings.pipeline import console as console_lib
    from tfx_embeddings.pipeline import local

    corpus, vectors = prepare()
    config = _config(variant, corpus, vectors)
    shutil.rmtree(os.path.join(WORK, variant), ignore_errors=True)
    peaks, done = {}, threading.Event()
    with console_lib.RunConsole(os.path.join(WORK, f"{variant}.log")) as console:
        from tfx import v1 as tfx

        from tfx_embeddings.pipeline.demo import pipeline as project

        pipeline = (project.create_pipeline(config) if variant == "project"
                    else usual_pipeline(config))
        me = psutil.Process()

        def sample():
            while not done.is_set():
                rss = _tree_rss(me)
                for name in console.times.running() + ["total"]:
                    peaks[name] = max(peaks.get(name, 0), rss)
                time.sleep(0.1)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        started = time.monotonic()
        with accounting.ComponentClock() as clock:
            if variant == "project":  # As the project runs a pipeline (tfx_embeddings.run_local).
                local.run(pipeline)
            else:
                tfx.orchestration.LocalDagRunner().run(pipeline)
        total = time.monotonic() - started
        done.set()
        sampler.join()
        phases = clock.phases()
        rows = [{"variant": variant, "component": name, "seconds": round(seconds, 2),
                 "peak_rss_mb": round(peaks.get(name, 0) / 2**20),
                 **{f"{phase}_s": value for phase, value in phases.get(name, {}).items()
                    if phase != "total"}}
                for name, (status, _, seconds) in console.times.rows.items()]
        rows.append({"variant": variant, "component": "total", "seconds": round(total, 2),
                     "peak_rss_mb": round(peaks["total"] / 2**20)})
    pushed = os.path.isdir(config.serving_dir) and bool(os.listdir(config.serving_dir))
    with open(os.path.join(work, f"{variant}.json"), "w") as f:
        json.dump({"rows": rows, "pushed": pushed}, f)


def _step_model(keras_name, embedding):
    """The demo's classifier (pipeline/demo/model.py) over embedding, in keras_name's Keras."""
    import tfx_embeddings
    from tfx_embeddings.pipeline.demo import model

    optimizer = tfx_embeddings.LazyAdam(0.001, keras=keras_name)
    if keras_name == "tf_keras":
        return model.build_model(embedding, MAX_TOKENS, optimizer)
    import keras

    ids = keras.Input(shape=(MAX_TOKENS,), dtype="int64")
    x = keras.layers.GlobalAveragePooling1D()(embedding(ids))
    x = keras.layers.Dense(16, activation="relu")(x)
    classifier = keras.Model(ids, keras.layers.Dense(1)(x))
    classifier.compile(optimizer=optimizer,
                       loss=keras.losses.BinaryCrossentropy(from_logits=True),
                       metrics=[keras.metrics.BinaryAccuracy(threshold=0.0, name="accuracy")])
    return classifier


def _spread(values):
    """The interquartile range of values as a share of their median, in percent."""
    low, median, high = np.percentile(values, [25, 50, 75])
    return 100 * (high - low) / median


def _step_variants(keras_name, work):
    """{mode: a training step of that variant}, each warmed up: the same batch in every mode
    (ids of the 1x vocabulary), only the table's size and trainability differ."""
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import tensorflow as tf

    import tfx_embeddings

    with open(os.path.join(work, "rows")) as f:
        base_rows = int(f.read())
    models = {}
    for mode in STEP_MODES:
        rows = base_rows * (4 if mode == "trainable_4x_vocabulary" else 1)
        artifact = os.path.join(WORK, f"step_artifact_{rows}")
        if not os.path.exists(os.path.join(artifact, "manifest.json")):
            common.write_random_artifact(artifact, rows, DIMENSION, num_shards=4)
        embedding = tfx_embeddings.pretrained_embedding(artifact, trainable=mode != "frozen",
                                                        keras=keras_name)
        models[mode] = _step_model(keras_name, embedding)
    rng = np.random.default_rng(0)
    p = 1.0 / np.arange(1, base_rows - 1) ** 1.07
    ids = tf.constant(rng.choice(base_rows - 2, size=(BATCH, MAX_TOKENS), p=p / p.sum()) + 1)
    labels = tf.constant(rng.integers(0, 2, (BATCH, 1)), tf.float32)
    # A step as fit runs it: the compiled train function on the next batch of an iterator (not
    # train_on_batch, which builds a dataset and an iterator per call in tf_keras).
    batches = tf.data.Dataset.from_tensors((ids, labels)).repeat()
    steps = {}
    for mode, model in models.items():
        model.make_train_function()  # Keras 3's returns nothing; both set train_function.
        train_function, iterator = model.train_function, iter(batches)
        steps[mode] = lambda train_function=train_function, iterator=iterator: (
            train_function(iterator))
        for _ in range(WARMUP):
            steps[mode]()
    return steps


def time_steps(keras_name, work):
    """keras_name's step figures, the three variants interleaved in this process; prints
    {"step_ms": {mode: median}, "spread_pct": {mode: IQR %}, "ratios": {...}}."""
    import gc

    steps = _step_variants(keras_name, work)
    blocks = {mode: [] for mode in STEP_MODES}  # Per round: ms per step of the block.
    for round_ in range(STEP_ROUNDS):
        order = STEP_MODES[round_ % 3:] + STEP_MODES[:round_ % 3]
        for mode in order:
            step = steps[mode]
            gc.collect()
            gc.disable()
            started = time.perf_counter()
            for _ in range(STEPS_PER_BLOCK):
                logs = step()
            float(logs["loss"])  # Ran.
            blocks[mode].append(1000 * (time.perf_counter() - started) / STEPS_PER_BLOCK)
            gc.enable()
    blocks = {mode: np.array(times) for mode, times in blocks.items()}
    ratios = {"trainable / frozen": blocks["trainable"] / blocks["frozen"],
              "4x vocabulary / 1x": blocks["trainable_4x_vocabulary"] / blocks["trainable"]}
    print(json.dumps({
        "step_ms": {mode: round(float(np.median(t)), 2) for mode, t in blocks.items()},
        "spread_pct": {mode: round(_spread(t), 1) for mode, t in blocks.items()},
        "ratios": {name: round(float(np.median(r)), 3) for name, r in ratios.items()},
        "ratio_spread_pct": {name: round(_spread(r), 1) for name, r in ratios.items()},
        "blocks_ms": {mode: [round(float(x), 2) for x in t] for mode, t in blocks.items()}}))


def profile_steps(keras_name, work, top=25):
    """Where a step's time goes, per TensorFlow op (its profiler), in each variant: an op whose
    work grew with the table would show in the 4x column. Ops are named by their place in the
    model, numbers dropped (the three models' names differ only by them)."""
    import collections
    import glob
    import re
    import shutil
    import tempfile

    import tensorflow as tf
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    steps, per_op = _step_variants(keras_name, work), {}
    count = 4 * STEPS_PER_BLOCK
    for mode, step in steps.items():
        directory = tempfile.mkdtemp()
        tf.profiler.experimental.start(directory)
        for _ in range(count):
            logs = step()
        float(logs["loss"])
        tf.profiler.experimental.stop()
        space = xplane_pb2.XSpace()
        with open(glob.glob(f"{directory}/**/*.xplane.pb", recursive=True)[0], "rb") as f:
            space.ParseFromString(f.read())
        shutil.rmtree(directory)
        per_op[mode] = collections.Counter()
        for plane in (p for p in space.planes if "host:CPU" in p.name):
            names = {i: m.name for i, m in plane.event_metadata.items()}
            for line in plane.lines:
                for event in line.events:
                    name = names.get(event.metadata_id, "")
                    if ":" in name and "/" in name and not name.startswith("__"):
                        name = name.split("StatefulPartitionedCall/", 1)[-1]
                        name = re.sub(r"(_\d+)+(?=[/:])", "", name)
                        per_op[mode][name] += event.duration_ps / 1e9 / count
    print(f"{keras_name}: ms per step by op (summed over threads), {count} steps each")
    print(f"| op | {' | '.join(STEP_MODES)} | 4x / 1x |")
    print("| --- |" + " --- |" * (len(STEP_MODES) + 1))
    for name, ms in per_op["trainable"].most_common(top):
        big = per_op["trainable_4x_vocabulary"][name]
        print(f"| {name} | " + " | ".join(f"{per_op[m][name]:.2f}" for m in STEP_MODES)
              + f" | {big / ms:.2f} |")
    print("| total | " + " | ".join(f"{sum(per_op[m].values()):.2f}" for m in STEP_MODES)
          + " | |")


def measure_steps(work):
    """Both Kerases' step figures, each Keras in a process of its own."""
    return {keras_name: common.run_measured("benchmarks.bench_pipeline", "step", keras_name,
                                            work)
            for keras_name in KERASES}


def _print_steps(steps, embedding_rows):
    print(f"\nstep on a {embedding_rows} x {DIMENSION} embedding (4x: {4 * embedding_rows} rows), "
          f"median ms of {STEP_ROUNDS} blocks of {STEPS_PER_BLOCK} steps, interleaved "
          f"(interquartile range, % of the median):")
    print("| Keras | trainable | frozen | trainable, 4x vocabulary | trainable / frozen "
          "| 4x / 1x |")
    print("| --- | --- | --- | --- | --- | --- |")
    for keras_name, measured in steps.items():
        ms, spread = measured["step_ms"], measured["spread_pct"]
        ratios, ratio_spread = measured["ratios"], measured["ratio_spread_pct"]
        print(f"| {keras_name} | " + " | ".join(
            f"{ms[mode]:.1f} ({spread[mode]:.1f}%)" for mode in STEP_MODES) + " | "
            + " | ".join(f"{ratios[name]:.2f}x ({ratio_spread[name]:.1f}%)"
                         for name in ("trainable / frozen", "4x vocabulary / 1x")) + " |")
    targets = {"trainable / frozen": 2.0, "4x vocabulary / 1x": 1.10}
    for keras_name, measured in steps.items():
        for name, target in targets.items():
            ratio = measured["ratios"][name]
            print(f"{keras_name} step {name}: {ratio:.2f} (target <= {target:.2f}): "
                  f"{'met' if ratio <= target else 'NOT met'}")


def main():
    os.makedirs(WORK, exist_ok=True)
    prepare()
    rows, pushed = [], {}
    for variant in ("project", "usual"):
        done = os.path.join(WORK, f"{variant}.json")
        if not (os.environ.get("BENCH_RESUME") and os.path.exists(done)):  # Resume: keep it.
            print(f"running the {variant} pipeline", file=sys.stderr, flush=True)
            subprocess.run([sys.executable, "-m", "benchmarks.bench_pipeline", "run", variant,
                            WORK], check=True)
        with open(os.path.join(WORK, f"{variant}.json")) as f:
            result = json.load(f)
        rows += result["rows"]
        pushed[variant] = result["pushed"]
    from tfx_embeddings.components import embedding_artifact

    embedding = os.path.join(WORK, "project", "root", "EmbeddingGen", "embedding")
    [artifact] = [os.path.join(embedding, name) for name in os.listdir(embedding)]
    embedding_rows = embedding_artifact.EmbeddingArtifact(artifact).manifest.shape[0]
    with open(os.path.join(WORK, "rows"), "w") as f:
        f.write(str(embedding_rows))
    rows.append(standalone_embedding_gen())
    steps = measure_steps(WORK)
    os.makedirs(common.RESULTS_DIR, exist_ok=True)
    with open(RESULTS, "w") as f:
        json.dump({"embedding_rows": embedding_rows, "pushed": pushed, "rows": rows,
                   "steps": steps}, f, indent=2)
        f.write("\n")
    _print(rows, embedding_rows)
    _print_steps(steps, embedding_rows)
    print(f"pushed a blessed model: {pushed}")


def standalone_embedding_gen():
    """EmbeddingGen's job alone (build_embedding, as bench-ingest runs it: a fresh process, the
    input read once beforehand), on the project run's vocabulary and vector file, with the
    pipeline's Beam options: what the component's time in the pipeline is compared with."""
    from benchmarks import bench_ingest

    vocabularies = os.path.join(WORK, "project", "root", "VocabularyGen", "vocabulary")
    [vocabulary] = [os.path.join(vocabularies, name, "vocabulary.txt")
                    for name in os.listdir(vocabularies)]
    _, vectors = prepare()
    assert bench_ingest.RUNNER_ARGS["processes"] == BEAM_ARGS  # The pipeline's Beam options.
    seconds, peak_mb, _, stages = bench_ingest.run_measured(["processes", vectors, vocabulary])
    return {"variant": "project", "component": STANDALONE, "seconds": round(seconds, 2),
            "peak_rss_mb": round(peak_mb), "own_work_s": round(stages["beam_job"], 2)}


STANDALONE = "EmbeddingGen's job alone"


def steps_only(base_rows=None):
    """The step figures alone (no pipeline run): on the last pipeline run's embedding size,
    or base_rows."""
    os.makedirs(WORK, exist_ok=True)
    if base_rows is not None:
        with open(os.path.join(WORK, "rows"), "w") as f:
            f.write(str(base_rows))
    with open(os.path.join(WORK, "rows")) as f:
        embedding_rows = int(f.read())
    steps = measure_steps(WORK)
    _print_steps(steps, embedding_rows)
    return steps


def _print(rows, embedding_rows):
    by = {(r["variant"], r["component"]): r for r in rows}
    components = list(dict.fromkeys(r["component"] for r in rows
                                    if r["component"] not in ("total", STANDALONE)))
    print("| component | project s | project peak RSS MB | usual s | usual peak RSS MB |")
    print("| --- | --- | --- | --- | --- |")
    for name in components + ["total", STANDALONE]:
        cells = []
        for variant in ("project", "usual"):
            row = by.get((variant, name))
            cells += [f"{row['seconds']:.1f}", str(row["peak_rss_mb"])] if row else ["", ""]
        print(f"| {name} | " + " | ".join(cells) + " |")
    # Where each of the project's components spent its time (benchmarks/accounting.py).
    print("\n| project component | seconds | " + " | ".join(accounting.PHASES) + " |")
    print("| --- | --- |" + " --- |" * len(accounting.PHASES))
    for name in components:
        row = by.get(("project", name))
        if row and "own_work_s" in row:
            print(f"| {name} | {row['seconds']:.1f} | " + " | ".join(
                f"{row.get(f'{phase}_s', 0.0):.1f}" for phase in accounting.PHASES) + " |")
    project, usual = by[("project", "total")], by[("usual", "total")]
    trainer = by[("project", "EmbeddingTrainer")]["peak_rss_mb"]
    usual_trainer = by[("usual", "Trainer")]["peak_rss_mb"]
    print(f"\nembedding: {embedding_rows} x {DIMENSION}")
    ratios = {"total time": project["seconds"] / usual["seconds"],
              "trainer peak RSS": trainer / usual_trainer,
              "EmbeddingGen in the pipeline / alone": by[("project", "EmbeddingGen")]["seconds"]
              / by[("project", STANDALONE)]["seconds"]}
    targets = {"total time": 0.5, "trainer peak RSS": 0.6,
               "EmbeddingGen in the pipeline / alone": 1.5}
    for name, ratio in ratios.items():
        print(f"{name}: {ratio:.2f} (target <= {targets[name]:.2f}): "
              f"{'met' if ratio <= targets[name] else 'NOT met'}")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "run":
        run_variant(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 4 and sys.argv[1] == "step":
        time_steps(sys.argv[2], sys.argv[3])
    elif len(sys.argv) in (2, 3) and sys.argv[1] == "steps":
        steps_only(int(sys.argv[2]) if len(sys.argv) == 3 else None)
    elif len(sys.argv) == 4 and sys.argv[1] == "profile":
        profile_steps(sys.argv[2], sys.argv[3])
    else:
        main()
