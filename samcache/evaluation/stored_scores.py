"""A text pass's decoder outputs, stored per image (``zero-shot --prompt text --keep-scores``) so that every
compose rule and setting can be scored later without the model (``samcache sweep``).

Per image, one ``scores/<image_id>.npz``: per phrase its presence score and its semantic logits, and every
instance whose presence x score >= ``floor`` (``--keep-scores-from``) with its score and mask logits, all
at the decoder's own resolution (SAM 3: 288 x 288) and in float32, compressed losslessly (Blosc zstd, byte
shuffle). Lossless on purpose: composing the stored outputs gives bit for bit the label map a full run
gives (on the same device kind). Instances below ``floor`` can change no rule whose score threshold is
>= ``floor`` (instances and fused only read instances from their threshold on), so they are not stored.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numcodecs
import numpy as np
import torch

from samcache.errors import SamcacheError
from samcache.features.backend import TextResult
from samcache.fileio import write_with

SCORES_DIR = "scores"
FORMAT = 1
_CODEC = numcodecs.Blosc(cname="zstd", clevel=5, shuffle=numcodecs.Blosc.SHUFFLE)


@dataclass
class StoredImage:
    """One image's stored outputs: its phrases, in the run's prompt order, and their grounding results."""

    phrases: list[str]
    floor: float  # instances stored from this presence x score on
    results: list[TextResult]


def _packed(a: torch.Tensor) -> np.ndarray:
    return np.frombuffer(_CODEC.encode(np.ascontiguousarray(a.detach().float().cpu().numpy())), np.uint8)


def store_image(path: Path, phrases: list[str], results: list[TextResult], floor: float) -> int:
    """Write one image's outputs atomically; returns the file's size in bytes."""
    keep = [torch.nonzero(r.scores * r.presence >= floor).flatten().cpu() for r in results]
    masks = [r.mask_logits[k.to(r.mask_logits.device)] for r, k in zip(results, keep)]
    stacked = torch.cat(masks) if masks else torch.zeros(0)
    arrays = {
        "format": np.array(FORMAT), "floor": np.array(floor, np.float64), "phrases": np.array(phrases),
        "presence": np.array([r.presence for r in results], np.float64),
        "semantic": _packed(torch.stack([r.semantic_logits for r in results])),
        "semantic_shape": np.array(results[0].semantic_logits.shape),
        "counts": np.array([len(k) for k in keep]),
        "scores": torch.cat([r.scores.float().cpu()[k] for r, k in zip(results, keep)]).numpy(),
        "masks": _packed(stacked), "mask_shape": np.array(results[0].mask_logits.shape[1:]),
    }
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # the big arrays are compressed already
    write_with(path, lambda tmp: tmp.write_bytes(buffer.getvalue()))
    return len(buffer.getvalue())


def load_image(path: Path) -> StoredImage:
    """One image's stored outputs as grounding results (only the stored instances); one line if unreadable."""
    try:
        with np.load(path) as z:
            if int(z["format"]) != FORMAT:
                raise SamcacheError(f"{path}: stored scores of format {int(z['format'])}; this samcache reads "
                                    f"{FORMAT}")
            h, w = (int(v) for v in z["mask_shape"])
            semantic = np.frombuffer(_CODEC.decode(z["semantic"].tobytes()), np.float32)
            semantic = semantic.reshape(len(z["presence"]), *(int(v) for v in z["semantic_shape"]))
            counts = z["counts"]
            masks = np.frombuffer(_CODEC.decode(z["masks"].tobytes()), np.float32).reshape(int(counts.sum()), h, w)
            scores, presence, phrases, floor = z["scores"], z["presence"], [str(p) for p in z["phrases"]], float(z["floor"])
    except SamcacheError:
        raise
    except (OSError, KeyError, ValueError, RuntimeError) as e:
        raise SamcacheError(f"{path}: not readable stored scores ({e})") from None
    starts = np.concatenate([[0], np.cumsum(counts)])
    results = [TextResult(torch.from_numpy(masks[a:b].copy()), torch.from_numpy(scores[a:b].copy()), float(pi),
                          torch.zeros(b - a, 4), torch.from_numpy(semantic[p].copy()))
               for p, (a, b, pi) in enumerate(zip(starts[:-1], starts[1:], presence))]
    return StoredImage(phrases, floor, results)
