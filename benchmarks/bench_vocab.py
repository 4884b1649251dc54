"""The vocabulary benchmark (`make bench-vocab`): the project's Beam vocabulary against the ways
users compute one today, side by side in one run, on a 100,000-document corpus, top 50,000, then
the project and tft.vocabulary on 1,000,000 documents (where the runner's fixed cost no longer
decides), and the project there once more on the demo's runner (worker threads, not processes).

  python benchmarks/bench_vocab.py            # all rows; writes benchmarks/results/vocab.json
  python benchmarks/bench_vocab.py --case NAME CORPUS OUT   # one measurement, in this process

The Beam rows read what they read in a TFX pipeline: ExampleGen's output, gzipped TFRecord files
of tf.Examples (4 files here, a `text` feature per document). The project's job is VocabularyGen's
(`ReadDocuments` then `WriteVocabulary` with pipeline/text.py's tokenizer); tft's is Transform's:
TFXIO's `TFExampleRecord` record batches into `tft_beam.AnalyzeDataset` with `tft.vocabulary`
(the same tokenizer as a TensorFlow function, `store_frequency`). Keras's adapt and the Counter
read the same documents as a text file, one per line.

Each row runs in a process of its own, the 100k rows 3 times in turn. seconds: the fastest
run's wall time, start to exit, imports included (as in the anchors of DESIGN.md). peak_rss_mb:
the largest VmHWM among the process and its children (Beam's worker processes), polled while it
runs, over the runs. beam_floor and beam_floor_tf are the same 2-worker Beam job doing nothing
with the examples (Beam's ReadFromTFRecord, len, sum), without and with TensorFlow imported in
its workers: what any Beam job pays to read them (the project's workers import no TensorFlow on
this ASCII corpus, tft's must). The corpora (like ../shared/anchors/gen_corpus.py: 20-200 tokens
per document, Zipf 1.07 over 200k types) are generated once into benchmarks/work/.
"""

import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = os.path.join(ROOT, "benchmarks", "work")
RESULTS = os.path.join(ROOT, "benchmarks", "results", "vocab.json")
TOP_K = 50_000
REPEATS = 3  # Of each 100k row: the fastest run counts (others' jobs only add time).
BEAM_ARGS = ["--runner=FnApiRunner", "--direct_running_mode=multi_processing",
             "--direct_num_workers=2"]
# The demo's runner (configs/demo.yaml): 2 worker threads in one process. tft is measured with
# worker processes, its faster way here (with threads, once: 275 s on 1M documents).
THREADS_ARGS = ["--runner=FnApiRunner", "--direct_running_mode=multi_threading",
                "--direct_num_workers=2"]


def generate_corpus(n_docs, path):
    import numpy as np
    rng = np.random.default_rng(1)
    types = 200_000
    p = 1.0 / np.arange(1, types + 1) ** 1.07
    p /= p.sum()
    words = np.array([f"tok{i}" for i in range(types)])
    with open(path + ".tmp", "w") as f:
        for start in range(0, n_docs, 10_000):
            lengths = rng.integers(20, 200, size=min(10_000, n_docs - start))
            ids = rng.choice(types, size=lengths.sum(), p=p)
            bounds = np.cumsum(lengths)[:-1]
            f.write("\n".join(" ".join(doc) for doc in np.split(words[ids], bounds)) + "\n")
    os.rename(path + ".tmp", path)


def write_examples(corpus, directory, shards=4):
    """The corpus as ExampleGen writes it: gzipped TFRecord files of tf.Examples."""
    import tensorflow as tf
    os.makedirs(directory + ".tmp", exist_ok=True)
    writers = [tf.io.TFRecordWriter(os.path.join(directory + ".tmp", f"data_tfrecord-{i:05d}-of-"
                                                 f"{shards:05d}.gz"), options="GZIP")
               for i in range(shards)]
    with open(corpus, "rb") as f:
        for number, line in enumerate(f):
            example = tf.train.Example(features=tf.train.Features(feature={
                "text": tf.train.Feature(bytes_list=tf.train.BytesList(value=[line.rstrip(
                    b"\n")]))}))
            writers[number % shards].write(example.SerializeToString())
    for writer in writers:
        writer.close()
    os.rename(directory + ".tmp", directory)


def _pattern(examples):
    return os.path.join(examples, "*.gz")


def run_project(examples, out, beam_args=BEAM_ARGS):
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from tfx_embeddings.components.vocabulary_gen import beam_impl
    from tfx_embeddings.pipeline.demo import text
    with beam.Pipeline(options=PipelineOptions(beam_args)) as pipeline:
        _ = (pipeline
             | beam_impl.ReadDocuments(_pattern(examples), "text")
             | beam_impl.WriteVocabulary(out, text.tokenize, top_k=TOP_K,
                                         store_frequency=True))


def run_tft(examples, out):
    import tempfile

    import apache_beam as beam
    import tensorflow as tf
    import tensorflow_transform as tft
    import tensorflow_transform.beam as tft_beam
    from apache_beam.options.pipeline_options import PipelineOptions
    from tensorflow_transform.tf_metadata import schema_utils
    from tfx_bsl.public import tfxio

    from tfx_embeddings.pipeline.demo import text

    def preprocessing_fn(inputs):
        tft.vocabulary(text.tokenize(inputs["text"]), top_k=TOP_K,
                       vocab_filename="vocab", store_frequency=True)
        return {"text": inputs["text"]}

    schema = schema_utils.schema_from_feature_spec({"text": tf.io.FixedLenFeature([], tf.string)})
    source = tfxio.TFExampleRecord(_pattern(examples), schema=schema)  # As TFX's Transform.
    with beam.Pipeline(options=PipelineOptions(BEAM_ARGS)) as pipeline, \
            tft_beam.Context(temp_dir=tempfile.mkdtemp(dir=WORK)):
        data = pipeline | source.BeamSource()
        graph_dir, _ = (data, source.TensorAdapterConfig()) | tft_beam.AnalyzeDataset(
            preprocessing_fn)
        _ = graph_dir | beam.Map(lambda graph: tf.io.gfile.copy(
            os.path.join(graph, "assets", "vocab"), out, overwrite=True))


def run_keras_adapt(examples, out):
    corpus = examples[:-len("_examples")] + ".txt"
    import tensorflow as tf
    layer = tf.keras.layers.TextVectorization(max_tokens=TOP_K, standardize=None)
    layer.adapt(tf.data.TextLineDataset(corpus).batch(1024))


def run_counter(examples, out):
    from collections import Counter
    corpus = examples[:-len("_examples")] + ".txt"
    counts = Counter()
    with open(corpus) as f:
        for line in f:
            counts.update(line.split())
    _ = [w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))][:TOP_K]


def run_beam_floor(examples, out, import_tensorflow=False):
    """The same Beam job with no work: read, len, sum. What any 2-worker DirectRunner job costs."""
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    class Length(beam.DoFn):
        def setup(self):
            if import_tensorflow:  # As any job whose workers run TF ops (tft's) must.
                import tensorflow  # noqa: F401

        def process(self, line):
            yield len(line)

    with beam.Pipeline(options=PipelineOptions(BEAM_ARGS)) as pipeline:
        _ = (pipeline
             | beam.io.ReadFromTFRecord(_pattern(examples))
             | beam.ParDo(Length())
             | beam.CombineGlobally(sum))


CASES = {"project": run_project, "tft": run_tft, "keras_adapt": run_keras_adapt,
         "counter": run_counter, "beam_floor": run_beam_floor,
         "beam_floor_tf": lambda corpus, out: run_beam_floor(corpus, out, import_tensorflow=True),
         "project_threads": lambda corpus, out: run_project(corpus, out, THREADS_ARGS)}
ROWS_100K = ["project", "tft", "keras_adapt", "counter", "beam_floor", "beam_floor_tf"]


def _peak_mb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            return next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmHWM"))
    except (OSError, StopIteration):  # Gone, or a zombie.
        return 0.0


def measure(name, case, corpus, out):
    """Runs one case in a new process; returns its row (largest VmHWM over its process tree)."""
    import psutil
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [ROOT, os.environ.get("PYTHONPATH")])), "TF_CPP_MIN_LOG_LEVEL": "3"}
    with open(os.path.join(WORK, f"{name}.log"), "w+") as log:  # Not a pipe: a full one stalls.
        started = time.time()
        process = subprocess.Popen([sys.executable, __file__, "--case", case, corpus, out],
                                   env=env, stdout=log, stderr=subprocess.STDOUT)
        parent, peaks = psutil.Process(process.pid), {}
        while process.poll() is None:
            try:
                tree = [parent] + parent.children(recursive=True)
            except psutil.NoSuchProcess:
                tree = []
            for p in tree:
                peaks[p.pid] = max(peaks.get(p.pid, 0.0), _peak_mb(p.pid))
            time.sleep(0.05)
        seconds = time.time() - started
        log.seek(0)
        output = log.read()
    if process.returncode:
        sys.exit(f"{name} failed:\n{output[-3000:]}")
    reported = [line for line in output.splitlines() if line.startswith('{"peak_mb"')]
    peaks[process.pid] = max(peaks.get(process.pid, 0.0), json.loads(reported[-1])["peak_mb"])
    return {"name": name, "seconds": round(seconds, 2), "peak_rss_mb": round(max(peaks.values()))}


def corpus_of(n_docs):
    """The directory of the corpus's examples (generated once, with the text file beside)."""
    path = os.path.join(WORK, f"corpus_{n_docs}.txt")
    if not os.path.exists(path):
        print(f"generating {path}", flush=True)
        generate_corpus(n_docs, path)
    examples = os.path.join(WORK, f"corpus_{n_docs}_examples")
    if not os.path.exists(examples):
        print(f"writing {examples}", flush=True)
        write_examples(path, examples)
    return examples


def main():
    os.makedirs(WORK, exist_ok=True)
    corpus = corpus_of(100_000)
    outputs = {case: os.path.join(WORK, f"vocab_{case}.txt") for case in ROWS_100K}
    runs = {case: [] for case in ROWS_100K}
    for _ in range(REPEATS):  # Round-robin, so a busy spell of the machine hits every case.
        for case in ROWS_100K:
            runs[case].append(measure(case, case, corpus, outputs[case]))
            print(f"{case:14s} {runs[case][-1]['seconds']:8.2f} s "
                  f"{runs[case][-1]['peak_rss_mb']:6d} MB", flush=True)
    rows = [{"name": case, "seconds": min(r["seconds"] for r in runs[case]),
             "peak_rss_mb": max(r["peak_rss_mb"] for r in runs[case])} for case in ROWS_100K]
    with open(outputs["project"], "rb") as ours, open(outputs["tft"], "rb") as theirs:
        identical = ours.read() == theirs.read()
    # At 1M documents the runner's fixed cost no longer decides: the project against tft.
    for case in ("project", "tft", "project_threads"):
        rows.append(measure(f"{case}_1m", case, corpus_of(1_000_000),
                            os.path.join(WORK, f"vocab_{case}_1m.txt")))
        print(f"{case}_1m {rows[-1]['seconds']:8.2f} s {rows[-1]['peak_rss_mb']:6d} MB",
              flush=True)
    for case in ("project", "project_threads"):
        with open(os.path.join(WORK, f"vocab_{case}_1m.txt"), "rb") as ours, \
                open(os.path.join(WORK, "vocab_tft_1m.txt"), "rb") as theirs:
            identical = identical and ours.read() == theirs.read()
    by_name = {row["name"]: row for row in rows}
    print(f"\n| job (top {TOP_K:,}) | seconds | peak RSS (MB) |\n| --- | --- | --- |")
    for row in rows:
        print(f"| {row['name']} | {row['seconds']:.2f} | {row['peak_rss_mb']} |")
    project = by_name["project"]
    print(f"\nidentical to tft.vocabulary's file (100k and 1M documents, both runners): "
          f"{identical}")
    print(f"project / tft time:     {project['seconds'] / by_name['tft']['seconds']:.2f}x "
          f"(target <= 0.2x: {0.2 * by_name['tft']['seconds']:.2f} s; a 2-worker Beam job doing "
          f"nothing: {by_name['beam_floor']['seconds']:.2f} s)")
    print(f"project / counter time: {project['seconds'] / by_name['counter']['seconds']:.2f}x "
          f"(target <= 3x)")
    for name, runner in (("project_1m", "2 worker processes, as tft"),
                         ("project_threads_1m", "2 worker threads, the demo's runner")):
        print(f"project / tft time, 1M documents, {runner}: "
              f"{by_name[name]['seconds'] / by_name['tft_1m']['seconds']:.3f}x (target <= 0.1x)")
    print(f"1M / 100k peak RSS:     "
          f"{by_name['project_1m']['peak_rss_mb'] / project['peak_rss_mb']:.2f}x "
          f"(target <= 1.5x)")
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w") as f:
        json.dump({"identical_to_tft": identical, "rows": rows}, f, indent=2)
        f.write("\n")
    print(f"wrote {os.path.relpath(RESULTS, ROOT)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--case", nargs=3, metavar=("NAME", "EXAMPLES", "OUT"))
    args = parser.parse_args()
    if args.case:
        name, corpus, out = args.case
        CASES[name](corpus, out)
        print(json.dumps({"peak_mb": _peak_mb(os.getpid())}), flush=True)
    else:
        main()
