"""How closely one detector's boxes follow another's (an INT8 model against its fp32 one)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torchvision

from streamer.types import Detections

__all__ = ["Agreement", "box_agreement"]


@dataclass(frozen=True)
class Agreement:
    """Boxes of a reference matched one-to-one by boxes of another detector.

    Attributes:
        reference: Boxes of the reference, all frames.
        other: Boxes of the other detector, all frames.
        matched: Pairs of the same class with IoU at or above the threshold.
        mean_iou: Mean IoU of the matched pairs.
        mean_conf_diff: Mean absolute confidence difference of the matched pairs.
    """

    reference: int
    other: int
    matched: int
    mean_iou: float
    mean_conf_diff: float

    @property
    def recall(self) -> float:
        """Share of the reference's boxes found again."""
        return self.matched / self.reference if self.reference else 1.0

    @property
    def precision(self) -> float:
        """Share of the other detector's boxes that the reference has too."""
        return self.matched / self.other if self.other else 1.0


def box_agreement(reference: Sequence[Detections], other: Sequence[Detections], iou: float = 0.5) -> Agreement:
    """Greedy one-to-one matching per frame, best IoU first, same class only."""
    matched, ious, diffs = 0, [], []
    for ref, oth in zip(reference, other, strict=True):
        if not len(ref) or not len(oth):
            continue
        m = torchvision.ops.box_iou(torch.from_numpy(ref.xyxy).float(), torch.from_numpy(oth.xyxy).float()).numpy()
        m[ref.class_id[:, None] != oth.class_id[None, :]] = 0.0
        while m.size and m.max() >= iou:
            i, j = np.unravel_index(int(m.argmax()), m.shape)
            ious.append(float(m[i, j]))
            diffs.append(abs(float(ref.confidence[i]) - float(oth.confidence[j])))
            m[i, :] = 0.0
            m[:, j] = 0.0
            matched += 1
    return Agreement(sum(len(d) for d in reference), sum(len(d) for d in other), matched,
                     float(np.mean(ious)) if ious else 0.0, float(np.mean(diffs)) if diffs else 0.0)
