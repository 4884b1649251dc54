"""The project's own package for Beam workers, built once and reused.

A Beam step's workers need the code it runs. When a pipeline's Beam arguments name no package
(`--extra_package`, `--setup_file`, `--requirements_file` or a container image), TFX builds a
package of the whole of TFX for every Beam step it runs (`tfx/utils/dependency_utils.py`): about
49 MB in a new temporary directory, never removed, and a few seconds each time. Naming this
project's wheel instead stops that, and gives Beam workers (Dataflow, Flink, Spark) the code of
this project, which installs TFX as its dependency.

The wheel is packed from the installed package, whether installed from a wheel (an image) or
editable (a checkout, its compiled extensions built in place), into a cache directory, under a
name that holds a digest of its files: a changed package is a new wheel, the same package is
the same file.
"""

import base64
import hashlib
import importlib.metadata
import os
import sys
import sysconfig
import tempfile
import zipfile

from . import cache

DISTRIBUTION = "tfx-pretrained-embeddings"
_PACKAGE = "tfx_embeddings"
# What Beam and TFX read as "the workers' code is provided" (dependency_utils.py).
DEPENDENCY_OPTIONS = ("extra_packages", "setup_file", "requirements_file",
                      "worker_harness_container_image", "sdk_container_image")
# The package's files that belong in the wheel (sources, compiled extensions, package data).
_SUFFIXES = (".py", ".so", ".pbtxt", ".xml", ".properties")


def cache_dir():
    """Where built packages are kept: cache.cache_dir("packages")."""
    return cache.cache_dir("packages")


def project_wheel(directory=None):
    """The wheel of the installed tfx-pretrained-embeddings, packed once per content.

    Args:
      directory: where to keep it (default: `cache_dir()`). Older wheels of the project there
        are removed when a new one is packed.

    Returns:
      The wheel's path.
    """
    directory = directory or cache_dir()
    files = _package_files()
    digest = hashlib.sha256()
    for arcname, path in files:
        digest.update(arcname.encode() + b"\0")
        with open(path, "rb") as f:
            digest.update(hashlib.sha256(f.read()).digest())
    distribution = importlib.metadata.distribution(DISTRIBUTION)
    version = f"{distribution.version}+{digest.hexdigest()[:16]}"
    name = DISTRIBUTION.replace("-", "_")
    wheel = os.path.join(directory, f"{name}-{version}-{_tag()}.whl")
    if os.path.exists(wheel):
        return wheel
    os.makedirs(directory, exist_ok=True)
    # An egg-info directory (a checkout on sys.path) has PKG-INFO, of the same format.
    metadata = (distribution.read_text("METADATA") or distribution.read_text("PKG-INFO")).replace(
        f"\nVersion: {distribution.version}\n", f"\nVersion: {version}\n", 1)
    dist_info = f"{name}-{version}.dist-info"
    handle, partial = tempfile.mkstemp(dir=directory, suffix=".partial")
    os.close(handle)
    try:
        _write_wheel(partial, files, dist_info, {
            "METADATA": metadata, "entry_points.txt": distribution.read_text("entry_points.txt")})
        os.chmod(partial, 0o644)
        os.replace(partial, wheel)  # Whole, or not there.
    finally:
        if os.path.exists(partial):
            os.remove(partial)
    for other in os.listdir(directory):
        if other.startswith(f"{name}-") and other != os.path.basename(wheel):
            os.remove(os.path.join(directory, other))
    return wheel


def with_package(beam_pipeline_args, package):
    """Beam arguments (a list) that name `package` as `--extra_package`, unless they already
    name the workers' code (any of DEPENDENCY_OPTIONS): then they are returned as they are."""
    from apache_beam.options.pipeline_options import PipelineOptions

    flags = [arg for arg in beam_pipeline_args if isinstance(arg, str)]  # Not placeholders.
    options = PipelineOptions(flags=flags).get_all_options()
    if any(options.get(name) for name in DEPENDENCY_OPTIONS):
        return list(beam_pipeline_args)
    return list(beam_pipeline_args) + [f"--extra_package={package}"]


def _package_files():
    """(name in the wheel, path) of the importable package's files, links followed."""
    import tfx_embeddings

    root = os.path.dirname(tfx_embeddings.__file__)
    files = []
    for directory, subdirectories, names in os.walk(root, followlinks=True):
        subdirectories[:] = sorted(d for d in subdirectories
                                   if d != "__pycache__" and not d.startswith("."))
        for name in sorted(names):
            if name.endswith(_SUFFIXES):
                path = os.path.join(directory, name)
                files.append((_PACKAGE + "/" + os.path.relpath(path, root).replace(os.sep, "/"),
                              path))
    return files


def _tag():
    version = f"cp{sys.version_info[0]}{sys.version_info[1]}"
    platform = sysconfig.get_platform().replace("-", "_").replace(".", "_")
    return f"{version}-{version}-{platform}"


def _record_line(arcname, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{arcname},sha256={digest},{len(data)}"


def _write_wheel(path, files, dist_info, texts):
    """A wheel (PEP 427) of files, with texts ({name: text or None} in its .dist-info), its
    WHEEL and RECORD."""
    record = []
    wheel_file = (f"Wheel-Version: 1.0\nGenerator: {_PACKAGE}.pipeline.packages\n"
                  f"Root-Is-Purelib: false\nTag: {_tag()}\n")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for arcname, source in files:
            with open(source, "rb") as f:
                data = f.read()
            archive.writestr(zipfile.ZipInfo(arcname, date_time=(1980, 1, 1, 0, 0, 0)), data,
                             zipfile.ZIP_DEFLATED)
            record.append(_record_line(arcname, data))
        for name, text in sorted({**texts, "WHEEL": wheel_file}.items()):
            if text is None:
                continue
            arcname = f"{dist_info}/{name}"
            archive.writestr(zipfile.ZipInfo(arcname, date_time=(1980, 1, 1, 0, 0, 0)),
                             text.encode(), zipfile.ZIP_DEFLATED)
            record.append(_record_line(arcname, text.encode()))
        record.append(f"{dist_info}/RECORD,,")
        archive.writestr(zipfile.ZipInfo(f"{dist_info}/RECORD", date_time=(1980, 1, 1, 0, 0, 0)),
                         "\n".join(record) + "\n", zipfile.ZIP_DEFLATED)
