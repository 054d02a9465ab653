"""A request checked against the catalog: every field the model does not offer is refused, naming the field
as the caller spelled it, the value received and what is allowed; the defaults and output pixels are filled
in (``validate``). ``check_references`` counts reference images before any is fetched.
"""

from __future__ import annotations

from collections import Counter

from pixelgate.catalog import REFERENCE_KINDS, Catalog, ModelSpec
from pixelgate.core.errors import InvalidRequest, UnsupportedParameter, one_of
from pixelgate.core.request import MAX_IMAGES_PER_REQUEST, MAX_SEED, ImageRequest, Limits, ReferenceImage


def validate(request: ImageRequest, catalog: Catalog, limits: Limits) -> tuple[ImageRequest, ModelSpec]:
    """Check ``request`` against the model's capabilities; return it with defaults and pixels filled in.

    Raises :class:`InvalidRequest` naming the field, the value received and what is allowed.
    """
    spec = catalog.get(request.model, param=request.name("model"))
    _check_prompt(request, limits)
    _check_sampling(request)
    check_references(request, spec, [ref.kind for ref in request.references])
    _check_gemini_features(request, spec, catalog, limits)

    aspect = request.aspect_ratio
    followed = _followed_image(request)
    if aspect is None:
        # Seed 004: with no aspect ratio the output follows the input image, else it is square.
        aspect = (
            spec.nearest_aspect_ratio(followed.width, followed.height)
            if followed
            else spec.default_aspect_ratio
        )
        if aspect not in spec.aspect_ratios:
            aspect = spec.aspect_ratios[0]
    elif aspect not in spec.aspect_ratios:
        raise UnsupportedParameter(
            f"aspect ratio {aspect} is not offered by {spec.id}: use {one_of(spec.aspect_ratios)}",
            param=request.name("aspect_ratio"),
            code="invalid_aspect_ratio",
        )

    size = request.image_size
    if size is None:
        # A continued conversation keeps the size of the image it edits (the model's own output, so one of
        # the catalog's sizes); a caller's reference image lends only its shape, as before.
        carried = followed if not request.references else None
        size = (
            spec.nearest_image_size(aspect, carried.width, carried.height)
            if carried is not None
            else spec.default_image_size
        )
    if size not in spec.image_sizes:
        hint = " (uppercase K)" if any(s.endswith("K") for s in spec.image_sizes) else ""
        raise UnsupportedParameter(
            f"{request.name('image_size')} {size!r} is not valid for {spec.id}: "
            f"use {one_of(spec.image_sizes)}{hint}",
            param=request.name("image_size"),
            code="invalid_image_size",
        )

    if request.thinking_level is not None:
        if not spec.thinking_levels:
            why = "thinks on its own and takes no level" if spec.always_thinks else "does not think"
            raise UnsupportedParameter(
                f"{request.name('thinking_level')} {request.thinking_level!r} cannot be set for {spec.id}: "
                f"it {why}",
                param=request.name("thinking_level"),
                code="invalid_thinking_level",
            )
        if request.thinking_level not in spec.thinking_levels:
            raise UnsupportedParameter(
                f"{request.name('thinking_level')} {request.thinking_level!r} is not valid for {spec.id}: "
                f"use {one_of(spec.thinking_levels)}",
                param=request.name("thinking_level"),
                code="invalid_thinking_level",
            )

    width, height = spec.output_pixels(aspect, size)
    validated = request.model_copy(
        update={"aspect_ratio": aspect, "image_size": size, "width": width, "height": height}
    )
    return validated, spec


def _check_prompt(request: ImageRequest, limits: Limits) -> None:
    if not request.prompt.strip():
        raise InvalidRequest(
            f"{request.name('prompt')} is empty: describe the image to generate",
            param=request.name("prompt"),
            code="missing_prompt",
        )
    try:
        request.prompt.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidRequest(
            f"{request.name('prompt')} holds a lone UTF-16 surrogate at character {exc.start}: "
            "send valid Unicode text",
            param=request.name("prompt"),
            code="invalid_prompt",
        ) from None
    if len(request.prompt) > limits.max_prompt_chars:
        raise InvalidRequest(
            f"{request.name('prompt')} is {len(request.prompt):,} characters long: "
            f"at most {limits.max_prompt_chars:,} are allowed",
            param=request.name("prompt"),
            code="prompt_too_long",
        )


def _check_range(request: ImageRequest, field: str, value: float | None, low: float, high: float) -> None:
    if value is not None and not low <= value <= high:
        raise InvalidRequest(
            f"{request.name(field)} {value!r} is out of range: use a value from {_number(low)} to {_number(high)}",
            param=request.name(field),
            code=f"invalid_{field}",
        )


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _check_sampling(request: ImageRequest) -> None:
    _check_range(request, "n", request.n, 1, MAX_IMAGES_PER_REQUEST)
    _check_range(request, "temperature", request.temperature, 0, 2)
    _check_range(request, "top_p", request.top_p, 0, 1)
    _check_range(request, "seed", request.seed, 0, MAX_SEED)
    _check_range(request, "output_compression", request.output_compression, 0, 100)


def check_references(request: ImageRequest, spec: ModelSpec, kinds: list[str | None]) -> None:
    """Count and kinds of reference images against the model's limits (cheap: run it before fetching)."""
    if len(kinds) > spec.max_reference_images:
        raise InvalidRequest(
            f"{spec.id} accepts at most {spec.max_reference_images} reference images, got {len(kinds)}",
            param=request.name("references"),
            code="too_many_reference_images",
        )
    for kind, count in Counter(kind for kind in kinds if kind is not None).items():
        if kind not in REFERENCE_KINDS:
            raise InvalidRequest(
                f"reference image kind {kind!r} is not known: use {one_of(REFERENCE_KINDS)}",
                param=request.name("references"),
                code="invalid_reference_kind",
            )
        allowed = spec.reference_limits[kind]
        if count > allowed:
            raise InvalidRequest(
                f"{spec.id} accepts at most {allowed} {kind} reference images, got {count}",
                param=request.name("references"),
                code="too_many_reference_images",
            )


def _check_gemini_features(request: ImageRequest, spec: ModelSpec, catalog: Catalog, limits: Limits) -> None:
    """Multi-turn history, video input and search grounding, each only where the model offers it."""
    if request.history:
        if not spec.multi_turn:
            raise UnsupportedParameter(
                f"{spec.id} does not continue a conversation (no multi-turn editing): send one turn, or use "
                f"a model that does ({one_of(_models_with(catalog, 'multi_turn'))})",
                param=request.name("history"),
                code="multi_turn_not_supported",
            )
        if len(request.history) > limits.max_history_turns:
            raise InvalidRequest(
                f"the conversation holds {len(request.history)} earlier turns: at most "
                f"{limits.max_history_turns} are allowed; start a new conversation from the latest image",
                param=request.name("history"),
                code="history_too_long",
            )
    if request.videos and not spec.video_input:
        raise UnsupportedParameter(
            f"{spec.id} does not take video input: video is accepted only by "
            f"{one_of(_models_with(catalog, 'video_input'))}",
            param=request.name("videos"),
            code="video_not_supported",
        )
    if request.search_types is not None:
        if not spec.search_grounding:
            raise UnsupportedParameter(
                f"{spec.id} does not offer search grounding: remove the google_search tool",
                param=request.name("search_types"),
                code="search_not_supported",
            )
        for search_type in request.search_types:
            if search_type not in spec.search_grounding:
                raise UnsupportedParameter(
                    f"search type {search_type!r} is not offered by {spec.id}: use "
                    f"{one_of(spec.search_grounding)}",
                    param=request.name("search_types"),
                    code="invalid_search_type",
                )


def _models_with(catalog: Catalog, capability: str) -> list[str]:
    """The catalog's own models (not aliases) that have ``capability``, to point the caller elsewhere."""
    return [spec.id for spec in catalog if not spec.is_alias and getattr(spec, capability)]


def _followed_image(request: ImageRequest) -> ReferenceImage | None:
    """The image whose shape an output with no aspect ratio takes (seed 004: "the output matches the input
    image"): this turn's first reference, else the last image of the conversation it continues."""
    if request.references:
        return request.references[0]
    return next((turn.images[-1] for turn in reversed(request.history) if turn.images), None)
