"""What a pipeline run produced, read back from its metadata store (not from hard-coded paths)."""

import json
import os

import tensorflow as tf
from ml_metadata.metadata_store import metadata_store
from tfx.orchestration import metadata

from components.embedding_gen import checkpoint
from components.types import PretrainedEmbedding
from pipeline import model
from pipeline.pipeline import BASELINE_TRAINER_ID, COLD_START_TRAINER_ID, TRAINER_ID


def _latest_output(store, pipeline_name, node_id, type_name):
    context = store.get_context_by_type_and_name("node", f"{pipeline_name}.{node_id}")
    if context is None:
        return None
    artifacts = [a for a in store.get_artifacts_by_context(context.id)
                 if a.type == type_name and a.state == a.LIVE]
    return max(artifacts, key=lambda a: a.id, default=None)


def summarize(config):
    """The latest embedding, trainers' eval accuracy and pushed model of the configured pipeline."""
    connection = metadata.sqlite_metadata_connection_config(config.metadata_path)
    store = metadata_store.MetadataStore(connection)
    name = config.pipeline_name
    summary = {}
    embedding = _latest_output(store, name, "EmbeddingGen", PretrainedEmbedding.TYPE_NAME)
    if embedding is not None:
        summary["embedding_uri"] = embedding.uri
        summary["manifest"] = checkpoint.load_manifest(embedding.uri)
    for node_id, key in ((TRAINER_ID, "pretrained"), (BASELINE_TRAINER_ID, "random"),
                         (COLD_START_TRAINER_ID, "cold_start")):
        run = _latest_output(store, name, node_id, "ModelRun")
        if run is not None:
            with tf.io.gfile.GFile(os.path.join(run.uri, model.METRICS_FILE)) as f:
                summary[f"{key}_metrics"] = json.load(f)
    pushed = _latest_output(store, name, "Pusher", "PushedModel")
    if pushed is not None:
        summary["pushed_model"] = pushed.custom_properties["pushed_destination"].string_value
    summary["pipeline_root"] = config.pipeline_root
    return summary


def format_manifest(manifest):
    """An embedding artifact's manifest, for people: shape, shards, coverage, counts."""
    coverage = manifest.get("coverage", {})
    rows, dimension = manifest["shape"]
    reserved = manifest["reserved_rows"]
    lines = [
        f"vocabulary size:        {manifest['vocabulary_size']} tokens "
        f"({rows} rows x {dimension} {manifest['dtype']}; padding row {reserved['padding_row']}, "
        f"OOV rows {reserved['oov_rows'][0]}-{reserved['oov_rows'][1] - 1})",
    ]
    if "tokens_with_vector" in coverage:
        lines.append(f"vocabulary coverage:    {coverage['tokens_with_vector']} tokens have a "
                     f"pretrained vector ({100 * coverage['vocabulary_share']:.1f}%)")
    if "corpus_token_share" in coverage:
        lines.append(f"corpus token coverage:  {100 * coverage['corpus_token_share']:.1f}% "
                     f"of corpus tokens have a pretrained vector")
    sizes = [s["rows"][1] - s["rows"][0] for s in manifest["shards"]]
    lines.append(f"checkpoint shards:      {len(sizes)} ({min(sizes)}-{max(sizes)} rows each)")
    for name, value in sorted(manifest.get("counts", {}).items()):
        lines.append(f"  {name.replace('_', ' ') + ':':30s}{value}")
    if manifest.get("beam_counters"):
        lines.append("Beam counters:          " + ", ".join(
            f"{k}={v}" for k, v in sorted(manifest["beam_counters"].items())))
    if manifest.get("source"):
        source = manifest["source"]
        lines.append(f"vectors:                {source['path']} ({source['format']}, "
                     f"{source['dimension']} dimensions)")
    if manifest.get("warm_start"):
        lines.append("rows from:              " + ", ".join(
            f"{k.replace('_', ' ')} {v}" for k, v in manifest["warm_start"].items()))
    return "\n".join(lines)


def format_summary(summary):
    lines = []
    if summary.get("manifest"):
        lines += [format_manifest(summary["manifest"]),
                  f"embedding artifact:     {summary['embedding_uri']}"]
    for key, label in (("pretrained", "pretrained embedding"), ("random", "random embedding"),
                       ("cold_start", "cold start")):
        metrics = summary.get(f"{key}_metrics")
        if metrics:
            lines.append(f"eval accuracy, {label + ':':22s}{metrics['eval_accuracy']:.3f}")
    warm_start = (summary.get("pretrained_metrics") or {}).get("warm_start")
    if warm_start:
        lines.append("embedding rows from:    " + ", ".join(
            f"{source.replace('_', ' ')} {count}" for source, count in warm_start.items()))
    if summary.get("pushed_model"):
        lines.append(f"serving model:          {summary['pushed_model']}")
    lines.append(f"pipeline root:          {summary['pipeline_root']}")
    return "\n".join(lines)
