"""Where a model's weights came from, without torch: a checkpoint's sha256, or a random-init seed."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from samcache.errors import SamcacheError
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


def require_checkpoint_file(path: str | Path) -> None:
    """One line for a checkpoint path that is not a file (missing, or a folder)."""
    path = Path(path)
    if path.is_dir():
        raise SamcacheError(f"checkpoint {path} is a folder; give the checkpoint file in it")
    if not path.is_file():
        raise SamcacheError(f"checkpoint not found: {path}")


def file_sha256(path: str | Path, block: int = 1 << 24) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def load_tensors(module, state: dict, checkpoint, model_type: str) -> tuple[list[str], list[str]]:
    """``module.load_state_dict(state)``, not strict: (missing, unexpected) keys for the caller to judge; a shape
    mismatch (which torch raises even when not strict) becomes one line naming the file and the tensor."""
    try:
        missing, unexpected = module.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        detail = next((ln for ln in lines if ln.startswith("size mismatch")), lines[0])
        raise SamcacheError(f"{checkpoint} does not match {model_type}: {detail}") from None
    return list(missing), list(unexpected)
