"""SAM 3 at full size (RANDOM weights) on this CPU: extract s/image, Stage 2 text prompts, cache layouts.

One or two synthetic 2048x1024 images. Measures:
- extract: the trunk (what the cache stores) per image, and the bytes it takes (float16, zstd);
- cache layouts: (A) trunk only, both necks recomputed in Stage 2, against (B) trunk + both necks
  stored: bytes per image, and Stage 2's cost per image to get the necks back (recompute vs
  read + decompress);
- text prompts: the 19 Cityscapes class names of one image in one batched grounding call, s/image
  (backbone_out from the trunk included).
Also checks that the tiny model has the full model's state-dict keys (same layout as sam3.pt).
- composition: one image's label map with every query kept (threshold 0), time and peak memory
  (``--compose`` alone runs only this, in a fresh process).
Usage: python -m benchmarks.bench_sam3 [n_images | --compose]   (or through `make bench`)
"""

from __future__ import annotations

import re
import sys
import time

import numpy as np
import torch
from PIL import Image

from benchmarks.common import OUT, synth_data

N_IMAGES = 1


def _zstd_bytes(array: np.ndarray) -> tuple[int, float]:
    """Bytes with the cache's default codec (zstd level 3, as samcache.cache.schema) and decode seconds."""
    import numcodecs

    codec = numcodecs.Zstd(level=3)
    blob = codec.encode(np.ascontiguousarray(array))
    t0 = time.perf_counter()
    codec.decode(blob)
    return len(blob), time.perf_counter() - t0


def run(n_images: int = N_IMAGES) -> list[dict]:
    from samcache.data.labels import get_class_set
    from samcache.features.sam3.backend import Sam3Decoder, decode_text
    from samcache.features.families import backend_for
    from samcache.features.sam3.build import build_random_sam3

    rows = []

    def row(metric, value):
        rows.append({"benchmark": "sam3", "metric": metric, "value": value})
        print(f"  sam3  {metric}: {value}", flush=True)

    data = synth_data(2, 2)
    images = sorted((data / "leftImg8bit" / "val").rglob("*.png"))[:n_images]
    backend = backend_for("sam3")
    t0 = time.perf_counter()
    model = build_random_sam3("sam3", 0)
    row("build full-size random SAM 3 (860M parameters)", f"{time.perf_counter() - t0:.1f} s")
    layout = lambda keys: {re.sub(r"\.\d+(?=\.)", ".N", k) for k in keys}  # noqa: E731  (layer index -> N)
    same = layout(build_random_sam3("sam3_tiny", 0).state_dict()) == layout(model.state_dict())
    row("tiny model has the full model's state-dict keys (layer counts aside)", "yes" if same else "NO")
    from samcache.features.sam3.backend import Sam3TrunkEncoder

    encoder = Sam3TrunkEncoder(model.backbone.vision_backbone.trunk).eval()
    trunks, extract_s = [], []
    for path in images:
        image = np.asarray(Image.open(path).convert("RGB"))
        t0 = time.perf_counter()
        prepared, size = backend.prepare(image)
        trunk = backend.encode(encoder, prepared[None], torch.tensor([size]), "fp32")["trunk"]
        extract_s.append(time.perf_counter() - t0)
        trunks.append(trunk)
    row(f"extract: trunk per 2048x1024 image (fp32, {len(images)} image(s))", f"{np.mean(extract_s):.1f} s/image")

    decoder = Sam3Decoder(model).eval()  # the trunk is dropped from here on
    trunk = trunks[0]
    t0 = time.perf_counter()
    backbone = decoder.backbone_out(trunk)
    points = decoder.point_features(backbone)
    recompute_s = time.perf_counter() - t0
    det = [x[0].half().numpy() for x in backbone["backbone_fpn"]]
    trk = [points[k][0].half().numpy() for k in ("high_res_feats_0", "high_res_feats_1", "image_embed")]
    trunk_b, trunk_read = _zstd_bytes(trunk[0].half().numpy())
    det_b = [_zstd_bytes(x) for x in det]
    trk_b = [_zstd_bytes(x) for x in trk]
    raw = lambda arrays: sum(a.nbytes for a in arrays) / 2**20  # noqa: E731
    row("raw float16 MiB/image: trunk / detector neck / tracker neck",
        f"{trunk[0].numel() * 2 / 2**20:.1f} / {raw(det):.1f} / {raw(trk):.1f}")
    mib_a = trunk_b / 2**20
    mib_b = (trunk_b + sum(b for b, _ in det_b) + sum(b for b, _ in trk_b)) / 2**20
    row("layout A (trunk only) vs B (trunk + both necks): zstd MiB/image", f"{mib_a:.1f} vs {mib_b:.1f}")
    read_b = trunk_read + sum(s for _, s in det_b) + sum(s for _, s in trk_b)
    row("Stage 2 necks per image: A recompute (both necks + tracker convs) vs B decompress",
        f"{recompute_s:.2f} s vs {read_b:.2f} s (+ reading {mib_b - mib_a:.0f} MiB more from disk)")

    phrases = [name for name in get_class_set("cityscapes19").class_names]
    t0 = time.perf_counter()
    backbone = decoder.backbone_out(trunk, necks=("detector",))
    results = decode_text(decoder, backbone, torch.zeros(len(phrases), dtype=torch.long), phrases)
    text_s = time.perf_counter() - t0
    row(f"Stage 2 text prompts: {len(phrases)} classes of one image in one call (necks included)",
        f"{text_s:.1f} s/image")
    t0 = time.perf_counter()
    model.backbone.forward_text(phrases, device="cpu")
    row("  of which the text encoder on the 19 phrases (cacheable per phrase set)", f"{time.perf_counter() - t0:.1f} s")
    assert len(results) == len(phrases) and all(torch.isfinite(r.scores).all() for r in results)
    import json
    import subprocess

    # a fresh process: its peak RSS is the composition's, not the 860M-parameter model's
    proc = subprocess.run([sys.executable, "-m", "benchmarks.bench_sam3", "--compose"], capture_output=True,
                          text=True, check=True)
    rows += json.loads(proc.stdout.strip().splitlines()[-1])
    print(proc.stdout.strip().splitlines()[0], flush=True)
    return rows


def composition_rows(size: tuple[int, int] = (1024, 2048), prompts: int = 19, queries: int = 200) -> list[dict]:
    """The instance composition with every query kept (threshold 0, area 0): seconds and peak RSS growth.

    Random 288x288 logits stand in for grounding results of that size (the composition's cost depends on
    their number and the image size, not their values).
    """
    import resource

    import samcache.evaluation.concept_decoding as cd
    from samcache.evaluation.concepts import InstanceComposition
    from samcache.features.backend import TextResult
    from samcache.features.families import backend_for

    g = torch.Generator().manual_seed(0)
    results = [TextResult(torch.randn(queries, 288, 288, generator=g) * 3, torch.rand(queries, generator=g), 1.0,
                          torch.zeros(queries, 4), torch.zeros(288, 288)) for _ in range(prompts)]
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    out = cd._compose_instances(backend_for("sam3_tiny"), results, list(range(prompts)), size, InstanceComposition(0.0, 0), keep_masks=False)
    seconds = time.perf_counter() - t0
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 2**20
    assert len(out.instances.confidences) == prompts * queries
    value = f"{seconds:.1f} s/image, peak RSS +{grown:.2f} GiB (maxrss grows only past earlier peaks)"
    print(f"  sam3  compose {prompts} x {queries} candidates at {size[1]}x{size[0]}: {value}", flush=True)
    return [{"benchmark": "sam3", "metric": f"compose instances at --score-threshold 0 ({prompts} x {queries} "
                                            f"queries, {size[1]}x{size[0]}), streamed", "value": value}]


if __name__ == "__main__":
    if sys.argv[1:] == ["--compose"]:  # run() starts this in its own process
        import json

        print(json.dumps(composition_rows()))
    else:
        OUT.mkdir(parents=True, exist_ok=True)
        run(int(sys.argv[1]) if len(sys.argv) > 1 else N_IMAGES)
