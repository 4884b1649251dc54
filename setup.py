"""Pretrained word embeddings for TFX pipelines: vocabulary -> sharded checkpoint -> trainer.

Everything installs under one import root, `tfx_embeddings`: the repository's top-level folders
are its subpackages. tfx_embeddings/ holds the package's __init__ and a symbolic link to each of
them (tfx_embeddings/components -> ../components, pipeline, schemas), so the checkout is laid
out as the installed package: Python, Pyright, mypy and pylint resolve every import in it with
nothing installed, and the wheel copies the folders' files under tfx_embeddings/.
"""

import setuptools

ROOT = "tfx_embeddings"

setuptools.setup(
    name="tfx-pretrained-embeddings",
    version="0.2.0",
    description=__doc__.split("\n")[0],
    python_requires=">=3.10,<3.11",
    packages=setuptools.find_packages(include=[ROOT, f"{ROOT}.*"]),  # Follows the links.
    # VocabularyGen's word counting (components/vocabulary_gen/_word_counter.c): compiled when
    # the project is installed (a C compiler and Python's headers are needed then, not after).
    ext_modules=[setuptools.Extension(f"{ROOT}.components.vocabulary_gen.{name}",
                                      [f"components/vocabulary_gen/{name}.c"],
                                      extra_compile_args=["-O3"])
                 for name in ("_word_counter", "_example_reader")],
    package_data={f"{ROOT}.schemas": ["*.pbtxt"],
                  # The Maven builds of Flink's runtime and Beam's Flink job server.
                  f"{ROOT}.pipeline.flink": ["maven/*/pom.xml", "maven/*.properties"]},
    install_requires=[
        "tfx==1.16.0",
        "kfp-pipeline-spec",  # For compiling the pipeline for Kubeflow Pipelines.
        "tf-keras==2.16.0",
        "dill",
        "pydantic>=2",
        "pyyaml",
        "isal",  # Inflating compressed vector files at ISA-L's speed.
    ],
    extras_require={
        # s3:// paths: tensorflow-io registers s3:// with tf.io.gfile (TensorFlow 2.16 has no S3
        # filesystem of its own); Beam's S3 filesystem is boto3.
        "s3": ["tensorflow-io", "boto3"],
        # The tests run the s3 extra against moto's S3 server (flask and flask-cors serve it);
        # make lint runs ruff, import-linter (the layering) and basedpyright (every import
        # resolves); pytest-randomly shuffles the order (make test-random); pytest-xdist runs
        # the suite in two workers.
        "test": ["pytest", "pytest-randomly", "pytest-xdist", "gensim", "pandas", "psutil",
                 "tensorflow-io", "boto3", "moto[s3]", "flask", "flask-cors",
                 "ruff", "import-linter", "basedpyright"],
    },
    entry_points={"console_scripts": [
        "tfx-embeddings=tfx_embeddings.pipeline.cli:main",
        # What a Flink or Spark task manager runs to start a Python SDK worker (PROCESS).
        "tfx-embeddings-beam-worker=tfx_embeddings.pipeline.flink.beam_worker:main"]},
)
