"""Kubeflow Pipelines: a TFX pipeline compiled for it (`compiler.compile_for_kubeflow`, exported
as `tfx_embeddings.compile_for_kubeflow`), what the open-source backend accepts (`backend`) and
how TFX's spec is made one it runs (`open_source`), the steps' container command
(`entrypoint`), ExampleGen's input fingerprint step (`data_fingerprint`), and `run-spec`: a spec
run here as the backend runs it (`run_spec`, with ML Metadata served as the backend keeps it:
`metadata`).

Nothing is imported here: a step's container imports only what it runs.
"""
