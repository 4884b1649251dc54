"""An S3 emulator for the tests and the ingest benchmark: moto's S3 server, on 127.0.0.1 only.

    with S3Emulator(buckets=["bucket"]) as s3:
        subprocess.run([...], env={**os.environ, **s3.env()})   # s3://bucket/... works there
        s3.requests()                                            # what the server was asked

Why S3 and moto (README, "Object storage"): TensorFlow 2.16's gs:// cannot be pointed at a GCS
emulator (its endpoints are compiled in), while the S3 filesystem tensorflow-io registers and
Beam's S3 filesystem (boto3) both take an endpoint from the environment; moto's server answers
both.

The server runs in a process group of its own (`python -m emulators.s3`): moto's Flask
application behind werkzeug's threaded server, wrapped to log every request (method, key,
Range header, status, start and end time) as a JSON line, and optionally to hold each ranged
GET for a while (an object store's latency: it makes parallel reads visible as overlapping
requests on a small file). It dies with the process that started it (PR_SET_PDEATHSIG, and a
watch on its parent's pid), and `stop` kills its whole group and checks that nothing is left.
Nothing listens beyond 127.0.0.1.
"""

import argparse
import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _die_with_parent():
    """preexec_fn: the kernel sends SIGKILL when the parent dies, however it dies."""
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class S3Emulator:
    """moto's S3 server, started in a process group of its own.

    Args:
      buckets: created at start.
      ranged_get_latency: seconds each GET with a Range header is held before it is answered.
      log_dir: where the server's output and request log go (a temporary directory if None,
        removed at stop).
    """

    def __init__(self, buckets=("bucket",), ranged_get_latency=0.0, log_dir=None):
        self.buckets = list(buckets)
        self.ranged_get_latency = ranged_get_latency
        self._own_dir = log_dir is None
        self.log_dir = log_dir or tempfile.mkdtemp(prefix="s3-emulator-")
        os.makedirs(self.log_dir, exist_ok=True)
        self.request_log = os.path.join(self.log_dir, "requests.jsonl")
        self.server_log = os.path.join(self.log_dir, "server.log")
        self.process = None
        self.port = None

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.port}"

    def env(self):
        """The variables a process sets to reach this emulator through tf.io.gfile (tensorflow-io
        reads the S3_* ones at its first s3:// call) and Beam's S3 filesystem (boto3 reads the
        AWS_* ones); the same names point them at any S3-compatible store."""
        return {
            "S3_ENDPOINT": self.endpoint, "S3_USE_HTTPS": "0", "S3_VERIFY_SSL": "0",
            "AWS_ENDPOINT_URL": self.endpoint, "AWS_ENDPOINT_URL_S3": self.endpoint,
            "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def start(self, timeout=60.0):
        command = [sys.executable, "-m", "emulators.s3", "--request-log", self.request_log,
                   "--ranged-get-latency", str(self.ranged_get_latency),
                   "--parent", str(os.getpid())]
        with open(self.server_log, "wb") as log:
            self.process = subprocess.Popen(
                command, cwd=ROOT, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL,
                start_new_session=True, preexec_fn=_die_with_parent)
        try:
            self.port = self._read_port(timeout)
            deadline = time.monotonic() + timeout
            while True:
                try:
                    with urllib.request.urlopen(self.endpoint + "/moto-api/", timeout=2):
                        break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
            for bucket in self.buckets:
                request = urllib.request.Request(f"{self.endpoint}/{bucket}", method="PUT")
                urllib.request.urlopen(request, timeout=10).read()
        except BaseException:
            self.stop()
            raise
        return self

    def _read_port(self, timeout):
        deadline = time.monotonic() + timeout
        line = b""
        while not line.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.process.poll() is not None:
                with open(self.server_log, errors="replace") as f:
                    raise RuntimeError(f"the S3 emulator did not start: {f.read()[-2000:]}")
            ready, _, _ = select.select([self.process.stdout], [], [], remaining)
            if ready:
                line += os.read(self.process.stdout.fileno(), 100)
        return int(line.split()[1])

    def stop(self, timeout=10.0):
        """Kills the server's process group; raises if any of its processes is left."""
        if self.process is None:
            return
        group = self.process.pid
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, sig)
            try:
                self.process.wait(timeout)
                break
            except subprocess.TimeoutExpired:
                continue
        self.process.stdout.close()
        self.process = None
        deadline = time.monotonic() + timeout
        while self.alive(group):  # Its children, if any, go with the group.
            if time.monotonic() > deadline:
                raise RuntimeError(f"the S3 emulator's process group {group} is still running")
            time.sleep(0.05)
        if self._own_dir:
            import shutil

            shutil.rmtree(self.log_dir, ignore_errors=True)

    @staticmethod
    def alive(group):
        try:
            os.killpg(group, 0)
            return True
        except ProcessLookupError:
            return False
        except PermissionError:
            return True

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()

    def requests(self, at_least=0, timeout=10.0):
        """The requests answered so far, in order: dicts of method, bucket, key, range (the
        Range header or None), status, start and end (time.time() at the server).

        The server logs a request once its response is sent, so a client can hold its answer
        before the line is written: `at_least` waits (up to `timeout` seconds) until that many
        are logged, then returns what is logged, however many that is.
        """
        deadline = time.monotonic() + timeout
        while True:
            found = []
            if os.path.exists(self.request_log):
                with open(self.request_log) as f:
                    found = [json.loads(line) for line in f if line.endswith("\n")]
            if len(found) >= at_least or time.monotonic() > deadline:
                return found
            time.sleep(0.02)

    def client(self):
        """A boto3 S3 client of this emulator (for the tests' own checks)."""
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def upload(self, path, bucket, key):
        """Uploads a local file; returns its s3:// URI."""
        self.client().upload_file(str(path), bucket, key)
        return f"s3://{bucket}/{key}"

    def upload_tree(self, directory, bucket, prefix, last=()):
        """Uploads every file under directory to prefix/, the names in `last` after the rest."""
        client = self.client()
        for relative in sorted(local_tree(directory, read=False),
                               key=lambda relative: relative in last):
            client.upload_file(os.path.join(directory, relative), bucket, f"{prefix}/{relative}")
        return f"s3://{bucket}/{prefix}"

    def tree(self, bucket, prefix):
        """{path relative to prefix: bytes} of every object under prefix/."""
        client, found = self.client(), {}
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket,
                                                                     Prefix=prefix + "/"):
            for item in page.get("Contents", []):
                body = client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
                found[item["Key"][len(prefix) + 1:]] = body
        return found


def local_tree(directory, read=True):
    """{path relative to directory: bytes (or None)} of every file under directory."""
    found = {}
    for root, _, names in os.walk(directory):
        for name in names:
            path = os.path.join(root, name)
            if read:
                with open(path, "rb") as f:
                    found[os.path.relpath(path, directory)] = f.read()
            else:
                found[os.path.relpath(path, directory)] = None
    return found


def renamed(tree, renames):
    """The tree with each local path of renames (local, remote) replaced by its remote URI in
    every file (a manifest names the vector file, a projector config the checkpoint's published
    prefix): what the same work writes in a bucket."""
    out = {}
    for name, data in tree.items():
        for local, remote in renames:
            data = data.replace(str(local).encode(), str(remote).encode())
        out[name] = data
    return out


def differing(found, expected):
    """Names present in one tree only, or with other bytes."""
    return sorted(set(found) ^ set(expected)) + sorted(
        name for name in set(found) & set(expected) if found[name] != expected[name])


def ranged_gets(requests, bucket, key):
    """The GETs of one object with a Range header: [(first byte, start, end)] by start time."""
    found = []
    for r in requests:
        if r["method"] == "GET" and r["bucket"] == bucket and r["key"] == key and r["range"]:
            first = int(r["range"].split("=")[1].split("-")[0])
            found.append((first, r["start"], r["end"]))
    return sorted(found, key=lambda g: g[1])


def max_overlap(intervals):
    """The most intervals (start, end) in progress at one moment."""
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals],
                    key=lambda event: (event[0], event[1]))
    current = best = 0
    for _, change in events:
        current += change
        best = max(best, current)
    return best


# ------------------------------------------------------------------------------ the server


class _Logged:
    """WSGI middleware: logs each request when its response has been sent; holds ranged GETs."""

    def __init__(self, app, log_path, ranged_get_latency):
        self.app = app
        self.latency = ranged_get_latency
        self.log = open(log_path, "a", buffering=1)
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        started = time.time()
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
        bucket, _, key = path.lstrip("/").partition("/")
        ranged = environ.get("HTTP_RANGE")
        if ranged and method == "GET" and self.latency:
            time.sleep(self.latency)
        status = []

        def capture(code, headers, exc_info=None):
            status.append(int(code.split()[0]))
            return start_response(code, headers, exc_info)

        body = self.app(environ, capture)
        try:
            yield from body
        finally:
            if hasattr(body, "close"):
                body.close()
            record = {"method": method, "bucket": bucket, "key": key, "range": ranged,
                      "status": status[0] if status else None, "start": started,
                      "end": time.time()}
            with self.lock:
                self.log.write(json.dumps(record) + "\n")


def _watch_parent(parent):
    while True:
        if os.getppid() != parent:
            os._exit(0)
        time.sleep(0.5)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--request-log", required=True)
    parser.add_argument("--ranged-get-latency", type=float, default=0.0)
    parser.add_argument("--parent", type=int, required=True)
    args = parser.parse_args()
    if os.getppid() != args.parent:  # The parent died before PR_SET_PDEATHSIG took hold.
        return
    threading.Thread(target=_watch_parent, args=(args.parent,), daemon=True).start()
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    app = _Logged(DomainDispatcherApplication(create_backend_app),
                  args.request_log, args.ranged_get_latency)
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=MotoRequestHandler)
    os.environ["MOTO_PORT"] = str(server.server_port)  # As moto's own server sets it.
    sys.stdout.write(f"PORT {server.server_port}\n")
    sys.stdout.flush()
    server.serve_forever()


if __name__ == "__main__":
    main()
