"""The model catalog against the seeds: seed 004's pixel and token tables, the limits of each model, the
gateway aliases of seeds 000-002, the nearest-size mapping, and ``GET /v1/models``."""

from __future__ import annotations

import httpx
import pytest

from conftest import ServerProcess
from pixelgate.catalog import Catalog, ModelSpec, default_catalog
from pixelgate.catalog.validation import validate
from pixelgate.core.errors import InvalidRequest
from pixelgate.core.request import ImageRequest, Limits

# Seed 004, "3.1 Flash Image": aspect -> (512, 1K, 2K, 4K). 21:9 at 512 reads 792x168 in the seed, a typo
# for 792x336 (every other 512 entry is half the 1K one; see reference/models.md).
FLASH_SIZES = ("512", "1K", "2K", "4K")
FLASH_TABLE = {
    "1:1": ("512x512", "1024x1024", "2048x2048", "4096x4096"),
    "1:4": ("256x1024", "512x2048", "1024x4096", "2048x8192"),
    "1:8": ("192x1536", "384x3072", "768x6144", "1536x12288"),
    "2:3": ("424x632", "848x1264", "1696x2528", "3392x5056"),
    "3:2": ("632x424", "1264x848", "2528x1696", "5056x3392"),
    "3:4": ("448x600", "896x1200", "1792x2400", "3584x4800"),
    "4:1": ("1024x256", "2048x512", "4096x1024", "8192x2048"),
    "4:3": ("600x448", "1200x896", "2400x1792", "4800x3584"),
    "4:5": ("464x576", "928x1152", "1856x2304", "3712x4608"),
    "5:4": ("576x464", "1152x928", "2304x1856", "4608x3712"),
    "8:1": ("1536x192", "3072x384", "6144x768", "12288x1536"),
    "9:16": ("384x688", "768x1376", "1536x2752", "3072x5504"),
    "16:9": ("688x384", "1376x768", "2752x1536", "5504x3072"),
    "21:9": ("792x336", "1584x672", "3168x1344", "6336x2688"),
}
FLASH_TOKENS = {"512": 747, "1K": 1120, "2K": 1120, "4K": 2000}

# Seed 004, "3.1 Pro Image" (gemini-3-pro-image): aspect -> (1K, 2K, 4K).
PRO_SIZES = ("1K", "2K", "4K")
PRO_TABLE = {
    "1:1": ("1024x1024", "2048x2048", "4096x4096"),
    "2:3": ("848x1264", "1696x2528", "3392x5056"),
    "3:2": ("1264x848", "2528x1696", "5056x3392"),
    "3:4": ("896x1200", "1792x2400", "3584x4800"),
    "4:3": ("1200x896", "2400x1792", "4800x3584"),
    "4:5": ("928x1152", "1856x2304", "3712x4608"),
    "5:4": ("1152x928", "2304x1856", "4608x3712"),
    "9:16": ("768x1376", "1536x2752", "3072x5504"),
    "16:9": ("1376x768", "2752x1536", "5504x3072"),
    "21:9": ("1584x672", "3168x1344", "6336x2688"),
}
PRO_TOKENS = {"1K": 1120, "2K": 1120, "4K": 2000}

# Seed 004, "Gemini 2.5 Flash Image": 1K only, 1290 tokens.
FLASH_25_TABLE = {
    "1:1": "1024x1024",
    "2:3": "832x1248",
    "3:2": "1248x832",
    "3:4": "864x1184",
    "4:3": "1184x864",
    "4:5": "896x1152",
    "5:4": "1152x896",
    "9:16": "768x1344",
    "16:9": "1344x768",
    "21:9": "1536x672",
}

STANDARD_RATIOS = {"1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9"}
GATEWAY_RATIOS = {"1:1", "16:9", "9:16", "4:3", "3:4", "21:9"}  # seeds 001 and 002
ALL_IDS = {
    "gemini-3.1-flash-image",
    "gemini-3.1-flash-lite-image",
    "gemini-3-pro-image",
    "gemini-2.5-flash-image",
    "gemini-3.1-flash-image-preview-official",
    "gemini-3-pro-image-preview-4k",
    "gemini-2.5-flash-image-preview",
    "gemini-2-5-flash-image-preview",
    # Google's published ids for the same models (issue 21: the names people's code already uses)
    "gemini-3-pro-image-preview",
    "gemini-3.1-flash-image-preview",
}


def pixels(text: str) -> tuple[int, int]:
    width, height = text.split("x")
    return int(width), int(height)


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return default_catalog()


def spec(model_id: str) -> ModelSpec:
    return default_catalog().get(model_id)


def test_catalog_holds_exactly_the_seeded_models(catalog: Catalog) -> None:
    assert set(catalog.ids) == ALL_IDS
    assert len(catalog) == len(ALL_IDS)
    assert all(model_id in catalog for model_id in ALL_IDS)
    assert "dall-e-3" not in catalog


@pytest.mark.parametrize("model_id", ["gemini-3.1-flash-image", "gemini-3.1-flash-image-preview-official"])
def test_flash_image_pixels_match_seed_004(model_id: str) -> None:
    model = spec(model_id)
    assert model.image_sizes == FLASH_SIZES
    assert set(model.aspect_ratios) == set(FLASH_TABLE) and len(model.aspect_ratios) == 14
    for aspect, row in FLASH_TABLE.items():
        for size, expected in zip(FLASH_SIZES, row, strict=True):
            assert model.output_pixels(aspect, size) == pixels(expected), (aspect, size)
    assert model.output_pixels("21:9", "512") == (792, 336)
    assert {size: model.tokens_for(size) for size in FLASH_SIZES} == FLASH_TOKENS
    assert model.default_image_size == "1K"


def test_pro_image_pixels_match_seed_004() -> None:
    model = spec("gemini-3-pro-image")
    assert model.image_sizes == PRO_SIZES
    assert set(model.aspect_ratios) == set(PRO_TABLE) == STANDARD_RATIOS
    for aspect, row in PRO_TABLE.items():
        for size, expected in zip(PRO_SIZES, row, strict=True):
            assert model.output_pixels(aspect, size) == pixels(expected), (aspect, size)
    assert {size: model.tokens_for(size) for size in PRO_SIZES} == PRO_TOKENS
    assert model.default_image_size == "1K"
    with pytest.raises(KeyError):
        model.output_pixels("16:9", "512")
    with pytest.raises(KeyError):
        model.output_pixels("1:8", "1K")


@pytest.mark.parametrize(
    "model_id", ["gemini-2.5-flash-image", "gemini-2.5-flash-image-preview", "gemini-2-5-flash-image-preview"]
)
def test_flash_25_has_its_own_1k_table(model_id: str) -> None:
    model = spec(model_id)
    assert model.image_sizes == ("1K",) and model.default_image_size == "1K"
    for aspect in model.aspect_ratios:
        assert model.output_pixels(aspect, "1K") == pixels(FLASH_25_TABLE[aspect]), aspect
    assert model.tokens_for("1K") == 1290
    # Not the Gemini 3 grid: 16:9 at 1K is 1344x768 here, 1376x768 there.
    assert model.output_pixels("16:9", "1K") == (1344, 768)


def test_flash_25_offers_the_ten_standard_ratios() -> None:
    assert set(spec("gemini-2.5-flash-image").aspect_ratios) == STANDARD_RATIOS == set(FLASH_25_TABLE)


def test_lite_is_1k_only_on_the_gemini_3_column() -> None:
    model = spec("gemini-3.1-flash-lite-image")
    assert model.image_sizes == ("1K",) and model.default_image_size == "1K"
    assert set(model.aspect_ratios) == STANDARD_RATIOS
    for aspect in STANDARD_RATIOS:
        assert model.output_pixels(aspect, "1K") == pixels(FLASH_TABLE[aspect][1]), aspect
    assert model.tokens_for("1K") == 1120
    with pytest.raises(KeyError):
        model.tokens_for("2K")


@pytest.mark.parametrize(
    ("model_id", "total", "limits"),
    [
        ("gemini-3.1-flash-image", 14, {"object": 10, "character": 4, "style": 0}),
        ("gemini-3.1-flash-lite-image", 14, {"object": 14, "character": 0, "style": 0}),
        ("gemini-3-pro-image", 14, {"object": 6, "character": 5, "style": 3}),
        ("gemini-2.5-flash-image", 3, {"object": 3, "character": 0, "style": 0}),
        ("gemini-3.1-flash-image-preview-official", 14, {"object": 10, "character": 4, "style": 0}),
        ("gemini-3-pro-image-preview-4k", 14, {"object": 6, "character": 5, "style": 3}),
        ("gemini-2.5-flash-image-preview", 3, {"object": 3, "character": 0, "style": 0}),
    ],
)
def test_reference_limits(model_id: str, total: int, limits: dict[str, int]) -> None:
    model = spec(model_id)
    assert model.max_reference_images == total
    assert model.reference_limits == limits


@pytest.mark.parametrize(
    ("model_id", "levels", "default", "always", "grounding", "video", "interleaved", "multi_turn"),
    [
        ("gemini-3.1-flash-image", ("minimal", "high"), "minimal", False, ("web_search", "image_search"),
         True, False, True),
        ("gemini-3.1-flash-lite-image", (), None, False, (), False, False, False),
        ("gemini-3-pro-image", (), None, True, ("web_search",), False, True, True),
        ("gemini-2.5-flash-image", (), None, False, (), False, False, True),
    ],
)  # fmt: skip
def test_thinking_grounding_and_inputs(
    model_id: str,
    levels: tuple[str, ...],
    default: str | None,
    always: bool,
    grounding: tuple[str, ...],
    video: bool,
    interleaved: bool,
    multi_turn: bool,
) -> None:
    model = spec(model_id)
    assert model.thinking_levels == levels
    assert model.default_thinking_level == default
    assert model.always_thinks is always
    assert model.search_grounding == grounding
    assert model.video_input is video
    assert model.interleaved_text is interleaved
    assert model.multi_turn is multi_turn


@pytest.mark.parametrize(
    ("model_id", "upstream"),
    [
        ("gemini-3.1-flash-image-preview-official", "gemini-3.1-flash-image"),
        ("gemini-3-pro-image-preview-4k", "gemini-3-pro-image"),
        ("gemini-2.5-flash-image-preview", "gemini-2.5-flash-image"),
        ("gemini-2-5-flash-image-preview", "gemini-2.5-flash-image"),
    ],
)
def test_aliases_name_their_upstream(model_id: str, upstream: str) -> None:
    alias, base = spec(model_id), spec(upstream)
    assert alias.is_alias and alias.upstream_id == upstream
    assert not base.is_alias and base.upstream_id == base.id
    # What the alias does not restrict it inherits.
    assert alias.max_reference_images == base.max_reference_images
    assert alias.thinking_levels == base.thinking_levels
    assert alias.owned_by == base.owned_by == "google"


def test_official_preview_alias_offers_everything_flash_offers() -> None:
    alias, base = spec("gemini-3.1-flash-image-preview-official"), spec("gemini-3.1-flash-image")
    assert alias.image_sizes == base.image_sizes and alias.aspect_ratios == base.aspect_ratios
    # It shares its model's price: Google's $60 per 1M image output tokens x 1120 tokens for 1K
    # (ai.google.dev/gemini-api/docs/pricing, read 2026-12-06; see models.toml).
    assert alias.price == base.price and alias.price_per_image == base.price_per_image == 0.0672


def test_pro_4k_alias_is_4k_only_with_six_ratios() -> None:
    alias = spec("gemini-3-pro-image-preview-4k")
    assert alias.image_sizes == ("4K",) and alias.default_image_size == "4K"
    assert set(alias.aspect_ratios) == GATEWAY_RATIOS and len(alias.aspect_ratios) == 6
    for aspect in GATEWAY_RATIOS:
        assert alias.output_pixels(aspect, "4K") == pixels(PRO_TABLE[aspect][2]), aspect
    assert alias.tokens_for("4K") == 2000
    assert alias.always_thinks


def test_pro_4k_alias_request_defaults_to_4k(catalog: Catalog) -> None:
    request, _ = validate(
        ImageRequest(model="gemini-3-pro-image-preview-4k", prompt="x", aspect_ratio="16:9"),
        catalog,
        Limits(),
    )
    assert (request.image_size, request.width, request.height) == ("4K", 5504, 3072)
    with pytest.raises(InvalidRequest, match=r"use 4K \(uppercase K\)"):
        validate(
            ImageRequest(model="gemini-3-pro-image-preview-4k", prompt="x", image_size="1K"),
            catalog,
            Limits(),
        )


@pytest.mark.parametrize("model_id", ["gemini-2.5-flash-image-preview", "gemini-2-5-flash-image-preview"])
def test_flash_25_preview_aliases(model_id: str) -> None:
    alias = spec(model_id)
    # Google's price of gemini-2.5-flash-image, which it fronts: 1290 tokens x $30 per 1M image output
    # tokens = $0.0387 ("$0.039 per image", ai.google.dev/gemini-api/docs/pricing, read 2026-12-06), not
    # seed 002's reseller price of $0.012.
    assert alias.price == spec("gemini-2.5-flash-image").price
    assert alias.price_per_image == 0.0387
    assert alias.image_sizes == ("1K",)
    assert set(alias.aspect_ratios) == GATEWAY_RATIOS


def test_every_model_has_its_published_price(catalog: Catalog) -> None:
    """Every model and alias is priced, with the page its prices are from and the day they were read; an
    alias has its model's prices; batch rates are half the standard ones (Google's Batch API)."""
    for model in catalog:
        base = catalog.get(model.upstream_id)
        assert model.price is not None and model.price == base.price, model.id
        assert model.price.source.startswith("https://") and model.price.date == "2026-12-06", model.id
        assert model.price.seen_on, model.id
        standard, batch = model.price.standard, model.price.batch
        assert batch.describe() == {k: v / 2 for k, v in standard.describe().items()}, model.id


@pytest.mark.parametrize(
    ("model_id", "width", "height", "aspect", "size"),
    [
        ("gemini-3.1-flash-image", 1536, 1024, "3:2", "1K"),
        ("gemini-3.1-flash-image", 1024, 1536, "2:3", "1K"),
        ("gemini-3.1-flash-image", 1024, 1024, "1:1", "1K"),
        ("gemini-3.1-flash-image", 512, 512, "1:1", "512"),
        ("gemini-3.1-flash-image", 4096, 4096, "1:1", "4K"),
        ("gemini-3.1-flash-image", 4096, 2304, "16:9", "4K"),
        ("gemini-3.1-flash-image", 1920, 1080, "16:9", "1K"),  # 2.07 Mpx: 1.06 nearer than 4.23
        ("gemini-3.1-flash-image", 1000, 8000, "1:8", "2K"),
        ("gemini-3.1-flash-image", 100000, 10, "8:1", "1K"),
        ("gemini-3.1-flash-image", 2560, 1080, "21:9", "2K"),
        ("gemini-3-pro-image", 1536, 1024, "3:2", "1K"),
        ("gemini-3-pro-image", 100000, 10, "21:9", "1K"),
        ("gemini-3-pro-image", 256, 256, "1:1", "1K"),
        ("gemini-2.5-flash-image", 1792, 1024, "16:9", "1K"),
        ("gemini-3-pro-image-preview-4k", 1000, 1000, "1:1", "4K"),
        ("gemini-3-pro-image-preview-4k", 1200, 1000, "4:3", "4K"),  # no 5:4 on this alias
    ],
)
def test_nearest_aspect_ratio_and_size(
    model_id: str, width: int, height: int, aspect: str, size: str
) -> None:
    model = spec(model_id)
    assert model.nearest_aspect_ratio(width, height) == aspect
    assert model.nearest_image_size(aspect, width, height) == size


def test_3840x2160_maps_to_16_9_at_the_nearest_area() -> None:
    """3840x2160 (8.3 Mpx) lies between 16:9 at 2K (2752x1536, 4.2 Mpx) and at 4K (5504x3072, 16.9 Mpx); the
    documented rule (closest area on a log scale; README: "the model's nearest aspect ratio and size") gives
    2K, which is nearer by every measure (area, log-area, either side)."""
    model = spec("gemini-3.1-flash-image")
    assert model.nearest_aspect_ratio(3840, 2160) == "16:9"
    assert model.nearest_image_size("16:9", 3840, 2160) == "2K"


def test_nearest_aspect_ratio_is_symmetric_on_a_log_scale() -> None:
    model = spec("gemini-3.1-flash-image")
    for width, height in [(2000, 1000), (4000, 1000), (1300, 1000), (1000, 1000), (7000, 1000)]:
        wide = model.nearest_aspect_ratio(width, height)
        tall = model.nearest_aspect_ratio(height, width)
        w, h = wide.split(":")
        assert tall == f"{h}:{w}", (width, height)
    # 2:1 is nearer 16:9 (log distance 0.118) than 21:9 (0.154); 1.3 nearer 4:3 than 5:4.
    assert model.nearest_aspect_ratio(2000, 1000) == "16:9"
    assert model.nearest_aspect_ratio(1300, 1000) == "4:3"
    assert model.nearest_aspect_ratio(7000, 1000) == "8:1"


def test_unknown_model_lists_the_catalog(catalog: Catalog) -> None:
    with pytest.raises(InvalidRequest) as caught:
        catalog.get("dall-e-3")
    assert caught.value.code == "model_not_found" and caught.value.param == "model"
    assert "model 'dall-e-3' is not in the catalog: use " in caught.value.message
    assert all(model_id in caught.value.message for model_id in ALL_IDS)


def test_describe_has_the_pixel_table(catalog: Catalog) -> None:
    described = spec("gemini-3.1-flash-image").describe()
    assert described["output_pixels"]["21:9"] == dict(zip(FLASH_SIZES, FLASH_TABLE["21:9"], strict=True))
    assert described["tokens_per_image"] == FLASH_TOKENS
    assert described["upstream_model"] == "gemini-3.1-flash-image"
    assert described["reference_limits"] == {"object": 10, "character": 4, "style": 0}
    alias = spec("gemini-3-pro-image-preview-4k").describe()
    assert alias["upstream_model"] == "gemini-3-pro-image"
    assert alias["output_pixels"] == {aspect: {"4K": PRO_TABLE[aspect][2]} for aspect in GATEWAY_RATIOS}


def test_models_endpoint(server: ServerProcess) -> None:
    response = httpx.get(f"{server.url}/v1/models", timeout=30)
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "list"
    entries = {entry["id"]: entry for entry in body["data"]}
    assert set(entries) == ALL_IDS and len(body["data"]) == len(ALL_IDS)
    for model_id, entry in entries.items():
        assert entry["object"] == "model"
        assert entry["owned_by"] == "google"
        assert isinstance(entry["created"], int)
        capabilities = entry["capabilities"]
        model = spec(model_id)
        assert capabilities["image_sizes"] == list(model.image_sizes)
        assert capabilities["aspect_ratios"] == list(model.aspect_ratios)
        assert capabilities["output_pixels"] == {
            aspect: {size: "{}x{}".format(*model.output_pixels(aspect, size)) for size in model.image_sizes}
            for aspect in model.aspect_ratios
        }
    flash = entries["gemini-3.1-flash-image"]["capabilities"]
    assert flash["output_pixels"]["16:9"] == {
        "512": "688x384",
        "1K": "1376x768",
        "2K": "2752x1536",
        "4K": "5504x3072",
    }
    # The published price (models.toml, read 2026-12-06): 1290 tokens x $30 per 1M for 2.5 Flash Image;
    # 1120 and 2000 tokens x $120 per 1M for Pro at 1K/2K and at 4K ($0.134 and $0.24 on Google's page).
    assert entries["gemini-2.5-flash-image-preview"]["capabilities"]["price_per_image_usd"] == 0.0387
    pro = entries["gemini-3-pro-image"]["capabilities"]["pricing"]
    assert pro["per_image_usd"] == {"1K": 0.1344, "2K": 0.1344, "4K": 0.24}
    assert pro["batch_per_image_usd"] == {"1K": 0.0672, "2K": 0.0672, "4K": 0.12}
    assert pro["usd_per_million_tokens"] == {"input": 2.0, "output_text": 12.0, "output_image": 120.0}
    assert pro["source"] == "https://ai.google.dev/gemini-api/docs/pricing" and pro["date"] == "2026-12-06"
    assert entries["gemini-3-pro-image-preview-4k"]["capabilities"]["upstream_model"] == "gemini-3-pro-image"

    one = httpx.get(f"{server.url}/v1/models/gemini-3-pro-image", timeout=30)
    assert one.status_code == 200 and one.json() == entries["gemini-3-pro-image"]
