"""Where a chunk's frames go: every piece of a chunked source on ONE frame grid.

A rung's `fps` filter puts frames on a grid of 1/rate steps counted from the first frame it
sees. A piece cut at a source keyframe starts wherever that keyframe is (4.133 s in a 30 fps
source with a 31-frame GOP), so a piece transcoded on its own would put its frames on a grid of
its own: at each seam a step shorter than a frame, and a grid slot filled by both pieces or by
neither (measured before this module: 3 extra frames and 13 irregular steps over 15 seams).

So each piece is transcoded on the source's grid (slots at k/rate seconds of the source's
timeline) and keeps exactly its share of it:

- the piece's pictures are moved forward by `shift` (< one period) so its grid lines up with the
  source's; the output is moved back onto the source's timeline by `origin` (`ts_offset`);
- slot k belongs to the first piece that starts at or before k/rate (up to 1 ms, a float's
  worth): piece j keeps slots [first_slot(start_j), first_slot(start_j+1)); a piece is padded by
  its last picture for a period so the fps filter fills its last slot before the next piece's.

`period` is the smallest time that is a whole number of frames at every rung's rate (0.1 s for a
still ladder at 10 fps, 1/30 s for rungs at 60 and 30 fps), so one shift serves every rung.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

#: A start this close below a slot counts as on it (probe prints timestamps to a microsecond).
ON_SLOT = 1e-3


@dataclass(frozen=True)
class PieceWindow:
    """A picture piece's place in its source: `start` (source seconds of its first picture),
    `end` (where the next piece starts; None for the last piece) and whether it is the first
    (which keeps whatever comes before its first full slot, as the whole ladder would)."""

    start: float
    end: float | None
    first: bool


def common_period(rates: list[Fraction]) -> Fraction:
    """The smallest time that is a whole number of frames at every one of `rates`."""
    nums = [r.numerator for r in rates]
    dens = [r.denominator for r in rates]
    # k / r is whole for r = n/d  <=>  k*n/d whole for all: period = lcm(d) / gcd(n)
    # (rate n/d has frames every d/n s; the common multiple of d_i/n_i).
    lcm_d = math.lcm(*dens)
    gcd_n = math.gcd(*nums)
    return Fraction(lcm_d, gcd_n)


def first_slot(t: float, rate: Fraction) -> int:
    """The first grid slot at or after `t` seconds (slot k is at k/rate)."""
    return math.ceil((Fraction(t) - Fraction(ON_SLOT)) * rate)


@dataclass(frozen=True)
class GridPlan:
    """How to put one piece on the source's grid (see the module doc)."""

    shift: float  # seconds added to the piece's own timestamps before the fps filter
    origin: float  # source seconds of the piece's (shifted) zero: its `ts_offset` before padding
    pad: float  # seconds of the last picture repeated at the end (0: last piece)
    window: PieceWindow

    def trim(self, rate: Fraction) -> tuple[float | None, float | None]:
        """(start, end) in the piece's shifted seconds of the slots this piece keeps at `rate`,
        half a frame off the slots (the fps filter's output is exactly on them); None: open."""
        begin = None
        if not self.window.first:
            begin = float((first_slot(self.window.start, rate) - Fraction(1, 2)) / rate) \
                - self.origin
            begin = begin if begin > 0 else None
        end = None
        if self.window.end is not None:
            end = float((first_slot(self.window.end, rate) - Fraction(1, 2)) / rate) \
                - self.origin
        return begin, end


def grid_plan(window: PieceWindow, rates: list[Fraction]) -> GridPlan:
    period = common_period(rates)
    periods = math.floor((Fraction(window.start) + Fraction(ON_SLOT)) / period)
    origin = float(periods * period)
    shift = max(0.0, window.start - origin)
    pad = 0.0 if window.end is None else float(2 / min(rates))
    return GridPlan(shift=shift, origin=origin, pad=pad, window=window)


__all__ = ["GridPlan", "PieceWindow", "common_period", "first_slot", "grid_plan"]
