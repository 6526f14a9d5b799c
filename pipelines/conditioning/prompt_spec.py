"""What the HunyuanCustomPrompt node hands to BOTH samplers (type HYC_PROMPT)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from .base import Condition, required_checkpoint
from .reference import ReferenceCondition


@dataclass(frozen=True, eq=False)
class PromptSpec:
    """Texts, subject word and the conditions (reference image first; a mode's node adds its own).

    The reference is a ComfyUI IMAGE: float32 [1, H, W, 3] in 0..1, a cut-out subject on white.
    With several references (multi-subject) it is their side-by-side composite; the released
    checkpoint was trained on a single reference image, so that composite is what both the
    local model and WaveSpeed receive.
    """

    prompt: str
    negative_prompt: str
    subject: str
    conditions: tuple[Condition, ...]
    num_references: int = 1

    @classmethod
    def create(cls, prompt: str, negative_prompt: str, subject: str, reference: torch.Tensor,
               num_references: int = 1) -> "PromptSpec":
        """A spec with just the reference image (what the Prompt node makes)."""
        return cls(prompt, negative_prompt, subject, (ReferenceCondition(reference),), num_references)

    def condition(self, kind: str) -> Condition | None:
        return next((c for c in self.conditions if c.kind == kind), None)

    @property
    def reference(self) -> torch.Tensor:
        ref = self.condition(ReferenceCondition.kind)
        if ref is None:
            raise ValueError("this prompt has no reference image; build it with a HunyuanCustom Prompt node")
        return ref.image

    @property
    def mode(self) -> str:
        """"ref2v", "audio" or "editing": the transformer checkpoint this spec needs."""
        return required_checkpoint(self.conditions)

    def with_condition(self, condition: Condition) -> "PromptSpec":
        """A new spec with `condition` added, replacing one of the same kind (the input is unchanged,
        so one Prompt node can feed several mode nodes)."""
        kept = tuple(c for c in self.conditions if c.kind != condition.kind)
        conditions = kept + (condition,)
        required_checkpoint(conditions)  # two modes in one job: say so here, at the node that adds it
        return replace(self, conditions=conditions)
