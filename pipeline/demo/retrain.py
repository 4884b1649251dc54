"""Scheduled retraining, shown on the shipped sample: two consecutive runs of one pipeline, the
second on a changed corpus (new words appear, some vanish), warm-started from the first.

    python -m tfx_embeddings.pipeline.demo.retrain [--config configs/demo.yaml]  (make demo-retrain)

Prints the second run's eval accuracy after its first epoch beside the first run's final
accuracy and beside a cold start (the same model from the pretrained vectors alone).
"""

import argparse
import csv
import os
import re
import shutil

from ..console import RunConsole
from .config import load_config

# Adjectives of the sample that the first run's corpus lacks (they appear in the second) and
# that the second run's corpus lacks (they vanish).
NEW_WORDS = ("brikaka", "felkalo", "felmine", "grikaka", "grimine")
GONE_WORDS = ("brisaka", "dulsaka", "felsaka", "grisaka", "zorblax")


def vary_corpus(source, destination, drop_words):
    """Copies a corpus directory (train/ and eval/ CSVs), without the rows using drop_words."""
    shutil.rmtree(destination, ignore_errors=True)
    drop = set(drop_words)
    for split in ("train", "eval"):
        os.makedirs(os.path.join(destination, split))
        for name in os.listdir(os.path.join(source, split)):
            with open(os.path.join(source, split, name), newline="") as f:
                rows = list(csv.reader(f))
            kept = [rows[0]] + [r for r in rows[1:]
                                if not drop & set(re.findall(r"\w+", r[0].lower()))]
            with open(os.path.join(destination, split, name), "w", newline="") as f:
                csv.writer(f).writerows(kept)


def run_twice(config, work_dir):
    """Runs the pipeline on the two corpora; returns the two runs' summaries."""
    from . import report, runners

    summaries = []
    for run, drop in (("run1", NEW_WORDS), ("run2", GONE_WORDS)):
        corpus = os.path.join(work_dir, "corpus", run)
        vary_corpus(config.data.examples, corpus, drop)
        run_config = config.model_copy(update={
            "data": config.data.model_copy(update={"examples": corpus}),
            "trainer": config.trainer.model_copy(update={
                "train_random_baseline": False, "train_cold_start_baseline": run == "run2"})})
        runners.run_local(run_config)
        summaries.append(report.summarize(run_config))
    return summaries


def _scores(metrics, epoch):
    return (f"{metrics['eval_accuracy_by_epoch'][epoch]:.3f}          "
            f"{metrics['eval_loss_by_epoch'][epoch]:.4f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="configs/demo.yaml")
    parser.add_argument("--work_dir", default="build/retrain")
    args = parser.parse_args()
    config = load_config(args.config)
    work_dir = os.path.abspath(args.work_dir)
    shutil.rmtree(work_dir, ignore_errors=True)
    config = config.model_copy(update={
        "pipeline_name": config.pipeline_name + "-retrain",
        "pipeline_root": os.path.join(work_dir, "pipeline_root"),
        "serving_dir": os.path.join(work_dir, "serving")})
    log_path = os.path.join(work_dir, "retrain.log")
    with RunConsole(log_path) as console:
        console.print(f"Two scheduled runs; the full log: {log_path}")
        first, second = run_twice(config, work_dir)
    warm, cold = second["pretrained_metrics"], second["cold_start_metrics"]
    print(f"""
                                         eval accuracy  eval loss
first run, final:                        {_scores(first['pretrained_metrics'], -1)}
second run, after its first epoch:
  warm start from the first run's model: {_scores(warm, 0)}
  cold start (pretrained vectors only):  {_scores(cold, 0)}
second run, final, warm start:           {_scores(warm, -1)}
second run, final, cold start:           {_scores(cold, -1)}
second run's embedding rows from: {', '.join(f'{k.replace("_", " ")} {v}'
                                             for k, v in warm['warm_start'].items())}
(new words in the second run: {', '.join(NEW_WORDS)}; gone: {', '.join(GONE_WORDS)})""")


if __name__ == "__main__":
    main()
