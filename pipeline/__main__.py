"""Command line: python -m pipeline run --config configs/demo.yaml"""

import argparse
import logging
import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # TFT and the model use Keras 2 (tf_keras).


def _run(args):
    from tfx import v1 as tfx

    from pipeline import report
    from pipeline.config import load_config
    from pipeline.pipeline import create_pipeline

    config = load_config(args.config)
    tfx.orchestration.LocalDagRunner().run(create_pipeline(config))
    print("\n" + report.format_summary(report.summarize(config)))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m pipeline", description=(
        "Pretrained word embeddings for TFX: vocabulary -> sharded checkpoint -> trainer."))
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the pipeline locally (LocalDagRunner, SQLite "
                                          "metadata under the pipeline root, Beam DirectRunner)")
    run.add_argument("--config", required=True, help="YAML config, e.g. configs/demo.yaml")
    run.set_defaults(handler=_run)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    from pipeline.config import ConfigError
    try:
        args.handler(args)
    except ConfigError as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
