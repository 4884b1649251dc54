"""The project's demo pipeline: CsvExampleGen -> ... -> EmbeddingGen -> EmbeddingTrainer ->
Evaluator -> Pusher on the shipped sample (`pipeline.py`), built from a validated YAML config
(`config.py`), with its text rules (`text.py`), preprocessing_fn (`preprocessing.py`), run_fn
(`model.py`) and schema (`schema.py`); the summary of a run (`report.py`); and the scripts of
the make targets (`retrain.py`, `kubeflow.py`, `portable.py`, `flink.py`, `sample_data.py`).
"""
