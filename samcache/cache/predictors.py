"""Models whose weights match a cache, and upstream predictors fed from it (micro-sam's ``set_precomputed``).

A cache's fingerprint names its weights: a checkpoint's sha256, or the seed of random-init
weights. Everything that decodes from a cache goes through ``load_prompt_decoder`` or
``load_predictor``, which refuse any other weights, so cached features are never decoded by a
model that did not make them. torch is imported here, never by ``samcache.cache.reader``
(whose ``CacheSplit`` the functions take).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from samcache.cache.schema import FINGERPRINT_ATTR, Fingerprint
from samcache.errors import SamcacheError
from samcache.features.families import backend_for
from samcache.features.weights import WeightsId, file_sha256

if TYPE_CHECKING:  # the reader imports this module lazily (Cache.predictor)
    from samcache.cache.reader import CacheSplit


def _weights_for(fp: Fingerprint, checkpoint, where: str) -> tuple[object, int, bool]:
    """(checkpoint or None, seed, allow_random) that rebuild the fingerprint's weights, or a one-line error."""
    if fp.random_weights:
        if checkpoint:
            raise SamcacheError(f"{where} holds {fp.weights()} features; checkpoint {checkpoint} cannot match them "
                                f"(leave the checkpoint out: the random weights are rebuilt from their seed)")
        return None, fp.random_seed, True
    if not checkpoint:
        raise SamcacheError(f"{where} was built from checkpoint sha256 {fp.checkpoint_sha256[:12]}; "
                            f"that checkpoint is needed to decode it", setting="checkpoint")
    backend_for(fp.model_type).require_weights_file(fp.model_type, checkpoint)
    return checkpoint, 0, False


def _check_same(weights: WeightsId, fp: Fingerprint, checkpoint, where: str) -> None:
    if weights.checkpoint_sha256 != fp.checkpoint_sha256:
        raise SamcacheError(f"checkpoint {checkpoint} (sha256 {weights.checkpoint_sha256[:12]}) does not match "
                            f"{where} (sha256 {fp.checkpoint_sha256[:12]})")


def load_prompt_decoder(split: CacheSplit, checkpoint=None, model_type: str | None = None):
    """The family's prompt decoder with the weights that made ``split``: ``(backend, decoder, WeightsId)``."""
    fp = split.fingerprint
    if model_type and model_type != fp.model_type:
        raise SamcacheError(f"cache {split.cache_path} was built with {fp.model_type}, not {model_type} "
                            f"(leave the model type out: decoding uses the cache's)")
    where = f"cache {split.cache_path}"
    path, seed, allow_random = _weights_for(fp, checkpoint, where)
    backend = backend_for(fp.model_type)
    decoder, weights = backend.build_decoder(fp.model_type, path, seed, allow_random=allow_random)
    if path is not None:
        _check_same(weights, fp, path, f"the fingerprint of {where}")
    return backend, decoder.eval(), weights


def load_predictor(split: CacheSplit, checkpoint=None, device: str | torch.device | None = None):
    """Upstream's predictor (``SamPredictor``, ``SAM2ImagePredictor``, ``Sam3Processor``) with the weights
    that made ``split``, on ``device``."""
    from samcache.features.device import resolve_device

    fp = split.fingerprint
    where = f"cache {split.cache_path}"
    path, seed, allow_random = _weights_for(fp, checkpoint, where)
    if path is not None:
        _check_same(WeightsId(file_sha256(path), None), fp, path, f"the fingerprint of {where}")
    backend = backend_for(fp.model_type)
    predictor = backend.build_predictor(fp.model_type, path, seed, allow_random)
    backend.move_predictor(predictor, resolve_device(str(device) if device is not None else "auto"))
    setattr(predictor, FINGERPRINT_ATTR, fp)  # so that set_precomputed refuses features of other weights
    return predictor


def set_precomputed(predictor, split: CacheSplit, image_id: str | int):
    """Make ``predictor`` hold one cached image, as if ``predictor.set_image(image)`` had run; returns it.

    Works with any upstream predictor of the cache's family whose weights made the cache; the stored maps
    (float16 or float32) are given to it as float32 (1,C,h,w). A predictor of another family is refused, and
    so is one from ``load_predictor``/``Cache.predictor`` whose weights did not make ``split``; a predictor
    you built yourself cannot be checked for its weights: it must be the one the cache was built from.
    """
    backend = backend_for(split.fingerprint.model_type)
    kind = backend.predictor_class()
    if kind is not None and not isinstance(predictor, kind):
        raise SamcacheError(f"split {split.name} of {split.cache_path} holds {split.fingerprint.model_type} features, "
                            f"for upstream's {kind.__name__}; got a {type(predictor).__name__}")
    held = getattr(predictor, FINGERPRINT_ATTR, None)
    if held is not None:
        split.require_model(held, "this predictor (from cache.predictor) decodes")
    features = {name: torch.from_numpy(np.asarray(value, np.float32))[None]
                for name, value in split.features(image_id).items()}
    backend.set_features(predictor, features, split.original_size(image_id), split.input_size(image_id))
    return predictor
