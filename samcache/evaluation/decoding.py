"""Decoding prompts from a cache: the library session that zero-shot, clicks and notebooks share.

``Decoder`` loads only the prompt encoder and mask decoder whose weights made the cache, and
decodes prompts against cached features without ever building the image encoder. ``predict``
takes prompts in original-image pixels and returns what upstream ``predict`` returns; stages use
the batched device-side methods (``decode``, ``upscale``) on prompts of many images at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from samcache.cache.predictors import load_prompt_decoder
from samcache.cache.reader import Cache, CacheSplit, open_cache
from samcache.data.labels import ClassSet, get_class_set
from samcache.errors import SamcacheError
from samcache.evaluation.requests import PromptRequest, check_requests
from samcache.features.backend import Prompts
from samcache.features.decoder import decode_chunked, prompt_budget
from samcache.features.device import resolve_device

UPSCALE_CHUNK = 24  # masks upsampled per interpolate call, to bound memory at 2048x1024


def device_features(feature_rows: list[dict[str, np.ndarray]], device: torch.device) -> dict[str, torch.Tensor]:
    """Each feature map of several images, stacked: {name: (M,C,h,w) float32 on ``device``}."""
    return {name: torch.from_numpy(np.stack([f[name] for f in feature_rows])).to(device).float()
            for name in feature_rows[0]}


class Decoder:
    """The prompt decoder matching a cache, on a device. ``checkpoint``: the file the cache was built from
    (checked by sha256); leave it out for random-weight caches. It decodes the features of ``split`` (default:
    the cache's first) and of any split, of this cache or another, that the same weights made; others are
    refused (``CacheSplit.require_model``)."""

    def __init__(self, cache: Cache | str, checkpoint=None, device: str | torch.device | None = None,
                 split: str | None = None, model_type: str | None = None):
        self.cache = cache if isinstance(cache, Cache) else open_cache(str(cache))
        reference = self.cache.split(split or self.cache.splits[0]) if self.cache.splits else None
        if reference is None:
            raise SamcacheError(f"cache {self.cache.path} has no finished split to decode")
        self.backend, decoder, self.weights = load_prompt_decoder(reference, checkpoint, model_type)
        self.fingerprint = reference.fingerprint  # the weights this decoder has: every split decoded must match
        self._user = f"this Decoder (split {reference.name} of {self.cache.path}) decodes"
        self.device = resolve_device(str(device) if device is not None else "auto")
        self.model = decoder.to(self.device)
        self.family = self.backend.info
        self.budget: int | None = None  # prompts per decoder call, measured on first use

    def decode(self, features: dict[str, torch.Tensor], image_index: torch.Tensor, point_coords, point_labels,
               boxes, multimask: bool, mask_input: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """B prompts (input-frame coordinates, on the device) over (M,...) features -> low-res logits
        (B,C,low_res,low_res) and scores (B,C), C = 3 with ``multimask`` or 1; within the memory budget."""
        if self.budget is None:
            self.budget = prompt_budget(self.backend, self.model, features)
        return decode_chunked(self.backend, self.model, features, image_index,
                              Prompts(point_coords, point_labels, boxes, mask_input), multimask, self.budget)

    def upscale(self, logits: torch.Tensor, input_size, original_size) -> torch.Tensor:
        """(P,C,low_res,low_res) logits of one image size -> (P,C,H,W) bool masks at the original resolution."""
        threshold = self.family.mask_threshold
        return torch.cat([self.backend.postprocess(logits[s: s + UPSCALE_CHUNK], input_size, original_size) > threshold
                          for s in range(0, len(logits), UPSCALE_CHUNK)])

    def to_frame(self, coords: np.ndarray, original_size) -> np.ndarray:
        """Original-pixel [x, y] (..., 2) -> the family's input frame."""
        return np.asarray(self.backend.to_input_frame(np.asarray(coords, np.float64), original_size))

    @torch.inference_mode()
    def predict_batch(self, split: CacheSplit | str, requests: list[PromptRequest]
                      ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Several prompts (of one or several images) in as few decoder calls as their shapes allow; per request
        ``(masks (K,H,W) bool, scores (K,) float32, low_res (K,low_res,low_res) float32)`` like ``predict``.
        Every request is checked first (``samcache.evaluation.requests``): a bad one is a one-line error."""
        split = self.split_of(split)
        requests = check_requests(requests, self.family.low_res)
        if not requests:
            return []
        rows = sorted({split.row_of(r.image_id) for r in requests})
        slot = {row: k for k, row in enumerate(rows)}
        features = device_features([split.features(row) for row in rows], self.device)
        placed = [Placed(slot[split.row_of(r.image_id)], split.original_size(split.row_of(r.image_id)), r.points,
                         r.labels, r.box, r.mask_input, r.multimask) for r in requests]
        results: list = [None] * len(requests)
        for members, logits, scores in self.decode_groups(features, placed):
            for j, k in enumerate(members):
                row = rows[placed[k].slot]
                masks = self.upscale(logits[j: j + 1], split.input_size(row), placed[k].size)[0]
                low_res = self.backend.feedback(logits[j])
                results[k] = (masks.cpu().numpy(), scores[j].float().cpu().numpy(), low_res.float().cpu().numpy())
        return results

    def decode_groups(self, features: dict[str, torch.Tensor], placed: list["Placed"]
                      ) -> list[tuple[list[int], torch.Tensor, torch.Tensor]]:
        """The prompt batcher: prompts of the same shape share decoder calls. Returns, per group in first-seen
        order, (the prompts' positions in ``placed``, low-res logits (G,C,r,r), scores (G,C))."""
        groups: dict[tuple, list[int]] = {}
        for k, p in enumerate(placed):
            groups.setdefault(p.key(), []).append(k)
        as_tensor = lambda values, dtype: torch.as_tensor(np.stack(values), dtype=dtype, device=self.device)  # noqa
        decoded = []
        for members in groups.values():
            group = [placed[k] for k in members]
            first = group[0]
            coords = labels = boxes = masks_in = None
            if first.points is not None:
                coords = as_tensor([self.to_frame(p.points, p.size) for p in group], torch.float)
                labels = as_tensor([np.asarray(p.labels) for p in group], torch.int)
            if first.box is not None:
                boxes = as_tensor([self.to_frame(np.reshape(p.box, (2, 2)), p.size).reshape(4) for p in group],
                                  torch.float)
            if first.mask_input is not None:
                masks_in = as_tensor([np.asarray(p.mask_input, np.float32) for p in group], torch.float)
            index = torch.tensor([p.slot for p in group], device=self.device)
            decoded.append((members, *self.decode(features, index, coords, labels, boxes, first.multimask, masks_in)))
        return decoded

    def decode_in_order(self, features: dict[str, torch.Tensor], placed: list["Placed"]
                        ) -> tuple[torch.Tensor, torch.Tensor]:
        """``decode_groups`` of prompts that share ``multimask``, back in the order given: (P,C,r,r), (P,C)."""
        decoded = self.decode_groups(features, placed)
        order = [k for members, _, _ in decoded for k in members]
        inverse = torch.empty(len(order), dtype=torch.long, device=self.device)
        inverse[torch.tensor(order, device=self.device)] = torch.arange(len(order), device=self.device)
        return (torch.cat([lg for _, lg, _ in decoded])[inverse], torch.cat([sc for _, _, sc in decoded])[inverse])

    def split_of(self, split: CacheSplit | str) -> CacheSplit:
        """A split name of this decoder's cache, or a CacheSplit of any cache, if this decoder's weights made it."""
        return self.cache.as_split(split).require_model(self.fingerprint, self._user)

    def predict(self, split: CacheSplit | str, image_id: str | int, points=None, labels=None, box=None,
                mask_input=None, multimask: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Prompts in original-image pixels -> ``(masks (K,H,W) bool, scores (K,), low_res (K,L,L))``, as
        upstream ``predict`` returns them (K = 3 with ``multimask``, else 1; L = ``family.low_res``, 256 for
        SAM 1 and 2.1, 288 for SAM 3). ``points`` (N,2) [x, y] with ``labels`` (N,) (1 foreground, 0 background,
        -1 padding), ``box`` (4,) x0,y0,x1,y1 (x0 <= x1, y0 <= y1), ``mask_input`` (1,L,L): an earlier
        prediction's ``low_res[k][None]``. Points and boxes outside the image are decoded as upstream decodes
        them; NaN, wrong shapes and other labels are one-line errors."""
        return self.predict_batch(split, [PromptRequest(image_id, points, labels, box, mask_input, multimask)])[0]


@dataclass
class Placed:
    """One prompt placed on an image of a batch, in original-image pixels: ``slot`` the image's row of the stacked
    features, ``size`` its original (H, W); ``points``/``labels``/``box``/``mask_input`` None when absent."""

    slot: int
    size: tuple
    points: np.ndarray | None = None
    labels: np.ndarray | None = None
    box: np.ndarray | None = None
    mask_input: np.ndarray | None = None
    multimask: bool = True

    def key(self) -> tuple:
        """Prompts with equal keys share one decoder call (same token count, same inputs)."""
        return (None if self.points is None else np.shape(self.points), self.box is None, self.mask_input is None,
                self.multimask)


@dataclass
class Decoding:
    """What a decoding stage (zero-shot, clicks) starts from: the split, its rows, the decoder on its device."""

    class_set: ClassSet
    split: CacheSplit
    rows: list[int]
    decoder: Decoder
    cfg: object  # the run's config with what the cache decided filled in (model_type): what config.yaml records

    @property
    def device(self) -> torch.device:
        return self.decoder.device

    @property
    def weights(self):
        return self.decoder.weights


def open_decoding(cfg) -> Decoding:
    """A stage's session from its config (``cache``, ``split``, ``classes``, ``limit``, ``checkpoint``, ...)."""
    cache = open_cache(cfg.cache)
    split = cache.split(cfg.split)
    class_set = get_class_set(cfg.classes, split.dataset)  # the set's classes, read from the split's labels
    rows = split.require_complete()[: cfg.limit]
    decoder = Decoder(cache, cfg.checkpoint, cfg.device, split=cfg.split, model_type=cfg.model_type)
    effective = cfg.model_copy(update={"model_type": split.fingerprint.model_type})
    return Decoding(class_set, split, rows, decoder, effective)
