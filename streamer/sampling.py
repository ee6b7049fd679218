"""Which decoded frames enter the pipeline, and which of those go to the detector."""

from __future__ import annotations

from fractions import Fraction

__all__ = ["Sampler"]


class Sampler:
    """Keeps every ``every``-th frame, or frames at most ``target_fps`` apart in pts.

    Of the kept frames, every ``detect_every``-th (starting with the first) is marked for
    detection; the tracker predicts the others. Decisions are made on pts alone, before
    any pixel conversion.

    Args:
        every: Keep frames whose index is a multiple of this.
        target_fps: Keep the first frame at or after each multiple of ``1 / target_fps``
            seconds from the first frame's pts (exact Fraction arithmetic).
        detect_every: Detection interval among kept frames.
    """

    def __init__(self, every: int = 1, target_fps: float | None = None, detect_every: int = 1) -> None:
        if every < 1 or detect_every < 1 or (target_fps is not None and target_fps <= 0):
            raise ValueError(
                f"Sampler: need every >= 1, detect_every >= 1, target_fps > 0; got "
                f"{every}, {detect_every}, {target_fps}"
            )
        self.every = every
        self.period = None if target_fps is None else 1 / Fraction(target_fps).limit_denominator(1001000)
        self.detect_every = detect_every
        self.kept = 0
        self._next: Fraction | None = None

    def keep(self, index: int, pts: Fraction) -> bool:
        """Whether decoded frame ``index`` with ``pts`` (seconds) is processed."""
        if self.period is None:
            ok = index % self.every == 0
        else:
            if self._next is None:
                self._next = pts
            ok = pts >= self._next
            if ok:
                # Advance past pts in whole periods so a gap in the stream is not replayed.
                steps = (pts - self._next) // self.period + 1
                self._next += steps * self.period
        if ok:
            self.kept += 1
        return ok

    def detect(self) -> bool:
        """Whether the frame just kept goes to the detector."""
        return (self.kept - 1) % self.detect_every == 0

    def output_fps(self, source_fps: Fraction) -> Fraction:
        """The rate of kept frames for a source of ``source_fps``."""
        if self.period is None:
            return Fraction(source_fps) / self.every
        return min(Fraction(source_fps), 1 / self.period)
