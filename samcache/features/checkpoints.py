"""Checkpoint files, for every family: read one, recognise which registered model it holds, and refuse it in
one place when it is another model's or when a model that has official weights is run without any.

Recognition asks every registered family's torch-free ``Family.identify`` (keys and shapes), so no family's
upstream package is imported to name a file, and no family knows another.
"""

from __future__ import annotations

from pathlib import Path

from samcache.errors import SamcacheError, setting
from samcache.features.families import FAMILIES, family_of
from samcache.features.weights import WeightsId, file_sha256, require_checkpoint_file


def read_checkpoint(path: str | Path):
    """torch.load, memory-mapped where the file allows, weights only; one-line errors naming the file."""
    import torch

    path = Path(path)
    require_checkpoint_file(path)
    try:
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as exc:
            if "mmap" not in str(exc):
                raise
            return torch.load(path, map_location="cpu", weights_only=True)  # legacy format
    except Exception as exc:  # torch raises many types for a non-checkpoint file
        raise SamcacheError(f"{path} is not a PyTorch checkpoint, or is truncated ({type(exc).__name__})") from None


def identify(contents) -> str | None:
    """The registered model type whose checkpoint ``contents`` (a loaded file) is, or None."""
    for family in FAMILIES.values():
        if (found := family.identify(contents)) is not None:
            return found
    return None


def identify_checkpoint(checkpoint: str | Path) -> str:
    """The registered model type whose official checkpoint ``checkpoint`` (a path) is (``--model-type auto``)."""
    found = identify(read_checkpoint(checkpoint))
    if found is None:
        raise SamcacheError(f"cannot tell which model {checkpoint} holds (not an official checkpoint of "
                            f"{', '.join(FAMILIES)})", setting="model_type")
    return found


def load_checkpoint(model_type: str, path: str | Path):
    """``path``'s contents, refused in one line unless they are ``model_type``'s: another family's checkpoint is
    named as that family's, another model of the same family as that model, with the model type to pass."""
    contents = read_checkpoint(path)
    found = identify(contents)
    if found == model_type:
        return contents
    family = family_of(model_type)
    if found is None:
        raise SamcacheError(f"{path} is not a {family.title} checkpoint of a known size (expected {family.checkpoint})")
    other = family_of(found).title
    wanted = model_type if other == family.title else family.title  # the family when it differs, else the model
    raise SamcacheError(f"{path} is a {other} checkpoint ({found}), not {wanted}; pass {setting('model_type')} {found}")


def require_checkpoint(model_type: str, checkpoint: str | Path | None, allow_random: bool = False) -> None:
    """A model with official weights is never silently random: it needs a checkpoint unless ``allow_random``
    (tests and benchmarks); a checkpoint given must be a file."""
    if checkpoint is not None:
        require_checkpoint_file(checkpoint)
        return
    family = family_of(model_type)
    if family.needs_checkpoint(model_type) and not allow_random:
        raise SamcacheError(f"{model_type} needs {setting('checkpoint')} "
                            f"(e.g. checkpoints/{family.official_checkpoints[model_type]})")


def weights_id(checkpoint: str | Path | None, seed: int) -> WeightsId:
    """The weights' identity: the checkpoint's sha256, or the random init's seed."""
    if checkpoint is None:
        return WeightsId(None, seed)
    return WeightsId(file_sha256(checkpoint), None)
