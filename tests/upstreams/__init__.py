"""Small real HTTP servers that speak the upstream vendors' wire formats, for pixelgate's tests.

Each simulator serves on ``127.0.0.1`` and a free port from a background thread, records every request it
receives (:attr:`Simulator.requests`), and misbehaves on demand (:meth:`Simulator.fail_next`)::

    with GeminiSimulator(api_key="k") as sim:
        sim.fail_next("429", retry_after=1)
        ...  # point pixelgate at sim.url
        assert len(sim.calls(":generateContent")) == 2
"""

from .base import Call, Rejected, Simulator
from .faults import FAULT_KINDS, Fault
from .gemini import GeminiSimulator
from .images import png
from .openai import OpenAISimulator
from .recording import Recorded
from .tasks import TaskGatewaySimulator

__all__ = [
    "FAULT_KINDS",
    "Call",
    "Fault",
    "GeminiSimulator",
    "OpenAISimulator",
    "Recorded",
    "Rejected",
    "Simulator",
    "TaskGatewaySimulator",
    "png",
]
