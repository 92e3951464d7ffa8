"""The CUDA paths, run only where CUDA is present (skipped otherwise). Each test compares the GPU against
an independent reference (upstream in fp32, or the same computation on the CPU), so the first GPU run
finds what the CPU cannot show: bf16 through ViT-H, memory budgets in a fresh process, pinned-memory
workers, and the whole pipeline on a 10 GiB card (the seed's RTX 3080), stood in for by a memory cap."""

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from segment_anything import SamPredictor

from conftest import extract_cfg
from samcache.cache.reader import open_cache
from samcache.data.cityscapes import list_images, read_image
from samcache.features.backend import Prompts
from samcache.features.device import auto_batch_size, configure_matmul
from samcache.features.families import backend_for
from samcache.features.sam1.build import build_random_sam
from samcache.pipeline.configs import ClicksConfig, EvaluateConfig, HeadConfig, ZeroShotConfig
from samcache.pipeline.clicks import run_clicks
from samcache.pipeline.evaluate import run_evaluate
from samcache.pipeline.extract import extract
from samcache.pipeline.runs import read_csv
from samcache.pipeline.train_head import train_head
from samcache.pipeline.zero_shot import run_zero_shot

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
BF16_RTOL = 3e-2  # bf16 has 8 mantissa bits; through a small ViT the embedding error stays around 1e-2
FP32_GPU_RTOL = 1e-4  # fp32 without TF32: GPU and CPU kernels sum in other orders (~1e-6 measured on CPUs)
CAP_BYTES = 10 * 2**30  # the seed's RTX 3080
ROOT = Path(__file__).resolve().parents[1]


def rel(a, b) -> float:
    a, b = (np.asarray(t.detach().float().cpu() if torch.is_tensor(t) else t, dtype=np.float64) for t in (a, b))
    return float(np.abs(a - b).max() / np.abs(b).max())


@contextlib.contextmanager
def memory_cap(cap_bytes: int = CAP_BYTES):
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction(min(1.0, cap_bytes / total))
    torch.cuda.reset_peak_memory_stats()
    try:
        yield
    finally:
        torch.cuda.empty_cache()
        torch.cuda.set_per_process_memory_fraction(1.0)


@pytest.fixture(scope="module")
def gpu_cache(synth_root, tmp_path_factory):
    cache = tmp_path_factory.mktemp("gpu") / "bf16.zarr"
    for split in ("train", "val"):
        extract(extract_cfg(synth_root, cache, split, device="cuda", precision="auto", attention="sdpa",
                            batch_size=None, dtype="float32"), progress=False)
    return cache


def test_bf16_extraction_matches_upstream_sampredictor_on_the_same_gpu(gpu_cache, synth_root):
    split = open_cache(gpu_cache).split("val")
    assert split.fingerprint.precision == "bf16"  # auto on CUDA
    predictor = SamPredictor(build_random_sam("tiny", seed=0).cuda())
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    for row, rec in enumerate(list_images(synth_root, "val")):
        predictor.set_image(read_image(rec.image_path))
        assert rel(split.embedding(row), predictor.features[0]) < BF16_RTOL


def test_fp32_on_gpu_is_true_fp32(synth_root, tmp_path):
    cache = tmp_path / "fp32.zarr"
    extract(extract_cfg(synth_root, cache, "val", device="cuda", precision="fp32"), progress=False)
    assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
    predictor = SamPredictor(build_random_sam("tiny", seed=0).cuda())
    split = open_cache(cache).split("val")
    for row, rec in enumerate(list_images(synth_root, "val")):
        predictor.set_image(read_image(rec.image_path))
        assert rel(split.embedding(row), predictor.features[0]) < 1e-5


def test_auto_batch_size_runs_and_the_batch_fits():
    backend = backend_for("tiny")
    encoder, _ = backend.build_encoder("tiny", None, 0, allow_random=True)
    encoder = encoder.cuda()
    probe = lambda n: backend.encode(encoder, *backend.dummy_batch(n, (1024, 2048)), "bf16")  # noqa: E731
    batch = auto_batch_size(probe, torch.device("cuda"))
    assert 1 <= batch <= 64
    probe(batch)  # what it chose runs


@torch.inference_mode()
def test_vit_h_bf16_sdpa_against_upstream_fp32_with_random_rel_pos_tables():
    """ViT-H is where bf16 error accumulates (32 blocks, 4 global ones with 4096-token attention and their
    relative-position bias). The tolerance calibrates itself: samcache's bf16 + SDPA may be at most twice as
    far from upstream fp32 (TF32 off) as upstream's own bf16 autocast run, or 3e-2, whichever is larger."""
    from samcache.features.sam1.attention import set_attention

    sam = build_random_sam("vit_h", seed=0)
    gen = torch.Generator().manual_seed(1)
    for block in sam.image_encoder.blocks:  # upstream zero-initialises these, which would hide the bias path
        block.attn.rel_pos_h.normal_(0.0, 0.5, generator=gen)
        block.attn.rel_pos_w.normal_(0.0, 0.5, generator=gen)
    encoder = sam.image_encoder.cuda().eval()
    x = torch.randn(1, 3, 1024, 1024, generator=torch.Generator().manual_seed(0)).cuda()
    configure_matmul(torch.device("cuda"), "fp32")
    ref = set_attention(encoder, "upstream")(x)
    sdpa32 = set_attention(encoder, "sdpa")(x)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        up16 = set_attention(encoder, "upstream")(x)
        sdpa16 = set_attention(encoder, "sdpa")(x)
    configure_matmul(torch.device("cuda"), "bf16")
    assert torch.isfinite(sdpa16).all()
    assert rel(sdpa16, ref) < max(2 * rel(up16, ref), 3e-2), (rel(sdpa16, ref), rel(up16, ref))
    assert rel(sdpa32, ref) < FP32_GPU_RTOL  # same math in fp32: only the summation order differs


FRESH_BUDGET = r"""
import json, torch
from samcache.features.families import backend_for
from samcache.features.backend import Prompts
from samcache.features.decoder import MAX_PROMPTS_PER_CALL, prompt_budget
from samcache.features.memory import MEMORY_SHARE, peak_bytes, usable_bytes
backend = backend_for("tiny")
decoder = backend.build_decoder("tiny", None, 0, allow_random=True)[0].cuda()
device = torch.device("cuda")
features = {"embeddings": torch.randn(1, 256, 64, 64, device=device)}
budget = prompt_budget(backend, decoder, features)  # the first CUDA work of this process
def run(n):
    coords = torch.full((n, 1, 2), 512.0, device=device)
    backend.decode(decoder, features, torch.zeros(n, dtype=torch.long, device=device),
                   Prompts(coords, torch.ones((n, 1), dtype=torch.int, device=device)), True)
p16, p64 = peak_bytes(run, 16, device), peak_bytes(run, 64, device)
per, fixed = (p64 - p16) / 48, p16 - 16 * (p64 - p16) / 48
ideal = int((MEMORY_SHARE * usable_bytes(device) - fixed) // per)
peak = peak_bytes(run, budget, device)
print(json.dumps({"budget": budget, "ideal": ideal, "per_prompt": per, "peak": peak,
                  "usable": usable_bytes(device), "cap": MAX_PROMPTS_PER_CALL}))
"""


def test_prompt_budget_in_a_fresh_process():
    """Nothing ran on the GPU before the budget is measured (as in a fresh `zero-shot` or `clicks`), so
    the first probe pays the one-time allocations; the budget must still be what the memory allows."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", FRESH_BUDGET], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["per_prompt"] > 2**20  # SAM's decoder: about 26 MiB per prompt at 3 masks
    want = min(got["cap"], got["ideal"])
    assert 0.5 * want <= got["budget"] <= 1.1 * want + 1, got
    assert got["peak"] < got["usable"]


def test_clicks_on_the_gpu_agree_with_the_cpu(gpu_cache, tmp_path):
    """Same objects and first clicks; later clicks follow each device's masks, which may differ at a few
    border pixels (other kernels, other rounding), so IoUs agree within 0.02 and most click paths match."""
    runs = {}
    for device in ("cpu", "cuda"):
        run_clicks(ClicksConfig(cache=str(gpu_cache), out=str(tmp_path / device), device=device, max_clicks=4,
                                visualize=0, num_workers=1), progress=False)
        runs[device] = read_csv(tmp_path / device / "per_object.csv")
    cpu, gpu = runs["cpu"], runs["cuda"]
    assert [(r["image_id"], r["object_id"], r["class"]) for r in cpu] == \
           [(r["image_id"], r["object_id"], r["class"]) for r in gpu] and cpu
    same_path = 0
    for a, b in zip(cpu, gpu):
        clicks_a, clicks_b = json.loads(a["clicks"]), json.loads(b["clicks"])
        assert clicks_a[0] == clicks_b[0]
        ious_a, ious_b = json.loads(a["ious"]), json.loads(b["ious"])
        assert abs(ious_a[0] - ious_b[0]) < 0.02
        same_path += clicks_a == clicks_b
        if clicks_a == clicks_b:
            assert np.allclose(ious_a, ious_b, atol=0.02)
    assert same_path >= 0.8 * len(cpu)


def test_sam2_encode_and_decode_on_the_gpu_against_the_cpu(synth_root):
    backend = backend_for("sam2.1_hiera_t")
    encoder, _ = backend.build_encoder("sam2.1_hiera_t", None, 0, allow_random=True)
    decoder, _ = backend.build_decoder("sam2.1_hiera_t", None, 0, allow_random=True)
    image, size = backend.prepare(read_image(list_images(synth_root, "val")[0].image_path))
    images, sizes = image[None], torch.tensor([size])
    configure_matmul(torch.device("cuda"), "fp32")
    cpu = backend.encode(encoder.eval(), images, sizes, "fp32")
    gpu = backend.encode(encoder.cuda().eval(), images, sizes, "fp32")
    gpu16 = backend.encode(encoder, images, sizes, "bf16")
    configure_matmul(torch.device("cuda"), "bf16")
    for name in cpu:
        assert rel(gpu[name], cpu[name]) < FP32_GPU_RTOL, name
        assert rel(gpu16[name], cpu[name]) < 5e-2, name  # bf16 through Hiera: the extract default
    coords = torch.tensor([[[300.0, 200.0]], [[700.0, 800.0]], [[512.0, 512.0]]])
    labels, index = torch.ones(3, 1, dtype=torch.int), torch.zeros(3, dtype=torch.long)
    with torch.inference_mode():
        ref = backend.decode(decoder.eval(), cpu, index, Prompts(coords, labels), True)
        got = backend.decode(decoder.cuda(), {k: v.cuda() for k, v in cpu.items()}, index.cuda(),
                             Prompts(coords.cuda(), labels.cuda()), True)
    assert rel(got[0], ref[0]) < FP32_GPU_RTOL and rel(got[1], ref[1]) < FP32_GPU_RTOL
    assert ((got[0].cpu() > 0) == (ref[0] > 0)).float().mean() > 0.999


def test_sam3_extract_text_points_and_predictor_on_the_gpu_against_the_cpu(synth_root, tmp_path):
    """sam3_tiny on the GPU: the CPU workarounds must not pin anything to the CPU (position and coordinate
    caches follow the device), the trunk agrees with the CPU's in fp32 and bf16, text and point decoding
    agree, and samcache.predictor(cache, ..., device="cuda") gives a Sam3Processor whose inputs go to the GPU."""
    pytest.importorskip("sam3")
    import samcache
    from samcache.evaluation.concept_decoding import segment_by_concepts
    from samcache.evaluation.concepts import InstanceComposition, phrase_map

    backend = backend_for("sam3_tiny")
    encoder, _ = backend.build_encoder("sam3_tiny", None, 0)
    image = read_image(list_images(synth_root, "val")[0].image_path)
    prepared, size = backend.prepare(image)
    images, sizes = prepared[None], torch.tensor([size])
    configure_matmul(torch.device("cuda"), "fp32")
    cpu = backend.encode(encoder.eval(), images, sizes, "fp32")["trunk"]
    gpu = backend.encode(encoder.cuda().eval(), images, sizes, "fp32")["trunk"]
    gpu16 = backend.encode(encoder, images, sizes, "bf16")["trunk"]
    configure_matmul(torch.device("cuda"), "bf16")
    assert rel(gpu, cpu) < FP32_GPU_RTOL and rel(gpu16, cpu) < 5e-2
    decoder, _ = backend.build_decoder("sam3_tiny", None, 0)
    original = tuple(image.shape[:2])
    rule = InstanceComposition(score_threshold=0.0, min_area=0)
    phrases = phrase_map("seed5")
    ref = segment_by_concepts(backend, decoder.eval(), {"trunk": cpu}, [original], phrases, "instances", rule)[0]
    got = segment_by_concepts(backend, decoder.cuda(), {"trunk": cpu.cuda()}, [original], phrases, "instances",
                              rule)[0]
    assert (got.label_map == ref.label_map).float().mean() > 0.99
    torch.testing.assert_close(got.instances.confidences, ref.instances.confidences, atol=1e-3, rtol=0)
    cache = tmp_path / "s3.zarr"
    extract(extract_cfg(synth_root, cache, "val", model_type="sam3_tiny", device="cuda", precision="fp32",
                        dtype="float32", limit=1), progress=False)
    processor = samcache.predictor(cache, "val", 0, device="cuda")
    assert processor.device == "cuda" and next(processor.model.parameters()).is_cuda
    state = processor.set_text_prompt("car", processor.state)
    assert state["scores"].is_cuda
    masks, scores, _ = processor.model.predict_inst(processor.state, point_coords=np.array([[100.0, 120.0]]),
                                                    point_labels=np.array([1]), multimask_output=True)
    reference = samcache.predictor(cache, "val", 0, device="cpu")
    ref_masks, ref_scores, _ = reference.model.predict_inst(reference.state, point_coords=np.array([[100.0, 120.0]]),
                                                            point_labels=np.array([1]), multimask_output=True)
    np.testing.assert_allclose(scores, ref_scores, atol=1e-3)
    assert (masks.astype(bool) == ref_masks.astype(bool)).mean() > 0.999


def test_dataloader_workers_with_pinned_memory(synth_root, gpu_cache, tmp_path):
    """extract and train-head read through DataLoader workers into pinned memory on a GPU: same results
    as in one process."""
    caches = {}
    for workers in (0, 2):
        caches[workers] = tmp_path / f"w{workers}.zarr"
        extract(extract_cfg(synth_root, caches[workers], "val", device="cuda", precision="fp32", batch_size=2,
                            num_workers=workers, dtype="float32"), progress=False)
    a, b = (open_cache(caches[w]).split("val") for w in (0, 2))
    for row in range(len(a)):
        assert rel(b.embedding(row), a.embedding(row)) < 1e-6
    record = {}
    for preload, workers in (("gpu", 0), ("off", 2)):
        record[preload] = train_head(HeadConfig(cache=str(gpu_cache), out=str(tmp_path / preload), epochs=1,
                                                batch_size=2, width=32, preload=preload, device="cuda",
                                                visualize=0, num_workers=workers), progress=False)
    assert record["off"]["preload"] == "off"
    assert record["off"]["miou"] == pytest.approx(record["gpu"]["miou"], abs=1e-3)


def test_zero_shot_on_gpu_agrees_with_cpu(gpu_cache, tmp_path):
    runs = {}
    for device in ("cpu", "cuda"):
        runs[device] = run_zero_shot(ZeroShotConfig(cache=str(gpu_cache), out=str(tmp_path / device),
                                                    prompt="per-instance", device=device, visualize=1,
                                                    multimask="oracle", num_workers=1), progress=False)
    cpu, gpu = (read_csv(tmp_path / d / "detailed_results.csv") for d in ("cpu", "cuda"))
    assert [(r["image_id"], r["class"]) for r in cpu] == [(r["image_id"], r["class"]) for r in gpu]
    for a, b in zip(cpu, gpu):  # same prompts; GPU and CPU kernels round differently at mask borders
        assert abs(float(a["iou"]) - float(b["iou"])) < 0.02
    assert runs["cuda"]["prompt_budget"] >= 1


def test_head_with_gpu_preload_and_evaluate_on_gpu(gpu_cache, tmp_path):
    record = train_head(HeadConfig(cache=str(gpu_cache), out=str(tmp_path / "head"), epochs=2, batch_size=2,
                                   width=32, preload="gpu", device="cuda", precision="bf16", visualize=1,
                                   num_workers=0), progress=False)
    assert record["preload"] == "gpu" and np.isfinite(record["miou"])
    on_gpu = run_evaluate(EvaluateConfig(head=str(tmp_path / "head" / "head_epoch_2.pt"), cache=str(gpu_cache),
                                          device="cuda", out=str(tmp_path / "eval-gpu"), num_workers=0),
                           progress=False)
    on_cpu = run_evaluate(EvaluateConfig(head=str(tmp_path / "head" / "head_epoch_2.pt"), cache=str(gpu_cache),
                                          device="cpu", out=str(tmp_path / "eval-cpu"), num_workers=0),
                           progress=False)
    assert on_gpu["miou"] == pytest.approx(on_cpu["miou"], abs=2e-3)


def test_the_pipeline_under_a_10_gib_cap(synth_root, tmp_path):
    """extract -> zero-shot -> clicks -> train-head --preload auto with 10 GiB, as on an RTX 3080; the
    budgets see the cap, and the full Cityscapes train+val (10.7 GiB of ViT-H features) goes to RAM."""
    from samcache.evaluation.training_data import choose_preload
    from samcache.features.memory import usable_bytes

    cache = tmp_path / "capped.zarr"
    with memory_cap():
        assert usable_bytes(torch.device("cuda")) <= CAP_BYTES
        for split in ("train", "val"):
            extract(extract_cfg(synth_root, cache, split, device="cuda", precision="auto", attention="sdpa",
                                batch_size=None, dtype="float16", num_workers=2), progress=False)
        zs = run_zero_shot(ZeroShotConfig(cache=str(cache), out=str(tmp_path / "zs"), prompt="per-instance",
                                          device="cuda", visualize=0, num_workers=1), progress=False)
        clicks = run_clicks(ClicksConfig(cache=str(cache), out=str(tmp_path / "clicks"), device="cuda", max_clicks=3,
                                         visualize=0, num_workers=1), progress=False)
        head = train_head(HeadConfig(cache=str(cache), out=str(tmp_path / "head"), epochs=1, batch_size=2, width=32,
                                     preload="auto", device="cuda", visualize=0, num_workers=0), progress=False)
        assert choose_preload("auto", int(10.7 * 2**30), torch.device("cuda")) == "ram"
        assert torch.cuda.max_memory_reserved() <= CAP_BYTES
    assert zs["prompts"] > 0 and clicks["objects"] > 0 and head["preload"] == "gpu"  # the tiny split fits
    assert 1 <= zs["prompt_budget"] <= int(0.8 * CAP_BYTES / 2**20)  # at least a MiB per prompt


def test_per_gpu_local_dask_cluster(synth_root, tmp_path):
    cache = tmp_path / "dask.zarr"
    result = extract(extract_cfg(synth_root, cache, "val", dask="local:1", device="auto", precision="auto",
                                 attention="sdpa", batch_size=None, dtype="float32"), progress=False)
    assert result.failed == [] and result.n_done == 3
    split = open_cache(cache).split("val")
    assert split.fingerprint.precision == "bf16"  # the worker has the GPU, whatever the driver resolves
    assert split.attrs["runs"][-1]["device"] == "dask:local:1"
