"""Command line: run the pipeline, compile it for Kubeflow, inspect an embedding artifact.

    python -m tfx_embeddings.pipeline run --config configs/demo.yaml
    python -m tfx_embeddings.pipeline compile --config configs/kubeflow.yaml --image IMAGE \
        --output spec.json
    python -m tfx_embeddings.pipeline inspect ARTIFACT_DIR

(also installed as the `tfx-embeddings` command)
"""

import argparse
import json
import logging
import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # TFT and the model use Keras 2 (tf_keras).


def _run(args):
    from tfx_embeddings.pipeline import report, runners
    from tfx_embeddings.pipeline.config import load_config

    config = load_config(args.config)
    runners.run_local(config)
    print("\n" + report.format_summary(report.summarize(config)))


def _compile(args):
    from tfx_embeddings.pipeline import runners
    from tfx_embeddings.pipeline.config import load_config

    output = runners.compile_kubeflow(load_config(args.config), args.image, args.output)
    print(f"Kubeflow pipeline spec written to {output}")


def _inspect(args):
    from tfx_embeddings.components import embedding_artifact
    from tfx_embeddings.pipeline import report

    manifest = embedding_artifact.EmbeddingArtifact(args.artifact).manifest
    print(json.dumps(manifest.to_json(), indent=2) if args.json
          else report.format_manifest(manifest))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="tfx-embeddings", description=(
        "Pretrained word embeddings for TFX: vocabulary -> sharded checkpoint -> trainer."))
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name, text):
        return commands.add_parser(name, help=text, description=text)

    run = command("run", "run the pipeline here (LocalDagRunner, SQLite metadata under the "
                         "pipeline root; Beam runner from the config's beam_pipeline_args)")
    run.add_argument("--config", required=True, help="YAML config, e.g. configs/demo.yaml")
    run.set_defaults(handler=_run)
    compile_ = command("compile", "compile the pipeline for Kubeflow Pipelines (a v2 pipeline "
                                  "spec JSON)")
    compile_.add_argument("--config", required=True, help="YAML config, e.g. configs/kubeflow.yaml")
    compile_.add_argument("--image", required=True,
                          help="container image with this project installed, run by every step")
    compile_.add_argument("--output", default="pipeline_spec.json", help="spec file to write")
    compile_.set_defaults(handler=_compile)
    inspect = command("inspect", "print an embedding artifact's manifest: shape, shards, "
                                 "coverage, counts")
    inspect.add_argument("artifact", help="the artifact's directory (EmbeddingGen output, or a "
                                          "model's Format-Embedding)")
    inspect.add_argument("--json", action="store_true", help="the whole manifest as JSON")
    inspect.set_defaults(handler=_inspect)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    from tfx_embeddings.components.embedding_artifact import CheckpointError
    from tfx_embeddings.pipeline.config import ConfigError
    try:
        args.handler(args)
    except (ConfigError, CheckpointError) as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
