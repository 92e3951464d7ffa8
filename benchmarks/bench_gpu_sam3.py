"""bench_gpu's SAM 3 rows (model loops on the device; the extract stage is not wired for SAM 3 yet).

(g) trunk extraction img/s in bf16, batches of 2048x1024 images squashed to 1008 (goal >= 40 on an H100);
(h) text prompts from cached trunks: the 19 Cityscapes class names of each image, several images per
grounding call, img/s (goal >= 30, so val's 500 images take under 20 s). RANDOM weights.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from samcache.data.cityscapes import read_image


def sam3_rows(model_type: str, images: list, device: torch.device, rows, batch: int = 8, text_batch: int = 4) -> None:
    from samcache.data.labels import get_class_set
    from samcache.evaluation.concept_decoding import segment_by_concepts
    from samcache.evaluation.concepts import phrase_map
    from samcache.features.sam3.backend import Sam3Decoder, Sam3TrunkEncoder
    from samcache.features.families import backend_for
    from samcache.features.sam3.build import build_random_sam3

    backend = backend_for(model_type)
    model = build_random_sam3(model_type, 0).to(device)
    encoder = Sam3TrunkEncoder(model.backbone.vision_backbone.trunk).eval()
    prepared = [backend.prepare(read_image(p))[0] for p in images]
    sizes = torch.tensor([[1008, 1008]] * batch)
    precision = "bf16" if device.type == "cuda" else "fp32"
    trunks, n = [], 0
    backend.encode(encoder, torch.stack(prepared[:batch]), sizes, precision)  # warm-up
    rows.reset_peak()
    t0 = time.perf_counter()
    for start in range(0, len(prepared) - batch + 1, batch):
        out = backend.encode(encoder, torch.stack(prepared[start:start + batch]), sizes, precision)["trunk"]
        trunks.append(out.half())
        n += batch
    if device.type == "cuda":
        torch.cuda.synchronize()
    name = f"(g) {model_type} trunk extract, batch {batch}, {precision}"
    rows.add(name, "img/s (model loop, host->device included; goal >= 40 on an H100)",
             f"{n / (time.perf_counter() - t0):.2f}")
    decoder = Sam3Decoder(model).eval()
    phrases = phrase_map(get_class_set("cityscapes19"))
    h, w = read_image(images[0]).shape[:2]
    trunk = torch.cat(trunks)
    segment_by_concepts(backend, decoder, {"trunk": trunk[:text_batch].float()}, [(h, w)] * text_batch,
                        phrases)  # warm-up
    rows.reset_peak()
    t0, done = time.perf_counter(), 0
    for start in range(0, len(trunk) - text_batch + 1, text_batch):
        preds = segment_by_concepts(backend, decoder, {"trunk": trunk[start:start + text_batch].float()},
                                    [(h, w)] * text_batch, phrases)
        assert all(np.isfinite(p.label_map.numpy()).all() for p in preds)
        done += text_batch
    if device.type == "cuda":
        torch.cuda.synchronize()
    rows.add(f"(h) {model_type} text prompts, 19 classes, {text_batch} images per call",
             "img/s from cached trunks (goal >= 30)", f"{done / (time.perf_counter() - t0):.2f}")
    del model, encoder, decoder
