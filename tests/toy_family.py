"""A model family that is not samcache's, registered the way docs/extending.md says: a torch-free descriptor plus a
``Backend`` module, then ``register(Family(...))``. It is SAM 1's tiny model under another name, with its
features stored under another array name, so that any stage that names a family or an array would fail on it.
It also declares text prompts (a trivial phrase decoder), so ``zero-shot --prompt text`` must go through the
``Backend`` interface alone."""

import torch
from torch.nn import functional as F

from samcache.features.backend import TextResult
from samcache.features.families import Family, register
from samcache.features.sam1 import SAM
from samcache.features.sam1.backend import SamBackend


class ToyBackend(SamBackend):
    text_prompts = True

    def build_encoder(self, model_type, checkpoint, seed, allow_random=False, attention="sdpa"):
        return super().build_encoder("tiny", checkpoint, seed, allow_random, attention)

    def build_decoder(self, model_type, checkpoint, seed, allow_random=False):
        return super().build_decoder("tiny", checkpoint, seed, allow_random)

    def build_predictor(self, model_type, checkpoint, seed, allow_random=False):
        return super().build_predictor("tiny", checkpoint, seed, allow_random)

    def check_weights(self, model_type, checkpoint, seed):
        return super().check_weights("tiny", checkpoint, seed)

    def require_weights_file(self, model_type, checkpoint):
        return super().require_weights_file("tiny", checkpoint)

    def _encode(self, encoder, images, input_sizes):
        return {"toy_map": super()._encode(encoder, images, input_sizes)["embeddings"]}

    def decode(self, decoder, features, image_index, prompts, multimask):
        return super().decode(decoder, {"embeddings": features["toy_map"]}, image_index, prompts, multimask)

    def set_features(self, predictor, features, original_size, input_size):
        super().set_features(predictor, {"embeddings": features["toy_map"]}, original_size, input_size)

    def decode_text(self, decoder, features, image_index, phrases):
        """Each phrase picks one channel of the image's map as its one candidate's logits (a stand-in decoder)."""
        maps = features["toy_map"]
        out = []
        for image, phrase in zip(image_index.tolist(), phrases):
            logits = maps[image, sum(map(ord, phrase)) % maps.shape[1]][None].float()
            out.append(TextResult(logits, torch.ones(1), 1.0, torch.zeros(1, 4), logits[0]))
        return out

    def upsample_text_masks(self, mask_logits, original_size):
        size = tuple(int(v) for v in original_size)
        return F.interpolate(mask_logits[:, None].float(), size, mode="bilinear", align_corners=False)[:, 0] > 0


def register_toy() -> Family:
    return register(Family(name="toy", title="Toy SAM", model_types=("toy_tiny",),
                           features={"toy_map": (256, 64, 64)}, main_feature="toy_map", frame=SAM.frame,
                           preprocessing=SAM.preprocessing, checkpoint="none: random weights only",
                           mask_threshold=SAM.mask_threshold, low_res=SAM.low_res, backend="toy_family:ToyBackend"))
