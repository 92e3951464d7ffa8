"""SAM 3 behind samcache's backend interface: cache the trunk, recompute both necks in Stage 2.

Stage 1 stores the ViT trunk's output (C x 72 x 72) of the image squashed to 1008 x 1008. Stage 2
runs upstream's own neck code on it (the trunk swapped for a pass-through, ``_CachedTrunk``), which
gives exactly ``Sam3Processor.set_image``'s ``backbone_out``: the detector neck for concept (text)
prompts and the tracker neck for points and boxes. Points and boxes then go through the tracker's
prompt encoder and mask decoder, as ``Sam3Image.predict_inst`` does; noun phrases of several images
go through ``Sam3Image.forward_grounding`` in one call.
"""

from __future__ import annotations

import contextlib
import weakref

import numpy as np
import torch
from torch import nn

from samcache.errors import SamcacheError
from samcache.features.backend import Backend, TextResult
from samcache.features.checkpoints import require_checkpoint, weights_id
from samcache.features.sam3 import FRAME, SAM3
from samcache.features.sam3 import compat as sam3_compat
from samcache.features.sam3.build import build_sam3, load_sam3_state_dict
from samcache.features.tracker_heads import LOW_RES_CLAMP
from samcache.features.tracker_heads import decode as decode_points

INPUT_SIZE = FRAME  # 1008: every image is squashed to 1008 x 1008
MEAN, STD = SAM3.preprocessing["pixel_mean"][0], SAM3.preprocessing["pixel_std"][0]  # on [0, 1] pixels, per channel
MAX_HOLE_AREA = 256  # the interactive predictor fills background holes up to this area at 288 x 288
TEXT_MASK_THRESHOLD = 0.5  # Sam3Processor: sigmoid(mask logits) > 0.5


def normalize_images(images_uint8: torch.Tensor) -> torch.Tensor:
    """(B,3,H,W) uint8 -> (B,3,1008,1008) float32 exactly as Sam3Processor's transform.

    The squash runs on the uint8 image (antialiased bilinear, rounded to uint8), then /255, then
    (x - 0.5) / 0.5.
    """
    from torchvision.transforms import v2

    x = v2.functional.resize(images_uint8, [INPUT_SIZE, INPUT_SIZE])
    return (x.to(torch.float32) / 255.0 - MEAN) / STD


class Sam3TrunkEncoder(nn.Module):
    """What Stage 1 runs: normalisation + the ViT trunk (the necks run in Stage 2)."""

    def __init__(self, trunk: nn.Module):
        super().__init__()
        self.trunk = trunk

    def forward(self, images_uint8: torch.Tensor) -> torch.Tensor:
        """(B,3,H,W) uint8 -> (B,C,72,72) trunk features."""
        return self.trunk(normalize_images(images_uint8))[-1]


class _CachedTrunk(nn.Module):
    """Stands in for the trunk in Stage 2: its "image" is the cached trunk output."""

    def __init__(self, channels: int):
        super().__init__()
        self.channel_list = [channels]

    def forward(self, trunk_features: torch.Tensor) -> list[torch.Tensor]:
        return [trunk_features]


@contextlib.contextmanager
def _trunk_bypassed(model: nn.Module):
    """``model``'s neck reads a cached trunk output instead of running its trunk, for the duration."""
    neck = model.backbone.vision_backbone
    trunk = neck.trunk
    if isinstance(trunk, _CachedTrunk):
        yield
        return
    neck.trunk = _CachedTrunk(trunk.channel_list[-1])
    try:
        yield
    finally:
        neck.trunk = trunk


@torch.inference_mode()
def _backbone_out(model: nn.Module, trunk: torch.Tensor, necks: tuple[str, ...] = ("detector", "tracker")) -> dict:
    """(M,C,72,72) trunk -> ``Sam3Processor.set_image``'s ``backbone_out`` (the trunk must be bypassed).

    ``necks`` picks what to recompute: "detector" (text prompts read it) and/or "tracker" (points
    and boxes read it); each is half the cost. Upstream's own neck code runs either way.
    """
    device = next(model.parameters()).device
    trunk = trunk.to(device, torch.float32)
    neck = model.backbone.vision_backbone
    convs, sam2_convs = neck.convs, neck.sam2_convs
    try:
        if "detector" not in necks:  # the tracker's convs in the detector's place, then moved back
            neck.convs, neck.sam2_convs = sam2_convs, None
            out = model.backbone.forward_image(trunk)
            out = {"sam2_backbone_out": {k: out[k] for k in ("vision_features", "vision_pos_enc", "backbone_fpn")}}
        else:
            neck.sam2_convs = sam2_convs if "tracker" in necks else None
            out = model.backbone.forward_image(trunk)
    finally:
        neck.convs, neck.sam2_convs = convs, sam2_convs
    if out.get("sam2_backbone_out") is not None:
        fpn = out["sam2_backbone_out"]["backbone_fpn"]
        mask_decoder = model.inst_interactive_predictor.model.sam_mask_decoder
        fpn[0] = mask_decoder.conv_s0(fpn[0])  # as set_image does
        fpn[1] = mask_decoder.conv_s1(fpn[1])
    return out


class Sam3Decoder(nn.Module):
    """SAM 3's image model without its trunk (the text encoder, necks, detector, interactive predictor)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        neck = model.backbone.vision_backbone
        neck.trunk = _CachedTrunk(neck.trunk.channel_list[-1])
        self.model = model

    @torch.inference_mode()
    def text_features(self, phrases: list[str]) -> dict:
        """``forward_text`` of these phrases, computed once per phrase list (every image asks the same)."""
        key = tuple(phrases)
        cache = self.__dict__.setdefault("_text_cache", {})
        if key not in cache:
            device = next(self.parameters()).device
            cache.clear()  # one phrase list at a time: a run prompts every image with the same phrases
            cache[key] = self.model.backbone.forward_text(list(phrases), device=device)
        return cache[key]

    @property
    def tracker(self) -> nn.Module:
        return self.model.inst_interactive_predictor.model

    def backbone_out(self, trunk: torch.Tensor, necks: tuple[str, ...] = ("detector", "tracker")) -> dict:
        """(M,C,72,72) cached trunk -> ``Sam3Processor.set_image``'s ``state["backbone_out"]`` for M images."""
        return _backbone_out(self.model, trunk, necks)

    def point_maps(self, trunk: torch.Tensor) -> dict[str, torch.Tensor]:
        """(M,C,72,72) cached trunk -> the point decoder's three maps, computed once per trunk tensor: a
        stage decodes one batch of images many times (chunks, click rounds), with the same tensor. Keyed by the
        tensor object: a trunk refilled in place must be a new tensor."""
        held = self.__dict__.get("_point_maps")
        if held is not None and held[0]() is trunk:
            return held[1]
        maps = self.point_features(self.backbone_out(trunk, necks=("tracker",)))
        self.__dict__["_point_maps"] = (weakref.ref(trunk, lambda _: self.__dict__.pop("_point_maps", None)), maps)
        return maps

    @torch.inference_mode()
    def point_features(self, backbone_out: dict) -> dict[str, torch.Tensor]:
        """The interactive predictor's ``_features`` (as predict_inst sets them), batched over M images."""
        _, feats, _, _ = self.tracker._prepare_backbone_features(backbone_out["sam2_backbone_out"])
        feats[-1] = feats[-1] + self.tracker.no_mem_embed
        batch = feats[-1].shape[1]
        sizes = self.model.inst_interactive_predictor._bb_feat_sizes
        maps = [f.permute(1, 2, 0).reshape(batch, -1, *size) for f, size in zip(feats, sizes)]
        return {"image_embed": maps[-1], "high_res_feats_0": maps[0], "high_res_feats_1": maps[1]}


@torch.inference_mode()
def decode_text(decoder: Sam3Decoder, backbone_out: dict, image_index: torch.Tensor,
                phrases: list[str]) -> list[TextResult]:
    """P prompts (phrase ``p`` on image ``image_index[p]``) in one ``forward_grounding`` call.

    ``backbone_out`` covers M images (``Sam3Decoder.backbone_out``); each distinct phrase is
    encoded once. Per prompt this is what ``Sam3Processor.set_text_prompt`` computes before its
    thresholding: ``scores * presence`` is its confidence.
    """
    if not phrases:
        raise SamcacheError("no text prompts given (the phrase list is empty)")
    if len(image_index) != len(phrases):
        raise ValueError(f"{len(image_index)} image indices for {len(phrases)} phrases")
    from sam3.model.data_misc import FindStage

    model = decoder.model
    device = next(decoder.parameters()).device
    unique = list(dict.fromkeys(phrases))
    text = decoder.text_features(unique)
    find = FindStage(img_ids=image_index.to(device, torch.long),
                     text_ids=torch.tensor([unique.index(p) for p in phrases], device=device, dtype=torch.long),
                     input_boxes=None, input_boxes_mask=None, input_boxes_label=None,
                     input_points=None, input_points_mask=None)
    out = model.forward_grounding(backbone_out={**backbone_out, **text}, find_input=find, find_target=None,
                                  geometric_prompt=model._get_dummy_prompt(num_prompts=len(phrases)))
    scores = out["pred_logits"].sigmoid().squeeze(-1).float()
    presence = out["presence_logit_dec"].sigmoid().float().reshape(-1)
    semantic = out["semantic_seg"].float()[:, 0]
    return [TextResult(out["pred_masks"][p].float(), scores[p], float(presence[p]), out["pred_boxes"][p].float(),
                       semantic[p]) for p in range(len(phrases))]


def upsample_text_masks(mask_logits: torch.Tensor, original_size: tuple[int, int]) -> torch.Tensor:
    """(Q,288,288) logits -> (Q,H,W) bool masks at the original size, as Sam3Processor: sigmoid > 0.5."""
    logits = torch.nn.functional.interpolate(mask_logits[:, None].float(), tuple(original_size), mode="bilinear",
                                             align_corners=False)[:, 0]
    return logits.sigmoid() > TEXT_MASK_THRESHOLD


class Sam3Backend(Backend):
    """SAM 3 (and sam3_tiny) behind the family interface; facts in ``sam3.SAM3`` / ``SAM3_TINY``."""

    text_prompts = True  # the decoder answers noun phrases (decode_text)

    def input_size(self, original_size):
        return (INPUT_SIZE, INPUT_SIZE)

    def prepare(self, image):
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an (H, W, 3) uint8 image, got {image.shape} {image.dtype}")
        return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))), (INPUT_SIZE, INPUT_SIZE)

    def build_encoder(self, model_type, checkpoint, seed, allow_random=False, attention="sdpa"):
        model, weights = build_sam3(model_type, checkpoint, seed, allow_random)
        return Sam3TrunkEncoder(model.backbone.vision_backbone.trunk).eval(), weights

    def _encode(self, encoder, images, input_sizes):
        return {"trunk": encoder(images)}

    def build_decoder(self, model_type, checkpoint, seed, allow_random=False):
        model, weights = build_sam3(model_type, checkpoint, seed, allow_random)
        return Sam3Decoder(model).eval(), weights

    def check_weights(self, model_type, checkpoint, seed):
        require_checkpoint(model_type, checkpoint)
        if checkpoint is not None:
            load_sam3_state_dict(checkpoint, model_type)  # the family check; key by key when the model loads
        return weights_id(checkpoint, seed)

    def decode(self, decoder, features, image_index, prompts, multimask):
        """B prompts in the 1008 frame -> low-res logits (B,C,288,288), scores (B,C); as predict_inst.
        The tracker's maps are recomputed from the trunk once per batch of images (``Sam3Decoder.point_maps``)."""
        return decode_points(decoder.tracker, decoder.point_maps(features["trunk"]), image_index, prompts, multimask)

    def decode_text(self, decoder, features, image_index, phrases):
        """Noun phrases over cached trunks: the detector neck, then one grounding call (``decode_text``)."""
        return decode_text(decoder, decoder.backbone_out(features["trunk"], necks=("detector",)), image_index,
                           phrases)

    def upsample_text_masks(self, mask_logits, original_size):
        return upsample_text_masks(mask_logits, original_size)

    def to_input_frame(self, coords, original_size):
        h, w = (int(v) for v in original_size)
        xy = np.array(coords, dtype=np.float64, copy=True)
        xy[..., 0] *= INPUT_SIZE / w
        xy[..., 1] *= INPUT_SIZE / h
        return xy

    def postprocess(self, low_res, input_size, original_size):
        """(B,C,288,288) logits -> (B,C,H,W): upstream's postprocess_masks (holes <= 256 px filled)."""
        sam3_compat.apply()
        from sam3.model.utils.sam1_utils import SAM2Transforms

        with sam3_compat.upstream_quiet():
            transforms = SAM2Transforms(resolution=INPUT_SIZE, mask_threshold=self.info.mask_threshold,
                                        max_hole_area=MAX_HOLE_AREA, max_sprinkle_area=0.0)
        return transforms.postprocess_masks(low_res, tuple(int(v) for v in original_size))

    def feedback(self, low_res):
        return low_res.clamp(-LOW_RES_CLAMP, LOW_RES_CLAMP)

    def build_predictor(self, model_type, checkpoint, seed, allow_random=False):
        """Upstream's ``Sam3Processor`` (text prompts; ``processor.model.predict_inst`` for points), on the CPU."""
        model, _ = build_sam3(model_type, checkpoint, seed, allow_random)
        return sam3_compat.processor_for(model)

    def predictor_class(self):
        sam3_compat.apply()
        from sam3.model.sam3_image_processor import Sam3Processor

        return Sam3Processor

    def move_predictor(self, predictor, device):
        """Sam3Processor keeps the device it was built with and puts every input there: move both."""
        predictor.model.to(device)
        predictor.device = str(device)

    def set_features(self, predictor, features, original_size, input_size):
        """Cached trunk -> ``predictor.state``: what ``predictor.set_image`` would have returned."""
        h, w = (int(v) for v in original_size)
        with _trunk_bypassed(predictor.model):
            backbone = _backbone_out(predictor.model, features["trunk"])
        predictor.state = {"original_height": h, "original_width": w, "backbone_out": backbone}
