"""How many items fit on the GPU: measure what more items cost, then fill a share of usable memory.

Used for the encoder's batch size and the decoder's prompt budget, so that a ViT-H batch or a
few thousand prompts never exhaust the card, whatever the model and the image size.

Why it is careful: in a fresh process the first forward also allocates one-time things (the
cuBLAS workspace, about 32 MiB on Hopper; kernels' scratch), and peak memory rounds to allocator
blocks. A slope taken from the first probe at 1 and 2 items can then be zero or negative, and a
budget built on it is thousands of items. So: one warm-up probe that is not measured, then peaks at
``n`` and ``2n`` items (n >= 4, where the per-item cost dominates the rounding), and a slope that is
not clearly positive is replaced by the average cost per item at ``2n`` (never below the true
slope when the fixed cost is non-negative). Every fallback is said in one warning.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable

import torch

from samcache.errors import SamcacheWarning

MEMORY_SHARE = 0.8  # of the memory usable after the model is loaded
PROBE_ITEMS = 4  # n: probes at n and 2n items, after a warm-up at n
MIN_SLOPE_SHARE = 0.5  # a slope below this share of the average cost per item at 2n is not trusted


def fits(free_bytes: int, fixed_bytes: int, per_item_bytes: int, cap: int, share: float = MEMORY_SHARE) -> int:
    """Items that fit in ``share`` of the free memory, given a fixed cost and a cost per item (>= 1, <= cap)."""
    if per_item_bytes <= 0:
        return cap
    return max(1, min(cap, int((share * free_bytes - fixed_bytes) // per_item_bytes)))


def usable_bytes(device: torch.device) -> int:
    """Bytes this process can still allocate on ``device``: free device memory plus the allocator's unused
    cache, within ``torch.cuda.set_per_process_memory_fraction`` (which ``mem_get_info`` does not see)."""
    free, total = torch.cuda.mem_get_info(device)
    allocated, reserved = torch.cuda.memory_allocated(device), torch.cuda.memory_reserved(device)
    usable = free + reserved - allocated
    get_fraction = getattr(torch.cuda, "get_per_process_memory_fraction", None)
    fraction = get_fraction(device) if get_fraction is not None else 1.0
    if fraction < 1.0:
        usable = min(usable, int(fraction * total) - allocated)
    return max(usable, 0)


def peak_bytes(run: Callable[[int], object], n: int, device: torch.device) -> int:
    """Peak memory that ``run(n)`` allocates beyond what is allocated now."""
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    run(n)
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) - base


@dataclass(frozen=True)
class Estimate:
    """A linear cost model from two probes: peak(k) ~ fixed_bytes + k * per_item_bytes."""

    per_item_bytes: int
    fixed_bytes: int
    fallback: str  # empty when the measured slope was used; else why it was not

    @classmethod
    def from_probes(cls, n: int, peak_n: int, peak_2n: int) -> "Estimate":
        slope = (peak_2n - peak_n) / n
        average = peak_2n / (2 * n)
        if average <= 0:
            return cls(0, 0, f"the probe at {2 * n} items measured no memory ({peak_2n} bytes)")
        if slope >= MIN_SLOPE_SHARE * average:
            return cls(int(slope), max(int(peak_2n - 2 * n * slope), 0), "")
        why = (f"the cost of {n} more items measured {peak_2n - peak_n} bytes "
               f"({'not positive' if slope <= 0 else 'below half the average, noise'})")
        return cls(int(average), 0, why)


def capacity(run: Callable[[int], object], device: torch.device, cap: int,
             measure: Callable[[int], int] | None = None, what: str = "items",
             free_bytes: Callable[[], int] | None = None, n: int = PROBE_ITEMS) -> int:
    """How many items ``run`` can take at once on ``device`` (1..cap): warm-up at n, peaks at n and 2n.

    ``measure(k)`` returns the peak bytes of ``run(k)`` (default: ``peak_bytes``); tests pass fakes.
    A probe that runs out of memory halves n; if even one item does not fit, the answer is 1.
    """
    measure = measure or (lambda k: peak_bytes(run, k, device))
    free_bytes = free_bytes or (lambda: usable_bytes(device))
    while True:
        try:
            measure(n)  # warm-up: one-time allocations land here, not in the slope
            peak_n, peak_2n = measure(n), measure(2 * n)
            break
        except torch.cuda.OutOfMemoryError:  # torch.OutOfMemoryError since 2.5: the same class
            pass
        if device.type == "cuda":
            torch.cuda.empty_cache()  # outside the except block: its traceback held the probe's tensors
        if n == 1:
            _say(f"{what} per call: even a probe of 1 ran out of memory; using 1")
            return 1
        n //= 2
    estimate = Estimate.from_probes(n, peak_n, peak_2n)
    if estimate.per_item_bytes <= 0:
        _say(f"{what} per call: {estimate.fallback}; using {2 * n}, the size that was measured to fit")
        return max(1, min(cap, 2 * n))
    items = fits(free_bytes(), estimate.fixed_bytes, estimate.per_item_bytes, cap)
    if estimate.fallback:
        _say(f"{what} per call: {estimate.fallback}; using the average cost per item at {2 * n} "
             f"({estimate.per_item_bytes / 2**20:.1f} MiB), which gives {items} (conservative)")
    return items


def _say(message: str) -> None:
    warnings.warn(message, SamcacheWarning, stacklevel=3)
