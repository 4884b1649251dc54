"""Kubeflow Pipelines: a TFX pipeline compiled for it (`compiler.compile_for_kubeflow`, exported
as `tfx_embeddings.compile_for_kubeflow`), what the open-source backend accepts (`backend`), a
user's pipeline made one it runs (`rewrite`) and TFX's spec of it too (`open_source`), the
steps' requests and limits (`resources`), the steps' container command (`entrypoint`), a stock
install's minio:// root as S3 (`artifact_store`), a push destination typed as a path
(`pusher`), ExampleGen's input fingerprint step (`data_fingerprint`), and `run-spec`: a spec run
here as the backend runs it (`run_spec`, with ML Metadata served as the backend keeps it:
`metadata`).

Nothing is imported here: a step's container imports only what it runs.
"""
