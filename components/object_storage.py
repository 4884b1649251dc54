"""Object storage (s3://, gs://): what the project adds to tf.io.gfile and Beam's filesystems.

- TensorFlow 2.16 has no s3:// filesystem of its own: tensorflow-io registers one in tf.io.gfile
  when it is imported. `use(*paths)` imports it where a path is s3://, once per process, and
  says which extra to install where it is missing (`pip install
  'tfx-pretrained-embeddings[s3]'`: tensorflow-io, and boto3 for Beam's S3 filesystem).
  gs:// is built into TensorFlow, and Beam's GCS filesystem comes with TFX.
- An object store renames nothing atomically, and tensorflow-io renames an s3:// "directory" by
  raw key prefix (`stage` also takes `stage_x/...`). `move` moves a directory object by object
  there (a local directory with one rename); the embedding artifact's publish uses it, and
  still writes its manifest last.
- A bucket that cannot be reached would cost a run minutes of the SDKs' retries (Beam's S3
  client retries with backoff for about 9 minutes, a gs:// lookup takes 2). `check_reachable`
  makes one request per path first, the way the job's client will (boto3 configured as Beam's
  S3 filesystem, Google's storage client and credentials as Beam's GCS filesystem), with short
  timeouts, no retry, and a deadline whatever the SDKs do, and names the likely cause.
- tensorflow-io 0.37.1 aborts every process that used s3:// at interpreter exit ("pure virtual
  method called", exit status 134; tensorflow/io#2039, fixed upstream, not released). `finish`
  ends such a process with its real status, after the exit handlers, skipping the C++ static
  destructors that abort; the command line (`python -m tfx_embeddings.pipeline`) ends so.

Nothing here imports TensorFlow until a function needs it: Beam workers import this module.
"""

import atexit
import functools
import os
import sys
import threading
import time
import traceback

from .filesystems import is_local, scheme

EXTRA = "pip install 'tfx-pretrained-embeddings[s3]'"
_used = set()  # Schemes use() was given in this process.


class ObjectStorageError(RuntimeError):
    """A path whose filesystem is not installed, named with the package that provides it; or
    a remote path that cannot be reached, named with the likely cause."""


# check_reachable's limits: the whole check's wall time, and each request's connect and read.
CHECK_SECONDS = 25.0
CONNECT_SECONDS = 5.0
READ_SECONDS = 10.0


def use(*paths):
    """Makes every path's filesystem usable from tf.io.gfile in this process.

    Imports tensorflow-io where a path is s3:// (it registers s3:// with TensorFlow), and
    checks that boto3 is there for Beam's S3 filesystem (whose own error is an AssertionError:
    'Missing boto3 requirement').

    Raises:
      ObjectStorageError: tensorflow-io or boto3 is not installed, or TensorFlow still has no
        filesystem for a path's scheme; the message names the path and what to install.
    """
    schemes = {scheme(p): os.fspath(p) for p in paths if p and not is_local(p)}
    if not schemes:
        return
    if "s3" in schemes:
        for module, reader in (("tensorflow_io", "TensorFlow reads s3:// paths through "
                                                 "tensorflow-io"),
                               ("boto3", "Beam reads s3:// paths with boto3")):
            try:
                __import__(module)  # tensorflow_io registers s3:// (and az://, hdfs://...).
            except ImportError as e:
                raise ObjectStorageError(f"{schemes['s3']}: {reader}, which is not installed "
                                         f"({e}); install the s3 extra: {EXTRA}") from None
    _used.update(schemes)
    import tensorflow as tf

    registered = set(tf.io.gfile.get_registered_schemes())
    for name, path in schemes.items():
        if name not in registered:
            raise ObjectStorageError(
                f"{path}: TensorFlow has no filesystem for {name}:// (it has "
                f"{', '.join(sorted(s for s in registered if s))})")


def move(source, destination):
    """Moves the file or directory source to destination (replaced if it is a file).

    Local paths (and filesystems with directories) take one rename. On an object store a
    directory is its objects: each is copied to its place under destination, then the sources
    are deleted; destination must not hold anything else under that name (remove it first).
    Not atomic there: whoever must never see half of it needs a marker written last.
    """
    import tensorflow as tf

    if is_local(source) or not tf.io.gfile.isdir(source):
        tf.io.gfile.rename(source, destination, overwrite=True)
        return
    source, destination = source.rstrip("/"), destination.rstrip("/")
    files = [f"{root.rstrip('/')}/{name}"
             for root, _, names in tf.io.gfile.walk(source) for name in names]
    for path in files:
        tf.io.gfile.copy(path, destination + path[len(source):], overwrite=True)
    for path in files:
        tf.io.gfile.remove(path)


def remove_tree(path):
    """tf.io.gfile.rmtree, where a directory that holds nothing is no error: on an object store
    it does not exist (rmtree raises NotFoundError there)."""
    import tensorflow as tf

    if tf.io.gfile.exists(path):
        tf.io.gfile.rmtree(path)


def s3_used():
    """True once use() was given an s3:// path in this process."""
    return "s3" in _used and "tensorflow_io" in sys.modules


def finish(status=0):
    """Ends the process with status; where s3:// was used, through os._exit after the exit
    handlers have run and the streams are flushed (tensorflow-io would otherwise abort it,
    status 134). Elsewhere, sys.exit(status)."""
    if not s3_used():
        sys.exit(status)
    if isinstance(status, str):  # As sys.exit prints a message and exits with 1.
        print(status, file=sys.stderr)
        status = 1
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(status or 0)


def exits_cleanly(main):
    """Decorates a command's main: where s3:// was used, the process ends through `finish`
    with the status main returned (0 unless an int), exited with, or 1 for an exception
    (printed first, as the interpreter would); elsewhere main returns or raises as usual."""

    @functools.wraps(main)
    def wrapped(*args, **kwargs):
        try:
            result = main(*args, **kwargs)
        except SystemExit as e:
            if s3_used():
                finish(e.code)
            raise
        except BaseException:
            if s3_used():
                traceback.print_exc()
                finish(1)
            raise
        if s3_used():
            finish(result if isinstance(result, int) else 0)
        return result

    return wrapped


def check_reachable(inputs=(), outputs=(), pipeline_options=None, timeout=CHECK_SECONDS):
    """Fails fast, naming the path and the likely cause, where a remote path cannot be reached.

    One request per remote path, made the way the job's clients will make theirs: s3:// with
    boto3 configured as Beam's S3 filesystem configures it (pipeline_options' --s3_* options,
    else boto3's environment and configuration files), gs:// with Google's application default
    credentials (anonymous without them) and storage client, as Beam's GCS filesystem; other
    schemes through tf.io.gfile. Each request has short timeouts and no retry, and the whole
    check a deadline, whatever the SDKs' retry settings. Local paths cost nothing.

    Args:
      inputs: files the job will read (looked up: the object, or else its bucket).
      outputs: directories the job will write (their bucket is listed).
      pipeline_options: the job's Beam PipelineOptions (None: the environment's).
      timeout: seconds for the whole check.

    Raises:
      ObjectStorageError: `PATH: cannot be reached: CAUSE`, the path as given; the cause one of
        no credentials, the endpoint unreachable (refused, not resolved, no answer in time),
        an endpoint that is not the store, the bucket missing, access denied.
    """
    deadline = time.monotonic() + timeout
    clients = {}
    for role, paths in (("input", inputs), ("output", outputs)):
        for path in paths:
            if not path or is_local(path):
                continue
            path = os.fspath(path)
            run_bounded(functools.partial(_probe, path, role, pipeline_options, clients), path,
                        deadline - time.monotonic(),
                        "an endpoint that drops connections, or a credentials lookup that "
                        "hangs")


def run_bounded(function, path, timeout, causes):
    """function(), in a daemon thread: its result or its error; ObjectStorageError naming path
    and the likely causes if it has not returned within timeout seconds (the thread is left
    to end on its own: a cloud SDK's call cannot be interrupted)."""
    outcome = []

    def run():
        try:
            outcome.append((function(), None))
        except BaseException as e:  # Raised again in the caller's thread.
            outcome.append((None, e))

    thread = threading.Thread(target=run, name=f"bounded {path}", daemon=True)
    thread.start()
    thread.join(max(0.0, timeout))
    if not outcome:
        raise ObjectStorageError(f"{path}: cannot be reached: no answer within "
                                 f"{max(0.0, timeout):.0f} s ({causes}); checked before the "
                                 f"job, whose clients would retry for minutes")
    result, error = outcome[0]
    if error is not None:
        raise error
    return result


def _bucket_and_key(path):
    rest = path.split("://", 1)[1]
    bucket, _, key = rest.partition("/")
    return bucket, key


def _unreachable(path, cause):
    return ObjectStorageError(f"{path}: cannot be reached: {cause}")


def _probe(path, role, options, clients):
    kind = scheme(path)
    if kind == "s3":
        _probe_s3(path, role, options, clients)
    elif kind == "gs":
        _probe_gcs(path, role, options, clients)
    else:
        _probe_gfile(path, role)


_S3_CLIENTS = {}  # Per S3 options and environment: a client costs 0.15 s to make.
_S3_LOCK = threading.Lock()


def _s3_client(options, clients):
    """A boto3 S3 client as Beam's (apache_beam/io/aws/clients/s3/boto3_client.py) builds it
    from the pipeline's S3Options, with short timeouts and a single attempt."""
    if "s3" not in clients:
        s3_options = {}
        if options is not None:
            from apache_beam.options.pipeline_options import S3Options

            s3_options = options.view_as(S3Options).get_all_options()
        key = (tuple(sorted((k, str(v)) for k, v in s3_options.items())),
               tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("AWS_"))))
        with _S3_LOCK:
            if key not in _S3_CLIENTS:
                _S3_CLIENTS[key] = _new_s3_client(s3_options)
            clients["s3"] = _S3_CLIENTS[key]
    return clients["s3"]


def _new_s3_client(s3_options):
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        service_name="s3", region_name=s3_options.get("s3_region_name"),
        api_version=s3_options.get("s3_api_version"),
        use_ssl=not s3_options.get("s3_disable_ssl", False),
        verify=s3_options.get("s3_verify"),
        endpoint_url=s3_options.get("s3_endpoint_url"),
        aws_access_key_id=s3_options.get("s3_access_key_id"),
        aws_secret_access_key=s3_options.get("s3_secret_access_key"),
        aws_session_token=s3_options.get("s3_session_token"),
        config=Config(connect_timeout=CONNECT_SECONDS, read_timeout=READ_SECONDS,
                      retries={"total_max_attempts": 1}))


def _probe_s3(path, role, options, clients):
    from botocore import exceptions

    client = _s3_client(options, clients)
    endpoint = client.meta.endpoint_url
    bucket, key = _bucket_and_key(path)
    try:
        if role == "input" and key:
            try:
                client.head_object(Bucket=bucket, Key=key)
                return
            except exceptions.ClientError as e:  # A HEAD answer has no body: why, below.
                if _s3_status(e) != 404:
                    raise
        client.list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1)
    except exceptions.NoCredentialsError:
        raise _unreachable(path, "no AWS credentials (set AWS_ACCESS_KEY_ID and "
                                 "AWS_SECRET_ACCESS_KEY, a profile, or a role; or "
                                 "--s3_access_key_id and --s3_secret_access_key)") from None
    except (exceptions.ConnectTimeoutError, exceptions.ReadTimeoutError) as e:
        raise _unreachable(path, f"the S3 endpoint {endpoint} did not answer in time ({e}): "
                                 f"unreachable or filtered (set AWS_ENDPOINT_URL or "
                                 f"--s3_endpoint_url to the store's)") from None
    except exceptions.EndpointConnectionError as e:
        raise _unreachable(path, f"the S3 endpoint {endpoint} is unreachable ({e}; refused, "
                                 f"or its name does not resolve): is the store running, and "
                                 f"AWS_ENDPOINT_URL or --s3_endpoint_url its address?") from None
    except exceptions.ClientError as e:
        code, status = e.response.get("Error", {}).get("Code"), _s3_status(e)
        if code == "NoSuchBucket":
            raise _unreachable(path, f"the bucket {bucket!r} does not exist at {endpoint}") \
                from None
        if status == 403 or code in ("AccessDenied", "InvalidAccessKeyId",
                                     "SignatureDoesNotMatch"):
            raise _unreachable(path, f"access denied ({code}) at {endpoint}: the credentials "
                                     f"may not list or read the bucket {bucket!r}") from None
        if not e.response.get("ResponseMetadata", {}).get("RequestId") and code in (
                str(status), None, ""):
            raise _unreachable(path, f"{endpoint} answered HTTP {status} without an S3 error "
                                     f"(not an S3 store: a proxy or another service at that "
                                     f"address?); set AWS_ENDPOINT_URL or --s3_endpoint_url "
                                     f"to the store's") from None
        raise _unreachable(path, f"{endpoint} refused the request ({code}: {e})") from None
    except exceptions.BotoCoreError as e:
        raise _unreachable(path, f"{type(e).__name__}: {e}") from None


def _s3_status(error):
    return error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")


def _probe_gcs(path, role, options, clients):
    """As Beam's GCS filesystem (apache_beam/io/gcp/gcsio.py create_storage_client): the
    application default credentials, looked up once (Beam tries four times, with backoff), or
    an anonymous client without them."""
    import google.auth
    import requests
    from google.api_core import exceptions
    from google.auth import exceptions as auth_exceptions
    from google.cloud import storage

    no_credentials = ""
    if "gs" not in clients:
        project, scopes = None, None
        if options is not None:
            from apache_beam.options.pipeline_options import GoogleCloudOptions

            cloud = options.view_as(GoogleCloudOptions)
            project, scopes = cloud.project, cloud.gcp_oauth_scopes
        try:
            credentials, found_project = google.auth.default(scopes=scopes)
            clients["gs"] = storage.Client(credentials=credentials,
                                           project=project or found_project)
        except auth_exceptions.DefaultCredentialsError as e:
            clients["gs"] = storage.Client.create_anonymous_client()
            clients["gs_anonymous"] = str(e).split(". ")[0]
    client = clients["gs"]
    if clients.get("gs_anonymous"):
        no_credentials = f"no Google credentials ({clients['gs_anonymous']}), so anonymously: "
    bucket, key = _bucket_and_key(path)
    timeouts = (CONNECT_SECONDS, READ_SECONDS)
    try:
        if role == "input" and key:
            if client.bucket(bucket).get_blob(key, timeout=timeouts, retry=None) is not None:
                return
        list(client.list_blobs(bucket, prefix=key, max_results=1, timeout=timeouts,
                               retry=None))
    except requests.exceptions.Timeout as e:
        raise _unreachable(path, f"{no_credentials}Cloud Storage did not answer in time "
                                 f"({_root_cause(e)})") from None
    except requests.exceptions.ConnectionError as e:
        raise _unreachable(path, f"{no_credentials}Cloud Storage is unreachable "
                                 f"({_root_cause(e)}): no network to Google from here?") \
            from None
    except auth_exceptions.GoogleAuthError as e:
        raise _unreachable(path, f"the Google credentials could not be used ({e})") from None
    except exceptions.NotFound:
        raise _unreachable(path, f"the bucket {bucket!r} does not exist") from None
    except (exceptions.Forbidden, exceptions.Unauthorized) as e:
        raise _unreachable(path, f"{no_credentials}access denied ({e.message})") from None
    except exceptions.GoogleAPIError as e:
        raise _unreachable(path, f"{no_credentials}{type(e).__name__}: {e}") from None


def _root_cause(error):
    """The innermost reason of a requests error ("Failed to resolve 'storage.googleapis.com'")."""
    text = str(error)
    for marker in ("Failed to resolve", "Connection refused", "timed out"):
        if marker in text:
            return marker + text.split(marker, 1)[1].split("(")[0].split(")")[0].rstrip(" ,")
    return text[:200]


def _probe_gfile(path, role):
    """Another scheme (hdfs://, az://...): its tf.io.gfile filesystem answers, within the
    deadline."""
    import tensorflow as tf

    try:
        tf.io.gfile.exists(path if role == "input" else path.rstrip("/"))
    except tf.errors.OpError as e:
        raise _unreachable(path, f"{type(e).__name__}: {e.message}") from None
