"""Evaluating a semantic head on a cache split: predictions at original resolution, confusion-matrix IoU.

IoU is dataset-level, TP / (TP + FP + FN) over all pixels whose ground truth is not void,
as cityscapesScripts computes it. The confusion matrix is accumulated on the device; only
predictions that are saved or drawn come back to the host.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from samcache.cache.reader import Cache, CacheSplit, open_cache
from samcache.cache.schema import FINGERPRINT_ATTR, Fingerprint
from samcache.data.labels import get_class_set
from samcache.errors import SamcacheError
from samcache.evaluation.datasets import CacheHeadDataset
from samcache.evaluation.metrics import class_ious, confusion_matrix_torch, image_rows
from samcache.evaluation.predictions import save_prediction
from samcache.evaluation.training_data import iterate
from samcache.evaluation.visualize import save_overlay, source_image
from samcache.features.device import resolve_device
from samcache.features.families import get_family
from samcache.features.frames import to_original
from samcache.features.head import MultiScaleHead, build_head, head_features


@dataclass
class EvalOutputs:
    """What an evaluation writes besides its confusion matrix: predictions, the first overlays, and (when
    ``per_image`` is a list) each image's IoU rows (``metrics.image_rows``), appended in the split's order."""

    predictions_dir: Path | None = None
    visualize: int = 0
    vis_dir: Path | None = None
    title_suffix: str = ""
    per_image: list | None = None


@torch.no_grad()
def evaluate(model: torch.nn.Module, dataset: CacheHeadDataset, preloaded, batch_size: int, num_workers: int,
             device: torch.device, outputs: EvalOutputs | None = None, progress: bool = True) -> np.ndarray:
    """(classes, classes) int64 confusion matrix (ground truth x prediction) over the dataset's rows."""
    model.eval()
    outputs = outputs or EvalOutputs()
    cs, split = dataset.class_set, dataset.split
    conf = torch.zeros((cs.num_classes, cs.num_classes), dtype=torch.int64, device=device)
    shown, images = 0, []
    bar = tqdm(total=len(dataset), unit="img", desc="evaluate", disable=not progress, leave=False)
    for rows, features, gts in iterate(dataset, preloaded, list(range(len(dataset))), batch_size, num_workers,
                                       device):
        logits = model(*(f.float() for f in features))
        for k, row in enumerate(rows):  # one image at a time: 19 x 2048 x 1024 logits is 150 MB
            full = to_original(logits[k: k + 1], split.family.frame, split.input_sizes[row], split.original_sizes[row])
            pred = full[0].argmax(0).to(torch.uint8)
            gt = split.crop(row, gts[k])  # the image's own size (a split of mixed sizes pads its targets)
            image_conf = confusion_matrix_torch(pred, gt, cs.num_classes)
            conf += image_conf
            image_id = split.image_ids[row]
            if outputs.per_image is not None:
                images.append((image_id, image_conf))
            if outputs.predictions_dir is not None:
                save_prediction(outputs.predictions_dir, image_id, cs.to_label_ids(pred.cpu().numpy()), cs.source)
            if shown < outputs.visualize:
                shown += 1
                image = source_image(split, image_id)
                save_overlay(outputs.vis_dir / f"{image_id}.png", image, gt.cpu().numpy(), pred.cpu().numpy(), cs,
                             f"{image_id}  semantic head{outputs.title_suffix}")
        if images:  # one host copy per batch
            for (image_id, _), counts in zip(images, torch.stack([c for _, c in images]).cpu().numpy()):
                outputs.per_image += image_rows(image_id, counts, cs)
            images.clear()
        bar.update(len(rows))
    bar.close()
    return conf.cpu().numpy()


def evaluate_head(model: torch.nn.Module, cache, split: CacheSplit | str = "val", classes: str = "seed5",
                  batch_size: int = 8, device: str | None = None, features: tuple[str, ...] | None = None
                  ) -> dict[str, float]:
    """Per-class IoU (and ``"mean"``) of a head on a cache split, at original resolution, dataset-level like
    cityscapesScripts' ``evaluateImgLists``. ``model``: (B,C,h,w) feature maps -> (B,classes,h,w) logits, as
    ``fit_head`` returns it; ``features``: the arrays it reads (default: the main one, or all maps coarse to
    fine for a multiscale head). ``split``: a name of ``cache``'s, or a ``CacheSplit`` of any cache that the
    same weights made; a split of other weights than the head learnt from (``fit_head`` records them) or than
    ``cache``'s is a one-line error."""
    opened = cache if isinstance(cache, Cache) else open_cache(str(cache))
    target = opened.as_split(split)
    if target.cache_path != opened.path:
        target.require_model(opened.fingerprint, f"cache {opened.path} holds")
    trained = getattr(model, FINGERPRINT_ATTR, None)
    if trained is not None:
        target.require_model(trained, "this head (from fit_head) learnt from")
    if features is None:
        kind = "multiscale" if isinstance(model, MultiScaleHead) else "main"
        features = head_features(kind, opened.feature_shapes, opened.main_feature)
    cs = get_class_set(classes, target.dataset)
    where = resolve_device(device or "auto")
    dataset = CacheHeadDataset(target.cache_path, target.name, cs, mode="eval", features=tuple(features))
    conf = evaluate(model.to(where), dataset, None, batch_size, 0, where, None, progress=False)
    per_class, miou = class_ious(conf, dataset.class_set)
    return {**per_class, "mean": miou}


def summary_rows(per_class: dict[str, float], miou: float) -> list[dict]:
    return [{"class": k, "iou": v} for k, v in per_class.items()] + [{"class": "mean", "iou": miou}]


def load_head(path: str | Path, device: torch.device) -> tuple[torch.nn.Module, dict]:
    """A head checkpoint, loaded with weights_only=True (no code runs from the file)."""
    path = Path(path)
    if not path.is_file():
        raise SamcacheError(f"head checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        family = get_family(ckpt["fingerprint"].get("family", "sam"))
        channels = tuple(family.head_channels()[n] for n in ckpt.get("features", [family.main_feature]))
        model = build_head(ckpt.get("head", "main"), len(ckpt["class_names"]), ckpt["config"]["width"], channels)
        model.load_state_dict(ckpt["model"])
        get_class_set(ckpt["class_set"])
    except Exception as exc:
        raise SamcacheError(f"{path} is not a readable samcache head checkpoint ({type(exc).__name__}: "
                            f"{str(exc).splitlines()[0][:120] if str(exc) else 'damaged'})") from None
    return model.to(device), ckpt


def check_fingerprint(head_fp: dict, split, what: str) -> None:
    theirs, ours = Fingerprint.from_attrs(head_fp), split.fingerprint
    if not theirs.same_model(ours):
        raise SamcacheError(f"{what} was trained on {theirs.describe()} embeddings; split {split.name} of "
                            f"{split.cache_path} holds {ours.describe()}")
