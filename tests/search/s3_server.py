"""A bucket on a local moto S3 server (127.0.0.1, random port) for the cloud-storage tests;
pyarrow and Ray Tune reach it through `?endpoint_override=...` in the storage URI."""

import contextlib
import os

import pyarrow.fs as pafs
from moto.server import ThreadedMotoServer

CREDS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
         "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}


@contextlib.contextmanager
def moto_bucket(bucket: str):
    """Yields (URI of s3://BUCKET/runs with the endpoint query, pyarrow S3 filesystem).
    The fake credentials are in os.environ meanwhile (child processes inherit them)."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    old = {k: os.environ.get(k) for k in CREDS}
    os.environ.update(CREDS)
    try:
        host, port = server.get_host_and_port()
        fs = pafs.S3FileSystem(endpoint_override=f"{host}:{port}", scheme="http",
                               region="us-east-1", allow_bucket_creation=True)
        fs.create_dir(bucket)
        yield f"s3://{bucket}/runs?endpoint_override={host}:{port}&scheme=http&region=us-east-1", fs
    finally:
        server.stop()
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
