"""The emulator's injected faults: a plan such as ``429:0.1,503:0.05,timeout:0.01`` (the probability of each
kind), checked where it is given (``--emulate-faults``, a channel's ``options.faults``) and drawn from for
each image (``providers/emulator.py``).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Annotated

from pydantic import AfterValidator

from pixelgate.core.errors import one_of

FAULT_KINDS = ("429", "500", "502", "503", "timeout")


@dataclass(frozen=True)
class FaultPlan:
    """Probabilities of injected faults, e.g. ``429:0.1,503:0.05,timeout:0.01``."""

    rates: tuple[tuple[str, float], ...] = ()

    @classmethod
    def parse(cls, text: str) -> FaultPlan:
        rates = []
        for part in filter(None, (p.strip() for p in text.split(","))):
            kind, _, rate_text = part.partition(":")
            if kind not in FAULT_KINDS:
                raise ValueError(f"fault {kind!r} in {text!r} is not known: use {one_of(FAULT_KINDS)}")
            try:
                rate = float(rate_text)
            except ValueError:
                raise ValueError(
                    f"fault rate {rate_text!r} in {text!r} is not a number from 0 to 1"
                ) from None
            if not 0 <= rate <= 1:
                raise ValueError(f"fault rate {rate} in {text!r} is out of range: use 0 to 1")
            rates.append((kind, rate))
        if math.fsum(rate for _, rate in rates) > 1 + 1e-9:
            raise ValueError(f"fault rates in {text!r} add up to more than 1")
        return cls(tuple(rates))

    def pick(self, rng: random.Random) -> str | None:
        draw = rng.random()
        for kind, rate in self.rates:
            if draw < rate:
                return kind
            draw -= rate
        return None


def _parses(faults: str) -> str:
    FaultPlan.parse(faults)
    return faults


# A fault plan as text (``429:0.1,503:0.05``), refused at load if it does not parse.
FaultSpec = Annotated[str, AfterValidator(_parses)]
