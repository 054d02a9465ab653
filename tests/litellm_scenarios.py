"""LiteLLM as a client library against a pixelgate server. It runs with the Python of LiteLLM's own virtual
environment (``tests/litellm_clients.py`` makes it and runs this), never pixelgate's:

    python litellm_scenarios.py SERVER_URL SCENARIO...

and prints one JSON object: for each scenario, what it saw, or ``{"error": {...}}`` when LiteLLM raised.

- ``image_openai``: ``litellm.image_generation(model="openai/<model>", api_base=<server>/v1)``, LiteLLM's
  OpenAI provider (the OpenAI SDK underneath), POST /v1/images/generations; no ``response_format``, so the
  answer carries a URL, which is downloaded.
- ``image_gemini``: ``model="gemini/<model>"`` with ``api_base=<server>/v1beta``: LiteLLM's Google AI Studio
  image config, which takes a custom base (``api_base``, else ``GEMINI_API_BASE``) and posts a model whose
  name holds "gemini" to ``{api_base}/models/{model}:generateContent`` (others to ``:predict``), with
  ``size`` mapped to ``imageConfig`` (aspect ratio and, for models that take it, image size); the images
  come back as ``b64_json``.
- ``chat``: ``litellm.completion(model="openai/<model>", modalities=["image", "text"])``, POST
  /v1/chat/completions; LiteLLM keeps ``choices[0].message.images`` (``[{"type": "image_url", "image_url":
  {"url": "data:..."}}]``, with an ``index`` it adds) on its Message.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import struct
import sys
from pathlib import Path
from typing import Any

# Offline: LiteLLM would otherwise fetch its price map at import, and tiktoken its encodings on first use.
_spec = importlib.util.find_spec("litellm")
assert _spec is not None and _spec.origin is not None, "run this with LiteLLM's venv"
os.environ.pop("CUSTOM_TIKTOKEN_CACHE_DIR", None)  # LiteLLM prefers it to its bundled tokenizers
os.environ["TIKTOKEN_CACHE_DIR"] = str(Path(_spec.origin).parent / "litellm_core_utils" / "tokenizers")
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"

import httpx  # noqa: E402  (LiteLLM's dependency)
import litellm  # noqa: E402

MODEL = "gemini-3.1-flash-image"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def pixels(data: bytes) -> list[int]:
    """The width and height a PNG declares in its IHDR chunk."""
    if data[:8] != PNG_SIGNATURE or data[12:16] != b"IHDR":
        raise ValueError(f"not a PNG ({len(data)} bytes, starting {data[:8]!r})")
    return list(struct.unpack(">II", data[16:24]))


def describe_images(data: list[Any] | None) -> list[dict[str, Any]]:
    return [
        {
            "url": item.url is not None,
            "b64_json": item.b64_json is not None,
            "url_pixels": pixels(httpx.get(item.url, timeout=60).content) if item.url else None,
            "b64_pixels": pixels(base64.b64decode(item.b64_json)) if item.b64_json else None,
        }
        for item in data or []
    ]


def image_openai(server: str) -> dict[str, Any]:
    response = litellm.image_generation(
        model=f"openai/{MODEL}",
        prompt="a cozy coffee shop",
        size="1536x1024",
        api_base=f"{server}/v1",
        api_key="unused",
    )
    return {"images": describe_images(response.data)}


def image_gemini(server: str) -> dict[str, Any]:
    response = litellm.image_generation(
        model=f"gemini/{MODEL}",
        prompt="a cozy coffee shop",
        size="1536x1024",
        api_base=f"{server}/v1beta",
        api_key="unused",
    )
    return {"images": describe_images(response.data)}


def chat(server: str) -> dict[str, Any]:
    response = litellm.completion(
        model=f"openai/{MODEL}",
        messages=[{"role": "user", "content": "a watercolor fox, and say what you drew"}],
        modalities=["image", "text"],
        api_base=f"{server}/v1",
        api_key="unused",
    )
    message = response.choices[0].message
    images = []
    for image in getattr(message, "images", None) or []:
        url = image["image_url"]["url"]
        header, _, data = url.partition(",")
        images.append(
            {
                "type": image["type"],
                "data_url": header,  # e.g. data:image/png;base64
                "pixels": pixels(base64.b64decode(data)) if header.endswith(";base64") else None,
            }
        )
    return {"content": message.content, "images": images}


SCENARIOS = {"image_openai": image_openai, "image_gemini": image_gemini, "chat": chat}


def main(server: str, names: list[str]) -> int:
    results: dict[str, Any] = {}
    for name in names:
        try:
            results[name] = SCENARIOS[name](server.rstrip("/"))
        except Exception as error:
            results[name] = {
                "error": {
                    "name": type(error).__name__,
                    "message": str(error),
                    "statusCode": getattr(error, "status_code", None),
                }
            }
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
