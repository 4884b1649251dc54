"""`python -m tfx_embeddings.pipeline`: the command line (cli.py), also installed as
`tfx-embeddings`."""

from .cli import main

main()
