"""Ingest benchmark: EmbeddingGen's Beam job against the ways people parse vector files today.

    python -m benchmarks.bench_ingest [--rows 400000] [--dim 300]

Generates (once, in benchmarks/work/) a GloVe text file of rows x dim random vectors (about 1 GB
for 400k x 300), one twice as large, the first zipped as GloVe ships (a deflated member), a
fastText model of the same words plus 2,000,000 n-gram buckets (2.9 GB), and a vocabulary
(`count token` lines) of 100k of its tokens plus 11,111 absent ones, 10% of the vocabulary (from
the model, those take subword vectors). Each measurement runs in its own process, its input
files read once beforehand so that they are in the page cache; the harness polls that process
tree with psutil for the peak RSS of its largest process. EmbeddingGen rows also give the job's
seconds by stage. Writes benchmarks/results/ingest.json.
"""

import argparse
import json
import os
import struct
import sys
import time
import zipfile

import numpy as np
import psutil

HERE = os.path.dirname(os.path.abspath(__file__))
WORK = os.path.join(HERE, "work")
RESULTS = os.path.join(HERE, "results", "ingest.json")
BUCKETS = 2_000_000  # fastText's default, and its models'.
# The Beam runner of each EmbeddingGen row: 2 worker threads in the job's own process (what the
# demo's config runs: no worker process to start; the parsing's numpy, Arrow and hashing release
# the GIL), or 2 worker processes.
RUNNER_ARGS = {
    "processes": ["--runner=FnApiRunner", "--direct_running_mode=multi_processing",
                  "--direct_num_workers=2"],
    "threads": ["--runner=FnApiRunner", "--direct_running_mode=multi_threading",
                "--direct_num_workers=2"],
}
STAGES = ("inspect", "beam_job", "read", "join", "parse", "write", "merge", "verify", "publish")


def write_glove(path, rows, dim, seed):
    """Tokens w<i>, values %.5f formatted with numpy (a Python format loop would take minutes)."""
    rng = np.random.default_rng(seed)
    digits = np.frombuffer(b"0123456789", np.uint8)
    with open(path + ".tmp", "wb") as f:
        for s in range(0, rows, 20000):
            n = min(20000, rows - s)
            scaled = np.rint(np.clip(rng.standard_normal((n, dim)), -9.99999, 9.99999) * 1e5)
            magnitude = np.abs(scaled).astype(np.int64)
            # Per value: " ", sign (or a filler byte 0 dropped below), d.ddddd
            chars = np.zeros((n, dim, 9), np.uint8)
            chars[:, :, 0] = ord(" ")
            chars[:, :, 1] = np.where(scaled < 0, ord("-"), 0)
            chars[:, :, 2] = digits[magnitude // 100000]
            chars[:, :, 3] = ord(".")
            for k in range(5):
                chars[:, :, 8 - k] = digits[(magnitude // 10 ** k) % 10]
            body = chars.reshape(n, -1)
            values = [bytes(line[line != 0]) for line in body]
            f.write(b"".join(b"w%d%s\n" % (s + i, v) for i, v in enumerate(values)))
    os.replace(path + ".tmp", path)


def write_fasttext_bin(path, words, dim, bucket, seed):
    """A fastText model file (new format) of words w0..w<words-1> and bucket n-gram rows of
    random vectors; its output matrix is empty (EmbeddingGen and gensim's
    load_facebook_vectors read only the input matrix)."""
    rng = np.random.default_rng(seed)
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<2i", 793712314, 12))
        f.write(struct.pack("<12id", dim, 5, 5, 5, 5, 1, 2, 1, bucket, 3, 6, 100, 1e-4))
        f.write(struct.pack("<3iqq", words, words, 0, words * 10, -1))
        f.write(b"".join(b"w%d\0" % i + struct.pack("<qb", 10, 0) for i in range(words)))
        f.write(struct.pack("<?2q", False, words + bucket, dim))
        for start in range(0, words + bucket, 100_000):
            n = min(100_000, words + bucket - start)
            f.write(rng.uniform(-0.1, 0.1, (n, dim)).astype("<f4").tobytes())
        f.write(struct.pack("<?2q", False, 0, dim))
    os.replace(path + ".tmp", path)


def prepare(rows, dim):
    os.makedirs(WORK, exist_ok=True)
    files = {}
    path = os.path.join(WORK, f"fasttext_{rows}x{dim}_{BUCKETS}_buckets.bin")
    if not os.path.exists(path):
        print(f"generating {path}", flush=True)
        write_fasttext_bin(path, rows, dim, BUCKETS, seed=2)
    files["fasttext_bin"] = path
    files["vectors"] = prepare_glove("vectors", rows, dim)
    files["vectors_2x"] = prepare_glove("vectors_2x", 2 * rows, dim)
    archive = os.path.join(WORK, f"vectors_{rows}x{dim}.zip")
    if not os.path.exists(archive):  # As GloVe ships: a deflated member.
        print(f"generating {archive}", flush=True)
        with zipfile.ZipFile(archive + ".tmp", "w", zipfile.ZIP_DEFLATED) as z:
            z.write(files["vectors"], os.path.basename(files["vectors"]))
        os.replace(archive + ".tmp", archive)
    files["vectors_zip"] = archive
    files["vocabulary"] = prepare_vocabulary(rows)
    return files


def prepare_glove(name, rows, dim):
    """WORK/<name>_<rows>x<dim>.txt, generated if missing; returns its path."""
    os.makedirs(WORK, exist_ok=True)
    path = os.path.join(WORK, f"{name}_{rows}x{dim}.txt")
    if not os.path.exists(path):
        print(f"generating {path}", flush=True)
        write_glove(path, rows, dim, seed=0)
    return path


def prepare_vocabulary(rows):
    """WORK/vocabulary_<rows>.txt (100k of the file's tokens and 10% absent ones), generated if
    missing; returns its path."""
    os.makedirs(WORK, exist_ok=True)
    vocabulary = os.path.join(WORK, f"vocabulary_{rows}.txt")
    if not os.path.exists(vocabulary):
        rng = np.random.default_rng(1)
        present = [f"w{i}" for i in rng.choice(rows, size=min(100_000, rows), replace=False)]
        tokens = present + [f"absent{i}" for i in range(len(present) // 9)]  # 10% absent.
        rng.shuffle(tokens)
        with open(vocabulary, "w") as f:
            f.writelines(f"{len(tokens) - i} {t}\n" for i, t in enumerate(tokens))
    return vocabulary


def warm(paths):
    """Reads each local file once, so that every job starts with its input in the page cache
    (the benchmark measures parsing, not the disk): the machine's page cache does not hold all
    of WORK, and which files an earlier job's memory evicted would otherwise decide a row."""
    for path in paths:
        if os.path.isfile(path):
            with open(path, "rb", buffering=0) as f:
                while f.read(16 << 20):
                    pass


def run_measured(args):
    """Runs `python -m benchmarks.bench_ingest --one ...` on its input files, read once
    beforehand (`warm`); returns (seconds, peak RSS MB, the process's wall seconds,
    EmbeddingGen's seconds by stage or None)."""
    warm(args[1:])
    started = time.time()
    process = psutil.Popen([sys.executable, "-m", "benchmarks.bench_ingest", "--one", *args],
                           cwd=os.path.dirname(HERE))
    peak = 0
    while process.poll() is None:
        try:
            tree = [process] + process.children(recursive=True)
            peak = max([peak] + [p.memory_info().rss for p in tree if p.is_running()])
        except psutil.Error:
            pass
        time.sleep(0.05)
    if process.returncode:
        raise SystemExit(f"{args} failed with exit status {process.returncode}")
    with open(os.path.join(WORK, "last_seconds")) as f:
        measured = json.load(f)
    return measured["seconds"], peak / 2 ** 20, time.time() - started, measured.get("stages")


def one(how, path, vocabulary):
    """The measured work, in this process; the time excludes interpreter start and imports."""
    import csv
    import logging
    import tempfile
    stages = None
    if how in RUNNER_ARGS:  # EmbeddingGen, on that runner.
        import apache_beam as beam
        from apache_beam.options.pipeline_options import PipelineOptions

        from tfx_embeddings.components.embedding_gen.build import STAGE_LOGGER, build_embedding

        class Stages(logging.Handler):
            def emit(self, record):
                nonlocal stages
                stages = getattr(record, "stage_seconds", stages)

        STAGE_LOGGER.addHandler(Stages())
        STAGE_LOGGER.setLevel(logging.INFO)  # Python's default, WARNING, drops it.
        started = time.time()
        with tempfile.TemporaryDirectory(dir=WORK) as out:
            build_embedding(
                vocabulary, path, os.path.join(out, "embedding"), row_layout="padded",
                make_pipeline=lambda: beam.Pipeline(options=PipelineOptions(RUNNER_ARGS[how])))
    elif how == "gensim":
        from gensim.models import KeyedVectors
        started = time.time()
        KeyedVectors.load_word2vec_format(path, binary=False, no_header=True)
    elif how == "tfhub_loop":  # The TF-Hub text_embeddings exporter's loop.
        started = time.time()
        vocab, rows = [], []
        with open(path) as f:
            for line in f:
                parts = line.rstrip().split()
                vocab.append(parts[0])
                rows.append([float(x) for x in parts[1:]])
        np.array(rows, dtype=np.float32)
    elif how == "pandas":
        import pandas as pd
        started = time.time()
        frame = pd.read_csv(path, sep=" ", header=None, quoting=csv.QUOTE_NONE, engine="c",
                            na_filter=False, dtype={0: str})
        frame.iloc[:, 1:].to_numpy(np.float32)
    seconds = time.time() - started
    with open(os.path.join(WORK, "last_seconds"), "w") as f:
        json.dump({"seconds": seconds, "stages": stages}, f)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=400_000)
    parser.add_argument("--dim", type=int, default=300)
    parser.add_argument("--only", nargs="*", help="measure only these rows (names as in the table)")
    parser.add_argument("--one", nargs=3, metavar=("HOW", "PATH", "VOCABULARY"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        one(*args.one)
        from tfx_embeddings.components import object_storage

        return object_storage.finish(0)  # After s3:// (the _s3 row), tensorflow-io would abort.
    files = prepare(args.rows, args.dim)
    jobs = [("embeddinggen", "threads", "vectors"),
            ("embeddinggen_processes", "processes", "vectors"),
            ("gensim", "gensim", "vectors"), ("tfhub_loop", "tfhub_loop", "vectors"),
            ("pandas", "pandas", "vectors"),
            ("embeddinggen_2x", "threads", "vectors_2x"),
            ("embeddinggen_zip", "threads", "vectors_zip"),
            ("embeddinggen_fasttext_bin", "threads", "fasttext_bin")]
    rows = []
    for name, how, data in jobs:
        if args.only and name not in args.only:
            continue
        seconds, peak_mb, wall, stages = run_measured([how, files[data], files["vocabulary"]])
        print(f"{name:26s} {seconds:7.2f} s  {peak_mb:7.0f} MB  (process {wall:.1f} s)",
              flush=True)
        rows.append({"name": name, "seconds": round(seconds, 2), "peak_rss_mb": round(peak_mb),
                     **({"stages": {k: round(v, 2) for k, v in stages.items()}}
                        if stages else {})})
    from benchmarks import s3_ingest

    rows += s3_ingest.rows(args.only, files, run_measured)  # The vector file in a bucket.
    base = next((r for r in rows if r["name"] == "embeddinggen"), None)
    print("\n| job | seconds | peak RSS (MB) | time / EmbeddingGen |\n| --- | --- | --- | --- |")
    for r in rows:
        ratio = f"{r['seconds'] / base['seconds']:.2f}x" if base else "-"
        print(f"| {r['name']} | {r['seconds']:.2f} | {r['peak_rss_mb']} | {ratio} |")
    staged = [r for r in rows if "stages" in r]
    if staged:  # Where EmbeddingGen's time goes: driver stages, and worker time summed.
        print("\nEmbeddingGen seconds by stage (read, join, parse, write: summed over the "
              "workers, inside beam_job)\n")
        print("| job | " + " | ".join(STAGES) + " |\n|" + " --- |" * (len(STAGES) + 1))
        for r in staged:
            print(f"| {r['name']} | " + " | ".join(f"{r['stages'].get(s, 0):.2f}"
                                                  for s in STAGES) + " |")
    print_targets({r["name"]: r for r in rows})
    if not args.only:
        os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
        with open(RESULTS, "w") as f:
            json.dump({"file": os.path.basename(files["vectors"]),
                       "file_bytes": os.path.getsize(files["vectors"]), "rows": rows}, f, indent=2)
            f.write("\n")


def print_targets(rows):
    """The targets of `make bench-ingest` (issue 22 and 21), each with its figure: met or not."""
    def check(text, figure, met):
        print(f"{text}: {figure} ({'met' if met else 'NOT met'})")

    print()
    for name in ("embeddinggen", "embeddinggen_processes"):
        if name not in rows:
            continue
        seconds, rss = rows[name]["seconds"], rows[name]["peak_rss_mb"]
        if "pandas" in rows:
            ratio = seconds / rows["pandas"]["seconds"]
            check(f"{name} / pandas time (target <= 0.5x)", f"{ratio:.2f}x", ratio <= 0.5)
        if "gensim" in rows:
            ratio = rows["gensim"]["seconds"] / seconds
            check(f"gensim / {name} time (target >= 12x)", f"{ratio:.1f}x", ratio >= 12)
        check(f"{name} peak RSS (target <= 1024 MB)", f"{rss} MB", rss <= 1024)
    if "embeddinggen" in rows:
        base = rows["embeddinggen"]["seconds"]
        for name, text, limit in (("embeddinggen_2x", "the 2x file / the 1x file", 2.1),
                                  ("embeddinggen_fasttext_bin", "fastText .bin / text", 1.3),
                                  ("embeddinggen_zip", ".zip / plain", 1.5)):
            if name in rows:
                ratio = rows[name]["seconds"] / base
                check(f"{text} time (target <= {limit}x)", f"{ratio:.2f}x", ratio <= limit)


if __name__ == "__main__":
    main()
