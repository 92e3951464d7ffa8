"""Where a model's weights came from, without torch: a checkpoint's sha256, or a random-init seed."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from samcache.messages import RANDOM_WEIGHTS_TAG


@dataclass(frozen=True)
class WeightsId:
    """A checkpoint's sha256, or (``checkpoint_sha256`` None) the seed of random-init weights."""

    checkpoint_sha256: str | None
    random_seed: int | None

    @property
    def random(self) -> bool:
        return self.checkpoint_sha256 is None

    def describe(self) -> str:
        if self.random:
            return f"{RANDOM_WEIGHTS_TAG} (seed {self.random_seed})"
        return f"checkpoint sha256 {self.checkpoint_sha256[:12]}"


def file_sha256(path: str | Path, block: int = 1 << 24) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            digest.update(chunk)
    return digest.hexdigest()
