"""Model ids people's code already names: Google's published ``-preview`` ids (catalog data) and the
operator's own ``[aliases]`` in pixelgate.toml (``"dall-e-3" = "gemini-3.1-flash-image"``), each served as
the catalog model it stands for, with that model's exact pixels, by the official SDKs unmodified."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator

import httpx
import openai
import pytest
from google import genai
from google.genai import types
from openai import OpenAI
from PIL import Image
from tests.conftest import ServerProcess

from pixelgate.catalog import Prices, default_catalog
from pixelgate.config import ChannelConfig, ConfigError, GatewayConfig

GOOGLE_IDS = {
    "gemini-3-pro-image-preview": "gemini-3-pro-image",
    "gemini-3.1-flash-image-preview": "gemini-3.1-flash-image",
}
CHANNEL_FILE = """
[aliases]
"dall-e-3" = "gemini-3.1-flash-image"
"gpt-image-1" = "gemini-3-pro-image-preview-4k"

[prices]
"gemini-3.1-flash-image" = 0.04
"gpt-image-1" = 0.5
"""


@pytest.mark.parametrize(("published", "model"), GOOGLE_IDS.items())
def test_google_s_published_ids_are_their_models_under_another_name(published: str, model: str) -> None:
    catalog = default_catalog()
    alias, spec = catalog.get(published), catalog.get(model)
    assert alias.upstream_id == spec.upstream_id == model
    assert (alias.pixels, alias.image_sizes, alias.aspect_ratios) == (
        spec.pixels,
        spec.image_sizes,
        spec.aspect_ratios,
    )
    assert alias.max_reference_images == spec.max_reference_images


def test_an_operator_alias_is_its_model_priced_and_routed_as_that_model() -> None:
    catalog = default_catalog().with_aliases({"dall-e-3": "gemini-3.1-flash-image"})
    alias = catalog.get("dall-e-3")
    assert (alias.model_name, alias.upstream_id) == ("gemini-3.1-flash-image", "gemini-3.1-flash-image")
    assert alias.pixels == catalog.get("gemini-3.1-flash-image").pixels
    # A price given for the model prices its alias; one given for the alias wins.
    assert Prices({"gemini-3.1-flash-image": 0.04}).price_of(alias) == 0.04
    assert Prices({"gemini-3.1-flash-image": 0.04, "dall-e-3": 0.1}).price_of(alias) == 0.1
    # A channel serves the alias where it serves the model, under the model's name upstream.
    listed = ChannelConfig(name="o", provider="openai", models=["gemini-3.1-flash-image"])
    renamed = ChannelConfig(name="r", provider="openai", models={"gemini-3.1-flash-image": "nano-banana-2"})
    other = ChannelConfig(name="p", provider="openai", models=["gemini-3-pro-image"])
    assert listed.upstream_model(alias, vendor_ids=False) == "gemini-3.1-flash-image"
    assert renamed.upstream_model(alias, vendor_ids=False) == "nano-banana-2"
    assert other.upstream_model(alias, vendor_ids=False) is None


@pytest.mark.parametrize(
    ("aliases", "says"),
    [
        (
            {"gemini-3-pro-image": "gemini-3.1-flash-image"},
            "is a catalog model already: an alias is a new name",
        ),
        ({"dall-e-3": "gemini-9-image"}, "an alias names a catalog model (not another alias): use "),
        ({"dall-e-3": "gemini-3.1-flash-image", "dall-e-2": "dall-e-3"}, "'dall-e-2' = 'dall-e-3'"),
        ({"openai/dall-e-3": "gemini-3.1-flash-image"}, "an alias is 1 to 64 letters, digits"),
        ({"": "gemini-3.1-flash-image"}, "an alias is 1 to 64 letters, digits"),
    ],
)
def test_a_wrong_alias_says_which_and_what_is_allowed(aliases: dict[str, str], says: str) -> None:
    config = GatewayConfig(aliases=aliases, source="pixelgate.toml")
    with pytest.raises(ConfigError) as caught:
        config.check(default_catalog(), environ={})
    assert str(caught.value).startswith("pixelgate.toml: aliases.")
    assert says in str(caught.value)


def test_prices_may_name_an_alias_but_not_an_unknown_model() -> None:
    GatewayConfig(aliases={"dall-e-3": "gemini-3.1-flash-image"}, prices={"dall-e-3": 0.1}).check(
        default_catalog(), environ={}
    )
    with pytest.raises(ConfigError, match=r"prices\.dall-e-3"):
        GatewayConfig(prices={"dall-e-3": 0.1}).check(default_catalog(), environ={})


@pytest.fixture(scope="module")
def aliased(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    folder = tmp_path_factory.mktemp("aliases")
    (folder / "pixelgate.toml").write_text(CHANNEL_FILE)
    server = ServerProcess(
        data_dir=folder / "data", args=["--emulate", "--config", str(folder / "pixelgate.toml")]
    ).start()
    yield server
    server.stop()


def _pixels(b64: str) -> tuple[int, int]:
    with Image.open(io.BytesIO(base64.b64decode(b64))) as image:
        return image.size


def test_openai_code_naming_dall_e_3_gets_the_model_it_stands_for(aliased: ServerProcess) -> None:
    client = OpenAI(base_url=f"{aliased.url}/v1", api_key="unused")
    image = client.images.generate(
        model="dall-e-3", prompt="a lighthouse", size="1536x1024", response_format="b64_json"
    )
    assert image.size == "1264x848"  # the WxH rule of the model it stands for: 3:2 at 1K
    assert image.data is not None and image.data[0].b64_json is not None
    assert _pixels(image.data[0].b64_json) == (1264, 848)
    listed = {model.id for model in client.models.list()}
    assert {"dall-e-3", "gpt-image-1", *GOOGLE_IDS} <= listed
    # The alias of a 4K-only model keeps its restrictions.
    four_k = client.images.generate(model="gpt-image-1", prompt="a lighthouse", size="1024x1024")
    assert four_k.size == "4096x4096"


def test_usage_bills_an_alias_at_its_own_price_else_its_model_s(aliased: ServerProcess) -> None:
    client = OpenAI(base_url=f"{aliased.url}/v1", api_key="unused")
    client.images.generate(model="dall-e-3", prompt="priced as its model", size="1024x1024")
    client.images.generate(model="gpt-image-1", prompt="priced as itself", size="1024x1024")
    report = httpx.get(f"{aliased.url}/v1/usage", params={"group_by": "model"}, timeout=10).json()
    rows = {row["model"]: row for row in report["data"]}
    for model, price in (("dall-e-3", 0.04), ("gpt-image-1", 0.5)):
        assert rows[model]["images"] >= 1
        assert rows[model]["cost_usd"] == pytest.approx(price * rows[model]["images"])


def test_google_s_own_ids_work_in_the_genai_sdk(aliased: ServerProcess) -> None:
    client = genai.Client(api_key="unused", http_options=types.HttpOptions(base_url=aliased.url))
    answer = client.models.generate_content(
        model="gemini-3.1-flash-image-preview",
        contents="a red kite",
        config=types.GenerateContentConfig(image_config=types.ImageConfig(aspect_ratio="16:9")),
    )
    parts = answer.candidates[0].content.parts if answer.candidates and answer.candidates[0].content else None
    inline = next(p.inline_data for p in parts or [] if p.inline_data is not None)
    assert inline.data is not None
    with Image.open(io.BytesIO(inline.data)) as image:
        assert image.size == (1376, 768)
    model = client.models.get(model="gemini-3-pro-image-preview")
    assert model.supported_actions == ["generateContent", "streamGenerateContent", "batchGenerateContent"]
    assert "dall-e-3" in {m.name.removeprefix("models/") for m in client.models.list() if m.name}


def test_an_unknown_id_says_the_operator_can_map_it(aliased: ServerProcess) -> None:
    client = OpenAI(base_url=f"{aliased.url}/v1", api_key="unused")
    with pytest.raises(openai.BadRequestError) as caught:
        client.images.generate(model="dall-e-2", prompt="x")
    assert "model 'dall-e-2' is not in the catalog" in str(caught.value)
    assert "[aliases] in pixelgate.toml" in str(caught.value)
