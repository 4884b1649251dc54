"""Pretrained word embeddings for TFX pipelines: vocabulary -> sharded checkpoint -> trainer."""

import setuptools

setuptools.setup(
    name="tfx-pretrained-embeddings",
    version="0.1.0",
    description=__doc__,
    python_requires=">=3.10,<3.11",
    packages=setuptools.find_packages(include=["pipeline", "pipeline.*", "components",
                                               "components.*"]),
    install_requires=[
        "tfx==1.16.0",
        "kfp-pipeline-spec",  # For compiling the pipeline for Kubeflow Pipelines.
        "tf-keras==2.16.0",
        "dill",
        "pydantic>=2",
        "pyyaml",
    ],
    extras_require={"test": ["pytest", "gensim", "pandas", "psutil"]},
    entry_points={"console_scripts": ["tfx-embeddings=pipeline.__main__:main"]},
)
