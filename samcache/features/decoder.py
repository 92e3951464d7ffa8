"""Prompt decoding for any family, in chunks: ``decode_chunked`` keeps each ``Backend.decode`` call within
a prompt budget measured from free GPU memory, and everything stays on the device. (Each family's own
decoding math is in its package, e.g. ``sam1.kernel``.)
"""

from __future__ import annotations

import torch

from samcache.features.backend import Prompts
from samcache.features.memory import capacity

# which of SAM's masks a prompt keeps: its own top score, the best against ground truth (the SAM
# paper's oracle, labelled ORACLE in every output), or a single mask (multimask_output=False)
CPU_DECODE_CHUNK = 4  # on CPU larger decoder batches fall out of cache and get slower per prompt
MAX_PROMPTS_PER_CALL = 4096


def prompt_budget(backend, decoder, features: dict[str, torch.Tensor], measure=None) -> int:
    """Prompts per decoder call: CPU_DECODE_CHUNK on the CPU; on CUDA what fits in free memory."""
    device = next(iter(features.values())).device
    if device.type != "cuda":
        return CPU_DECODE_CHUNK
    first = {name: value[:1] for name, value in features.items()}

    def probe(n: int) -> None:
        coords = torch.full((n, 1, 2), 512.0, device=device)
        backend.decode(decoder, first, torch.zeros(n, dtype=torch.long, device=device),
                       Prompts(coords, torch.ones((n, 1), dtype=torch.int, device=device)), True)

    return capacity(probe, device, MAX_PROMPTS_PER_CALL, measure, what="prompts")


def decode_chunked(backend, decoder, features: dict[str, torch.Tensor], image_index: torch.Tensor,
                   prompts: Prompts, multimask_output: bool, budget: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``backend.decode`` in calls of at most ``budget`` prompts; the results stay on the device."""
    outputs = [backend.decode(decoder, features, image_index[s: s + budget], prompts[s: s + budget],
                              multimask_output)
               for s in range(0, len(image_index), budget)]
    return torch.cat([o[0] for o in outputs]), torch.cat([o[1] for o in outputs])


def pick_by_score(logits: torch.Tensor, scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each prompt's top-scoring mask, on the device: (logits (B,1,256,256), scores (B,), choice (B,))."""
    choice = scores.argmax(dim=1)
    rows = torch.arange(len(choice), device=choice.device)
    return logits[rows, choice][:, None], scores[rows, choice], choice
