"""What a pipeline run produced, read back from its metadata store (not from hard-coded paths)."""

import dataclasses
import json
import os

import tensorflow as tf
from ml_metadata.metadata_store import metadata_store
from tfx.orchestration import metadata

from tfx_embeddings.components import embedding_artifact
from tfx_embeddings.components.types import PretrainedEmbedding
from tfx_embeddings.pipeline import model
from tfx_embeddings.pipeline.pipeline import BASELINE_TRAINER_ID, COLD_START_TRAINER_ID, TRAINER_ID


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
        summary["manifest"] = embedding_artifact.EmbeddingArtifact(embedding.uri).manifest
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
    """An embedding artifact's manifest (embedding_artifact.Manifest), for people."""
    rows, dimension = manifest.shape
    layout = manifest.layout
    reserved = [f"OOV rows {layout.to_json()['oov_rows'][0]}-{rows - 1}"
                if layout.num_oov_buckets else "no OOV rows"]
    if layout.padding_row is not None:
        reserved.insert(0, f"padding row {layout.padding_row}")
    lines = [f"vocabulary size:        {layout.vocabulary_size} tokens ({rows} rows x {dimension} "
             f"float32; {layout.name} layout: {', '.join(reserved)})"]
    coverage = manifest.coverage
    if coverage:
        lines.append(f"vocabulary coverage:    {coverage.tokens_with_vector} tokens have a "
                     f"pretrained vector ({100 * coverage.vocabulary_share:.1f}%)")
        if coverage.corpus_token_share is not None:
            lines.append(f"corpus token coverage:  {100 * coverage.corpus_token_share:.1f}% of "
                         f"corpus tokens have a pretrained vector")
    sizes = [s.stop - s.start for s in manifest.shards]
    lines.append(f"checkpoint shards:      {len(sizes)} ({min(sizes)}-{max(sizes)} rows each)")
    if manifest.counts:
        lines.append("counts:                 " + ", ".join(
            f"{name}={value}" for name, value in dataclasses.asdict(manifest.counts).items()))
    if manifest.source:
        lines.append(f"vectors:                {manifest.source.path} ({manifest.source.format}, "
                     f"{manifest.source.dimension} dimensions)")
    if manifest.warm_start:
        lines.append("rows from:              " + _sources(manifest.warm_start))
    return "\n".join(lines)


def _sources(warm_start):
    return ", ".join(f"{name.replace('_', ' ')} {count}" for name, count in
                     dataclasses.asdict(warm_start).items() if count is not None)


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
        lines.append("embedding rows from:    " + _sources(
            embedding_artifact.WarmStart(**warm_start)))
    if summary.get("pushed_model"):
        lines.append(f"serving model:          {summary['pushed_model']}")
    lines.append(f"pipeline root:          {summary['pipeline_root']}")
    return "\n".join(lines)
