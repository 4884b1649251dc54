"""Apache Flink on this machine, started and stopped by the project: a standalone session cluster
(a JobManager and TaskManagers, each a `java` process of its own, on 127.0.0.1) and Beam's Flink
job server, which the pipeline's Beam steps are submitted to (configs/flink.yaml).

    python -m tfx_embeddings.pipeline.flink build                     # the jars, once
    python -m tfx_embeddings.pipeline.flink serve --config configs/flink.yaml   # until Ctrl-C

    with FlinkCluster("build/flink/cluster", task_managers=2) as cluster:
        beam.Pipeline(options=PipelineOptions(cluster.beam_pipeline_args()))...
        cluster.jobs()   # Flink's own view: job ids, names, states

    FlinkCluster("build/flink/cluster").start(detached=True)   # outlives this process
    FlinkCluster.attach("build/flink/cluster").stop()           # from any later process

The same from the command line, for any pipeline (`tfx-embeddings flink start|args|stop`): start
prints the Beam pipeline options that send a pipeline's Beam steps to the cluster.

**The jars** come from Maven Central, with Maven, once (`ensure_jars`), into a cache outside the
checkout (~/.cache/tfx-embeddings/flink/, or $TFX_EMBEDDINGS_CACHE/flink/); never while a
pipeline runs. Flink 1.19.3's runtime is its separate jars (maven/flink-runtime/pom.xml: Maven
Central does not serve flink-dist); Beam's Flink job server is built from Beam's runner jars into
one shaded jar (maven/flink-job-server/pom.xml), because no Beam job-server jar is served: it is
Beam 2.70.0 on the Java side while the Python SDK is 2.74.0 (see that pom).

**Processes.** Each runs in a session of its own (its process group: stopping kills the group,
so the SDK workers a TaskManager started go with it), and, where `setpriv` exists, gets SIGTERM
when the Python process that started it dies. Logs go to <run_dir>/log/. The TaskManagers have
the job server's jar on their own classpath and load user code parent-first: with the pipeline
option --environment_cache_millis, SDK workers are then kept between a job's stages, and Beam's
classes are not loaded again for every job (otherwise TaskManager metaspace grows by about
30 MB per job and runs out after about 8 jobs; a TFX run is several).
"""

import contextlib
import dataclasses
import fcntl
import glob
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

from .. import cache

FLINK_VERSION = "1.19.3"
BEAM_JAVA_VERSION = "2.70.0"
WORKER_COMMAND = "tfx-embeddings-beam-worker"  # pipeline/beam_worker.py, a console script.
HOST = "127.0.0.1"
STATE_FILE = "cluster.json"  # In the run directory of a detached cluster: its pids and ports.

_MAVEN_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "maven")
_POMS = {"runtime": os.path.join(_MAVEN_DIR, "flink-runtime", "pom.xml"),
         "job_server": os.path.join(_MAVEN_DIR, "flink-job-server", "pom.xml")}
_JOB_SERVER_JAR = "beam-flink-job-server.jar"

# What Flink's own config (env.java.opts.all) adds for Java 17.
JAVA17_OPTIONS = (
    "--add-exports=java.base/sun.net.util=ALL-UNNAMED",
    "--add-exports=java.rmi/sun.rmi.registry=ALL-UNNAMED",
    "--add-exports=jdk.compiler/com.sun.tools.javac.api=ALL-UNNAMED",
    "--add-exports=jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED",
    "--add-exports=jdk.compiler/com.sun.tools.javac.parser=ALL-UNNAMED",
    "--add-exports=jdk.compiler/com.sun.tools.javac.tree=ALL-UNNAMED",
    "--add-exports=jdk.compiler/com.sun.tools.javac.util=ALL-UNNAMED",
    "--add-exports=java.security.jgss/sun.security.krb5=ALL-UNNAMED",
    "--add-opens=java.base/java.lang=ALL-UNNAMED",
    "--add-opens=java.base/java.net=ALL-UNNAMED",
    "--add-opens=java.base/java.io=ALL-UNNAMED",
    "--add-opens=java.base/java.nio=ALL-UNNAMED",
    "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-opens=java.base/java.lang.reflect=ALL-UNNAMED",
    "--add-opens=java.base/java.text=ALL-UNNAMED",
    "--add-opens=java.base/java.time=ALL-UNNAMED",
    "--add-opens=java.base/java.util=ALL-UNNAMED",
    "--add-opens=java.base/java.util.concurrent=ALL-UNNAMED",
    "--add-opens=java.base/java.util.concurrent.atomic=ALL-UNNAMED",
    "--add-opens=java.base/java.util.concurrent.locks=ALL-UNNAMED",
)


class FlinkError(RuntimeError):
    """The cluster could not be built, started or reached; the message says why and where the
    log is."""


def _print(message):
    print(message, flush=True)


# --- The jars --------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Jars:
    """Where the built jars are."""
    lib_dir: str
    """Flink's runtime: every jar of a Flink distribution's lib/ that the cluster needs."""
    job_server: str
    """Beam's Flink job server, one shaded jar (also on the TaskManagers' classpath)."""

    def classpath(self):
        """Flink's runtime classpath: lib/*.jar, sorted."""
        return os.pathsep.join(sorted(glob.glob(os.path.join(self.lib_dir, "*.jar"))))


def cache_dir():
    """Where built jars are kept: cache.cache_dir("flink")."""
    return cache.cache_dir("flink")


def _poms_digest():
    digest = hashlib.sha256()
    for name in sorted(_POMS):
        with open(_POMS[name], "rb") as f:
            digest.update(f.read())
    return digest.hexdigest()[:12]


def jars_dir(cache=None):
    """The directory the current poms' jars are built into (named by their versions and the
    poms' digest, so a changed pom builds anew)."""
    return os.path.join(cache or cache_dir(),
                        f"flink-{FLINK_VERSION}-beam-{BEAM_JAVA_VERSION}-{_poms_digest()}")


def built_jars(cache=None):
    """The Jars if they are built, else None; never builds."""
    root = jars_dir(cache)
    if not os.path.exists(os.path.join(root, "COMPLETE")):
        return None
    return Jars(os.path.join(root, "lib"), os.path.join(root, _JOB_SERVER_JAR))


def ensure_jars(cache=None, report=_print):
    """Builds the jars with Maven unless they are in the cache; returns them.

    The first time resolves about 200 MB of artifacts from Maven Central into Maven's local
    repository (~/.m2) and shades the job server (about 5 minutes here); later calls return at
    once. Concurrent calls build once (a lock file).

    Args:
      cache: the cache directory; cache_dir() by default.
      report: called with a progress line now and then.

    Returns:
      Jars.

    Raises:
      FlinkError: Java or Maven is missing, or Maven failed (with its log's path).
    """
    jars = built_jars(cache)
    if jars:
        return jars
    root = jars_dir(cache)
    os.makedirs(os.path.dirname(root), exist_ok=True)
    with open(os.path.join(os.path.dirname(root), ".build.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        jars = built_jars(cache)
        if jars:
            return jars
        java_version()
        mvn = shutil.which("mvn")
        if mvn is None:
            raise FlinkError("mvn is not on PATH: the Flink runtime and Beam's job server are "
                             "fetched from Maven Central with Maven, once (e.g. apt-get install "
                             "maven)")
        work = root + f".building-{os.getpid()}"
        shutil.rmtree(work, ignore_errors=True)
        os.makedirs(work)
        log_path = root + ".build.log"
        started = time.monotonic()
        report(f"Fetching Flink {FLINK_VERSION} and building Beam {BEAM_JAVA_VERSION}'s Flink job "
               f"server with Maven, once, into {root} (about 5 minutes the first time; log: "
               f"{log_path})")
        try:
            with open(log_path, "w") as log:
                for name in _POMS:
                    os.makedirs(os.path.join(work, name))
                    shutil.copy(_POMS[name], os.path.join(work, name, "pom.xml"))
                _maven(mvn, [os.path.join(work, "runtime", "pom.xml"),
                             "dependency:copy-dependencies",
                             f"-DoutputDirectory={os.path.join(work, 'lib')}",
                             "-DincludeScope=runtime"],
                       log, log_path, f"Flink {FLINK_VERSION}'s runtime jars", report)
                _maven(mvn, [os.path.join(work, "job_server", "pom.xml"), "package"],
                       log, log_path, "Beam's Flink job server", report)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        os.replace(os.path.join(work, "job_server", "target", _JOB_SERVER_JAR),
                   os.path.join(work, _JOB_SERVER_JAR))
        for name in _POMS:
            shutil.rmtree(os.path.join(work, name))
        with open(os.path.join(work, "COMPLETE"), "w") as f:
            json.dump({"flink": FLINK_VERSION, "beam_java": BEAM_JAVA_VERSION,
                       "built_seconds": round(time.monotonic() - started)}, f)
        shutil.rmtree(root, ignore_errors=True)
        os.replace(work, root)
        jars = built_jars(cache)
        report(f"Built in {time.monotonic() - started:.0f}s: {len(os.listdir(jars.lib_dir))} Flink "
               f"jars and the job server ({os.path.getsize(jars.job_server) / 2**20:.0f} MB)")
        return jars


def _maven(mvn, args, log, log_path, what, report):
    """Runs `mvn -B -f POM GOALS...`, appending to log; a progress line every 20 seconds."""
    log.write(f"$ mvn -B -f {' '.join(args)}\n")
    log.flush()
    process = subprocess.Popen([mvn, "-B", "-f", *args], stdout=log, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL)
    started = time.monotonic()
    while True:
        try:
            process.wait(timeout=20)
            break
        except subprocess.TimeoutExpired:
            with open(log_path, errors="replace") as f:
                downloaded = f.read().count("Downloaded from")
            report(f"  {what}: {time.monotonic() - started:.0f}s, {downloaded} artifacts "
                   f"downloaded so far")
        except BaseException:
            process.kill()
            process.wait()
            raise
    if process.returncode != 0:
        with open(log_path, errors="replace") as f:
            errors = [line.strip() for line in f if line.startswith("[ERROR]")][:5]
        raise FlinkError(f"Maven could not fetch or build {what} (exit status "
                         f"{process.returncode}): {' '.join(errors) or 'see the log'}; the full "
                         f"log: {log_path}")


def java_version():
    """The major version of the `java` on PATH.

    Raises:
      FlinkError: no java on PATH, or one older than 11 (Beam's job server needs 11 or later;
        Flink 1.19 runs on 11 and 17).
    """
    java = shutil.which("java")
    if java is None:
        raise FlinkError("java is not on PATH: Flink and Beam's Flink job server need a Java "
                         "runtime, 11 or 17 (e.g. apt-get install openjdk-17-jre-headless)")
    output = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    found = re.search(r'version "(\d+)(?:\.(\d+))?', output)
    if not found:
        raise FlinkError(f"cannot tell the version of {java}: {output.strip()[:200]}")
    major = int(found.group(1)) if found.group(1) != "1" else int(found.group(2))
    if major < 11:
        raise FlinkError(f"{java} is Java {major}; Beam's Flink job server needs Java 11 or 17")
    return major


# --- The cluster -----------------------------------------------------------------------------

def _free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _check_port_free(port, what, all_interfaces=False):
    with socket.socket() as s:
        # As the servers do: connections of a stopped cluster in TIME_WAIT do not count.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("0.0.0.0" if all_interfaces else HOST, port))
        except OSError:
            raise FlinkError(f"port {port} is in use ({what} needs it): another Flink cluster or "
                             f"program holds it. Stop it, or give another port (in the config's "
                             f"beam_pipeline_args: --flink_master, --job_endpoint)") from None


def _group_alive(pgid):
    """Whether any process of process group pgid is alive (zombies do not count)."""
    if not os.path.isdir("/proc"):
        try:
            os.killpg(pgid, 0)
            return True
        except ProcessLookupError:
            return False
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(stat) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            return True
    return False


class FlinkCluster:
    """A standalone Flink session cluster and Beam's Flink job server, on 127.0.0.1.

    A context manager: entering starts everything (building the jars first if they are not
    built) and waits until the TaskManagers have registered and the job server listens; leaving
    stops every process it started, on an error, Ctrl-C or SIGTERM too. Or `start(detached=True)`
    for a cluster that outlives the process that started it, stopped later by
    `FlinkCluster.attach(run_dir).stop()`; run_dir/cluster.json records its processes and ports.

    Args:
      run_dir: for the processes' configuration, logs (log/) and working files.
      task_managers: how many TaskManager processes.
      slots_per_task_manager: task slots of each.
      rest_port: the REST API and web UI's port (--flink_master).
      job_port: the Beam job server's port (--job_endpoint).
      taskmanager_memory, jobmanager_memory: each process's total memory (Flink's
        taskmanager.memory.process.size and jobmanager.memory.process.size).
      jars: Jars; ensure_jars() by default.
      start_timeout: seconds to wait for readiness.
      report: called with progress lines.
    """

    def __init__(self, run_dir, *, task_managers=2, slots_per_task_manager=2, rest_port=8081,
                 job_port=8099, taskmanager_memory="2048m", jobmanager_memory="1024m", jars=None,
                 start_timeout=180, report=_print):
        if task_managers < 1 or slots_per_task_manager < 1:
            raise ValueError("a cluster needs at least one TaskManager and one slot each")
        self.run_dir = os.path.abspath(run_dir)
        self.log_dir = os.path.join(self.run_dir, "log")
        self.task_managers, self.slots = task_managers, slots_per_task_manager
        self.rest_port, self.job_port = rest_port, job_port
        self._memory = {"taskmanager": taskmanager_memory, "jobmanager": jobmanager_memory}
        self.jars, self.start_timeout, self._report = jars, start_timeout, report
        self._processes = {}  # name -> Popen (or a pid, when attached), in start order
        self._saved_handlers = None
        self._detached = False

    @classmethod
    def attach(cls, run_dir):
        """The cluster that `start(detached=True)` started in run_dir, from its cluster.json.

        Raises:
          FlinkError: no cluster was started there, or it is no longer running.
        """
        state_path = os.path.join(os.path.abspath(run_dir), STATE_FILE)
        try:
            with open(state_path) as f:
                state = json.load(f)
        except FileNotFoundError:
            raise FlinkError(f"no Flink cluster was started in {run_dir} (no {STATE_FILE}; "
                             f"start one with `tfx-embeddings flink start --run-dir "
                             f"{run_dir}`)") from None
        cluster = cls(run_dir, task_managers=state["task_managers"],
                      slots_per_task_manager=state["slots_per_task_manager"],
                      rest_port=state["rest_port"], job_port=state["job_port"])
        cluster._processes = dict(state["pids"])
        cluster._detached = True
        if not any(_group_alive(pid) for pid in cluster._processes.values()):
            os.remove(state_path)
            raise FlinkError(f"the Flink cluster started in {run_dir} is no longer running "
                             f"(its processes are gone; logs: {cluster.log_dir})")
        return cluster

    @property
    def flink_master(self):
        """host:port of the REST API, the pipeline option --flink_master."""
        return f"{HOST}:{self.rest_port}"

    @property
    def web_url(self):
        """The web UI's address."""
        return f"http://{HOST}:{self.rest_port}"

    @property
    def job_endpoint(self):
        """host:port of Beam's job server, the pipeline option --job_endpoint."""
        return f"localhost:{self.job_port}"

    def beam_pipeline_args(self, parallelism=None):
        """The Beam pipeline options that run a pipeline on this cluster (configs/flink.yaml's).

        Args:
          parallelism: of each job; the number of TaskManagers by default.

        Returns:
          A list of --option=value strings.
        """
        return ["--runner=FlinkRunner", f"--flink_master={self.flink_master}",
                "--flink_version=" + FLINK_VERSION.rsplit(".", 1)[0],
                f"--job_endpoint={self.job_endpoint}", "--environment_type=PROCESS",
                "--environment_config=" + json.dumps({"command": WORKER_COMMAND}),
                f"--parallelism={parallelism or self.task_managers}",
                "--environment_cache_millis=30000"]

    def pids(self):
        """{process name: pid} of the processes started (jobmanager, taskmanager1..., jobserver)."""
        return {name: _pid(process) for name, process in self._processes.items()}

    # REST ------------------------------------------------------------------------------------

    def rest(self, path, timeout=10):
        """GET a path of Flink's REST API; returns the JSON.

        Raises:
          FlinkError: the JobManager did not answer.
        """
        try:
            with urllib.request.urlopen(self.web_url + path, timeout=timeout) as response:
                return json.loads(response.read())
        except (urllib.error.URLError, OSError) as e:
            raise FlinkError(f"Flink's REST API at {self.web_url}{path} did not answer: {e}; the "
                             f"JobManager's log: {self.log_dir}/jobmanager.log") from None

    def jobs(self):
        """Every job the cluster ran or runs, oldest first: dicts of Flink's /jobs/overview
        (jid, name, state, start-time, end-time, duration in ms, tasks)."""
        return sorted(self.rest("/jobs/overview")["jobs"], key=lambda job: job["start-time"])

    def job_task_managers(self, jid):
        """{TaskManager id: number of the job's subtasks it ran} (ids tm1, tm2...)."""
        counts = {}
        for vertex in self.rest(f"/jobs/{jid}")["vertices"]:
            path = f"/jobs/{jid}/vertices/{vertex['id']}/taskmanagers"
            for task_manager in self.rest(path)["taskmanagers"]:
                name = task_manager["taskmanager-id"]
                counts[name] = counts.get(name, 0) + sum(task_manager["status-counts"].values())
        return dict(sorted(counts.items()))

    # Start and stop --------------------------------------------------------------------------

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            # SIGTERM and SIGHUP unwind like Ctrl-C, so that the processes are stopped.
            def interrupted(signum, frame):
                raise SystemExit(128 + signum)
            self._saved_handlers = {s: signal.signal(s, interrupted)
                                    for s in (signal.SIGTERM, signal.SIGHUP)}
        try:
            self.start()
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        return self

    def __exit__(self, *exc_info):
        try:
            self.stop()
        finally:
            for signum, handler in (self._saved_handlers or {}).items():
                signal.signal(signum, handler)
            self._saved_handlers = None
        return False

    def start(self, detached=False):
        """Starts the JobManager, the TaskManagers and the job server; returns when all are ready.

        Args:
          detached: the processes outlive this Python process (otherwise each gets SIGTERM
            when it dies, where `setpriv` exists); stop them with
            `FlinkCluster.attach(run_dir).stop()`.

        Returns:
          self.

        Raises:
          FlinkError: Java missing, a port in use, a process that exited while starting, or not
            ready within start_timeout (with the logs' directory); nothing is left running.
        """
        if self._processes:
            raise FlinkError("the cluster is already started")
        if os.path.exists(os.path.join(self.run_dir, STATE_FILE)):
            try:
                FlinkCluster.attach(self.run_dir)  # Removes the file of a cluster that is gone.
            except FlinkError:
                pass
            else:
                raise FlinkError(f"a Flink cluster started in {self.run_dir} is running; stop "
                                 f"it first (`tfx-embeddings flink stop --run-dir "
                                 f"{self.run_dir}`)")
        self._detached = detached
        started = time.monotonic()
        self.jars = self.jars or ensure_jars(report=self._report)
        java_version()
        path = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
        if shutil.which(WORKER_COMMAND, path=path) is None:
            raise FlinkError(f"{WORKER_COMMAND} is not installed beside {sys.executable}: the "
                             f"TaskManagers start Python SDK workers with it. Reinstall the "
                             f"project (make venv, or pip install -e .)")
        _check_port_free(self.rest_port, "the Flink REST API and web UI")
        _check_port_free(self.job_port, "Beam's Flink job server", all_interfaces=True)
        for directory in glob.glob(os.path.join(self.run_dir, "*", "tmp")):
            shutil.rmtree(directory, ignore_errors=True)
        os.makedirs(self.log_dir, exist_ok=True)
        os.makedirs(os.path.join(self.run_dir, "jm", "tmp"))
        conf = self._write_conf()
        environment = {**os.environ, "PATH": path}
        jm_jvm, jm_dynamic, tm_jvm, tm_dynamic = self._memory_options(conf)
        log4j = os.path.join(conf, "log4j.properties")
        classpath = self.jars.classpath()
        try:
            self._spawn("jobmanager", [
                "java", *jm_jvm, *JAVA17_OPTIONS, *self._log_options("jobmanager", log4j),
                "-classpath", classpath,
                "org.apache.flink.runtime.entrypoint.StandaloneSessionClusterEntrypoint",
                "--configDir", conf, "--executionMode", "cluster", *jm_dynamic], environment)
            for i in range(1, self.task_managers + 1):
                name = f"taskmanager{i}"
                tmp = os.path.join(self.run_dir, f"tm{i}", "tmp")
                os.makedirs(tmp)
                self._spawn(name, [
                    "java", *tm_jvm, *JAVA17_OPTIONS, *self._log_options(name, log4j),
                    # Beam's runner on the TaskManager's own classpath, user code parent-first:
                    # see the module's docstring.
                    "-classpath", classpath + os.pathsep + self.jars.job_server,
                    "org.apache.flink.runtime.taskexecutor.TaskManagerRunner",
                    "--configDir", conf, *tm_dynamic, "-D", f"taskmanager.resource-id=tm{i}",
                    "-D", f"io.tmp.dirs={tmp}", "-D", "classloader.resolve-order=parent-first"],
                    environment)
            self._spawn("jobserver", [
                "java", "-Xmx1g", *JAVA17_OPTIONS, "-jar", self.jars.job_server,
                f"--flink-master={self.flink_master}", f"--job-host={HOST}",
                f"--job-port={self.job_port}", "--artifact-port=0", "--expansion-port=-1",
                f"--artifacts-dir={os.path.join(self.run_dir, 'jobserver', 'tmp')}"],
                environment)
            self._wait_until_ready(started)
            if detached:
                self._write_state()
        except BaseException:
            self.stop()
            raise
        self._report(f"Flink {FLINK_VERSION}: a JobManager, {self.task_managers} TaskManager"
                     f"{'s' if self.task_managers > 1 else ''} ({self.slots} slots each) and "
                     f"Beam's job server ready in "
                     f"{time.monotonic() - started:.0f}s; web UI {self.web_url}")
        return self

    def _write_state(self):
        state = {"pids": self.pids(), "task_managers": self.task_managers,
                 "slots_per_task_manager": self.slots, "rest_port": self.rest_port,
                 "job_port": self.job_port, "beam_pipeline_args": self.beam_pipeline_args()}
        temporary = os.path.join(self.run_dir, STATE_FILE + ".tmp")
        with open(temporary, "w") as f:
            json.dump(state, f, indent=2)
        os.replace(temporary, os.path.join(self.run_dir, STATE_FILE))

    def _write_conf(self):
        conf = os.path.join(self.run_dir, "conf")
        os.makedirs(conf, exist_ok=True)
        settings = {
            "jobmanager.bind-host": HOST, "jobmanager.rpc.address": HOST,
            "jobmanager.rpc.port": _free_port(),
            "jobmanager.memory.process.size": self._memory["jobmanager"],
            "jobmanager.execution.failover-strategy": "region",
            "taskmanager.bind-host": HOST, "taskmanager.host": HOST,
            "taskmanager.numberOfTaskSlots": self.slots,
            "taskmanager.memory.process.size": self._memory["taskmanager"],
            # Beam's batch translation deploys a job's every stage at once, many with a blocking
            # result partition, each taking taskmanager.network.sort-shuffle.min-buffers
            # (512 by default, 16 MB): Transform's job then fails with "Insufficient number of
            # network buffers". 64 per partition (Flink's default before 1.15) and 256 MB of
            # network memory leave room for 128 at once in a TaskManager.
            "taskmanager.memory.network.min": "256m", "taskmanager.memory.network.max": "256m",
            "taskmanager.network.sort-shuffle.min-buffers": 64,
            # Spread a job's subtasks over the TaskManagers rather than fill the first one's slots.
            "cluster.evenly-spread-out-slots": "true",
            "rest.address": HOST, "rest.bind-address": HOST, "rest.port": self.rest_port,
            "blob.server.port": _free_port(),
            # Every job ships the job server's jar (~155 MB) as a blob; TaskManagers would keep
            # each job's copy for an hour.
            "blob.service.cleanup.interval": 60,
            "io.tmp.dirs": os.path.join(self.run_dir, "jm", "tmp"),
            "web.tmpdir": os.path.join(self.run_dir, "jm", "tmp", "web"),
        }
        with open(os.path.join(conf, "config.yaml"), "w") as f:
            f.write("# Written by tfx_embeddings.pipeline.flink for this cluster.\n")
            f.writelines(f"{key}: {value}\n" for key, value in settings.items())
        shutil.copy(os.path.join(_MAVEN_DIR, "log4j.properties"), conf)
        return conf

    def _memory_options(self, conf):
        """The JVM flags and -D properties Flink's scripts compute (BashJavaUtils) for the
        JobManager and a TaskManager."""
        def run(kind):
            return subprocess.Popen(
                ["java", "-classpath", self.jars.classpath(),
                 "org.apache.flink.runtime.util.bash.BashJavaUtils", kind, "--configDir", conf],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

        results = []
        for process in [run("GET_JM_RESOURCE_PARAMS"), run("GET_TM_RESOURCE_PARAMS")]:
            output, _ = process.communicate()
            lines = [line[len("BASH_JAVA_UTILS_EXEC_RESULT:"):].split()
                     for line in output.splitlines()
                     if line.startswith("BASH_JAVA_UTILS_EXEC_RESULT:")]
            if process.returncode != 0 or len(lines) < 2:
                raise FlinkError(f"Flink could not size its processes' memory from "
                                 f"{conf}/config.yaml: {output.strip()[-1000:]}")
            results += lines[:2]
        return results

    def _log_options(self, name, log4j):
        return [f"-Dlog.file={os.path.join(self.log_dir, name + '.log')}",
                f"-Dlog4j.configuration=file:{log4j}", f"-Dlog4j.configurationFile=file:{log4j}"]

    def _spawn(self, name, command, environment):
        # A session of its own: stopping signals its whole process group. setpriv: SIGTERM when
        # this Python process dies, however it dies.
        setpriv = shutil.which("setpriv")
        if setpriv and not self._detached:
            command = [setpriv, "--pdeathsig", "TERM", "--", *command]
        with open(os.path.join(self.log_dir, name + ".out"), "w") as out:
            self._processes[name] = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=environment, cwd=self.run_dir, start_new_session=True)

    def _wait_until_ready(self, started):
        deadline = started + self.start_timeout
        registered, listening = 0, False
        while True:
            for name, process in self._processes.items():
                if process.poll() is not None:  # Popen: started by this process.
                    raise FlinkError(f"the {name} exited with status {process.returncode} while "
                                     f"starting:\n{self._tail(name)}\nits logs: "
                                     f"{self.log_dir}/{name}.out and .log")
            if not listening:
                with socket.socket() as s:
                    listening = s.connect_ex((HOST, self.job_port)) == 0
            try:
                with urllib.request.urlopen(self.web_url + "/overview", timeout=5) as response:
                    registered = json.loads(response.read())["taskmanagers"]
            except (urllib.error.URLError, OSError, ValueError, KeyError):
                pass
            if listening and registered == self.task_managers:
                return
            if time.monotonic() > deadline:
                raise FlinkError(
                    f"the cluster was not ready within {self.start_timeout}s: "
                    f"{registered} of {self.task_managers} TaskManagers registered, the job "
                    f"server {'' if listening else 'not '}listening on {self.job_port}; the "
                    f"logs: {self.log_dir}")
            time.sleep(0.5)

    def _tail(self, name, lines=15):
        text = ""
        for suffix in (".out", ".log"):
            try:
                with open(os.path.join(self.log_dir, name + suffix), errors="replace") as f:
                    text += "".join(f.readlines()[-lines:])
            except OSError:
                pass
        return text.rstrip()

    def stop(self, timeout=20):
        """Stops every process started (and the SDK workers they started); waits until they are
        gone; deletes the working files (not the logs). Does nothing if none runs.

        Raises:
          FlinkError: a process group still alive after SIGKILL.
        """
        processes, self._processes = self._processes, {}
        for process in processes.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(_pid(process), signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in processes.values():
            if isinstance(process, int):  # Attached: not our child; its group's state tells.
                while _group_alive(process) and time.monotonic() < deadline:
                    time.sleep(0.1)
                continue
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for process in processes.values():  # The group too: SDK workers a TaskManager started.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(_pid(process), signal.SIGKILL)
            if not isinstance(process, int):
                process.wait()
        alive = []
        for name, process in processes.items():
            until = time.monotonic() + 10
            while _group_alive(_pid(process)) and time.monotonic() < until:
                time.sleep(0.1)
            if _group_alive(_pid(process)):
                alive.append(f"{name} (process group {_pid(process)})")
        for directory in glob.glob(os.path.join(self.run_dir, "*", "tmp")):
            shutil.rmtree(directory, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(self.run_dir, STATE_FILE))
        if alive:
            raise FlinkError(f"still running after SIGKILL: {', '.join(alive)}")


def _pid(process):
    return process if isinstance(process, int) else process.pid


def cluster_ports(beam_pipeline_args):
    """(REST port, job server port) of a local cluster, from beam_pipeline_args'
    --flink_master and --job_endpoint.

    Raises:
      FlinkError: the options name no Flink runner on this machine.
    """
    from apache_beam.options import pipeline_options

    options = pipeline_options.PipelineOptions(beam_pipeline_args)
    master = options.view_as(pipeline_options.FlinkRunnerOptions).flink_master
    endpoint = options.view_as(pipeline_options.PortableOptions).job_endpoint
    ports = []
    for option, value in (("--flink_master", master), ("--job_endpoint", endpoint)):
        found = re.fullmatch(r"(?:https?://)?(127\.0\.0\.1|localhost):(\d+)", value or "")
        if not found:
            raise FlinkError(f"{option}={value}: a cluster started here is on 127.0.0.1; give "
                             f"{option}=127.0.0.1:PORT (or localhost:PORT)")
        ports.append(int(found.group(2)))
    return tuple(ports)
