"""Prompt decoding over cached features, batched across prompts and images.

``decode`` (SAM 1, used by ``backends.SamBackend``) is upstream MaskDecoder.forward/predict_masks
with one change: each prompt picks its image embedding by index (a gather) instead of
``repeat_interleave`` of a single image, so prompts of several images share one call, and the first
two-way block's image-side projections are computed once per image. For one image without a mask
input it computes exactly what ``SamPredictor.predict_torch`` does after ``set_image``; with a mask
input, up to float rounding (the mask's share of those projections is computed separately).
``decode_chunked`` (any backend) keeps each call within a prompt budget measured from free GPU
memory, and everything stays on the device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from segment_anything.modeling import MaskDecoder, PromptEncoder

from samcache.features.memory import capacity

# which of SAM's masks a prompt keeps: its own top score, the best against ground truth (the SAM
# paper's oracle, labelled ORACLE in every output), or a single mask (multimask_output=False)
CPU_DECODE_CHUNK = 4  # on CPU larger decoder batches fall out of cache and get slower per prompt
MAX_PROMPTS_PER_CALL = 4096


@torch.inference_mode()
def decode(prompt_encoder: PromptEncoder, mask_decoder: MaskDecoder, embeddings: torch.Tensor,
           image_index: torch.Tensor, point_coords: torch.Tensor | None, point_labels: torch.Tensor | None,
           boxes: torch.Tensor | None, multimask_output: bool, mask_input: torch.Tensor | None = None
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """(M,256,64,64) embeddings + B prompts -> low-res logits (B,C,256,256) and IoU scores (B,C).

    Coordinates and boxes are in the 1024 input frame; ``mask_input`` (B,1,256,256) is a previous
    prediction's low-res logits, as upstream's ``predict(mask_input=...)``.
    """
    points = (point_coords, point_labels) if point_coords is not None else None
    sparse, dense = prompt_encoder(points=points, boxes=boxes, masks=None)  # dense: no_mask_embed, one for all
    md = mask_decoder
    output_tokens = torch.cat([md.iou_token.weight, md.mask_tokens.weight], dim=0)
    output_tokens = output_tokens.unsqueeze(0).expand(sparse.size(0), -1, -1)
    tokens = torch.cat((output_tokens, sparse), dim=1)
    image_pe = prompt_encoder.get_dense_pe()
    if mask_input is None:  # every prompt of an image sees the same image tokens in the first block
        hs, src = _transformer_shared_first_block(md.transformer, embeddings + dense[:1], image_pe, tokens,
                                                  image_index)
    else:  # the per-prompt mask embedding enters the first block through its 16-channel hidden map only
        hidden = prompt_encoder.mask_downscaling[:-1](mask_input)  # (B,16,64,64), before the last 1x1 conv
        hs, src = _transformer_shared_first_block(md.transformer, embeddings, image_pe, tokens, image_index,
                                                  MaskTerm(hidden.flatten(2).transpose(1, 2),
                                                           prompt_encoder.mask_downscaling[-1]))
    b, (c, h, w) = tokens.shape[0], embeddings.shape[1:]
    iou_token_out = hs[:, 0, :]
    mask_tokens_out = hs[:, 1: (1 + md.num_mask_tokens), :]
    src = src.transpose(1, 2).view(b, c, h, w)
    upscaled = md.output_upscaling(src)
    hyper_in = torch.stack([md.output_hypernetworks_mlps[i](mask_tokens_out[:, i, :])
                            for i in range(md.num_mask_tokens)], dim=1)
    b, c, h, w = upscaled.shape
    masks = (hyper_in @ upscaled.view(b, c, h * w)).view(b, -1, h, w)
    iou_pred = md.iou_prediction_head(iou_token_out)
    keep = slice(1, None) if multimask_output else slice(0, 1)
    return masks[:, keep], iou_pred[:, keep]


def _attention(attn, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """segment-anything's Attention.forward on already projected q, k, v."""
    q, k, v = (attn._separate_heads(x, attn.num_heads) for x in (q, k, v))
    weights = torch.softmax(q @ k.permute(0, 1, 3, 2) / math.sqrt(q.shape[-1]), dim=-1)
    return attn.out_proj(attn._recombine_heads(weights @ v))


@dataclass
class MaskTerm:
    """A mask input's share of the image tokens: dense = conv(hidden), with ``conv`` the 1x1 convolution that ends
    ``mask_downscaling``; ``hidden`` (B, HW, 16). Any projection W of (image + dense) splits into W(image), once
    per image, plus (W conv.weight) hidden + W conv.bias per prompt: 16 input channels instead of 256."""

    hidden: torch.Tensor
    conv: torch.nn.Conv2d

    def dense(self) -> torch.Tensor:
        """(B, HW, C) the mask embedding itself."""
        return self.hidden @ self.conv.weight[:, :, 0, 0].T + self.conv.bias

    def through(self, linear: torch.nn.Linear) -> torch.Tensor:
        """(B, HW, C') = linear(image + dense) - linear(image): the weight part only (the bias is in linear(image))."""
        weight = self.conv.weight[:, :, 0, 0]
        return self.hidden @ (linear.weight @ weight).T + linear.weight @ self.conv.bias


def _transformer_shared_first_block(transformer, images: torch.Tensor, image_pe: torch.Tensor, tokens: torch.Tensor,
                                    image_index: torch.Tensor, mask: MaskTerm | None = None
                                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """TwoWayTransformer.forward where the first block's three image-side projections (token-to-image
    keys and values, image-to-token queries) are computed once per image, not once per prompt: the same
    for every prompt of an image without a mask input, and with one only a 16-channel term is per prompt
    (``MaskTerm``; equal to upstream up to float rounding). ``images``: (M,256,64,64) (+ dense without a mask)."""
    keys_img = images.flatten(2).permute(0, 2, 1)  # (M, HW, C)
    key_pe = image_pe.flatten(2).permute(0, 2, 1)
    first, rest = transformer.layers[0], transformer.layers[1:]
    t2i, i2t = first.cross_attn_token_to_image, first.cross_attn_image_to_token
    with_pe = keys_img + key_pe
    k1, v1, q2 = t2i.k_proj(with_pe)[image_index], t2i.v_proj(keys_img)[image_index], i2t.q_proj(with_pe)[image_index]
    keys = keys_img[image_index]
    if mask is not None:
        k1, v1, q2 = k1 + mask.through(t2i.k_proj), v1 + mask.through(t2i.v_proj), q2 + mask.through(i2t.q_proj)
        keys = keys + mask.dense()
    queries, query_pe = tokens, tokens
    if first.skip_first_layer_pe:
        queries = first.self_attn(q=queries, k=queries, v=queries)
    else:
        q = queries + query_pe
        queries = queries + first.self_attn(q=q, k=q, v=queries)
    queries = first.norm1(queries)
    queries = first.norm2(queries + _attention(t2i, t2i.q_proj(queries + query_pe), k1, v1))
    queries = first.norm3(queries + first.mlp(queries))
    q = queries + query_pe
    keys = first.norm4(keys + _attention(i2t, q2, i2t.k_proj(q), i2t.v_proj(queries)))
    for layer in rest:
        queries, keys = layer(queries=queries, keys=keys, query_pe=query_pe, key_pe=key_pe)
    attn_out = transformer.final_attn_token_to_image(q=queries + query_pe, k=keys + key_pe, v=keys)
    return transformer.norm_final_attn(queries + attn_out), keys


def prompt_budget(backend, decoder, features: dict[str, torch.Tensor], measure=None) -> int:
    """Prompts per decoder call: CPU_DECODE_CHUNK on the CPU; on CUDA what fits in free memory."""
    device = next(iter(features.values())).device
    if device.type != "cuda":
        return CPU_DECODE_CHUNK
    first = {name: value[:1] for name, value in features.items()}

    def probe(n: int) -> None:
        coords = torch.full((n, 1, 2), 512.0, device=device)
        backend.decode(decoder, first, torch.zeros(n, dtype=torch.long, device=device), coords,
                       torch.ones((n, 1), dtype=torch.int, device=device), None, True)

    return capacity(probe, device, MAX_PROMPTS_PER_CALL, measure, what="prompts")


def decode_chunked(backend, decoder, features: dict[str, torch.Tensor], image_index: torch.Tensor,
                   point_coords: torch.Tensor | None, point_labels: torch.Tensor | None, boxes: torch.Tensor | None,
                   multimask_output: bool, budget: int, mask_input: torch.Tensor | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """``backend.decode`` in calls of at most ``budget`` prompts; the results stay on the device."""
    part = lambda t, s: None if t is None else t[s: s + budget]  # noqa: E731
    outputs = [backend.decode(decoder, features, image_index[s: s + budget], part(point_coords, s),
                              part(point_labels, s), part(boxes, s), multimask_output, part(mask_input, s))
               for s in range(0, len(image_index), budget)]
    return torch.cat([o[0] for o in outputs]), torch.cat([o[1] for o in outputs])


def pick_by_score(logits: torch.Tensor, scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each prompt's top-scoring mask, on the device: (logits (B,1,256,256), scores (B,), choice (B,))."""
    choice = scores.argmax(dim=1)
    rows = torch.arange(len(choice), device=choice.device)
    return logits[rows, choice][:, None], scores[rows, choice], choice
