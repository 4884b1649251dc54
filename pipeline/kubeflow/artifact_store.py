"""A stock Kubeflow Pipelines install's `minio://` pipeline root, as TensorFlow and Beam reach it.

A run without `pipeline_root` gets the install's default, `minio://mlpipeline/v2/artifacts`
(backend/src/v2/config/env.go), and the driver hands every step output URIs under it. TFX's
executors read and write their artifacts themselves, through tf.io.gfile, which has no
`minio://`. MinIO speaks S3, so a step reaches the same objects as `s3://` with the endpoint and
the credentials the launcher uses (kubeflow/pipelines backend/src/v2, 2.0 to 2.17):

- the endpoint and the rest are the run context's `store_session_info` (the driver's
  `getDefaultMinioSessionInfo`: endpoint `minio-service.kubeflow:9000`, or the
  MINIO_SERVICE_SERVICE_HOST:PORT of the namespace; region `minio`; SSL off; or what the
  install's kfp-launcher ConfigMap says), found from the pod (`kubeflow_run.own_run`);
- the credentials are the Kubernetes secret it names (`mlpipeline-minio-artifact`, keys
  `accesskey` and `secretkey`), which the launcher reads through the Kubernetes API and the
  step's process cannot; the compiled spec mounts them as environment variables
  (kfp-kubernetes' `secretAsEnv`, the platform spec: `platform_spec`), and says which secret in
  KFP_MINIO_SECRET.

So, where a step's executor input has a `minio://` URI (`for_tensorflow`): the S3 variables of
tensorflow-io and boto3 are set from those, every `minio://` becomes `s3://`, and, the executor
done, every `s3://` URI of those buckets in its executor output becomes `minio://` again
(`back_to_minio`): the launcher takes only output URIs of its own bucket prefix, `minio://...`.
The image needs tensorflow-io and boto3 (the `s3` extra), as for any `s3://` path.
"""

import json
import os

from ...components import object_storage
from ...components.latest_blessed_model import kubeflow_run

MINIO_SECRET = "mlpipeline-minio-artifact"  # The stock install's, in every pipeline namespace.
SECRET_VARIABLE = "KFP_MINIO_SECRET"
ACCESS_KEY_VARIABLE = "KFP_MINIO_ACCESS_KEY"
SECRET_KEY_VARIABLE = "KFP_MINIO_SECRET_KEY"
_SECRET_KEYS = {"accesskey": ACCESS_KEY_VARIABLE, "secretkey": SECRET_KEY_VARIABLE}
MINIO = "minio://"
S3 = "s3://"


class ArtifactStoreError(RuntimeError):
    """The run's minio:// root cannot be reached from this step; the message says what to set."""


def platform_spec(executor_labels, secret=MINIO_SECRET):
    """The kfp-kubernetes platform spec that gives every executor the secret's keys as
    variables (`secretAsEnv`, read by the driver into the pod at 2.0 to 2.17)."""
    def mount():  # One per executor: no YAML anchors and aliases in the file.
        return [{"secretName": secret,
                 "keyToEnv": [{"secretKey": key, "envVar": variable}
                              for key, variable in sorted(_SECRET_KEYS.items())]}]

    return {"platforms": {"kubernetes": {"deploymentSpec": {"executors": {
        label: {"secretAsEnv": mount()} for label in sorted(executor_labels)}}}}}


def _walk(value, change):
    if isinstance(value, str):
        return change(value)
    if isinstance(value, list):
        return [_walk(item, change) for item in value]
    if isinstance(value, dict):
        return {key: _walk(item, change) for key, item in value.items()}
    return value


def minio_buckets(value):
    """The buckets of every minio:// URI in a JSON value."""
    found = set()

    def collect(text):
        if text.startswith(MINIO):
            found.add(text[len(MINIO):].split("/", 1)[0])
        return text

    _walk(value, collect)
    return found


def _session_variables(environ):
    """The S3 variables for the launcher's MinIO session of this pod's run."""
    store = kubeflow_run.connect_from_environment(environ)
    run = kubeflow_run.own_run(store, environ)
    session = run.store_session
    params = session.get("Params") or {}
    if session.get("Provider") not in ("minio", "s3") or not params.get("endpoint"):
        raise ArtifactStoreError(
            f"the run's pipeline root {run.pipeline_root} is minio://, but its object store "
            f"session ({json.dumps(session)}) names no MinIO endpoint; set the run's "
            f"pipeline_root to gs:// or s3:// with the install's kfp-launcher config")
    plain = str(params.get("disableSSL", "")).lower() == "true"
    endpoint = params["endpoint"]
    if "://" not in endpoint:
        endpoint = ("http://" if plain else "https://") + endpoint
    variables = {"S3_ENDPOINT": endpoint, "AWS_ENDPOINT_URL": endpoint,
                 "S3_USE_HTTPS": "0" if plain else "1", "S3_VERIFY_SSL": "0" if plain else "1",
                 "AWS_REGION": params.get("region") or "us-east-1",
                 "AWS_EC2_METADATA_DISABLED": "true"}
    if str(params.get("fromEnv", "")).lower() == "true":
        return variables  # The launcher's own credentials: the pod's AWS_* variables.
    secret = params.get("secretName", MINIO_SECRET)
    mounted = environ.get(SECRET_VARIABLE)
    if mounted != secret or not all(environ.get(v) for v in _SECRET_KEYS.values()):
        raise ArtifactStoreError(
            f"the run's pipeline root {run.pipeline_root} is MinIO, whose credentials the "
            f"launcher reads from the secret {secret!r}; this step's pod "
            f"{'has ' + repr(mounted) if mounted else 'has none'} mounted: compile with "
            f"compile_for_kubeflow(..., minio_secret={secret!r}), or set the run's "
            f"pipeline_root to gs:// or s3://")
    if params.get("accessKeyKey", "accesskey") != "accesskey" or \
            params.get("secretKeyKey", "secretkey") != "secretkey":
        raise ArtifactStoreError(f"the secret {secret!r}'s keys are {params.get('accessKeyKey')}"
                                 f" and {params.get('secretKeyKey')}, where the compiled spec "
                                 f"mounts accesskey and secretkey")
    variables["AWS_ACCESS_KEY_ID"] = environ[ACCESS_KEY_VARIABLE]
    variables["AWS_SECRET_ACCESS_KEY"] = environ[SECRET_KEY_VARIABLE]
    return variables


def for_tensorflow(value, environ=None):
    """value (a JSON value: an executor input, paths) with every minio:// URI as s3://, and this
    process's environment set to reach them; value itself where it has none.

    Returns:
      (the value, the buckets mapped: pass them to back_to_minio).

    Raises:
      ArtifactStoreError: the run's session or the pod's credentials do not allow it.
      object_storage.ObjectStorageError: the image has no S3 filesystem (the `s3` extra).
    """
    environ = os.environ if environ is None else environ
    buckets = minio_buckets(value)
    if not buckets:
        return value, set()
    environ.update(_session_variables(environ))
    object_storage.use(*(f"{S3}{bucket}/" for bucket in sorted(buckets)))
    return _walk(value, lambda text: S3 + text[len(MINIO):] if text.startswith(MINIO)
                 else text), buckets


def back_to_minio(value, buckets):
    """value with every s3:// URI of those buckets as minio:// again."""
    prefixes = tuple(f"{S3}{bucket}/" for bucket in buckets)
    return _walk(value, lambda text: MINIO + text[len(S3):] if text.startswith(prefixes)
                 else text)
