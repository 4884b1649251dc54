"""The work tests/test_object_storage.py runs against the S3 emulator, each in a process of its
own: `python -m tests.s3_jobs COMMAND ...` with the emulator's environment.

A process that used s3:// through tensorflow-io aborts at exit (object_storage.finish), so
pytest's own process never does: it runs these, and checks the bucket with boto3. The same
functions run in pytest's process on local paths, for the reference the bucket is compared with.
Each command prints one line `RESULT <json>` last.

    embed VOCABULARY VECTORS OUT...  EmbeddingGen's job (build_embedding), into each OUT in
                                   turn; --markers prints `MARK staging|publish|move|published`
                                   as it gets there (move: each entry of the staging directory)
    attempt VOCABULARY VECTORS OUT  EmbeddingGen's job expected to fail: its error (class,
                                   message) and the seconds build_embedding took to raise it
    check URI...                   what a reader accepts: EmbeddingArtifact(uri), then verify()
    rerun VOCABULARY VECTORS URI...  per URI: check, embed into it, check again
    restore ROOT VECTORS OLD NEW   restore and warm start: restore_scenario
"""

import argparse
import json
import logging
import os
import sys
import time

import numpy as np


def build(vocabulary, vectors, out, *, num_shards=3, range_bytes=None, workers=0,
          markers=False):
    """build_embedding on the FnApiRunner, with `workers` worker processes (0: in this
    process); returns its seconds by stage."""
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from tfx_embeddings.components import embedding_artifact, object_storage
    from tfx_embeddings.components.embedding_gen import beam_impl
    from tfx_embeddings.components.embedding_gen.build import STAGE_LOGGER, build_embedding

    if range_bytes:
        beam_impl.RANGE_BYTES = range_bytes  # Read when the job is built, here.
    if markers and not hasattr(embedding_artifact.publish, "marked"):  # For a test that kills
        # the run at one of these moments. The functions themselves run unchanged.
        for module, name, mark in ((embedding_artifact, "staging_dir", "staging"),
                                   (embedding_artifact, "publish", "publish"),
                                   (object_storage, "move", "move")):
            original = getattr(module, name)

            def marked(*args, _original=original, _mark=mark, **kwargs):
                print(f"MARK {_mark} {time.time()}", flush=True)
                result = _original(*args, **kwargs)
                if _mark == "publish":
                    print(f"MARK published {time.time()}", flush=True)
                return result

            marked.marked = True
            setattr(module, name, marked)
    args = (["--runner=FnApiRunner", "--direct_running_mode=multi_processing",
             f"--direct_num_workers={workers}"] if workers else ["--runner=FnApiRunner"])
    stages = {}

    class Stages(logging.Handler):
        def emit(self, record):
            stages.update(getattr(record, "stage_seconds", {}))

    logging.getLogger(STAGE_LOGGER.name).addHandler(Stages())
    build_embedding(vocabulary, vectors, out, num_shards=num_shards, row_layout="padded",
                    make_pipeline=lambda: beam.Pipeline(options=PipelineOptions(args)))
    return stages


def attempt(vocabulary, vectors, out):
    """build_embedding, which should fail: {"type", "error", "seconds"} (seconds from the call
    to its error), or {"type": None} if it published."""
    from tfx_embeddings.components.embedding_gen.build import build_embedding

    started = time.monotonic()
    try:
        build_embedding(vocabulary, vectors, out, num_shards=2, row_layout="tft")
        return {"type": None}
    except Exception as e:
        return {"type": type(e).__name__, "error": str(e),
                "seconds": time.monotonic() - started}


def check(uris):
    """Per uri: {"accepted": bool, "error": the reader's refusal}."""
    from tfx_embeddings.components import embedding_artifact

    found = {}
    for uri in uris:
        try:
            embedding_artifact.EmbeddingArtifact(uri).verify()
            found[uri] = {"accepted": True, "error": None}
        except embedding_artifact.CheckpointError as e:
            found[uri] = {"accepted": False, "error": str(e)}
    return found


def restore_scenario(root, vectors, old_vocabulary, new_vocabulary, out_npz):
    """A previous model's trained embedding and this run's artifact, both under root; the rows
    the restore layer gives from this run's artifact alone (cold) and warm-started from the
    previous model (warm), saved to out_npz (a local file), with the warm start's counts."""
    import tensorflow as tf

    from tfx_embeddings.components.embedding_trainer import restore, warmstart

    old_artifact, new_artifact = f"{root}/old_artifact", f"{root}/new_artifact"
    build(old_vocabulary, vectors, old_artifact, num_shards=2)
    layer = restore.pretrained_embedding(old_artifact)
    layer.build((None,))
    for i, part in enumerate(layer.partitions):
        part.assign_add(tf.fill(part.shape, 100.0 + i))  # "Training" moved every row.
    model_dir = f"{root}/old_model"
    warmstart.export_trained_embedding(layer.partitions, old_artifact, model_dir)
    build(new_vocabulary, vectors, new_artifact, num_shards=3)
    cold_layer = restore.pretrained_embedding(new_artifact)
    rows = cold_layer.input_dim
    cold = cold_layer(tf.constant([np.arange(rows)])).numpy()[0]
    warm_layer = restore.pretrained_embedding(
        new_artifact, base_model=os.path.join(model_dir, "Format-Serving"))
    warm = warm_layer(tf.constant([np.arange(rows)])).numpy()[0]
    counts = warm_layer.warm_start
    np.savez(out_npz, cold=cold, warm=warm,
             counts=np.array([counts.previous_model, counts.pretrained, counts.initializer]))


def main(argv=None):
    from tfx_embeddings.components import object_storage

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    embed = commands.add_parser("embed")
    embed.add_argument("vocabulary")
    embed.add_argument("vectors")
    embed.add_argument("outs", nargs="+")
    embed.add_argument("--num-shards", type=int, default=3)
    embed.add_argument("--range-bytes", type=int)
    embed.add_argument("--workers", type=int, default=0)
    embed.add_argument("--markers", action="store_true")
    attempt_ = commands.add_parser("attempt")
    attempt_.add_argument("vocabulary")
    attempt_.add_argument("vectors")
    attempt_.add_argument("out")
    check_ = commands.add_parser("check")
    check_.add_argument("uris", nargs="+")
    rerun = commands.add_parser("rerun")
    rerun.add_argument("vocabulary")
    rerun.add_argument("vectors")
    rerun.add_argument("uris", nargs="+")
    restore_ = commands.add_parser("restore")
    restore_.add_argument("root")
    restore_.add_argument("vectors")
    restore_.add_argument("old_vocabulary")
    restore_.add_argument("new_vocabulary")
    restore_.add_argument("out_npz")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    status = 0
    try:
        if args.command == "embed":
            result = [build(args.vocabulary, args.vectors, out, num_shards=args.num_shards,
                            range_bytes=args.range_bytes, workers=args.workers,
                            markers=args.markers) for out in args.outs]
        elif args.command == "attempt":
            result = attempt(args.vocabulary, args.vectors, args.out)
        elif args.command == "check":
            result = check(args.uris)
        elif args.command == "rerun":
            result = {}
            for uri in args.uris:
                before = check([uri])[uri]
                build(args.vocabulary, args.vectors, uri)
                result[uri] = {"before": before, "after": check([uri])[uri]}
        else:
            restore_scenario(args.root, args.vectors, args.old_vocabulary,
                             args.new_vocabulary, args.out_npz)
            result = {}
        print("RESULT " + json.dumps(result), flush=True)
    except Exception:
        logging.exception("%s failed", args.command)
        status = 1
    object_storage.finish(status)


if __name__ == "__main__":
    main(sys.argv[1:])
