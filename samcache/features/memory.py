"""How many items fit on the GPU: measure what one more costs, then fill a share of free memory.

Used for the encoder's batch size and the decoder's prompt budget, so that a ViT-H batch or a
few thousand prompts never exhaust the card, whatever the model and the image size.
"""

from __future__ import annotations

from typing import Callable

import torch

MEMORY_SHARE = 0.8  # of the memory free after the model is loaded


def fits(free_bytes: int, fixed_bytes: int, per_item_bytes: int, cap: int, share: float = MEMORY_SHARE) -> int:
    """Items that fit in ``share`` of the free memory, given a fixed cost and a cost per item (>= 1, <= cap)."""
    if per_item_bytes <= 0:
        return cap
    return max(1, min(cap, int((share * free_bytes - fixed_bytes) // per_item_bytes)))


def peak_bytes(run: Callable[[int], object], n: int, device: torch.device) -> int:
    """Peak memory that ``run(n)`` allocates beyond what is allocated now."""
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    run(n)
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) - base


def capacity(run: Callable[[int], object], device: torch.device, cap: int,
             measure: Callable[[int], int] | None = None) -> int:
    """How many items ``run`` can take at once on ``device``: from peak memory at 1 and 2 items."""
    measure = measure or (lambda n: peak_bytes(run, n, device))
    one, two = measure(1), measure(2)
    per_item = max(two - one, 1)
    free, _ = torch.cuda.mem_get_info(device)
    return fits(free, max(one - per_item, 0), per_item, cap)
