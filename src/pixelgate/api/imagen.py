"""``POST /{v1beta,v1}/models/{model}:predict``: the Imagen-style call that the Vercel AI SDK's Google provider
and Open WebUI's Gemini engine send, served by any catalog model.

Request: ``instances`` (a list of one ``{"prompt"}``, or that object alone, as Open WebUI sends it) and
``parameters``: ``sampleCount`` (1 to 4), ``aspectRatio``, ``imageSize`` (or ``sampleImageSize``), ``seed``,
``outputOptions`` (``mimeType``, ``compressionQuality``). Imagen's safety and watermark settings
(``personGeneration``, ``safetySetting``, ``addWatermark``, …) are accepted and have no effect here. The
answer is ``{"predictions": [{"bytesBase64Encoded", "mimeType"}, …]}``, one per image.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from pixelgate.api.deps import ImageLinks
from pixelgate.api.parsing import parse_model, read_json_object
from pixelgate.api.responses import ImageJSONResponse
from pixelgate.auth.keys import Caller
from pixelgate.core.errors import InvalidRequest, one_of
from pixelgate.core.request import ImageRequest, OutputFormat
from pixelgate.tasks.service import TaskService

MAX_SAMPLES = 4  # Imagen's most per call
MIME_FORMATS: dict[str, OutputFormat] = {"image/png": "png", "image/jpeg": "jpeg", "image/webp": "webp"}


class OutputOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")

    mimeType: str | None = None
    compressionQuality: int | None = Field(None, ge=0, le=100)


class Parameters(BaseModel):
    model_config = ConfigDict(extra="ignore")  # personGeneration, safetySetting, addWatermark, language, …

    sampleCount: int = Field(1, ge=1, le=MAX_SAMPLES)
    aspectRatio: str | None = None
    imageSize: str | None = None
    sampleImageSize: str | None = None
    seed: int | None = None
    outputOptions: OutputOptions = Field(default_factory=OutputOptions)


class Instance(BaseModel):
    model_config = ConfigDict(extra="ignore")

    prompt: str


class PredictBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    instances: list[Instance] | Instance
    parameters: Parameters = Field(default_factory=Parameters)


def to_image_request(model: str, body: PredictBody) -> ImageRequest:
    instances = body.instances if isinstance(body.instances, list) else [body.instances]
    if len(instances) != 1:
        raise InvalidRequest(
            f"instances holds {len(instances)} prompts: send one instance per call (sampleCount asks for "
            "more images of it)",
            param="instances",
        )
    parameters = body.parameters
    mime_type = parameters.outputOptions.mimeType or "image/png"
    if mime_type not in MIME_FORMATS:
        raise InvalidRequest(
            f"parameters.outputOptions.mimeType {mime_type!r} is not valid: use {one_of(list(MIME_FORMATS))}",
            param="parameters.outputOptions.mimeType",
        )
    return ImageRequest(
        model=model,
        prompt=instances[0].prompt,
        n=parameters.sampleCount,
        aspect_ratio=parameters.aspectRatio,
        image_size=parameters.imageSize or parameters.sampleImageSize,
        seed=parameters.seed,
        output_format=MIME_FORMATS[mime_type],
        output_compression=parameters.outputOptions.compressionQuality,
        wire_names={
            "prompt": "instances[0].prompt",
            "n": "parameters.sampleCount",
            "aspect_ratio": "parameters.aspectRatio",
            "image_size": "parameters.imageSize",
            "seed": "parameters.seed",
            "model": "model",
        },
    )


async def predict(
    model: str, request: Request, service: TaskService, links: ImageLinks, caller: Caller
) -> Response:
    service.catalog.named_by_url(model)
    body = parse_model(PredictBody, await read_json_object(request))
    task = await service.submit(
        to_image_request(model, body),
        dialect="gemini",
        caller_waits=True,
        caller=caller,
        idempotency_key=request.headers.get("idempotency-key"),
    )
    done = await service.wait_for_result(task.id)
    assert done.result is not None
    predictions: list[dict[str, Any]] = [
        {"bytesBase64Encoded": await links.image_base64(image), "mimeType": image.mime_type}
        for image in done.result.images
    ]
    return ImageJSONResponse({"predictions": predictions})
