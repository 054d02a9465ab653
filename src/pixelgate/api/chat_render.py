"""A chat completion's images and usage, as OpenRouter and LiteLLM shape them: shared by the answer
(``chat.py``) and the stream (``chat_stream.py``)."""

from __future__ import annotations

from typing import Any

from pixelgate.api.deps import ImageLinks
from pixelgate.core.task import Task, Usage


def usage_of(usage: Usage) -> dict[str, Any]:
    """Chat's ``usage``, with the image tokens split out as OpenRouter and LiteLLM report them."""
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens + usage.thought_tokens,  # chat counts reasoning as output
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "image_tokens": usage.input_image_tokens},
        "completion_tokens_details": {
            "reasoning_tokens": usage.thought_tokens,
            "image_tokens": usage.output_image_tokens,
        },
        "cost": usage.cost_usd,
    }


async def choices_of(links: ImageLinks, task: Task) -> list[dict[str, Any]]:
    """The answer's messages: one per image when ``n`` asked for several, else one with all the images."""
    result = task.result
    assert result is not None
    groups = [[image] for image in result.images] if task.request.n > 1 else [list(result.images)]
    reasoning = "\n\n".join(thought.text for thought in result.thoughts if thought.text)
    choices = []
    for index, images in enumerate(groups):
        text = (images[0].text if task.request.n > 1 and images else result.text) or ""
        message: dict[str, Any] = {
            "role": "assistant",
            "content": text,
            "images": [
                {"type": "image_url", "image_url": {"url": await links.image_data_uri(image)}, "index": i}
                for i, image in enumerate(images)
            ],
        }
        if reasoning:
            message["reasoning"] = reasoning
        choices.append({"index": index, "message": message, "finish_reason": "stop", "logprobs": None})
    return choices
