"""What a task costs: the vendor's published prices (data in ``models.toml``, each model with the page they
were read from and when), unless the operator set a flat price per image (``[prices]``, ``[batch_prices]``
in pixelgate.toml).

Google bills its Gemini image models by tokens, in USD per million: input tokens (text and images) at the
input rate, output image tokens at the image-output rate, output text and thought tokens at the text-output
rate; a batch line at the batch rates (half of each). An image's price is therefore its size's output image
tokens (the catalog's ``tokens_per_image``) at the image-output rate: on gemini-3-pro-image a 1K image is
1120 x $120/M = $0.1344 and a 4K one 2000 x $120/M = $0.24. A task is billed for what its generations
reported (summed over ``n``), and only when it succeeded: a failed task releases its reservation at no
cost (``auth/ledger.py``).

When a task is accepted its cost is reserved against the key's budget: the same prices applied to what is
known before the model answers (``core/tokens.py``: the prompt, the input images, the output image tokens of
the size asked for). For a plain generation (a prompt, an image, no text answer, no thinking) that is
exactly what it is billed; a model's text answer and its thoughts are added when it reports them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pixelgate.core.request import ImageRequest
from pixelgate.core.task import Usage
from pixelgate.core.tokens import known_usage

if TYPE_CHECKING:
    from pixelgate.catalog import ModelSpec

PER_MILLION = 1_000_000
# Nano-dollars: a whole number of tokens at any published rate (cents with one more digit, per million) is
# exact at this precision, so that sums of tasks, and an estimate against its final cost, compare exactly.
USD_DIGITS = 9


def usd(amount: float) -> float:
    return round(amount, USD_DIGITS)


def usd_text(amount: float) -> str:
    """An amount as it was billed, to the nano-dollar, with at least four decimals: "0.2400", "0.04482",
    "0.24000125"."""
    whole = f"{usd(amount):.{USD_DIGITS}f}"
    return whole[: max(len(whole.rstrip("0")), whole.index(".") + 5)]


@dataclass(frozen=True)
class TokenRates:
    """USD per million tokens, as the vendor publishes them."""

    input: float  # text and image input
    output_text: float  # text and thinking output
    output_image: float  # image output

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> TokenRates:
        return cls(
            input=float(record["input"]),
            output_text=float(record["output_text"]),
            output_image=float(record["output_image"]),
        )

    def cost(self, usage: Usage) -> float:
        """What the vendor bills for ``usage``."""
        per_million = (
            usage.input_tokens * self.input
            + (usage.output_text_tokens + usage.thought_tokens) * self.output_text
            + usage.output_image_tokens * self.output_image
        )
        return usd(per_million / PER_MILLION)

    def describe(self) -> dict[str, float]:
        return {"input": self.input, "output_text": self.output_text, "output_image": self.output_image}


@dataclass(frozen=True)
class ModelPrice:
    """A model's published token prices, the page they are the vendor's (``source``), when they were read
    (``date``, YYYY-MM-DD) and the stored copies they were read in (``seen_on``)."""

    standard: TokenRates
    batch: TokenRates
    source: str
    date: str
    seen_on: tuple[str, ...] = ()

    @classmethod
    def from_record(cls, raw: Mapping[str, Any]) -> ModelPrice | None:
        """From a ``[[models]]`` entry of models.toml, if it has a price."""
        if "price" not in raw:
            return None
        return cls(
            standard=TokenRates.from_record(raw["price"]),
            batch=TokenRates.from_record(raw["batch_price"]),
            source=raw["price_source"],
            date=raw["price_date"],
            seen_on=tuple(raw.get("price_seen_on", ())),
        )

    def rates(self, *, batch: bool = False) -> TokenRates:
        return self.batch if batch else self.standard


@dataclass(frozen=True)
class Prices:
    """The catalog's prices, with the channel file's flat prices per image over them: ``[prices]`` for every
    task of a model, ``[batch_prices]`` for its batch lines. An override of a model also prices its aliases
    (they are the same model upstream), unless an alias has an override of its own."""

    overrides: dict[str, float] = field(default_factory=dict)
    # The channel file's ``[batch_prices]``: what a batch line's image costs, where it differs.
    batch: dict[str, float] = field(default_factory=dict)

    def flat_price(self, spec: ModelSpec, *, batch: bool = False) -> float | None:
        """The operator's price per image for ``spec`` (None: the catalog's token prices apply)."""
        names = (spec.id, spec.model_name, spec.upstream_id)  # the most particular first
        if batch and (found := _first(self.batch, names)) is not None:
            return found
        return _first(self.overrides, names)

    def price_of(
        self, spec: ModelSpec, *, batch: bool = False, image_size: str | None = None
    ) -> float | None:
        """USD per output image of ``image_size`` (default: the model's default size), its input and
        thinking aside (None: the model has no price)."""
        flat = self.flat_price(spec, batch=batch)
        return flat if flat is not None else spec.image_price(image_size, batch=batch)

    def cost(self, spec: ModelSpec, usage: Usage, images: int, *, batch: bool = False) -> float | None:
        """What a task that made ``images`` images and reported ``usage`` (summed over its generations)
        is billed, in USD (None: the model has no price)."""
        flat = self.flat_price(spec, batch=batch)
        if flat is not None:
            return usd(flat * images)
        if spec.price is None:
            return None
        return spec.price.rates(batch=batch).cost(usage)

    def cost_of(self, spec: ModelSpec, request: ImageRequest, *, batch: bool = False) -> float | None:
        """The estimate reserved when a task is accepted: what its ``request.n`` images cost with what is
        known before the model answers (its text answer and thoughts are billed when reported)."""
        size = request.image_size or spec.default_image_size
        expected = known_usage(request, output_image_tokens=spec.tokens_for(size))
        total = Usage()
        for _ in range(request.n):  # one generation per image, each sent the inputs again
            total = total + expected
        return self.cost(spec, total, request.n, batch=batch)


def _first(prices: Mapping[str, float], names: tuple[str, ...]) -> float | None:
    return next((prices[name] for name in names if name in prices), None)
