"""Each CPU workaround of features/sam3_compat.py: the trap is still upstream, and the workaround holds.

When one of the "still upstream" tests fails, upstream fixed that trap: drop its workaround.
"""

from __future__ import annotations

import importlib.util
import inspect
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("sam3")

from samcache.features.sam3 import compat as sam3_compat  # noqa: E402

SAM3_ROOT = Path(importlib.util.find_spec("sam3").origin).parent


def _source(relative: str) -> str:
    return (SAM3_ROOT / relative).read_text()


def test_trap_triton_import_is_still_upstream():
    edt = _source("model/edt.py")
    assert "\nimport triton\n" in edt  # at module level
    assert "from sam3.model.edt import edt_triton" in _source("model/sam3_tracker_utils.py")


@pytest.mark.slow
def test_import_sam3_without_triton_works_with_the_stub():
    code = ("import sys; sys.modules['triton'] = None\n"
            "from samcache.features.sam3 import compat as sam3_compat; sam3_compat.apply()\n"
            "import sam3.model_builder, sam3.model.edt as e\n"
            "assert e.__samcache_stub__\n"
            "try:\n    e.edt_triton(None)\nexcept RuntimeError as exc:\n    print('stub raises:', exc)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "stub raises: sam3's edt_triton needs triton" in out.stdout



def test_trap_cuda_device_in_position_encoding_and_decoder_is_still_upstream():
    assert 'tensors = torch.zeros((1, 1) + size, device="cuda")' in _source("model/position_encoding.py")
    assert 'feat_size, feat_size, device="cuda"' in _source("model/decoder.py")


def test_trap_pin_memory_in_box_encoding_is_still_upstream():
    src = _source("model/geometry_encoders.py")
    assert "scale = scale.pin_memory()" in src


def test_trap_processor_default_device_is_still_cuda():
    from sam3.model.sam3_image_processor import Sam3Processor

    assert inspect.signature(Sam3Processor.__init__).parameters["device"].default == "cuda"


def test_trap_text_encoder_leaves_tensors_empty_is_still_upstream():
    src = _source("model/text_encoder_ve.py")
    assert "nn.Parameter(torch.empty(self.num_pos, width))" in src
    assert "nn.Parameter(torch.empty(width, output_dim))" in src
    assert "positional_embedding, std" not in src  # no init of it anywhere in the module


@pytest.mark.skipif(torch.cuda.is_available(), reason="the CUDA traps only bite without CUDA")
def test_workarounds_are_still_needed_without_cuda():
    with pytest.raises((RuntimeError, AssertionError)):
        torch.zeros(1, device="cuda")
    with pytest.raises(RuntimeError):
        torch.zeros(1).pin_memory()


def test_patched_classes_work_on_cpu_and_apply_is_idempotent():
    sam3_compat.apply()
    from sam3.model.decoder import TransformerDecoder
    from sam3.model.geometry_encoders import SequenceGeometryEncoder
    from sam3.model.position_encoding import PositionEmbeddingSine

    patched = (PositionEmbeddingSine.__init__, TransformerDecoder._get_coords, SequenceGeometryEncoder._encode_boxes)
    sam3_compat.apply()
    assert (PositionEmbeddingSine.__init__, TransformerDecoder._get_coords,
            SequenceGeometryEncoder._encode_boxes) == patched
    pe = PositionEmbeddingSine(32, precompute_resolution=112)  # upstream would ask for CUDA here
    x = torch.zeros(2, 1, 28, 28)
    fresh = pe(x)
    assert (28, 28) in pe.cache and torch.equal(pe(x), fresh)  # filled on first use, then served from it
    h, w = TransformerDecoder._get_coords(4, 5, "cuda" if torch.cuda.is_available() else "cpu")
    assert torch.equal(w, torch.arange(5) / 5)


def test_bpe_vocabulary_is_found():
    path = Path(sam3_compat.bpe_path())
    assert path.name == sam3_compat.BPE_FILE and path.stat().st_size > 1_000_000


def test_trap_cpu_import_warnings_are_still_upstream_and_silenced_exactly():
    """sam3 decorates with ``torch.autocast("cuda")`` and calls ``torch.jit.script``: both warn on a CPU
    machine (torch's messages); ``upstream_quiet`` drops those two and lets any other warning through."""
    import warnings

    assert '@torch.autocast(device_type="cuda", dtype=torch.bfloat16)' in _source("model/sam3_video_inference.py")
    assert "torch.jit.script(" in _source("model/utils/sam1_utils.py")
    from sam3.model.utils.sam1_utils import SAM2Transforms

    def emitted():
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            with sam3_compat.upstream_quiet():
                SAM2Transforms(resolution=1008, mask_threshold=0.0)
                if not torch.cuda.is_available():
                    torch.autocast(device_type="cuda", dtype=torch.bfloat16)
                warnings.warn("another warning", UserWarning)
        return [str(w.message) for w in seen]

    assert emitted() == ["another warning"]
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        SAM2Transforms(resolution=1008, mask_threshold=0.0)
    assert any(sam3_compat.UPSTREAM_NOISE[1] in str(w.message) for w in seen)  # torch still says it
