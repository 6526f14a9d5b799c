"""What the HunyuanCustomPrompt node hands to BOTH samplers (type HYC_PROMPT)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import torch


@dataclass(frozen=True, eq=False)
class PromptSpec:
    """Texts, subject word and the (composited) reference image.

    `reference` is a ComfyUI IMAGE: float32 [1, H, W, 3] in 0..1, a cut-out subject on white.
    With several references (multi-subject) it is their side-by-side composite; the released
    checkpoint was trained on a single reference image, so that composite is what both the
    local model and WaveSpeed receive.
    """

    prompt: str
    negative_prompt: str
    subject: str
    reference: torch.Tensor
    num_references: int = 1
    _fingerprint: list = field(default_factory=list, repr=False)

    def fingerprint(self) -> str:
        """Stable hash of texts + reference pixels (for caching encoder outputs)."""
        if not self._fingerprint:
            h = hashlib.sha256()
            for text in (self.prompt, self.negative_prompt, self.subject):
                h.update(text.encode("utf-8") + b"\0")
            ref = self.reference.detach().to("cpu", torch.float32).contiguous()
            h.update(str(tuple(ref.shape)).encode())
            h.update(ref.numpy().tobytes())
            self._fingerprint.append(h.hexdigest())
        return self._fingerprint[0]
