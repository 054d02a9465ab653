"""Settings: command-line flags, ``PIXELGATE_*`` environment variables and their defaults; and the channel
file, ``pixelgate.toml``, that says which upstreams serve which models.

A channel file looks like this (every field but ``name`` and ``provider`` has a default)::

    [routing]
    max_attempts = 4          # tries per image, across channels
    max_wait_seconds = 30     # the longest a request waits for a channel, in all
    cooldown_seconds = 30     # how long a channel that keeps failing is skipped before one probe
    max_wait_by_model = { "gemini-3-pro-image" = 60 }

    [[channels]]
    name = "gemini"
    provider = "google"       # a provider kind that providers/registry.py holds
    api_key_env = "GEMINI_API_KEY"
    models = ["gemini-3.1-flash-image", "gemini-3-pro-image"]
    priority = 10             # higher is tried first; equal priorities share by weight
    concurrency = 8           # images in flight at this upstream; more wait their turn
    timeout = 600             # seconds one image may take here

    [[channels]]
    name = "backup"
    provider = "openai"
    base_url = "https://gateway.example.com/v1"
    api_key_env = "BACKUP_KEY"
    models = { "gemini-3.1-flash-image" = "nano-banana-2" }   # public name = the upstream's name
    options = { async = true }

    [aliases]                 # other names for catalog models, for code that already names them
    "dall-e-3" = "gemini-3.1-flash-image"

With no channel file, ``GEMINI_API_KEY`` (or ``GOOGLE_API_KEY``) makes a ``google`` channel and
``OPENAI_API_KEY`` an ``openai`` one, so a key in the environment is enough. That one serves every model
at an OpenAI-compatible gateway named by ``OPENAI_BASE_URL``; at OpenAI itself, only OpenAI's models.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from pixelgate.catalog import Catalog, ModelSpec, default_catalog
from pixelgate.core.errors import one_of
from pixelgate.core.faults import FaultSpec
from pixelgate.core.request import Limits
from pixelgate.core.safe_urls import AddressPolicy
from pixelgate.store.blob_location import MAX_PRESIGN_SECONDS, S3Location, parse_blob_store

DEFAULT_CONFIG_FILE = Path("pixelgate.toml")
MIN_ADMIN_KEY_CHARS = 16
BLOB_URLS = ("pixelgate", "presigned")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PIXELGATE_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path("pixelgate-data")
    database_url: str | None = None
    # Connections this process opens to PostgreSQL at most (5 kept while idle; on PostgreSQL one more
    # listens for other processes' NOTIFYs). Hosts sharing a database need theirs to add up to less than its
    # max_connections (100 by default).
    database_max_connections: int = Field(20, ge=2)
    public_url: str | None = Field(None, description="Base of the image URLs the server hands out")
    default_model: str = "gemini-3.1-flash-image"
    config: Path | None = Field(None, description="The channel file (default: ./pixelgate.toml if present)")
    # None: decided at start (auth/exposure.py): on wherever anything is at stake. Off is refused beyond
    # loopback.
    auth: bool | None = None
    # PIXELGATE_ADMIN_KEY, any string of MIN_ADMIN_KEY_CHARS or more; without it one is made on the first
    # start with auth on and written to ``admin_key_file``.
    admin_key: SecretStr | None = None
    # Proxies whose X-Forwarded-For names the client (PIXELGATE_FORWARDED_ALLOW_IPS, comma-separated): IPs
    # or networks. From anyone else the header is ignored: it would let a caller choose its own address,
    # which the failed-key guard counts by.
    forwarded_allow_ips: Annotated[list[str], NoDecode] = Field(default_factory=list)

    redis_url: str | None = None  # shares requests-per-minute and failed-key counts between processes
    # Where images, references and batch files live (PIXELGATE_BLOB_STORE): a folder, or s3://bucket/prefix
    # for an S3-compatible bucket, its credentials and region from the standard AWS_* variables. None:
    # DATA_DIR/blobs. Several processes on one database need one store they all reach: a bucket.
    blob_store: str | None = None
    s3_endpoint_url: str | None = None  # the bucket's service when it is not AWS: MinIO, R2, moto
    # How answers point at images: "pixelgate", its own signed URLs (the bytes streamed through it from the
    # store), or "presigned", the bucket's presigned GET URLs (an S3 store only), valid until the result
    # expires, so that image bytes never pass through pixelgate again.
    blob_urls: str = "pixelgate"
    # Networks and host names that image URLs may point at besides public addresses (PIXELGATE_FETCH_ALLOW,
    # comma-separated): a private host of images, say. Loopback and cloud metadata stay refused otherwise.
    fetch_allow: Annotated[list[str], NoDecode] = Field(default_factory=list)
    emulate: bool = False
    emulate_latency: float = 0.0
    emulate_faults: FaultSpec = ""
    emulate_fault_seed: int | None = None
    emulate_timeout_after: float = 30.0

    max_body_bytes: int = 64 * 1024 * 1024
    # A request's headers must arrive within this many seconds of the connection opening or of the
    # request's first byte; past it the connection gets a 408 and is closed (api/header_timeout.py).
    header_timeout_seconds: float = Field(20.0, gt=0)
    max_prompt_chars: int = 32_000
    max_image_pixels: int = 64 * 1024 * 1024
    # Decoded pixels the whole process may hold at once (core/pixel_budget.py): images are decoded within
    # it, waiting while others hold it, so many requests with large images cannot exhaust memory.
    max_decoded_pixels: int = Field(64 * 1024 * 1024, ge=1024 * 1024)
    max_reference_bytes: int = 20 * 1024 * 1024
    max_history_turns: int = Field(64, ge=1)  # earlier turns a conversation may carry
    max_tasks_per_key: int = Field(10_000, ge=1)  # queued or running, for keys without their own limit

    result_ttl_seconds: float = Field(24 * 3600, gt=0)
    # How often the retention janitor looks for expired results to delete (tasks/janitor.py).
    janitor_interval_seconds: float = Field(60.0, gt=0)
    # How long a batch may take before it ends "expired" (the APIs' completion window is 24 h).
    batch_completion_seconds: float = Field(24 * 3600, gt=0)
    run_workers: bool = True
    worker_concurrency: int = 256
    lease_seconds: float = 30.0
    # How often a process looks in the database for what other processes sharing it changed (tasks to
    # claim, tasks ended, channels switched by an admin, batches, webhooks)...
    poll_interval: float = Field(1.0, gt=0)
    # ...and, on PostgreSQL while its LISTEN connection is up, how often the worker and the waiting requests
    # still look for tasks: NOTIFY wakes them at once, this is the safety net (tasks/wakeups.py says why).
    notified_poll_interval: float = Field(10.0, gt=0)
    # LISTEN for other processes' task changes (PostgreSQL). Off for a connection pooler that keeps no
    # session (PgBouncer in transaction mode): the process then polls every poll_interval. It still NOTIFYs.
    listen: bool = True
    max_attempts: int = 5
    shutdown_grace_seconds: float = 10.0
    stream_keepalive_seconds: float = Field(10.0, gt=0)
    # Longer than the OpenAI SDK's own 10-minute timeout: a 4K Pro image in a queue behind others still
    # arrives. Past it the caller gets a 504 that names the task, which goes on and can be polled.
    sync_wait_seconds: float = Field(900.0, gt=0)
    # How long an asynchronous task (or a batch line) may wait in the queue for a channel that cannot take
    # it yet (every one cooling down, disabled or rate limited) before it fails: accepted work is not
    # dropped because an upstream is down for an hour.
    queue_deadline_seconds: float = Field(24 * 3600, gt=0)

    # Seconds before each attempt of a webhook delivery, the first included (PIXELGATE_WEBHOOK_RETRY_SECONDS,
    # comma-separated): Standard Webhooks' schedule by default, about a day in all; then it is "failed".
    webhook_retry_seconds: Annotated[list[float], NoDecode] = Field(
        default_factory=lambda: [0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0]
    )
    webhook_timeout_seconds: float = Field(10.0, gt=0)  # for one attempt, connecting included

    @field_validator("webhook_retry_seconds", mode="before")
    @classmethod
    def _retry_schedule(cls, value: Any) -> Any:
        items = value.split(",") if isinstance(value, str) else list(value)
        try:
            delays = [float(item) for item in items if str(item).strip()]
        except ValueError:
            raise ValueError(
                f"webhook retry seconds {value!r} are not valid: give comma-separated seconds such as 0,5,300"
            ) from None
        if not delays or any(not 0 <= delay < 10 * 86400 for delay in delays):
            raise ValueError(
                f"webhook retry seconds {value!r} are not valid: give at least one delay, each from 0 to "
                "864000 seconds (10 days)"
            )
        return delays

    @field_validator("blob_store")
    @classmethod
    def _blob_store(cls, value: str | None) -> str | None:
        if value is not None:
            parse_blob_store(value)
        return value

    @field_validator("blob_urls")
    @classmethod
    def _blob_urls(cls, value: str) -> str:
        if value not in BLOB_URLS:
            raise ValueError(
                f"blob URLs {value!r} are not known: use pixelgate (pixelgate's own signed URLs) or "
                "presigned (the bucket's presigned URLs, with an s3:// blob store)"
            )
        return value

    @field_validator("s3_endpoint_url")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"https?://[^/\s?#]+/?", value):
            raise ValueError(
                f"S3 endpoint URL {value!r} is not valid: give the service's scheme, host and port, such as "
                "http://127.0.0.1:9000 (MinIO) or https://<account>.r2.cloudflarestorage.com (R2)"
            )
        return value.rstrip("/") if value else value

    @field_validator("fetch_allow", mode="before")
    @classmethod
    def _fetch_allow_entries(cls, value: Any) -> Any:
        # Comma-separated in the environment, and allowed so in each --fetch-allow too.
        items = [value] if isinstance(value, str) else list(value)
        entries = [entry.strip() for item in items for entry in str(item).split(",") if entry.strip()]
        AddressPolicy.allowing(entries)  # refuses what is neither a network nor a host name
        return entries

    @field_validator("admin_key", mode="after")
    @classmethod
    def _stripped_admin_key(cls, value: SecretStr | None) -> SecretStr | None:
        # A key pasted into an env file often carries a newline that no client sends.
        return SecretStr(value.get_secret_value().strip()) if value is not None else None

    @field_validator("forwarded_allow_ips", mode="before")
    @classmethod
    def _proxy_addresses(cls, value: Any) -> Any:
        items = [value] if isinstance(value, str) else list(value)
        entries = [entry.strip() for item in items for entry in str(item).split(",") if entry.strip()]
        return [_proxy_address(entry) for entry in entries]

    @property
    def fetch_policy(self) -> AddressPolicy:
        return AddressPolicy.allowing(self.fetch_allow)

    @property
    def on_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    @property
    def admin_key_file(self) -> Path:
        """Where an admin key made at start is written, readable by its owner only."""
        return self.data_dir / "admin-key"

    def check_auth(self) -> None:
        """Refuse to serve the network without keys, and an admin key short enough to guess."""
        if self.auth is False and not self.on_loopback:
            raise ConfigError(
                f"auth is off (--no-auth) but the server would listen on {self.host}: without keys anyone "
                "who reaches it could use it; auth off is allowed only on loopback (127.0.0.1, ::1). "
                "Drop --no-auth (and set PIXELGATE_ADMIN_KEY), or listen on 127.0.0.1"
            )
        chosen = self.admin_key.get_secret_value() if self.admin_key is not None else None
        if chosen is not None and len(chosen) < MIN_ADMIN_KEY_CHARS:
            raise ConfigError(
                f"PIXELGATE_ADMIN_KEY is {len(chosen)} characters long: an admin key needs at least "
                f"{MIN_ADMIN_KEY_CHARS} (any characters, any prefix). Make a random one with "
                "`python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`, or unset it and one is "
                f"made on the first start and written to {self.admin_key_file}"
            )

    @property
    def blob_location(self) -> Path | S3Location:
        return parse_blob_store(self.blob_store) if self.blob_store else self.data_dir / "blobs"

    def check_storage(self) -> None:
        """Refuse settings that only make sense with a bucket when the blobs are in a folder."""
        location = self.blob_location
        if not isinstance(location, S3Location):
            asked = ["--blob-urls presigned"] if self.blob_urls == "presigned" else []
            if self.s3_endpoint_url:
                asked.append(f"--s3-endpoint-url {self.s3_endpoint_url}")
            if asked:
                raise ConfigError(
                    f"{' and '.join(asked)}: only an S3 blob store takes this, but the blob store is the "
                    f"folder {location}: give --blob-store s3://bucket/prefix (PIXELGATE_BLOB_STORE), or drop it"
                )
        elif self.blob_urls == "presigned" and self.result_ttl_seconds > MAX_PRESIGN_SECONDS:
            raise ConfigError(
                f"--blob-urls presigned makes URLs that live as long as results, {self.result_ttl_seconds:g} s "
                f"(PIXELGATE_RESULT_TTL_SECONDS), but a presigned URL lives at most {MAX_PRESIGN_SECONDS} s "
                "(7 days): keep results for 7 days or less, or use --blob-urls pixelgate"
            )

    @property
    def limits(self) -> Limits:
        return Limits(
            max_prompt_chars=self.max_prompt_chars,
            max_image_pixels=self.max_image_pixels,
            max_reference_bytes=self.max_reference_bytes,
            max_history_turns=self.max_history_turns,
        )


def _proxy_address(entry: str) -> str:
    """An IP or network of --forwarded-allow-ips, checked here: uvicorn would take anything else for a
    literal name that no client address ever equals, and silently trust nothing."""
    try:
        return str(ipaddress.ip_network(entry) if "/" in entry else ipaddress.ip_address(entry))
    except ValueError:
        pass
    try:
        network = ipaddress.ip_network(entry, strict=False)
    except ValueError:
        raise ValueError(
            f"forwarded-allow-ips entry {entry!r} is not an IP address or network: give the proxies' "
            "addresses, such as 127.0.0.1, ::1 or 10.0.0.0/8, comma-separated or one per flag"
        ) from None
    raise ValueError(
        f"forwarded-allow-ips entry {entry!r} has bits set past its prefix length: write the network, {network}"
    )


class ConfigError(ValueError):
    """The channel file (or the environment it names) is wrong; the message says where and how."""


class ChannelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64, pattern=r"^[\w.-]+$")
    # A provider kind's name, checked against the registry (providers/registry.py) where the channels are
    # built: routing/build.py.
    provider: str
    base_url: str | None = None
    api_key_env: str | None = None
    models: list[str] | dict[str, str] | None = None  # None: every catalog model
    priority: int = 0
    weight: float = Field(1.0, gt=0)
    concurrency: int = Field(16, ge=1, le=10_000)
    timeout: float = Field(600.0, gt=0)
    options: dict[str, Any] = Field(default_factory=dict)

    def api_key(self, environ: Mapping[str, str] = os.environ) -> str | None:
        if self.api_key_env is None:
            return None
        key = environ.get(self.api_key_env, "").strip()
        if not key:
            raise ConfigError(
                f"channel {self.name!r}: the environment variable {self.api_key_env} (its api_key_env) is "
                "not set: export the upstream's key in it"
            )
        return key

    def upstream_model(self, spec: ModelSpec, *, vendor_ids: bool) -> str | None:
        """The model's name at this channel's upstream, or None if the channel does not serve it.

        A rename in ``models`` always wins. An upstream that knows the vendor's own ids (``vendor_ids``, as
        its provider kind says: Google's API) gets a gateway alias by its upstream id; other gateways know
        the aliases themselves (they are their names), so those keep the public name."""
        model = spec.model_name  # an operator's alias is served as the model it stands for
        if isinstance(self.models, dict):
            return self.models.get(model)
        if self.models is not None and model not in self.models:
            return None
        return spec.upstream_id if vendor_ids else model


class RoutingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_attempts: int = Field(4, ge=1, le=20)  # 1 try + the seeds' 1 s / 2 s / 4 s backoff
    backoff_seconds: float = Field(1.0, ge=0)
    max_backoff_seconds: float = Field(30.0, ge=0)
    # The most one image's request spends waiting for a channel (a rate limit, a backoff, a probe), in all;
    # a channel that is cooling down is never waited for. Past it the caller gets a 503 with Retry-After.
    max_wait_seconds: float = Field(30.0, ge=0, allow_inf_nan=False)
    max_wait_by_model: dict[str, float] = Field(default_factory=dict)  # the same, for one model
    failure_threshold: int = Field(3, ge=1)  # failures in a row before a channel cools down
    cooldown_seconds: float = Field(30.0, ge=0)  # doubles each time its probe fails, up to the max; 0: never
    max_cooldown_seconds: float = Field(300.0, ge=0)
    # An asynchronous task that no channel can take now (all cooling down, disabled or rate limited) goes
    # back to the queue until one can; false: it fails at once, as a synchronous request does.
    requeue_async: bool = True

    def max_wait_for(self, model: str) -> float:
        return self.max_wait_by_model.get(model, self.max_wait_seconds)


class GatewayConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channels: list[ChannelConfig] = Field(default_factory=list)
    routing: RoutingConfig = Field(default_factory=RoutingConfig)
    prices: dict[str, float] = Field(default_factory=dict)  # USD per image, over the catalog's
    batch_prices: dict[str, float] = Field(default_factory=dict)  # USD per image made by a batch line
    # Other names for catalog models ("dall-e-3" = "gemini-3.1-flash-image"), for code that names them.
    aliases: dict[str, str] = Field(default_factory=dict)
    source: str = Field("defaults", exclude=True)

    def check(self, catalog: Catalog, environ: Mapping[str, str] = os.environ) -> GatewayConfig:
        """What pydantic cannot see: unique names, known model names, keys present in the environment. (Each
        channel's provider and its options are checked against the provider registry where the channels
        are built: routing/build.py.)"""
        seen: set[str] = set()
        for channel in self.channels:
            if channel.name in seen:
                raise ConfigError(
                    f"{self.source}: two channels are named {channel.name!r}: names must differ"
                )
            seen.add(channel.name)
            named = channel.models if channel.models is not None else []
            for model in named:
                if model not in catalog:
                    raise ConfigError(
                        f"{self.source}: channel {channel.name!r} lists model {model!r}, which is not in the "
                        f"catalog: use {one_of(catalog.ids)}"
                    )
            channel.api_key(environ)
        self._check_aliases(catalog)
        catalog = catalog.with_aliases(self.aliases)  # an alias has its own price and wait, if given
        for model, seconds in self.routing.max_wait_by_model.items():
            if model not in catalog or not 0 <= seconds < float("inf"):
                raise ConfigError(
                    f"{self.source}: routing.max_wait_by_model.{model} = {seconds!r}: give seconds (0 or "
                    f"more) for catalog models: {one_of(catalog.ids)}"
                )
        for table, prices in (("prices", self.prices), ("batch_prices", self.batch_prices)):
            for model, price in prices.items():
                if model not in catalog or price < 0:
                    raise ConfigError(
                        f"{self.source}: {table}.{model} = {price!r}: prices are USD per image (0 or more) "
                        f"for catalog models: {one_of(catalog.ids)}"
                    )
        return self

    def _check_aliases(self, catalog: Catalog) -> None:
        for alias, target in self.aliases.items():
            where = f"{self.source}: aliases.{alias!r} = {target!r}"
            if not ALIAS_NAME.fullmatch(alias):
                raise ConfigError(
                    f"{where}: an alias is 1 to 64 letters, digits, '.', '_' or '-' (it stands in URL paths "
                    "such as models/{alias}:generateContent)"
                )
            if alias in catalog:
                raise ConfigError(f"{where}: {alias!r} is a catalog model already: an alias is a new name")
            if target not in catalog:
                raise ConfigError(
                    f"{where}: an alias names a catalog model (not another alias): use {one_of(catalog.ids)}"
                )


ALIAS_NAME = re.compile(r"[\w.-]{1,64}", re.ASCII)


def load_config(path: Path) -> GatewayConfig:
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read the channel file {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    try:
        return GatewayConfig.model_validate({**data, "source": str(path)})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = _location(data, first["loc"])
        raise ConfigError(f"{path}: {where}: {first['msg']} (got {first.get('input')!r})") from None


def _location(data: dict[str, Any], loc: tuple[int | str, ...]) -> str:
    """``channels[1] ("gemini").priority`` rather than pydantic's bare tuple."""
    parts: list[str] = []
    node: Any = data
    for step in loc:
        if isinstance(step, int):
            parts[-1] += f"[{step}]"
            if isinstance(node, list) and step < len(node):
                node = node[step]
                if isinstance(node, dict) and isinstance(node.get("name"), str):
                    parts[-1] += f" ({node['name']!r})"
        else:
            parts.append(str(step))
            node = node.get(step) if isinstance(node, dict) else None
    return ".".join(parts) or "the file"


def environment_channels(
    environ: Mapping[str, str] = os.environ, catalog: Catalog | None = None
) -> list[ChannelConfig]:
    """The channels a bare ``pixelgate serve`` makes from the upstream keys it finds in the environment."""
    channels = []
    google_key = next((k for k in ("GEMINI_API_KEY", "GOOGLE_API_KEY") if environ.get(k, "").strip()), None)
    if google_key:
        channels.append(
            ChannelConfig(
                name="google",
                provider="google",
                api_key_env=google_key,
                base_url=environ.get("GOOGLE_GEMINI_BASE_URL") or None,
                priority=1,
            )
        )
    if environ.get("OPENAI_API_KEY", "").strip():
        base_url = environ.get("OPENAI_BASE_URL") or None
        # OpenAI itself serves none of the Gemini models; an OpenAI-compatible gateway (seed 003, another
        # pixelgate) at OPENAI_BASE_URL is taken to serve them all.
        served = None if base_url else [s.id for s in catalog or default_catalog() if s.owned_by == "openai"]
        channels.append(
            ChannelConfig(
                name="openai",
                provider="openai",
                api_key_env="OPENAI_API_KEY",
                base_url=base_url,
                models=served,
            )
        )
    return channels


def resolve_config(
    settings: Settings, catalog: Catalog, environ: Mapping[str, str] = os.environ
) -> GatewayConfig:
    """The channels this server runs with: the channel file if there is one (``--emulate`` adds the
    emulator below its channels); else ``--emulate`` alone (an emulating server never calls a real
    upstream, whatever keys the environment holds); else the channels the environment's keys make."""
    path = settings.config or (DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.is_file() else None)
    if path is not None:
        config = load_config(path)
    elif settings.emulate:
        # The emulator alone: its injected faults are there to reach the client (to test its retries),
        # so the router passes each one on at once: no retry absorbs it, no cooldown turns the fourth
        # fault in a row into a 30 s wait, and an asynchronous task fails with it rather than waiting.
        config = GatewayConfig(
            routing=RoutingConfig(max_attempts=1, cooldown_seconds=0, requeue_async=False), source="--emulate"
        )
    else:
        config = GatewayConfig(channels=environment_channels(environ, catalog), source="the environment")
    if settings.emulate:
        lowest = min((c.priority for c in config.channels), default=1)
        emulator = ChannelConfig(
            name="emulator",
            provider="emulator",
            priority=lowest - 1,
            concurrency=10_000,
            timeout=max(600.0, settings.emulate_timeout_after + settings.emulate_latency + 60),
            options={
                "latency": settings.emulate_latency,
                "faults": settings.emulate_faults,
                "fault_seed": settings.emulate_fault_seed,
                "timeout_after": settings.emulate_timeout_after,
            },
        )
        config = config.model_copy(update={"channels": [*config.channels, emulator]})
    return config.check(catalog, environ)
