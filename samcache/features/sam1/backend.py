"""SAM 1 (segment-anything: vit_h, vit_l, vit_b, and the random-weight ``tiny``) as a model family.

One feature array, ``embeddings`` (256, 64, 64); ResizeLongestSide to 1024 and zero padding,
so ``input_size`` is the (h, w) of the frame the image covers. The decoding math is in
``kernel`` (upstream's MaskDecoder, batched over images); the models in ``build``.
"""

from __future__ import annotations

from torch import nn

from samcache.features.backend import Backend
from samcache.features.sam1 import build as models
from samcache.features.sam1 import preprocess


class SamBackend(Backend):
    def input_size(self, original_size):
        return preprocess.input_size(original_size)

    def prepare(self, image):
        return preprocess.resize_and_pad_uint8(image)

    def build_encoder(self, model_type, checkpoint, seed, allow_random=False, attention="sdpa"):
        sam, weights = models.build_sam(model_type, checkpoint, seed, allow_random, attention)
        return sam.image_encoder, weights

    def _encode(self, encoder, images, input_sizes):
        return {"embeddings": encoder(preprocess.normalize_padded(images, input_sizes))}

    def build_decoder(self, model_type, checkpoint, seed, allow_random=False):
        pe, md, weights = models.build_prompt_decoder(model_type, checkpoint, seed, allow_random)
        return SamPromptDecoder(pe, md).eval(), weights

    def check_weights(self, model_type, checkpoint, seed):
        return models.check_weights(model_type, checkpoint, seed)

    def decode(self, decoder, features, image_index, prompts, multimask):
        from samcache.features.sam1.kernel import decode

        return decode(decoder.prompt_encoder, decoder.mask_decoder, features["embeddings"], image_index, prompts,
                      multimask)

    def build_predictor(self, model_type, checkpoint, seed, allow_random=False):
        from segment_anything import SamPredictor

        return SamPredictor(models.build_sam(model_type, checkpoint, seed, allow_random, attention="upstream")[0])

    def predictor_class(self):
        from segment_anything import SamPredictor

        return SamPredictor

    def set_features(self, predictor, features, original_size, input_size):
        predictor.reset_image()
        predictor.features = features["embeddings"].to(predictor.device)
        predictor.original_size, predictor.input_size = tuple(original_size), tuple(input_size)
        predictor.is_image_set = True

    def to_input_frame(self, coords, original_size):
        return preprocess.to_input_frame(coords, original_size)

    def postprocess(self, low_res, input_size, original_size):
        return preprocess.postprocess_logits(low_res, input_size, original_size)


class SamPromptDecoder(nn.Module):
    """segment-anything's prompt encoder and mask decoder, as one module."""

    def __init__(self, prompt_encoder: nn.Module, mask_decoder: nn.Module):
        super().__init__()
        self.prompt_encoder, self.mask_decoder = prompt_encoder, mask_decoder
