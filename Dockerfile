# The image every step of the compiled Kubeflow pipeline runs (`compile --image`): Python 3.10
# and this project installed from its wheel with the pinned stack (constraints.txt).
#
#   make wheel
#   docker build -t REGISTRY/tfx-pretrained-embeddings:VERSION .
#   docker push REGISTRY/tfx-pretrained-embeddings:VERSION
#   python -m tfx_embeddings.pipeline compile --config configs/kubeflow.yaml \
#       --image REGISTRY/tfx-pretrained-embeddings:VERSION --output pipeline.yaml
#
# `make image` builds the local stand-in that `make demo-kfp` runs the compiled spec with.
# The wheel holds compiled code (VocabularyGen's reader and counter, CPython 3.10 on the platform
# `make wheel` ran on): build it on the image's platform (linux x86_64 here); the slim image
# then needs no compiler.
#
# Built on Beam's Python 3.10 SDK image (same Beam as the pinned stack), so that it is also the
# image of Dataflow's (or Flink's, Spark's) workers: `--sdk_container_image=` this image ships
# the project's code to them (configs/kubeflow.yaml). Kubeflow runs its steps with their own
# command, whatever the entrypoint (Beam's worker boot) is.
FROM apache/beam_python3.10_sdk:2.74.0

# TensorFlow Transform and the trainer use Keras 2 (tf_keras).
ENV TF_USE_LEGACY_KERAS=1 \
    PYTHONUNBUFFERED=1

COPY constraints.txt /tmp/constraints.txt
COPY build/dist/ /tmp/dist/
RUN pip install --no-cache-dir -c /tmp/constraints.txt /tmp/dist/*.whl \
    && rm -rf /tmp/dist /tmp/constraints.txt
