"""A cache on S3, against a real S3 HTTP server (moto's, on 127.0.0.1): every command works there, the arrays
equal a local cache's bit for bit (read with plain zarr + s3fs), and one writer per split is kept by leases."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading

import numpy as np
import pytest
import zarr

from conftest import ARRAYS, assert_one_line_error, extract_cfg, invoke
from samcache.pipeline.extract import extract


def plain(server, url: str):
    """The store read without samcache: plain zarr, s3fs through storage_options."""
    return zarr.open_group(url, mode="r", storage_options=server.storage_options())


def keys(server, bucket: str) -> list[str]:
    listing = server.client().list_objects_v2(Bucket=bucket)
    return sorted(o["Key"] for o in listing.get("Contents", []))


@pytest.fixture(scope="module")
def s3_cache(s3, synth_root):
    """val of the synthetic set, extracted by samcache into a bucket (the settings of cache32)."""
    url = f"s3://{s3.bucket()}/cities.zarr"
    extract(extract_cfg(synth_root, url, "val"), progress=False)
    return url


def test_s3_cache_holds_the_local_caches_arrays_bit_for_bit(s3, s3_cache, cache32):
    local = zarr.open_group(str(cache32), mode="r")
    remote = plain(s3, s3_cache)  # no samcache in the read path
    assert remote.attrs["fingerprint"] == local.attrs["fingerprint"]
    for name in ARRAYS:
        a, b = remote["val"][name], local["val"][name]
        assert a.chunks == b.chunks, name  # one image per chunk, as on disk
        assert np.array_equal(a[:], b[:]), name


@pytest.mark.slow
def test_zero_shot_on_s3_gives_the_local_caches_scores(s3, s3_cache, cache32, tmp_path):
    runs = {}
    for where, cache in (("s3", s3_cache), ("local", cache32)):
        invoke("zero-shot", "--cache", cache, "--split", "val", "--model-type", "tiny", "--prompt", "center",
               "--limit", "2", "--out", tmp_path / where, "--num-workers", "0", "-q", check=True)
        runs[where] = json.loads((tmp_path / where / "run.json").read_text())
    assert runs["s3"]["summary"] == runs["local"]["summary"] and runs["s3"]["cache"] == s3_cache


@pytest.mark.slow
def test_stage_2_commands_on_s3_give_the_local_caches_results(s3, s3_cache, synth_root, cache32, tmp_path):
    """zero-shot, clicks, train-head (--preload ram), evaluate and report, from s3:// and from the local copy."""
    extract(extract_cfg(synth_root, s3_cache, "train"), progress=False)
    scores = {}
    for where, cache in (("s3", s3_cache), ("local", cache32)):
        out = tmp_path / where
        invoke("zero-shot", "--cache", cache, "--split", "val", "--model-type", "tiny", "--prompt", "center",
               "--out", out / "zs", "--num-workers", "0", "-q", check=True)
        invoke("clicks", "--cache", cache, "--split", "val", "--model-type", "tiny", "--max-clicks", "2",
               "--limit", "1", "--out", out / "clicks", "-q", check=True)
        invoke("train-head", "--cache", cache, "--epochs", "1", "--preload", "ram", "--num-workers", "0",
               "--batch-size", "2", "--out", out / "head", "-q", check=True)
        invoke("evaluate", "--head", out / "head", "--cache", cache, "--num-workers", "0", "--out", out / "eval",
               "-q", check=True)
        invoke("report", out / "zs", out / "clicks", out / "eval", "--out", out / "report", "-q", check=True)
        scores[where] = {name: json.loads((out / name / "run.json").read_text())["summary"]
                         for name in ("zs", "clicks", "eval")}
        assert (out / "report" / "report.md").is_file()
    assert scores["s3"] == scores["local"]


def test_info_export_import_upgrade_and_the_notebook_api_on_s3(s3, s3_cache, cache32, tmp_path):
    import h5py

    import samcache

    info = invoke("info", "--cache", s3_cache, check=True)
    assert "every row of every array reads back" in invoke("verify", "--cache", s3_cache, check=True).stdout
    assert "store: a Zarr cache on S3: read/write, locking: leases" in info.stdout
    cache = samcache.open_cache(s3_cache)
    assert np.array_equal(cache.split("val").embedding(0), zarr.open_group(str(cache32))["val"]["embeddings"][0])
    h5 = tmp_path / "c.h5"
    invoke("export", s3_cache, h5, "-q", check=True)
    with h5py.File(h5, "r") as f:  # plain h5py: the exported rows are the local cache's
        assert np.array_equal(f["val"]["labels"][:], zarr.open_group(str(cache32))["val"]["labels"][:])
    back = f"s3://{s3.bucket()}/imported.zarr"
    killed = zarr.open_group(back, mode="w", storage_options=s3.storage_options(),  # as a killed import leaves it
                             attributes={"samcache_importing": "c.h5"})
    killed.create_group("val").create_array("labels", shape=(1,), dtype="u1")
    invoke("import", h5, back, "-q", check=True)  # a plain re-run: starts again over its own half-written store
    for name in ARRAYS:
        assert np.array_equal(plain(s3, back)["val"][name][:], zarr.open_group(str(cache32))["val"][name][:])
    upgraded = invoke("upgrade", "--cache", back, check=True)
    assert "nothing to upgrade" in upgraded.stdout.lower() or "format" in upgraded.stdout.lower()


def test_a_second_writer_is_refused_while_a_lease_is_live_and_takes_over_an_expired_one(s3, synth_root):
    bucket = s3.bucket()
    url = f"s3://{bucket}/held.zarr"
    extract(extract_cfg(synth_root, url, "val", limit=1), progress=False)
    lease = {"owner": "x", "host": "node-17", "pid": 4242, "purpose": "extract", "lease_s": 60}
    s3.client().put_object(Bucket=bucket, Key=".held.zarr.val.lease", Body=json.dumps(lease).encode())
    args = ["--cache", url, "--split", "val", "--dtype", "float32", "--batch-size", "1", "--attention", "upstream"]
    before = keys(s3, bucket)
    assert_one_line_error(invoke("extract", "--data", synth_root, *args, "--model-type", "tiny", "--num-workers",
                                 "0", "-q"), "node-17", "pid 4242", "lease")
    assert_one_line_error(invoke("export", url, synth_root.parent / "x.h5"), "node-17")
    assert_one_line_error(invoke("zero-shot", *args[:4], "--model-type", "tiny", "--out",
                                 synth_root.parent / "zs-held"), "being extracted")
    assert keys(s3, bucket) == before and not (synth_root.parent / "x.h5").exists()
    # the holder died elsewhere: once its lease is older than lease_s, the next command takes it over
    s3.client().put_object(Bucket=bucket, Key=".held.zarr.val.lease", Body=json.dumps({**lease, "lease_s": 0}).encode())
    invoke("extract", "--data", synth_root, *args, "--model-type", "tiny", "--num-workers", "0", "-q", check=True)
    assert ".held.zarr.val.lease" not in keys(s3, bucket)  # released at the end
    assert int(plain(s3, url)["val"]["done"][:].sum()) == 3


def test_a_killed_writer_on_this_host_does_not_block_the_next_run(s3, synth_root):
    bucket = s3.bucket()
    url = f"s3://{bucket}/killed.zarr"
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    lease = {"owner": "y", "host": socket.gethostname(), "pid": int(proc.stdout), "purpose": "extract",
             "lease_s": 3600}
    s3.client().put_object(Bucket=bucket, Key=".killed.zarr.val.lease", Body=json.dumps(lease).encode())
    extract(extract_cfg(synth_root, url, "val", limit=1), progress=False)
    assert int(plain(s3, url)["val"]["done"][:].sum()) == 1


def test_of_racing_writers_exactly_one_takes_the_lease(s3):
    """Eight threads, each its own S3 client, put the same lease at once: If-None-Match lets one through."""
    from samcache.cache.stores import leases
    from samcache.cache.stores.s3 import S3Ops, file_system

    bucket = s3.bucket()
    won, refused, barrier = [], [], threading.Barrier(8)

    def race(i):
        ops = S3Ops(file_system(), bucket)
        barrier.wait()
        try:
            won.append(leases.take(ops, "race.lease", f"writer {i}", lambda h, a: f"held by {h.purpose}"))
        except Exception as exc:
            refused.append(str(exc))

    threads = [threading.Thread(target=race, args=(i,)) for i in range(8)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert len(won) == 1 and len(refused) == 7
    holder = json.loads(s3.client().get_object(Bucket=bucket, Key="race.lease")["Body"].read())
    assert holder["owner"] == won[0].holder.owner and all(holder["purpose"] in r for r in refused)
    won[0].release()
    assert keys(s3, bucket) == []


@pytest.mark.slow  # make test's 6 minutes
def test_bad_buckets_endpoints_credentials_and_foreign_prefixes_are_one_line_errors(s3, synth_root, tmp_path):
    common = ["extract", "--data", synth_root, "--split", "val", "--model-type", "tiny", "--num-workers", "0"]
    assert_one_line_error(invoke(*common, "--cache", "s3://no-such-bucket/c.zarr"), "no bucket 'no-such-bucket'")
    bucket = s3.bucket()
    s3.client().put_object(Bucket=bucket, Key="theirs/notes.txt", Body=b"not ours")
    assert_one_line_error(invoke(*common, "--cache", f"s3://{bucket}/theirs"), "not a samcache cache")
    assert_one_line_error(invoke("info", "--cache", f"s3://{bucket}/theirs"), f"s3://{bucket}/theirs")
    assert keys(s3, bucket) == ["theirs/notes.txt"]  # nothing written beside or among their objects
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    config = tmp_path / "storage.yaml"
    config.write_text(f"storage:\n  endpoint_url: http://127.0.0.1:{closed}\n")
    assert_one_line_error(invoke(*common, "--cache", f"s3://{bucket}/c.zarr", "--config", config),
                          "cannot reach the S3 endpoint", str(closed))
    assert keys(s3, bucket) == ["theirs/notes.txt"]


@pytest.mark.slow
def test_wrong_credentials_are_one_line_errors(s3, synth_root):
    """moto checks keys once its auth is switched on (its /moto-api/reset-auth); a fresh process each time."""
    import urllib.request

    bucket = s3.bucket()
    iam = __import__("boto3").client("iam", endpoint_url=s3.endpoint, aws_access_key_id="x",
                                     aws_secret_access_key="y", region_name="us-east-1")
    iam.create_user(UserName="samcache")
    urllib.request.urlopen(urllib.request.Request(f"{s3.endpoint}/moto-api/reset-auth", data=b"0", method="POST",
                                                  headers={"Content-Type": "text/plain"}))
    try:
        env = {**os.environ, "AWS_ACCESS_KEY_ID": "AKIAWRONGWRONGWRONG1", "AWS_SECRET_ACCESS_KEY": "wrong"}
        proc = subprocess.run([sys.executable, "-m", "samcache", "extract", "--data", str(synth_root), "--cache",
                               f"s3://{bucket}/c.zarr", "--split", "val", "--model-type", "tiny"],
                              capture_output=True, text=True, env=env, timeout=300)
        assert_one_line_error(proc, "S3 refused access", f"s3://{bucket}/c.zarr")
    finally:
        from moto import settings

        settings.INITIAL_NO_AUTH_ACTION_COUNT = float("inf")  # the server runs in this process: auth off again
    assert keys(s3, bucket) == []
