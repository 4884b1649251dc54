"""Apache Flink on this machine for the pipeline's Beam steps: the cluster (`cluster.py`: jars
built once with Maven from `maven/`, the processes started and stopped, Flink's REST API), and
the command its TaskManagers start Python SDK workers with (`beam_worker.py`).

Nothing is imported here: an SDK worker imports only what it runs.
"""
