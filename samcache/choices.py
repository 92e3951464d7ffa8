"""What a user may choose for a setting, without importing the code that implements it.

`samcache --help` lists these choices and checks these values before torch, the models, numpy or Zarr
are imported (they take seconds); the module that implements a choice imports its names from here, so
each list is written once. Model types are not here: the CLI reads them from the family registry
(``samcache.features.families``) when a command runs, so that a family registered later is offered.
"""

from __future__ import annotations

import re

from samcache.errors import SamcacheError

# data: class sets (data/labels.py builds each) and synthetic image sizes (data/synth.py)
CLASS_SET_NAMES = ("seed5", "cityscapes19")
MAX_SIDE = 8192  # of a synthetic image: a typo must not allocate tens of GiB

# features: the image encoder's attention (attention.py), compute precision -> torch's autocast dtype
# (device.py; fp32: none), which of SAM's masks a prompt keeps (decoder.py), semantic heads (head.py)
ATTENTION_KINDS = ("sdpa", "upstream")
PRECISIONS = {"fp32": None, "bf16": "bfloat16", "fp16": "float16"}
PRECISION_CHOICES = ("auto", *PRECISIONS)
MULTIMASK_MODES = ("best-score", "oracle", "single")
HEADS = ("main", "multiscale")
DEVICE_NAME = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")

# evaluation: points per prompt (prompts.py; the strategies are a registry: evaluation/strategies.py), clicks
# (clicks.py), text prompts' label maps (concepts.py)
MAX_PROMPT_POINTS = 64  # per prompt: each point is a decoder token; 100k tokens exhaust memory
STUFF_MODES = ("components", "class")
FIRST_CLICK_MODES = ("center", "random")
NEXT_CLICK_RULES = ("ritm", "largest-region")
COMPOSE_MODES = ("instances", "semantic-head", "fused")

# pipeline: head checkpoints a train-head run keeps (head_checkpoints.py)
KEEP_MODES = ("all", "best", "last")


def check_device_name(device: str) -> None:
    if not isinstance(device, str) or not DEVICE_NAME.match(device):
        raise SamcacheError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N")


def parse_size(text: str) -> tuple[int, int]:
    """'2048x1024' -> (width, height), each in [32, MAX_SIDE] (smaller scenes cannot hold the drawn objects)."""
    try:
        width, height = (int(v) for v in str(text).lower().split("x"))
    except ValueError:
        raise SamcacheError(f"expected WIDTHxHEIGHT such as 2048x1024, got {text!r}") from None
    if width < 32 or height < 32:
        raise SamcacheError(f"image size {text!r} is too small: width and height must be at least 32")
    if width > MAX_SIDE or height > MAX_SIDE:
        raise SamcacheError(f"image size {text!r} is too large: width and height must be at most {MAX_SIDE} "
                            f"(Cityscapes is 2048x1024)")
    return width, height
