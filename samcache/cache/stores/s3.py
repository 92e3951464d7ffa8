"""A Zarr store on S3 (``s3://bucket/prefix/cache.zarr``; AWS, MinIO, Ceph, R2, ...) through ``s3fs``.

Why s3fs: zarr opens ``s3://`` URLs with it natively (``zarr.open_group(url, storage_options=...)``), so the
plain-zarr recipe and samcache use one client; its file system pickles, so Dask workers get it as they
are; and it passes S3's conditional puts through (``If-None-Match``, ``If-Match``), which is all a writer
lease needs (``leases.py``). obstore is faster per request but its zarr store does not pickle (zarr #4029).

Credentials and the endpoint come as AWS tools take them (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``,
``AWS_PROFILE``, ``AWS_ENDPOINT_URL``, ``~/.aws/``), or from the config's ``storage:`` section
(``configure``). Keys are never read from a config file: a run's saved config.yaml must not hold them.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict, dataclass
from typing import Iterator

import zarr

from samcache.cache.stores.leases import Holder, ObjectOps, Taken, held, server_age, take
from samcache.cache.stores.base import StoreKind
from samcache.errors import SamcacheError


@dataclass
class S3Settings:
    """What a config's ``storage:`` section may say about S3 (None: botocore's own lookup)."""

    endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None
    anon: bool = False


SETTINGS = S3Settings()


def configure(**values) -> None:
    """Set S3 options for this process (the CLI calls it from ``storage:``; a notebook may too)."""
    global SETTINGS
    SETTINGS = S3Settings(**values)


def storage_options(settings: S3Settings | None = None) -> dict:
    """fsspec/s3fs options: no listings cache (another process may have written since), short timeouts."""
    s = settings or SETTINGS
    options = {"use_listings_cache": False, "anon": s.anon,
               "config_kwargs": {"connect_timeout": 5, "read_timeout": 60, "retries": {"max_attempts": 3}}}
    if s.endpoint_url:
        options["endpoint_url"] = s.endpoint_url
    if s.profile:
        options["profile"] = s.profile
    if s.region:
        options["client_kwargs"] = {"region_name": s.region}
    return options


def split_url(cache: str) -> tuple[str, str]:
    """'s3://bucket/a/b.zarr' -> ('bucket', 'a/b.zarr')."""
    bucket, _, key = cache.removeprefix("s3://").partition("/")
    return bucket, key.strip("/")


def file_system():
    import s3fs  # an install requirement, imported only when an s3:// cache is used

    return s3fs.S3FileSystem(**storage_options())


def translate(exc: BaseException, cache: str) -> SamcacheError:
    """One line for what goes wrong between here and a bucket."""
    bucket, _ = split_url(cache)
    endpoint = SETTINGS.endpoint_url or "the endpoint botocore chose (AWS_ENDPOINT_URL, profile, AWS)"
    name = type(exc).__name__
    if name in ("EndpointConnectionError", "ConnectTimeoutError", "ConnectionClosedError") or \
            isinstance(exc, (ConnectionError, TimeoutError)):
        return SamcacheError(f"cannot reach the S3 endpoint {endpoint} for {cache}: {exc}")
    if name in ("NoCredentialsError", "PartialCredentialsError", "ProfileNotFound"):
        return SamcacheError(f"no usable S3 credentials for {cache} ({exc}); set AWS_ACCESS_KEY_ID and "
                             f"AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or storage.anon: true for a public bucket")
    if isinstance(exc, PermissionError):
        return SamcacheError(f"S3 refused access to {cache} ({exc}); check the credentials (AWS_ACCESS_KEY_ID, "
                             f"AWS_PROFILE) and the bucket's policy")
    if isinstance(exc, FileNotFoundError):
        return SamcacheError(f"no bucket {bucket!r} at {endpoint}; create it first (e.g. `aws s3 mb s3://{bucket}`): "
                             f"samcache never creates buckets")
    return SamcacheError(f"S3 error on {cache}: {name}: {exc}")


class S3Ops(ObjectOps):
    """Conditional puts on one bucket, through s3fs's botocore client."""

    def __init__(self, fs, bucket: str):
        self.fs, self.bucket = fs, bucket

    def create(self, key: str, body: bytes) -> str:
        try:
            return self.fs.call_s3("put_object", Bucket=self.bucket, Key=key, Body=body, IfNoneMatch="*")["ETag"]
        except FileExistsError:  # s3fs's reading of 412 Precondition Failed on If-None-Match
            raise Taken() from None
        except OSError as exc:
            if "pre-condition" in str(exc).lower() or "precondition" in str(exc).lower():
                raise Taken() from None
            raise

    def replace(self, key: str, body: bytes, etag: str) -> str:
        try:
            return self.fs.call_s3("put_object", Bucket=self.bucket, Key=key, Body=body, IfMatch=etag)["ETag"]
        except (FileNotFoundError, FileExistsError):
            raise Taken() from None
        except OSError as exc:
            if "pre-condition" in str(exc).lower() or "precondition" in str(exc).lower():
                raise Taken() from None
            raise

    def delete(self, key: str, etag: str) -> None:
        with contextlib.suppress(OSError):  # gone or changed: someone took it over; theirs now
            self.fs.call_s3("delete_object", Bucket=self.bucket, Key=key, IfMatch=etag)

    def read(self, key: str):
        from fsspec.asyn import sync

        async def get():
            response = await self.fs._call_s3("get_object", Bucket=self.bucket, Key=key)
            return response, await response["Body"].read()

        try:
            response, body = sync(self.fs.loop, get)
        except FileNotFoundError:
            return None
        try:
            content = json.loads(body)
        except ValueError:
            content = {}
        age = server_age(response["LastModified"], response["ResponseMetadata"]["HTTPHeaders"].get("date"))
        return content, response["ETag"], age


class S3Zarr(StoreKind):
    describe = "a Zarr group on S3"
    as_cache = "a Zarr cache on S3"
    writable = True
    on_this_machine = False
    locking = "leases (conditional puts, renewed while held)"
    atomic_rename = False
    read_ahead = True
    listing = "consistent (S3 has been strongly consistent since 2020)"

    def matches(self, cache: str) -> bool:
        return cache.startswith("s3://")

    def _checked(self, cache: str) -> tuple:
        bucket, key = split_url(cache)
        if not bucket or not key:
            raise SamcacheError(f"{cache}: give the cache a name inside the bucket, e.g. s3://{bucket or 'bucket'}/"
                                f"cityscapes_vit_h.zarr (its leases sit beside it)")
        fs = file_system()
        try:
            fs.call_s3("head_bucket", Bucket=bucket)
        except Exception as exc:
            raise translate(exc, cache) from None
        return fs, bucket, key

    def exists(self, cache: str) -> bool:
        fs, bucket, key = self._checked(cache)
        try:
            return bool(fs.ls(f"{bucket}/{key}", detail=False))
        except FileNotFoundError:
            return False
        except Exception as exc:
            raise translate(exc, cache) from None

    def open(self, cache: str, mode: str, attributes: dict | None = None):
        self._checked(cache)
        try:
            return zarr.open_group(cache, mode=mode, storage_options=storage_options(), attributes=attributes)
        except (OSError, ConnectionError) as exc:
            if isinstance(exc, FileNotFoundError):
                raise
            raise translate(exc, cache) from None

    def remove_tree(self, cache: str) -> None:
        fs, bucket, key = self._checked(cache)
        fs.rm(f"{bucket}/{key}", recursive=True)

    def settings(self) -> dict:
        return asdict(SETTINGS)

    def configure(self, settings: dict) -> None:
        configure(**{k: v for k, v in settings.items() if k in S3Settings.__dataclass_fields__})

    def _lease_key(self, cache: str, split: str | None) -> tuple[ObjectOps, str, str]:
        fs, bucket, key = self._checked(cache)
        parent, _, name = key.rpartition("/")
        lease = f"{parent + '/' if parent else ''}.{name}{'.' + split if split else ''}.lease"
        return S3Ops(fs, bucket), lease, f"s3://{bucket}/{lease}"

    @contextlib.contextmanager
    def split_lock(self, cache: str, split: str, purpose: str) -> Iterator[None]:
        ops, key, url = self._lease_key(cache, split)

        def busy(holder: Holder, age: float) -> str:
            then = "or extract another split" if purpose == "extract" else f"then {purpose} again"
            left = max(0, int(holder.lease_s - age))
            return (f"split {split} of {cache} is held by samcache {holder.purpose} on {holder.host} (pid "
                    f"{holder.pid}; lease {url}, renewed {age:.0f} s ago, expires in {left} s unless renewed); "
                    f"wait for it to finish, {then}")

        with self._held(ops, key, purpose, busy, 0.0):
            yield

    @contextlib.contextmanager
    def cache_lock(self, cache: str) -> Iterator[None]:
        ops, key, url = self._lease_key(cache, None)

        def busy(holder: Holder, age: float) -> str:
            return (f"{cache} stayed held by samcache {holder.purpose} on {holder.host} (pid {holder.pid}; lease "
                    f"{url}) for {CACHE_WAIT_S:.0f} s")

        with self._held(ops, key, "create", busy, CACHE_WAIT_S):
            yield

    @contextlib.contextmanager
    def _held(self, ops, key, purpose, busy, wait_s) -> Iterator[None]:
        lease = take(ops, key, purpose, busy, wait_s)
        try:
            yield
        finally:
            lease.release()
        if lease.lost:
            raise SamcacheError(f"the lease s3://{ops.bucket}/{key} expired while this command stalled and another "
                                f"command took it over; check the cache with `samcache verify`")

    def split_busy(self, cache: str, split: str) -> bool:
        ops, key, _ = self._lease_key(cache, split)
        return held(ops, key) is not None


CACHE_WAIT_S = 120.0  # creating the store or a split group is short; waiting longer means a holder hangs
