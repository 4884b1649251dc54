"""A run's terminal output is for a person; its full log, for debugging, goes to a file.

    with RunConsole(log_path, verbose=False) as console:
        runners.run_local(config)
        console.print(summary)

Inside, file descriptors 1 and 2 point at the log file: everything TFX, Beam (its worker
processes inherit them), TensorFlow's C++ runtime and warnings write goes there. The terminal
gets what a person reads: a line when each component starts and one when it ends (with its
status and duration), progress lines of long steps (at most one per component every few
seconds), warnings of this project, an expected condition as one plain sentence (no previous
model on a first run), and what the caller prints. What the project changed in the model
(components/model_changes.py) is gathered in `statements`, for the caller's summary. With
verbose, the whole log also streams to the terminal.
"""

import logging
import os
import re
import sys
import threading
import time
import traceback
import warnings

from ..components import model_changes, progress
from ..components.latest_blessed_model import NO_PREVIOUS_MODEL

PROGRESS_EVERY_SECONDS = 5.0
_FORWARDED = re.compile(r'message: "((?:[^"\\]|\\.)*)"')  # A Beam worker's record, forwarded.


# The full logs of this many runs are kept (a schedule's disk stays bounded).
LOGS_KEPT = 30


def log_path(config):
    """Where a local run's full log goes: <pipeline root>/logs/, or beside the metadata store
    when the pipeline root is remote. The oldest logs there beyond LOGS_KEPT - 1 are removed."""
    base = (config.pipeline_root if "://" not in config.pipeline_root
            else os.path.dirname(config.metadata_path))
    logs = os.path.join(base, "logs")
    if os.path.isdir(logs):
        old = sorted((entry for entry in os.scandir(logs) if entry.name.endswith(".log")),
                     key=lambda entry: entry.stat().st_mtime)
        for entry in old[:max(0, len(old) - (LOGS_KEPT - 1))]:
            os.remove(entry.path)
    return os.path.join(logs, f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log")


class ComponentTimes:
    """Per component, in the order they ran: its status and seconds."""

    def __init__(self):
        self.rows = {}  # name -> [status, started, seconds]

    def started(self, name):
        self.rows[name] = ["running", time.monotonic(), None]

    def cached(self, name):
        self.rows[name][0] = "cached"

    def finished(self, name):
        row = self.rows[name]
        row[0] = "complete" if row[0] == "running" else row[0]
        row[2] = time.monotonic() - row[1]
        return row

    def running(self):
        return [name for name, row in self.rows.items() if row[0] == "running"]

    def failed(self):
        for name in self.running():
            self.rows[name][0], self.rows[name][2] = "failed", (time.monotonic()
                                                                 - self.rows[name][1])

    def table(self):
        lines = [f"{'component':26s} {'status':9s} {'seconds':>8s}"]
        for name, (status, _, seconds) in self.rows.items():
            lines.append(f"{name:26s} {status:9s} {seconds or 0.0:8.1f}")
        return "\n".join(lines)


class _ConsoleHandler(logging.Handler):
    """Turns the records a person needs into terminal lines; the rest only reach the log."""

    def __init__(self, console):
        super().__init__(logging.INFO)
        self._console = console
        self._last_line = {}  # component -> when its last line was printed
        self._held = {}  # component -> its latest progress line not printed yet

    def emit(self, record):
        try:
            self._emit(record)
        except Exception:  # A console line must never break the run.
            self.handleError(record)

    def _emit(self, record):
        times, current = self._console.times, (self._console.times.running() or [None])[-1]
        if record.msg == "Component %s is running.":
            name = record.args[0]
            times.started(name)
            self._last_line[name] = time.monotonic()
            self._console.line(f"{name} started")
        elif record.msg == "Component %s is finished.":
            name = record.args[0]
            if name in self._held:  # A step's last progress line is always shown.
                self._console.line(self._held.pop(name))
            status, _, seconds = times.finished(name)
            self._console.line(f"{name} {status} ({seconds:.1f}s)")
        elif record.msg == "A cached execution %d is used." and current:
            times.cached(current)
        elif record.msg == "[%s] Input resolution error: %s" or (
                record.msg == "[%s] Resolved inputs: %s" and "Resolver" in record.args[0]):
            self._console.line(f"{record.args[0]}: {_resolved(record)}")
        elif (text := _progress_text(record)) is not None:
            line, now = f"{current}: {text}" if current else text, time.monotonic()
            if current is None or now - self._last_line.get(current, 0) >= PROGRESS_EVERY_SECONDS:
                self._last_line[current] = now
                self._held.pop(current, None)
                self._console.line(line)
            else:
                self._held[current] = line
        elif record.name == model_changes.LOGGER.name:
            self._console.statements.append(
                (current, getattr(record, "statement", record.getMessage())))
        elif (record.levelno >= logging.WARNING and record.name.startswith("tfx_embeddings")):
            self._console.line(f"{current + ': ' if current else ''}{record.getMessage()}")


def _resolved(record):
    """What a resolver found, in a sentence: no model on a first run is expected."""
    found = record.args[1] if record.msg.startswith("[%s] Resolved") else ()
    models = [artifact for inputs in found for artifact in inputs.get("model", [])]
    if not models:
        return NO_PREVIOUS_MODEL
    return f"the previous model to start from: {models[-1].uri}"


def _progress_text(record):
    if record.name == progress.LOGGER.name:
        return record.getMessage()[len(progress.PREFIX):]
    if record.levelno == logging.INFO and progress.PREFIX in str(record.msg):
        found = _FORWARDED.search(record.getMessage())
        if found and found.group(1).startswith(progress.PREFIX):
            return found.group(1)[len(progress.PREFIX):].encode().decode("unicode_escape")
    return None


class RunConsole:
    """Routes a run's output: the full log to log_path, a person's lines to the terminal."""

    def __init__(self, log_path, verbose=False):
        self.log_path, self.verbose = log_path, verbose
        self.times = ComponentTimes()
        self.statements = []  # (the component that made it, the statement), as they came.

    def statements_text(self):
        """What the project changed in the model, a line per statement: the same statement
        of several components (trainers) once, naming them all; "" if there were none."""
        by_text = {}
        for component, text in self.statements:
            by_text.setdefault(text, []).append(component)
        if not by_text:
            return ""
        return "what changed in the model:\n" + "\n".join(
            f"  {', '.join(dict.fromkeys(c for c in components if c)) or '-'}: {text}"
            for text, components in by_text.items())

    def __enter__(self):
        import absl.logging

        # INFO, explicitly: absl's default verbosity reads as WARNING to code that saves and
        # restores it (TensorFlow's SavedModel writer does), which would hide TFX's INFO lines.
        absl.logging.set_verbosity(absl.logging.INFO)

        os.makedirs(os.path.dirname(self.log_path), exist_ok=True)
        sys.stdout.flush()
        sys.stderr.flush()
        self._log = open(self.log_path, "ab", buffering=0)
        self._terminal = os.dup(1)
        self._saved = (os.dup(1), os.dup(2))
        self._tee = None
        if self.verbose:  # Both ways: a thread copies what the run writes to log and terminal.
            read_end, write_end = os.pipe()
            self._tee = threading.Thread(target=self._copy, args=(read_end,), daemon=True)
            self._tee.start()
            target = write_end
        else:
            target = self._log.fileno()
        os.dup2(target, 1)
        os.dup2(target, 2)
        if self.verbose:
            os.close(target)
        root = logging.getLogger()
        self._saved_logging = (root.handlers[:], root.level)
        file_handler = logging.StreamHandler(sys.stderr)
        file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        root.handlers = [file_handler, _ConsoleHandler(self)]
        root.setLevel(logging.INFO)
        logging.captureWarnings(True)
        warnings.simplefilter("default")
        return self

    def _copy(self, read_end):
        while chunk := os.read(read_end, 1 << 16):
            self._log.write(chunk)
            os.write(self._terminal, chunk)
        os.close(read_end)

    def line(self, text):
        """A timestamped line for the person (also in the log)."""
        self.print(f"{time.strftime('%H:%M:%S')} {text}")

    def print(self, text=""):
        """Text for the person: on the terminal, and in the log."""
        data = (text + "\n").encode()
        if self.verbose:
            os.write(1, data)
        else:
            os.write(self._terminal, data)
            self._log.write(data)

    def __exit__(self, *exc_info):
        if exc_info[0] is not None:
            for name in self.times.running():
                self.line(f"{name} failed")
            self.times.failed()
            traceback.print_exception(*exc_info)  # Into the log: fd 2 still points there.
        sys.stdout.flush()
        sys.stderr.flush()
        root = logging.getLogger()
        root.handlers, level = self._saved_logging
        root.setLevel(level)
        logging.captureWarnings(False)
        os.dup2(self._saved[0], 1)
        os.dup2(self._saved[1], 2)
        if self._tee is not None:  # The pipe's last writer is gone: it copies what is left.
            self._tee.join(timeout=5)
        for fd in (*self._saved, self._terminal):
            os.close(fd)
        self._log.close()
        return False
