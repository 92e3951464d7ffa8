"""Models whose weights match a cache, and upstream predictors fed from it (micro-sam's ``set_precomputed``).

A cache's fingerprint names its weights: a checkpoint's sha256, or the seed of random-init
weights. Everything that decodes from a cache goes through ``load_prompt_decoder`` or
``load_predictor``, which refuse any other weights, so cached features are never decoded by a
model that did not make them. ``predictor`` (``samcache.predictor``) is the notebook's one call.
torch is imported here, never by ``samcache.cache.reader``, which knows nothing of this module.
"""

from __future__ import annotations

import numpy as np
import torch

from samcache.cache.reader import Cache, CacheSplit, open_cache
from samcache.cache.schema import FINGERPRINT_ATTR, Fingerprint
from samcache.errors import SamcacheError
from samcache.features.families import backend_for
from samcache.features.weights import WeightsId, file_sha256


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
    so is one from ``load_predictor``/``predictor`` whose weights did not make ``split``; a predictor
    you built yourself cannot be checked for its weights: it must be the one the cache was built from.
    """
    backend = backend_for(split.fingerprint.model_type)
    kind = backend.predictor_class()
    if kind is not None and not isinstance(predictor, kind):
        raise SamcacheError(f"split {split.name} of {split.cache_path} holds {split.fingerprint.model_type} features, "
                            f"for upstream's {kind.__name__}; got a {type(predictor).__name__}")
    held = getattr(predictor, FINGERPRINT_ATTR, None)
    if held is not None:
        split.require_model(held, "this predictor (from samcache.predictor) decodes")
    features = {name: torch.from_numpy(np.asarray(value, np.float32))[None]
                for name, value in split.features(image_id).items()}
    backend.set_features(predictor, features, split.original_size(image_id), split.input_size(image_id))
    return predictor


def predictor(cache: Cache | str, split: CacheSplit | str, image_id: str | int, checkpoint=None, device=None):
    """Upstream's predictor (``SamPredictor`` / ``SAM2ImagePredictor`` / ``Sam3Processor``) holding
    ``image_id``'s cached features, as if ``set_image`` had run: call its ``predict`` as usual (SAM 3:
    ``set_text_prompt``, or ``predictor.model.predict_inst(predictor.state, ...)`` for points and boxes).

    ``cache``: an open ``Cache`` (or its path); ``split``: a split name of it, or a ``CacheSplit`` of any cache
    the same weights made. ``checkpoint`` must be the one the cache was built from (checked by sha256); leave
    it out for random-weight caches."""
    cache = cache if isinstance(cache, Cache) else open_cache(str(cache))
    split = cache.as_split(split)
    if split.cache_path != cache.path:  # this cache's own splits decode with their own weights, even stale ones
        split.require_model(cache.fingerprint, f"cache {cache.path} holds")
    return set_precomputed(load_predictor(split, checkpoint, device), split, image_id)
