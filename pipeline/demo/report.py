"""What a pipeline run produced, read back from its metadata store (not from hard-coded paths).

TFX, ML Metadata and the demo's model are imported by `summarize` only: `inspect` formats a
manifest without them.
"""

import dataclasses
import json
import os

from ...components import embedding_artifact


def _latest_output(store, pipeline_name, node_id, type_name):
    context = store.get_context_by_type_and_name("node", f"{pipeline_name}.{node_id}")
    if context is None:
        return None
    artifacts = [a for a in store.get_artifacts_by_context(context.id)
                 if a.type == type_name and a.state == a.LIVE]
    return max(artifacts, key=lambda a: a.id, default=None)


def summarize(config):
    """The latest embedding, trainers' eval accuracy and pushed model of the configured pipeline."""
    import tensorflow as tf
    from ml_metadata.metadata_store import metadata_store
    from tfx.orchestration import metadata

    from ...components.types import PretrainedEmbedding
    from . import model
    from .pipeline import BASELINE_TRAINER_ID, COLD_START_TRAINER_ID, EVALUATOR_ID, TRAINER_ID

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
    blessing = _latest_output(store, name, EVALUATOR_ID, "ModelBlessing")
    if blessing is not None:
        summary["blessed"] = bool(blessing.custom_properties["blessed"].int_value)
        evaluation = _latest_output(store, name, EVALUATOR_ID, "ModelEvaluation")
        summary["evaluation_failures"] = _failures(evaluation.uri) if evaluation else []
    pushed = _latest_output(store, name, "Pusher", "PushedModel")
    if pushed is not None:
        summary["pushed"] = bool(pushed.custom_properties["pushed"].int_value)
        summary["pushed_model"] = pushed.custom_properties["pushed_destination"].string_value
    summary["pipeline_root"] = config.pipeline_root
    return summary


def _failures(evaluation_uri):
    """Why TFMA did not bless a model: one line per failed threshold."""
    import tensorflow_model_analysis as tfma

    result = tfma.load_validation_result(evaluation_uri)
    lines = []
    for per_slice in result.metric_validations_per_slice:
        for failure in per_slice.failures:
            name = failure.metric_key.name.replace("_", " ")
            value = failure.metric_value.double_value.value
            threshold = failure.metric_threshold
            if failure.metric_key.is_diff:
                lines.append(f"{name} {value:+.3f} against the latest blessed model (at least "
                             f"{threshold.change_threshold.absolute.value:+.3f} allowed)")
            else:
                lines.append(f"{name} {value:.3f} (at least "
                             f"{threshold.value_threshold.lower_bound.value:.3f} needed)")
    return lines


def format_manifest(manifest, stated=False):
    """An embedding artifact's manifest (embedding_artifact.Manifest), for people; stated: the
    token ids and what the model does with them were said already (a run's statements)."""
    rows, dimension = manifest.shape
    layout = manifest.layout
    first_oov = layout.first_token_row + layout.vocabulary_size
    reserved = [f"OOV rows {first_oov}-{layout.first_extra_row - 1}"
                if layout.num_oov_buckets else "no OOV rows"]
    if layout.padding_row is not None:
        reserved.insert(0, f"padding row {layout.padding_row}")
    if layout.num_extra_rows:
        reserved.append(f"extra rows {layout.first_extra_row}-{rows - 1} (up to the highest id "
                        f"the TransformGraph gives)")
    lines = [f"vocabulary size:        {layout.vocabulary_size} tokens ({rows} rows x {dimension} "
             f"float32; {layout.name} layout: {', '.join(reserved)})"]
    if manifest.token_ids and not stated:
        lines.append(f"token ids:              {manifest.token_ids.describe(layout)} (checked)")
    if not stated:
        lines.append("in the model:           " + (
            "mask_zero on by default (id 0 is the padding row)" if layout.padding_row == 0 else
            "mask_zero off by default (id 0 is token 0's row)")
            + f"; width {dimension}, the vector file's dimension")
    coverage = manifest.coverage
    if coverage:
        subwords = (f"; {coverage.tokens_with_subword_vector} more from subwords"
                    if coverage.tokens_with_subword_vector else "")
        lines.append(f"vocabulary coverage:    {coverage.tokens_with_vector} tokens have a "
                     f"pretrained vector ({100 * coverage.vocabulary_share:.1f}%){subwords}")
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


def format_summary(summary, stated=False):
    """The run's summary (summarize); stated: as format_manifest's."""
    lines = []
    if summary.get("manifest"):
        lines += [format_manifest(summary["manifest"], stated),
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
    if "blessed" in summary:
        lines.append("model:                  " + (
            "blessed by the Evaluator" if summary["blessed"] else
            "NOT blessed by the Evaluator: " + "; ".join(summary["evaluation_failures"]
                                                         or ["see the Evaluator's output"])))
    if summary.get("pushed"):
        lines.append(f"pushed to:              {summary['pushed_model']}")
    elif "pushed" in summary:
        lines.append("pushed:                 no (not blessed); serving keeps the last blessed "
                     "model, and the next run warm-starts from it")
    lines.append(f"pipeline root:          {summary['pipeline_root']}")
    return "\n".join(lines)
