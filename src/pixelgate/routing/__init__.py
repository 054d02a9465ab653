"""Channels and the router that takes each image through them.

``channel.py`` is one upstream with its concurrency slots; ``breaker.py`` its circuit breaker and figures;
``router.py`` chooses, retries, fails over and fails fast; ``controls.py`` is the admin's disable, enable and
reset, shared through the database; ``build.py`` makes the channels of the channel file.
"""

from pixelgate.routing.breaker import Breaker, State
from pixelgate.routing.build import build_provider, build_router, check_channels, provider_options
from pixelgate.routing.channel import Channel, Disabled
from pixelgate.routing.controls import ChannelControls
from pixelgate.routing.router import Router

__all__ = [
    "Breaker",
    "Channel",
    "ChannelControls",
    "Disabled",
    "Router",
    "State",
    "build_provider",
    "build_router",
    "check_channels",
    "provider_options",
]
