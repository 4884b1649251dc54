"""Stand-ins for services the tests and the benchmarks both run against (an S3 server: s3.py).

Not part of the package (setup.py installs tfx_embeddings only) and importing nothing of tests/
or benchmarks/: `tests` may import it, and so may `benchmarks`, which must not import `tests`.
"""
