"""The GPU memory budget with fake measurements: what a fresh CUDA process measures (a one-time cost in
the first probe), allocator rounding and noise, probes that run out of memory, and a per-process cap.

The fake follows the SAM decoder's measured peaks on Hopper (38 / 64 / 116 / 220 MiB at 1 / 2 / 4 / 8
prompts: 12 MiB fixed + 26 MiB per prompt) and a 32 MiB cuBLAS workspace in the first call.
"""

import contextlib
import warnings

import numpy as np
import pytest
import torch

import samcache.features.memory as memory
from samcache.errors import SamcacheWarning
from samcache.features.decoder import MAX_PROMPTS_PER_CALL, prompt_budget
from samcache.features.device import MAX_BATCH_SIZE, auto_batch_size
from samcache.features.memory import MEMORY_SHARE, Estimate, capacity, usable_bytes

MIB, GIB = 2**20, 2**30
CUDA = torch.device("cuda")  # never touched: every CUDA query is faked


class FreshProcess:
    """Peak bytes of ``k`` items: fixed + k * per_item, rounded up to 2 MiB blocks, plus noise, plus a
    one-time cost in the process's first call only (what a fresh process pays once)."""

    def __init__(self, fixed=12 * MIB, per_item=26 * MIB, one_time=32 * MIB, noise=0, seed=0, oom_above=None):
        self.fixed, self.per_item, self.one_time, self.noise = fixed, per_item, one_time, noise
        self.rng, self.oom_above, self.calls = np.random.default_rng(seed), oom_above, []

    def true_peak(self, k: int) -> int:
        return self.fixed + k * self.per_item

    def __call__(self, k: int) -> int:
        self.calls.append(k)
        if self.oom_above is not None and self.true_peak(k) > self.oom_above:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (fake)")
        peak = self.true_peak(k) + (self.one_time if len(self.calls) == 1 else 0)
        peak += int(self.rng.integers(-self.noise, self.noise + 1)) if self.noise else 0
        return -(-peak // (2 * MIB)) * 2 * MIB


def ideal(fake: FreshProcess, free: int, cap: int) -> int:
    """The budget with the true costs known."""
    return max(1, min(cap, int((MEMORY_SHARE * free - fake.fixed) // fake.per_item)))


def test_the_fake_reproduces_the_collapse_of_a_slope_from_a_fresh_first_probe():
    fake = FreshProcess()
    one, two = fake(1), fake(2)  # what the old budget measured: the first probe carries the workspace
    assert two - one <= 0  # clamped to 1 byte, the old budget became 4,096 prompts (about 104 GiB)


@pytest.mark.parametrize("free", [2 * GIB, 10 * GIB, 70 * GIB])
def test_fresh_process_budget_is_sane(free):
    fake = FreshProcess()
    with _no_warning():
        items = capacity(lambda k: None, CUDA, MAX_PROMPTS_PER_CALL, measure=fake, free_bytes=lambda: free)
    assert fake.calls[0] == fake.calls[1] == 4 and fake.calls[2] == 8  # warm-up at n, then n and 2n
    want = ideal(fake, free, MAX_PROMPTS_PER_CALL)
    assert 0.9 * want <= items <= want + 1  # rounding to 2 MiB blocks moves the slope by < 1 MiB
    assert fake.true_peak(items) <= free


def test_noisy_measurements_never_overrun_memory_and_stay_useful():
    free = 10 * GIB
    for seed in range(200):
        fake = FreshProcess(noise=6 * MIB, seed=seed)
        with warnings.catch_warnings():  # a noisy probe may be told apart as noise; either way it must fit
            warnings.simplefilter("ignore", SamcacheWarning)
            items = capacity(lambda k: None, CUDA, MAX_PROMPTS_PER_CALL, measure=fake, free_bytes=lambda: free)
        assert fake.true_peak(items) <= free, seed
        assert items >= 0.7 * ideal(fake, free, MAX_PROMPTS_PER_CALL), seed


def test_non_positive_slope_falls_back_to_the_average_and_says_so():
    peaks = iter([300 * MIB, 220 * MIB, 200 * MIB])  # warm-up, n, 2n: the larger probe measured less
    with pytest.warns(SamcacheWarning, match=r"prompts per call: .*not positive.*conservative"):
        items = capacity(lambda k: None, CUDA, 4096, measure=lambda k: next(peaks), free_bytes=lambda: 10 * GIB,
                         what="prompts")
    assert items == int(0.8 * 10 * GIB // (200 * MIB // 8))  # average cost per item at 2n, no fixed part


def test_tiny_positive_slope_is_treated_as_noise():
    estimate = Estimate.from_probes(4, 200 * MIB, 201 * MIB)  # 0.25 MiB per item against 25 MiB on average
    assert estimate.fallback and "noise" in estimate.fallback
    assert estimate.per_item_bytes == int(201 * MIB / 8)
    trusted = Estimate.from_probes(4, 116 * MIB, 220 * MIB)
    assert trusted.fallback == "" and trusted.per_item_bytes == 26 * MIB and trusted.fixed_bytes == 12 * MIB


def test_nothing_measured_uses_the_measured_size():
    with pytest.warns(SamcacheWarning, match="using 8, the size that was measured to fit"):
        assert capacity(lambda k: None, CUDA, 4096, measure=lambda k: 0, free_bytes=lambda: GIB) == 8


def test_a_probe_that_runs_out_of_memory_halves_the_probe_size():
    fake = FreshProcess(fixed=0, per_item=1200 * MIB, one_time=0, oom_above=8 * GIB)  # ViT-H-like, 10 GiB card
    with _no_warning():
        items = capacity(lambda k: None, CUDA, MAX_BATCH_SIZE, measure=fake, free_bytes=lambda: 9 * GIB)
    assert 8 in fake.calls and fake.calls[-1] == 4  # 8 images did not fit; 2 and 4 did
    assert items == ideal(fake, 9 * GIB, MAX_BATCH_SIZE) and fake.true_peak(items) <= 9 * GIB


def test_even_one_item_out_of_memory_gives_one():
    def measure(k):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory (fake)")

    with pytest.warns(SamcacheWarning, match="even a probe of 1"):
        assert capacity(lambda k: None, CUDA, 64, measure=measure, free_bytes=lambda: GIB) == 1


def test_usable_bytes_counts_the_allocator_cache_and_a_per_process_cap(monkeypatch):
    state = {"fraction": 1.0}
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda d: (60 * GIB, 80 * GIB))
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda d: 3 * GIB)
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda d: 5 * GIB)
    monkeypatch.setattr(torch.cuda, "get_per_process_memory_fraction", lambda d: state["fraction"], raising=False)
    assert usable_bytes(CUDA) == 62 * GIB  # free + cached but unused
    state["fraction"] = 10 / 80  # the RTX 3080 stand-in: 10 GiB of an 80 GiB card
    assert usable_bytes(CUDA) == 7 * GIB  # 10 GiB allowed, 3 GiB allocated


def test_preload_auto_respects_a_per_process_cap(monkeypatch):
    from samcache.evaluation import training_data

    monkeypatch.setattr(training_data, "usable_bytes", lambda d: 10 * GIB)
    assert training_data.choose_preload("auto", 5 * GIB, CUDA) == "gpu"
    assert training_data.choose_preload("auto", int(10.7 * GIB), CUDA) != "gpu"  # train+val of ViT-H, float16


def test_the_call_sites_use_the_robust_budget(monkeypatch):
    monkeypatch.setattr(memory, "usable_bytes", lambda d: 10 * GIB)
    images = FreshProcess(fixed=0, per_item=700 * MIB, one_time=32 * MIB)
    batch = auto_batch_size(lambda n: None, CUDA, measure=images)
    assert batch == ideal(images, 10 * GIB, MAX_BATCH_SIZE) and len(images.calls) == 3

    class OnCuda:  # stands for a feature tensor on the GPU; the fake measurement never decodes
        device = CUDA

        def __getitem__(self, index):
            return self

    prompts = FreshProcess()
    budget = prompt_budget(None, None, {"embeddings": OnCuda()}, measure=prompts)
    assert 0.9 * ideal(prompts, 10 * GIB, MAX_PROMPTS_PER_CALL) <= budget < 400  # not 4,096



@contextlib.contextmanager
def _no_warning():
    """A clean measurement takes no fallback: a SamcacheWarning would be an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", SamcacheWarning)
        yield
