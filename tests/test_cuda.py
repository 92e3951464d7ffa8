"""The CUDA paths, run only where CUDA is present (skipped otherwise): `make test` on a GPU machine covers
bf16 extraction, GPU zero-shot, GPU preload and evaluation, and the per-GPU Dask cluster."""

import numpy as np
import pytest
import torch
from segment_anything import SamPredictor

from conftest import extract_cfg
from samcache.cache.reader import open_cache
from samcache.data.cityscapes import list_images, read_image
from samcache.features.device import auto_batch_size
from samcache.features.models import build_random_sam, build_sam
from samcache.pipeline.configs import EvaluateConfig, HeadConfig, ZeroShotConfig
from samcache.pipeline.evaluate import run_evaluate
from samcache.pipeline.extract import extract
from samcache.pipeline.train_head import train_head
from samcache.pipeline.zero_shot import run_zero_shot
from samcache.pipeline.runs import read_csv

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
BF16_RTOL = 3e-2  # bf16 has 8 mantissa bits; through a ViT the embedding error stays around 1e-2


def rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b).max() / np.abs(b).max())


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
        assert rel(split.embedding(row), predictor.features[0].float().cpu().numpy()) < BF16_RTOL


def test_fp32_on_gpu_is_true_fp32(synth_root, tmp_path):
    cache = tmp_path / "fp32.zarr"
    extract(extract_cfg(synth_root, cache, "val", device="cuda", precision="fp32"), progress=False)
    assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
    predictor = SamPredictor(build_random_sam("tiny", seed=0).cuda())
    split = open_cache(cache).split("val")
    for row, rec in enumerate(list_images(synth_root, "val")):
        predictor.set_image(read_image(rec.image_path))
        assert rel(split.embedding(row), predictor.features[0].cpu().numpy()) < 1e-5


def test_auto_batch_size_runs(synth_root):
    sam, _ = build_sam("tiny", seed=0)
    encoder = sam.image_encoder.cuda()
    batch = auto_batch_size(encoder, "bf16")
    assert 1 <= batch <= 64


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


def test_per_gpu_local_dask_cluster(synth_root, tmp_path):
    cache = tmp_path / "dask.zarr"
    result = extract(extract_cfg(synth_root, cache, "val", dask="local:1", device="auto", precision="auto",
                                 attention="sdpa", batch_size=None, dtype="float32"), progress=False)
    assert result.failed == [] and result.n_done == 3
    split = open_cache(cache).split("val")
    assert split.fingerprint.precision == "bf16"  # the worker has the GPU, whatever the driver resolves
    assert split.attrs["runs"][-1]["device"] == "dask:local:1"
