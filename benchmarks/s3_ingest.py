"""The ingest benchmark's row from a bucket: EmbeddingGen reading the vector file from an S3
emulator instead of local disk (its vocabulary and output stay local, as in the disk row).

    python -m benchmarks.bench_ingest --only embeddinggen embeddinggen_s3

The emulator is moto's S3 server (emulators/s3.py), on 127.0.0.1, started for the row and
stopped after it. The file is uploaded first (not timed); the measured process reads it through
Beam's S3 filesystem (boto3), one ranged GET per byte range, as it would from S3. What the row
measures is this code plus moto, not S3: moto answers every ranged GET by reading the whole
stored object, in one Python process, so a large file is slower there than it would be on a
real store, whose latency and bandwidth are not measured here.
"""

import os
import time

import psutil

NAME = "embeddinggen_s3"
BUCKET = "bench"


def rows(only, files, run_measured):
    """The row, measured with bench_ingest.run_measured, unless `only` leaves it out."""
    if only and NAME not in only:
        return []
    from emulators.s3 import S3Emulator, ranged_gets

    vectors = files["vectors"]
    key = f"vectors/{os.path.basename(vectors)}"
    with S3Emulator(buckets=[BUCKET]) as s3:
        started = time.time()
        s3.client().upload_file(vectors, BUCKET, key)
        upload = time.time() - started
        saved = dict(os.environ)
        os.environ.update(s3.env())  # The measured process inherits them.
        try:
            seconds, peak_mb, wall, stages = run_measured(
                ["threads", f"s3://{BUCKET}/{key}", files["vocabulary"]])
        finally:
            os.environ.clear()
            os.environ.update(saved)
        emulator_mb = psutil.Process(s3.process.pid).memory_info().rss / 2 ** 20
        gets = ranged_gets(s3.requests(), BUCKET, key)
    print(f"{NAME:16s} {seconds:7.2f} s  {peak_mb:7.0f} MB  (process {wall:.1f} s; upload "
          f"{upload:.1f} s, {len(gets)} ranged GETs, emulator RSS {emulator_mb:.0f} MB)",
          flush=True)
    return [{"name": NAME, "seconds": round(seconds, 2), "peak_rss_mb": round(peak_mb),
             "ranged_gets": len(gets), "emulator_rss_mb": round(emulator_mb),
             "upload_seconds": round(upload, 2),
             **({"stages": {k: round(v, 2) for k, v in stages.items()}} if stages else {})}]
