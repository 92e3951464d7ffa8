"""The CPU workarounds that the official ``sam3`` 0.1.4 package needs, in one place.

``sam3`` is written for a CUDA machine. Each trap below is documented where it bites, and
``tests/test_sam3_compat.py`` checks that each one still exists upstream (so a fixed upstream
makes a test fail and the workaround can go) and that the workaround is still needed.

1. ``import sam3`` imports triton (``sam3/model/edt.py``, used only by video tracking):
   without triton, a stand-in ``sam3.model.edt`` whose function raises is registered first.
2. ``PositionEmbeddingSine.__init__`` precomputes its cache with ``device="cuda"``
   (``model/position_encoding.py:47``): not precomputed (``forward`` fills the same cache on first
   use, with the same values; the precompute only helps torch.compile), and a cached tensor follows
   the input's device.
3. ``TransformerDecoder.__init__`` builds its coordinate cache with ``device="cuda"``
   (``model/decoder.py:281``): the same rule, and the cache follows the boxes' device.
4. ``SequenceGeometryEncoder._encode_boxes`` calls ``.pin_memory()`` even when there are no boxes
   (text prompts; ``model/geometry_encoders.py:659``), which raises without CUDA: pinning is a
   no-op inside that call when CUDA is absent (the values are unchanged; only the copy is affected).
5. ``Sam3Processor`` defaults to ``device="cuda"``: samcache always passes the model's device
   (``processor_for``).
6. A random init leaves the text encoder's ``positional_embedding`` and ``text_projection`` as
   ``torch.empty`` (garbage, often NaN): ``init_text_encoder`` fills them as open_clip does.

7. Importing and building ``sam3`` on a CPU warns "CUDA is not available ... Disabling autocast" (its
   bf16 autocast decorators) and "``torch.jit.script`` is deprecated" (box_ops, SAM2Transforms) on every
   command: ``upstream_quiet`` silences exactly these two messages around samcache's calls into sam3.

``apply()`` is idempotent and must run before ``sam3`` is imported by anything else.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import re
import sys
import types
import warnings
from pathlib import Path

import torch

from samcache.errors import SamcacheError

_APPLIED = "_samcache_patched"
BPE_FILE = "bpe_simple_vocab_16e6.txt.gz"  # not shipped in sam3 0.1.4; identical in open_clip_torch 3.3.0


def _triton_importable() -> bool:
    if "triton" in sys.modules:
        return sys.modules["triton"] is not None
    return importlib.util.find_spec("triton") is not None


def _stub_edt() -> None:
    """Trap 1: register a triton-free ``sam3.model.edt`` before sam3's tracker utils import it."""
    if _triton_importable() or "sam3.model.edt" in sys.modules:
        return
    stub = types.ModuleType("sam3.model.edt")

    def edt_triton(*args, **kwargs):
        raise RuntimeError("sam3's edt_triton needs triton (video tracking only; samcache does not use it)")

    stub.edt_triton = edt_triton
    stub.__samcache_stub__ = True
    sys.modules["sam3.model.edt"] = stub


def _patch_position_encoding(cls) -> None:
    """Trap 2."""
    init, forward = cls.__init__, cls.forward

    @functools.wraps(init)
    def __init__(self, num_pos_feats, temperature=10000, normalize=True, scale=None, precompute_resolution=None):
        # upstream precomputes 4 sizes only to help torch.compile; forward fills the same cache lazily with
        # the same values on the input's device (and costs ~0.7 s per encoder less to build on a CPU)
        init(self, num_pos_feats, temperature, normalize, scale, precompute_resolution=None)

    @functools.wraps(forward)
    def follow_device(self, x):
        key = (x.shape[-2], x.shape[-1])
        if key in self.cache and self.cache[key].device != x.device:
            self.cache[key] = self.cache[key].to(x.device)
        return forward(self, x)

    cls.__init__, cls.forward = __init__, torch.no_grad()(follow_device)


def _patch_decoder_coords(cls) -> None:
    """Trap 3."""
    get_coords, get_rpb = cls._get_coords, cls._get_rpb_matrix

    def _get_coords(H, W, device):
        if str(device) == "cuda" and not torch.cuda.is_available():
            device = "cpu"
        return get_coords(H, W, device)

    @functools.wraps(get_rpb)
    def _get_rpb_matrix(self, reference_boxes, feat_size):
        cache = self.compilable_cord_cache
        if cache is not None and cache[0].device != reference_boxes.device:
            self.compilable_cord_cache = tuple(c.to(reference_boxes.device) for c in cache)
        return get_rpb(self, reference_boxes, feat_size)

    cls._get_coords, cls._get_rpb_matrix = staticmethod(_get_coords), _get_rpb_matrix


def _patch_pin_memory(cls) -> None:
    """Trap 4: only inside ``_encode_boxes``, only without CUDA."""
    encode_boxes = cls._encode_boxes

    @functools.wraps(encode_boxes)
    def _encode_boxes(self, *args, **kwargs):
        if torch.cuda.is_available():
            return encode_boxes(self, *args, **kwargs)
        pin = torch.Tensor.pin_memory
        torch.Tensor.pin_memory = lambda t, *a, **k: t
        try:
            return encode_boxes(self, *args, **kwargs)
        finally:
            torch.Tensor.pin_memory = pin

    cls._encode_boxes = _encode_boxes


UPSTREAM_NOISE = ("CUDA is not available or torch_xla is imported", "`torch.jit.script` is deprecated")


@contextlib.contextmanager
def upstream_quiet():
    """Trap 7: silence sam3's two CPU-import warnings (and nothing else) for the duration."""
    with warnings.catch_warnings():
        for message in UPSTREAM_NOISE:
            warnings.filterwarnings("ignore", message=re.escape(message))
        yield


def apply() -> None:
    """Apply every workaround once (safe to call many times)."""
    _stub_edt()
    with upstream_quiet():
        from sam3.model import decoder, geometry_encoders, position_encoding

    for cls, patch in ((position_encoding.PositionEmbeddingSine, _patch_position_encoding),
                       (decoder.TransformerDecoder, _patch_decoder_coords),
                       (geometry_encoders.SequenceGeometryEncoder, _patch_pin_memory)):
        if not cls.__dict__.get(_APPLIED):
            patch(cls)
            setattr(cls, _APPLIED, True)


def init_text_encoder(text_transformer: torch.nn.Module) -> None:
    """Trap 6: open_clip's init of the two tensors sam3 leaves empty (call inside the seeded RNG)."""
    width = text_transformer.width
    torch.nn.init.normal_(text_transformer.positional_embedding, std=0.01)
    if isinstance(text_transformer.text_projection, torch.nn.Parameter):
        torch.nn.init.normal_(text_transformer.text_projection, std=width ** -0.5)


def processor_for(model: torch.nn.Module, confidence_threshold: float = 0.5):
    """Trap 5: upstream's ``Sam3Processor`` on the model's own device (its default is "cuda")."""
    apply()
    from sam3.model.sam3_image_processor import Sam3Processor

    device = next(model.parameters()).device
    return Sam3Processor(model, device=str(device), confidence_threshold=confidence_threshold)


def bpe_path() -> str:
    """The CLIP BPE vocabulary sam3's tokenizer reads, from open_clip_torch (not imported)."""
    for package in ("sam3", "open_clip"):
        spec = importlib.util.find_spec(package)
        if spec is None or spec.origin is None:
            continue
        root = Path(spec.origin).parent
        for candidate in (root / BPE_FILE, root.parent / "assets" / BPE_FILE):
            if candidate.is_file():
                return str(candidate)
    raise SamcacheError(f"SAM 3's text tokenizer needs {BPE_FILE}; install open_clip_torch==3.3.0, which ships it")
