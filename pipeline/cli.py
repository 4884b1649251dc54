"""Command line: run the pipeline, compile it for Kubeflow, inspect an embedding artifact.

    python -m tfx_embeddings.pipeline run --config configs/demo.yaml
    python -m tfx_embeddings.pipeline compile --pipeline my_pipeline:create_pipeline \
        --image IMAGE --output pipeline.yaml         # your pipeline, open-source Kubeflow 2.x
    python -m tfx_embeddings.pipeline compile --config configs/kubeflow.yaml --image IMAGE \
        --output pipeline.yaml                       # the demo pipeline
    python -m tfx_embeddings.pipeline compile --target vertex ... --output pipeline_job.json
    python -m tfx_embeddings.pipeline run-spec pipeline.yaml --python IMAGE_PYTHON ...
    python -m tfx_embeddings.pipeline inspect ARTIFACT_DIR
    python -m tfx_embeddings.pipeline retire --config configs/demo.yaml [--keep-runs N]
    python -m tfx_embeddings.pipeline flink start --run-dir DIR    # a Flink cluster here

(also installed as the `tfx-embeddings` command)

Every command prints only its own lines; the full log (TFX, Beam, TensorFlow) goes to a file:
`run`'s under the pipeline root, the others' to a temporary file, removed when the command
succeeds and named when it fails. `--verbose` shows the full log on the terminal too.
"""

import argparse
import json
import logging
import os
import sys
import tempfile

from ..components import object_storage

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # TFT and the model use Keras 2 (tf_keras).


def _run(args):
    from . import console as console_lib
    from .demo.config import load_config

    config = load_config(args.config)
    log_path = console_lib.log_path(config)
    console = console_lib.RunConsole(log_path, verbose=args.verbose)
    try:
        with console:  # Before TFX is imported: its import warnings belong to the log.
            console.print(f"Running {config.pipeline_name}; the full log: {log_path}")
            object_storage.use(config.pipeline_root, config.serving_dir, config.data.examples,
                               config.data.vectors, config.data.schema_file)
            from .demo import report, runners

            result = runners.run_local(config)
            console.print("\n" + console.times.table())
            if console.statements:
                console.print("\n" + console.statements_text())
            console.print("\n" + report.format_summary(report.summarize(config),
                                                         stated=bool(console.statements)))
            for label, what in (("healed", result.healed), ("retention", result.retired)):
                if what is not None and (what.retired or what.orphans or label == "retention"):
                    console.print(f"{label + ':':24s}{what.describe()}")
    except Exception as e:  # The project's message first, then where the rest is.
        said = console.statements_text()  # What it changed in the model, until it failed.
        sys.exit((f"{said}\n" if said else "")
                 + f"error: {_message(e)}\nthe full log: {log_path}")


def _quietly(args, work):
    """Runs work(console) with the full log in a temporary file: the terminal gets the lines
    work prints with console.print. The file is removed when work succeeds, named when it
    fails."""
    from . import console as console_lib

    descriptor, log_path = tempfile.mkstemp(prefix=f"tfx-embeddings-{args.command}-",
                                            suffix=".log")
    os.close(descriptor)
    try:
        with console_lib.RunConsole(log_path, verbose=args.verbose) as console:
            work(console)
    except Exception as e:  # The project's message first, then where the rest is.
        sys.exit(f"error: {_message(e)}\nthe full log: {log_path}")
    os.remove(log_path)


_OWN_ERRORS = ("ConfigError", "CheckpointError", "VectorFileError", "VocabularyFileError",
               "SpecRunError", "SpecError", "MetadataError", "ObjectStorageError",
               "PipelineError")


def _is_own_error(error):
    """One of the project's errors, which say what is wrong already (known by name, so that
    checking does not import TensorFlow)."""
    return (type(error).__name__ in _OWN_ERRORS
            and type(error).__module__.startswith("tfx_embeddings."))


def _message(error):
    return str(error) if _is_own_error(error) else f"{type(error).__name__}: {error}"


def _compile(args, console):
    output = args.output or _DEFAULT_OUTPUT[args.target]
    if args.pipeline:
        from .kubeflow.compiler import compile_for_kubeflow

        compile_for_kubeflow(_user_pipeline(args.pipeline), args.image, output,
                             target=args.target, parameter_values=dict(args.param))
    else:
        from .demo import runners
        from .demo.config import load_config

        if args.param:
            raise SystemExit("error: --param goes with --pipeline (a config's values are the "
                             "demo's defaults)")
        runners.compile_kubeflow(load_config(args.config), args.image, output, target=args.target)
    what = {"kubeflow": "open-source Kubeflow Pipelines spec (PipelineSpec, schema 2.1.0)",
            "vertex": "Vertex AI PipelineJob"}[args.target]
    console.print(f"{what} written to {output}")


def _user_pipeline(reference):
    """The tfx.dsl.Pipeline that MODULE:NAME names (NAME called if it is a function), the
    module imported from the working directory or the installed packages."""
    import importlib

    module_name, sep, name = reference.partition(":")
    if not sep or not module_name or not name:
        raise SystemExit(f"error: --pipeline {reference!r}: expected MODULE:NAME")
    sys.path.insert(0, os.getcwd())
    value = getattr(importlib.import_module(module_name), name)
    return value() if callable(value) else value


_DEFAULT_OUTPUT = {"kubeflow": "pipeline.yaml", "vertex": "pipeline_job.json"}


def _run_spec(args, console):
    from .kubeflow import run_spec

    run = run_spec.SpecRun(args.spec, args.pipeline_root, args.python, dict(args.param),
                           dict(args.env), metadata_path=args.metadata,
                           publish_logs=not args.no_publish_logs, namespace=args.namespace,
                           secrets=_secrets(args.secret), minio_endpoint=args.minio_endpoint)
    results = run.run(report=console.print)
    console.print("outputs (each task's log is its executor-logs artifact):")
    for task, result in results.items():
        for key, uri in sorted(result.outputs.items()):
            if key != run_spec.LOGS_OUTPUT:
                console.print(f"{task}.{key}: {uri}")


def _secrets(pairs):
    """{secret: {key: value}} of --secret NAME/KEY=VALUE."""
    secrets = {}
    for name_key, value in pairs:
        name, sep, key = name_key.partition("/")
        if not sep or not name or not key:
            raise SystemExit(f"error: --secret {name_key}={value}: expected NAME/KEY=VALUE")
        secrets.setdefault(name, {})[key] = value
    return secrets


def _name_value(text):
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def _retire(args, console):
    """Retention prints its own line ("retention: ..."), as in a run."""
    from .demo import runners
    from .demo.config import load_config

    runners.retire(load_config(args.config), args.keep_runs)


def _predict(args, console):
    import tensorflow as tf

    object_storage.use(args.model)
    model = tf.saved_model.load(args.model)
    probabilities = model.signatures["predict_text"](tf.constant(args.text))["probabilities"]
    for text, probability in zip(args.text, probabilities.numpy()):
        console.print(f"{probability:.3f}  {text}")


def _inspect(args, console):
    from ..components import embedding_artifact
    from .demo import report

    manifest = embedding_artifact.EmbeddingArtifact(args.artifact).manifest
    if args.json:
        console.print(json.dumps(manifest.to_json(), indent=2))
        return
    console.print(report.format_manifest(manifest))
    page = os.path.join(args.artifact, "report.html")
    if os.path.exists(page):
        console.print(f"coverage report:        {os.path.abspath(page)}")


@object_storage.exits_cleanly  # tensorflow-io's s3:// would abort the process at exit.
def main(argv=None):
    parser = argparse.ArgumentParser(prog="tfx-embeddings", description=(
        "Pretrained word embeddings for TFX: vocabulary -> sharded checkpoint -> trainer."))
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name, text, handler):
        parser = commands.add_parser(name, help=text, description=text)
        if name != "run":
            parser.add_argument("--verbose", action="store_true",
                                help="show the full log (TFX, TensorFlow) on the terminal too; "
                                     "otherwise it goes to a temporary file, named if the "
                                     "command fails")
        parser.set_defaults(handler=handler if name == "run" else
                            lambda args: _quietly(args, lambda console: handler(args, console)))
        return parser

    run = command("run", "run the pipeline here (LocalDagRunner, SQLite metadata under the "
                         "pipeline root; Beam runner from the config's beam_pipeline_args)",
                  _run)
    run.add_argument("--config", required=True, help="YAML config, e.g. configs/demo.yaml")
    run.add_argument("--verbose", action="store_true",
                     help="show the full log (TFX, Beam, TensorFlow) live; it always goes to a "
                          "file under the pipeline root")
    compile_ = command("compile", "compile the pipeline for Kubeflow Pipelines: open source "
                                  "(a PipelineSpec YAML, schema 2.1.0) or Vertex AI (a "
                                  "PipelineJob JSON)", _compile)
    source = compile_.add_mutually_exclusive_group(required=True)
    source.add_argument("--pipeline", metavar="MODULE:NAME",
                        help="your own TFX pipeline: a tfx.dsl.Pipeline, or a function of no "
                             "arguments that returns one, in MODULE (importable from here)")
    source.add_argument("--config", help="the demo pipeline's YAML config, e.g. "
                                         "configs/kubeflow.yaml")
    compile_.add_argument("--image", required=True,
                          help="container image with this project installed, run by every step")
    compile_.add_argument("--target", choices=sorted(_DEFAULT_OUTPUT), default="kubeflow",
                          help="kubeflow: open-source Kubeflow Pipelines 2.x (default); vertex: "
                               "Vertex AI Pipelines (TFX's PipelineJob, with resolvers)")
    compile_.add_argument("--output", help="spec file to write (default: pipeline.yaml, or "
                                           "pipeline_job.json for vertex)")
    compile_.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                          type=_name_value,
                          help="(--pipeline) a RuntimeParameter's default value in the spec")
    inspect = command("inspect", "print an embedding artifact's manifest: shape, shards, "
                                 "coverage, counts", _inspect)
    inspect.add_argument("artifact", help="the artifact's directory (EmbeddingGen output, or a "
                                          "model's Format-Embedding)")
    inspect.add_argument("--json", action="store_true", help="the whole manifest as JSON")
    run_spec = command("run-spec", "run an open-source Kubeflow Pipelines spec here, as its "
                                   "backend would: its checks, ML Metadata, cache; each task's "
                                   "container command with --python as the image", _run_spec)
    run_spec.add_argument("spec", help="the compiled spec (compile's YAML)")
    run_spec.add_argument("--python", required=True,
                          help="the interpreter that plays the image (a virtualenv with the "
                               "wheel installed: make image)")
    run_spec.add_argument("--pipeline-root", required=True,
                          help="the run's pipeline root: a directory, or a minio:// root "
                               "(a stock install's default) with --minio-endpoint and "
                               "--metadata")
    run_spec.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                          type=_name_value,
                          help="a pipeline input of the run (examples, vectors, "
                               "push_destination)")
    run_spec.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                          type=_name_value,
                          help="an environment variable of the image (its Dockerfile's ENV)")
    run_spec.add_argument("--metadata", help="the ML Metadata SQLite file (default: "
                                             "kubeflow_metadata.sqlite in the pipeline root)")
    run_spec.add_argument("--namespace", default="kubeflow",
                          help="the run's Kubernetes namespace (default: kubeflow, a single-user "
                               "install's), recorded on its run context as the backend does")
    run_spec.add_argument("--secret", action="append", default=[], metavar="NAME/KEY=VALUE",
                          type=_name_value,
                          help="a key of a secret of the namespace (the spec's secretAsEnv); "
                               "a stock install's mlpipeline-minio-artifact is there already")
    run_spec.add_argument("--minio-endpoint", metavar="HOST:PORT",
                          help="the install's MinIO (or any S3), for a minio:// --pipeline-root")
    run_spec.add_argument("--no-publish-logs", action="store_true",
                          help="no executor-logs output per task (the backend's PUBLISH_LOGS "
                               "false)")
    predict = command("predict", "score raw texts with a pushed model of the demo pipeline "
                                 "(its predict_text signature)", _predict)
    predict.add_argument("model", help="the pushed model's directory")
    predict.add_argument("text", nargs="+", help="texts to score")
    retire = command("retire", "retire the artifacts the config's retention policy does not "
                               "keep (files deleted, ML Metadata record DELETED), between runs",
                     _retire)
    retire.add_argument("--config", required=True, help="YAML config, e.g. configs/demo.yaml")
    retire.add_argument("--keep-runs", type=int, help="keep the last N runs' artifacts (default: "
                                                      "the config's retention.keep_runs)")
    from .flink import __main__ as flink_commands

    text = ("a Flink cluster on this machine for a pipeline's Beam steps: build the jars, start "
            "it (prints the Beam options to give the pipeline), args, stop, serve")
    # Its processes log to files of their own: it prints its own lines, without _quietly.
    flink_commands.configure(commands.add_parser("flink", help=text, description=text))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        args.handler(args)
    except Exception as e:
        if not _is_own_error(e):
            raise
        sys.exit(f"error: {e}")
