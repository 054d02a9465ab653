"""``pixelgate models``: the catalog, offline (no server is asked)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.table import Table

from pixelgate.cli.client import JsonOption
from pixelgate.cli.output import show, show_json

if TYPE_CHECKING:
    from pixelgate.catalog import ModelSpec


def models(json_out: JsonOption = False) -> None:
    """List the catalog: every model with its sizes, aspect ratios and limits."""
    from pixelgate.catalog import default_catalog

    catalog = list(default_catalog())
    if json_out:
        show_json({"object": "list", "data": [describe(spec) for spec in catalog]})
        return
    table = Table(title="pixelgate models")
    # Ids must stay whole even on an 80-column terminal: they are what people copy from this table.
    widest = max(len(spec.id) for spec in catalog)
    table.add_column("model", no_wrap=True, min_width=widest)
    for column in ("upstream", "sizes", "default", "aspect ratios", "refs", "price per image"):
        table.add_column(column, overflow="fold")
    for spec in catalog:
        table.add_row(
            spec.id,
            spec.upstream_id if spec.is_alias else "",
            " ".join(spec.image_sizes),
            spec.default_image_size,
            " ".join(spec.aspect_ratios),
            str(spec.max_reference_images),
            _image_prices(spec),
        )
    show(table)


def _image_prices(spec: ModelSpec) -> str:
    """The catalog's price of an image of each size (its input and thinking aside), e.g. "1K $0.1344"."""
    from pixelgate.catalog.prices import usd_text

    priced = [(size, spec.image_price(size)) for size in spec.image_sizes]
    return " ".join(f"{size} ${usd_text(price)}" for size, price in priced if price is not None) or "-"


def describe(spec: ModelSpec) -> dict[str, Any]:
    return {
        "id": spec.id,
        "upstream": spec.upstream_id if spec.is_alias else None,
        "sizes": list(spec.image_sizes),
        "default_size": spec.default_image_size,
        "aspect_ratios": list(spec.aspect_ratios),
        "max_reference_images": spec.max_reference_images,
        "price_per_image": spec.price_per_image,  # at the default size
        "price_by_size": {size: spec.image_price(size) for size in spec.image_sizes},
    }
