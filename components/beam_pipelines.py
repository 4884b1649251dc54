"""What a Beam pipeline leaves behind when it never runs.

`beam.Pipeline()` creates a local directory (`beam-pipeline-temp*`, in the temporary
directory) and removes it only at the end of `run()`. A job refused before it runs (a bad file,
a path out of reach, a bad option) would leave one behind every time.
"""

import contextlib
import shutil


@contextlib.contextmanager
def local_directory_removed(pipeline):
    """Removes pipeline's local directory on leaving, whether or not the pipeline ran.

    Example:
      pipeline = beam.Pipeline()
      with local_directory_removed(pipeline), pipeline:
          _ = pipeline | ...
    """
    try:
        yield pipeline
    finally:
        shutil.rmtree(pipeline.local_tempdir, ignore_errors=True)
