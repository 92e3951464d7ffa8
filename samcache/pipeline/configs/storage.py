"""Where remote caches live: the config's ``storage:`` section, read by every command (no flags of its own).

Credentials are not settings: they come from the environment or ``~/.aws`` as AWS tools take them, so that
no saved config.yaml ever holds a key.
"""

from __future__ import annotations

from typing import Optional

from pydantic import Field

from samcache.pipeline.config import StageConfig, register


@register
class StorageConfig(StageConfig):
    SECTION = "storage"
    endpoint_url: Optional[str] = Field(None, description="S3 endpoint (MinIO, Ceph, R2, ...); default: "
                                                           "AWS_ENDPOINT_URL, else AWS.")
    region: Optional[str] = Field(None, description="S3 region; default: AWS_DEFAULT_REGION or the profile's.")
    profile: Optional[str] = Field(None, description="Profile in ~/.aws/ (default: AWS_PROFILE, else default).")
    anon: bool = Field(False, description="Unsigned requests (a public bucket).")

    def given(self) -> bool:
        return self != StorageConfig()
