"""A model family that is not samcache's, registered the way the README says: one module plus one
``register(Family(...))``. It is SAM 1's tiny model under another name, with its features stored under
another array name, so that any stage that names a family or an array would fail on it."""

from samcache.features.families import SAM, Family, register
from samcache.features.sam1 import SamBackend


class ToyBackend(SamBackend):
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

    def decode(self, decoder, features, image_index, *args, **kwargs):
        return super().decode(decoder, {"embeddings": features["toy_map"]}, image_index, *args, **kwargs)

    def set_features(self, predictor, features, original_size, input_size):
        super().set_features(predictor, {"embeddings": features["toy_map"]}, original_size, input_size)


def register_toy() -> Family:
    return register(Family(name="toy", model_types=("toy_tiny",), features={"toy_map": (256, 64, 64)},
                           main_feature="toy_map", frame=SAM.frame, resize=SAM.resize,
                           preprocessing=SAM.preprocessing, checkpoint="none: random weights only",
                           mask_threshold=SAM.mask_threshold, num_masks=SAM.num_masks, low_res=SAM.low_res,
                           backend="toy_family:ToyBackend"))
