"""The model catalog: what every model offers, loaded from ``models.toml`` (data, not code); a request is
checked against it in ``validation.py``.

>>> spec = default_catalog().get("gemini-3.1-flash-image")
>>> spec.output_pixels("21:9", "2K")
(3168, 1344)
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cache
from importlib import resources
from typing import Any

from pixelgate.catalog.prices import PER_MILLION, ModelPrice, Prices, TokenRates, usd
from pixelgate.core.errors import InvalidRequest, NotFound, one_of

__all__ = ["Catalog", "ModelPrice", "ModelSpec", "Prices", "TokenRates", "default_catalog", "load_catalog"]

REFERENCE_KINDS = ("object", "character", "style")


@dataclass(frozen=True)
class ModelSpec:
    id: str
    name: str
    upstream_id: str
    owned_by: str
    image_sizes: tuple[str, ...]
    default_image_size: str
    aspect_ratios: tuple[str, ...]
    pixels: dict[tuple[str, str], tuple[int, int]] = field(repr=False)
    tokens_per_image: dict[str, int] = field(repr=False)
    max_reference_images: int
    reference_limits: dict[str, int]
    thinking_levels: tuple[str, ...] = ()
    default_thinking_level: str | None = None
    always_thinks: bool = False
    search_grounding: tuple[str, ...] = ()
    video_input: bool = False
    interleaved_text: bool = False
    multi_turn: bool = True
    # The vendor's published prices (catalog/prices.py); an alias shares its model's.
    price: ModelPrice | None = field(default=None, repr=False)
    source: str = "seed 004"
    default_aspect_ratio: str = "1:1"
    # An operator's alias (``[aliases]`` in pixelgate.toml): the catalog model it stands for. Upstreams and
    # channels know that model, not the operator's name, so a channel serves the alias where it serves the
    # model, and sends the model's name.
    stands_for: str | None = None

    @property
    def model_name(self) -> str:
        """The catalog model's own id: the model an operator's alias stands for, else this one."""
        return self.stands_for or self.id

    @property
    def is_alias(self) -> bool:
        return self.upstream_id != self.id

    def output_pixels(self, aspect_ratio: str, image_size: str) -> tuple[int, int]:
        return self.pixels[(aspect_ratio, image_size)]

    def tokens_for(self, image_size: str) -> int:
        return self.tokens_per_image[image_size]

    def image_price(self, image_size: str | None = None, *, batch: bool = False) -> float | None:
        """The vendor's price of one output image of ``image_size`` (default: the model's default size):
        its output image tokens at the image-output rate, its input and thinking aside (None: no price)."""
        if self.price is None:
            return None
        tokens = self.tokens_for(image_size or self.default_image_size)
        return usd(tokens * self.price.rates(batch=batch).output_image / PER_MILLION)

    @property
    def price_per_image(self) -> float | None:
        """The price of an image of the default size (see ``image_price``)."""
        return self.image_price()

    def nearest_aspect_ratio(self, width: int, height: int) -> str:
        """The offered aspect ratio closest to ``width:height`` (compared on a log scale, so 2:1 and 1:2
        are equally far from 1:1)."""
        target = math.log(width / height)
        return min(self.aspect_ratios, key=lambda a: abs(_log_ratio(a) - target))

    def nearest_image_size(self, aspect_ratio: str, width: int, height: int) -> str:
        """The offered size whose output for ``aspect_ratio`` is closest in area to ``width x height``."""
        target = math.log(width * height)

        def distance(size: str) -> float:
            w, h = self.output_pixels(aspect_ratio, size)
            return abs(math.log(w * h) - target)

        return min(self.image_sizes, key=distance)

    def describe(self) -> dict[str, Any]:
        """The capabilities as JSON, for ``GET /v1/models`` and the CLI."""
        return {
            "name": self.name,
            "upstream_model": self.upstream_id,
            "image_sizes": list(self.image_sizes),
            "default_image_size": self.default_image_size,
            "aspect_ratios": list(self.aspect_ratios),
            "output_pixels": {
                aspect: {size: "{}x{}".format(*self.output_pixels(aspect, size)) for size in self.image_sizes}
                for aspect in self.aspect_ratios
            },
            "tokens_per_image": {size: self.tokens_for(size) for size in self.image_sizes},
            "max_reference_images": self.max_reference_images,
            "reference_limits": dict(self.reference_limits),
            "thinking_levels": list(self.thinking_levels),
            "default_thinking_level": self.default_thinking_level,
            "always_thinks": self.always_thinks,
            "search_grounding": list(self.search_grounding),
            "video_input": self.video_input,
            "interleaved_text": self.interleaved_text,
            "multi_turn": self.multi_turn,
            "price_per_image_usd": self.price_per_image,
            "pricing": self._describe_price(),
            "source": self.source,
        }

    def _describe_price(self) -> dict[str, Any] | None:
        """The published prices: per image of each size (input and thinking aside), per million tokens,
        standard and batch, and where and when they were read."""
        if self.price is None:
            return None
        return {
            "billed_by": "tokens",
            "per_image_usd": {size: self.image_price(size) for size in self.image_sizes},
            "batch_per_image_usd": {size: self.image_price(size, batch=True) for size in self.image_sizes},
            "usd_per_million_tokens": self.price.standard.describe(),
            "batch_usd_per_million_tokens": self.price.batch.describe(),
            "source": self.price.source,
            "date": self.price.date,
        }


def _log_ratio(aspect_ratio: str) -> float:
    w, h = aspect_ratio.split(":")
    return math.log(int(w) / int(h))


class Catalog:
    def __init__(self, models: list[ModelSpec]) -> None:
        self._models = {m.id: m for m in models}

    def __iter__(self) -> Any:
        return iter(self._models.values())

    def __len__(self) -> int:
        return len(self._models)

    def __contains__(self, model_id: object) -> bool:
        return model_id in self._models

    @property
    def ids(self) -> list[str]:
        return list(self._models)

    def get(self, model_id: str, *, param: str = "model") -> ModelSpec:
        try:
            return self._models[model_id]
        except KeyError:
            raise InvalidRequest(
                f"model {model_id!r} is not in the catalog: use {one_of(self.ids)} (the gateway's operator "
                "can map other names to these with [aliases] in pixelgate.toml)",
                param=param,
                code="model_not_found",
            ) from None

    def with_aliases(self, aliases: Mapping[str, str]) -> Catalog:
        """This catalog and an operator's aliases (alias -> catalog model id): each alias is its model under
        another name, with the same sizes, pixels and price. The caller checked the names (config.py)."""
        named = [
            replace(self._models[target], id=alias, name=f"{alias} (an alias of {target})", stands_for=target)
            for alias, target in aliases.items()
        ]
        return Catalog([*self._models.values(), *named]) if named else self

    def named_by_url(self, model_id: str) -> ModelSpec:
        """``get`` for a URL that names the model as its resource: an unknown one is a 404 there, with
        the same message (in a request body it is a 400)."""
        try:
            return self.get(model_id)
        except InvalidRequest as exc:
            raise NotFound(exc.message, param=exc.param, code=exc.code) from None


def _parse_pixels(text: str) -> tuple[int, int]:
    w, h = text.lower().replace(" ", "").split("x")
    return int(w), int(h)


def load_catalog(data: dict[str, Any]) -> Catalog:
    grids = data["grids"]
    raw_models: dict[str, dict[str, Any]] = {}
    for entry in data["models"]:
        base = raw_models[entry["alias_of"]] if "alias_of" in entry else {}
        merged = {**base, **entry}
        merged["upstream_id"] = base.get("upstream_id", merged["id"]) if base else merged["id"]
        raw_models[entry["id"]] = merged

    models = []
    for raw in raw_models.values():
        grid = grids[raw["grid"]]
        column = {size: i for i, size in enumerate(grid["sizes"])}
        pixels = {
            (aspect, size): _parse_pixels(grid["pixels"][aspect][column[size]])
            for aspect in raw["aspect_ratios"]
            for size in raw["image_sizes"]
        }
        limits = {kind: int(raw.get("reference_limits", {}).get(kind, 0)) for kind in REFERENCE_KINDS}
        models.append(
            ModelSpec(
                id=raw["id"],
                name=raw["name"],
                upstream_id=raw["upstream_id"],
                owned_by=raw.get("owned_by", "google"),
                image_sizes=tuple(raw["image_sizes"]),
                default_image_size=raw["default_image_size"],
                aspect_ratios=tuple(raw["aspect_ratios"]),
                pixels=pixels,
                tokens_per_image={size: grid["tokens"][column[size]] for size in raw["image_sizes"]},
                max_reference_images=int(raw["max_reference_images"]),
                reference_limits=limits,
                thinking_levels=tuple(raw.get("thinking_levels", ())),
                default_thinking_level=raw.get("default_thinking_level"),
                always_thinks=bool(raw.get("always_thinks", False)),
                search_grounding=tuple(raw.get("search_grounding", ())),
                video_input=bool(raw.get("video_input", False)),
                interleaved_text=bool(raw.get("interleaved_text", False)),
                multi_turn=bool(raw.get("multi_turn", True)),
                price=ModelPrice.from_record(raw),
                source=raw.get("source", "seed 004"),
            )
        )
    return Catalog(models)


@cache
def default_catalog() -> Catalog:
    text = resources.files(__package__).joinpath("models.toml").read_text(encoding="utf-8")
    return load_catalog(tomllib.loads(text))
