"""Non-maximum suppression of raw YOLO outputs with ``torchvision.ops.batched_nms``."""

from __future__ import annotations

import torch
import torchvision

__all__ = ["non_max_suppression"]


def non_max_suppression(
    prediction: torch.Tensor,
    conf: float = 0.25,
    iou: float = 0.7,
    classes: list[int] | None = None,
    max_det: int = 300,
    max_nms: int = 30000,
    end2end: bool = False,
) -> list[torch.Tensor]:
    """Boxes kept per image from a YOLO head's output.

    Args:
        prediction: ``(B, 4 + nc, A)`` centre-xywh boxes and class scores, or for
            end-to-end models ``(B, K, 6)`` rows ``x1, y1, x2, y2, score, class``.
        conf: Keep boxes whose best class score is above this.
        iou: Suppress boxes overlapping a better box of the same class above this IoU.
        classes: Keep only these class ids (all when None).
        max_det: At most this many boxes per image, best first.
        max_nms: At most this many candidates enter NMS, best first.

    Returns:
        Per image a ``(N, 6)`` float32 tensor ``x1, y1, x2, y2, score, class`` in
        network-input pixels, sorted by score.
    """
    wanted = None if classes is None else torch.tensor(classes, device=prediction.device)
    out = []
    if end2end:
        for rows in prediction:
            keep = rows[:, 4] > conf
            if wanted is not None:
                keep &= torch.isin(rows[:, 5].long(), wanted)
            out.append(rows[keep][:max_det].float())
        return out
    pred = prediction.transpose(1, 2)
    scores, labels = pred[..., 4:].max(-1)
    for b in range(pred.shape[0]):
        keep = scores[b] > conf
        if wanted is not None:
            keep &= torch.isin(labels[b], wanted)
        xywh, s, c = pred[b, keep, :4], scores[b, keep], labels[b, keep]
        if len(s) > max_nms:
            top = s.argsort(descending=True)[:max_nms]
            xywh, s, c = xywh[top], s[top], c[top]
        xyxy = torch.cat([xywh[:, :2] - xywh[:, 2:] / 2, xywh[:, :2] + xywh[:, 2:] / 2], 1)
        kept = torchvision.ops.batched_nms(xyxy.float(), s.float(), c, iou)[:max_det]
        out.append(torch.cat([xyxy[kept], s[kept, None], c[kept, None].to(s.dtype)], 1).float())
    return out
