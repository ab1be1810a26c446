"""The grid arithmetic behind chunk seams (pipeline/piece_grid.py): every slot of every rung's
rate is kept by exactly one piece, wherever the cuts fall. FFmpeg's side (fps filter, trim) is
modelled here as it behaves: slots at k/rate of the shifted piece, from its first picture's."""

from __future__ import annotations

import math
import random
from fractions import Fraction

import pytest

from coursecrafter_worker.pipeline.piece_grid import PieceWindow, common_period, grid_plan

RATE_SETS = [
    [Fraction(10)],
    [Fraction(30)],
    [Fraction(60), Fraction(30)],  # a 60 fps source: 1080/720 at 60, 480/360 at 30
    [Fraction(10000, 1001)],
    [Fraction(25, 2)],
]


def test_the_common_period_is_whole_frames_at_every_rate():
    assert common_period([Fraction(10)]) == Fraction(1, 10)
    assert common_period([Fraction(60), Fraction(30)]) == Fraction(1, 30)
    assert common_period([Fraction(25, 2)]) == Fraction(2, 25)
    assert common_period([Fraction(30000, 1001), Fraction(15000, 1001)]) == Fraction(1001, 15000)


def kept_slots(starts: list[float], end: float, rate: Fraction, rates: list[Fraction]) -> list[int]:
    """The global slots each piece keeps at `rate`, in piece order."""
    kept: list[int] = []
    for j, start in enumerate(starts):
        nxt = starts[j + 1] if j + 1 < len(starts) else None
        plan = grid_plan(PieceWindow(start, nxt, first=j == 0), rates)
        period = common_period(rates)
        assert 0 <= plan.shift < float(period) + 1e-9
        assert abs(plan.origin * rate - round(plan.origin * rate)) < 1e-6  # on every grid
        length = (nxt if nxt is not None else end) - start + plan.pad
        first = round(plan.shift * rate)  # the fps filter's first slot
        last = math.floor((plan.shift + length) * rate)
        begin, stop = plan.trim(rate)
        local = [k for k in range(first, last + 1)
                 if (begin is None or k / rate >= begin) and (stop is None or k / rate < stop)]
        kept += [k + round(plan.origin * rate) for k in local]
    return kept


@pytest.mark.parametrize("rates", RATE_SETS, ids=lambda r: "+".join(str(x) for x in r))
def test_every_slot_is_kept_by_exactly_one_piece(rates):
    chooser = random.Random(7)
    for _ in range(60):
        frame = Fraction(1, chooser.choice([24, 25, 30, 50, 60]))
        starts = sorted({round(float(frame * chooser.randrange(1, 3000)), 6)
                         for _ in range(chooser.randrange(1, 6))})
        starts = [0.0] + starts
        for rate in rates:
            kept = kept_slots(starts, starts[-1] + 5.0, rate, rates)
            assert kept == list(range(kept[0], kept[0] + len(kept))), (rates, starts)
            # Each later piece begins at the first slot at or after its first picture.
            for start in starts[1:]:
                assert math.ceil((start - 1e-3) * rate) in kept
