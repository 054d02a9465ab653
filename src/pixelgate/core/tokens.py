"""Token counts that are known before a model answers: Gemini's rules for a prompt's text and an input
image, and the output image tokens the catalog gives per size. The emulator reports these as what it made,
an upstream that reports no usage is counted by them, and a task's cost is estimated from them when it is
accepted (``catalog/prices.py``), so that all three agree.

>>> usage = known_usage(ImageRequest(model="m", prompt="a lighthouse at dusk"), output_image_tokens=2000)
>>> usage.input_text_tokens, usage.output_image_tokens
(5, 2000)
"""

from __future__ import annotations

from pixelgate.core.request import ImageRequest
from pixelgate.core.task import Usage


def estimate_text_tokens(text: str) -> int:
    # About four bytes of UTF-8 per token: the usual rule of thumb for Gemini's tokenizer.
    return max(1, (len(text.encode()) + 3) // 4)


def image_input_tokens(width: int, height: int) -> int:
    """Gemini's count for an input image: 258 tokens if both sides are at most 384 px, else 258 per
    768x768 tile."""
    if width <= 384 and height <= 384:
        return 258
    return 258 * (-(-width // 768)) * (-(-height // 768))


def known_usage(request: ImageRequest, *, output_image_tokens: int, images: int = 1) -> Usage:
    """What one generation of ``request`` is billed for besides what the model decides as it answers
    (its text and its thoughts): the prompt and the conversation's text, every input image by its tiles
    (the references and the history's images, sent again with each generation), and ``images`` output
    images of ``output_image_tokens`` each."""
    history_images = [image for turn in request.history for image in turn.images]
    return Usage(
        input_text_tokens=estimate_text_tokens(
            " ".join([request.prompt, *(t.text for t in request.history)])
        ),
        input_image_tokens=sum(
            image_input_tokens(r.width, r.height) for r in [*request.references, *history_images]
        ),
        output_image_tokens=output_image_tokens * images,
        images=images,
    )
