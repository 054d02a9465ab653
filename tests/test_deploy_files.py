"""The deployment files: ``Dockerfile``, ``.dockerignore``, ``compose.yaml``, ``deploy/Caddyfile`` and
``deploy/env.example``.

No container engine runs here or in CI, so they are checked the two ways left: by reading them (the
structure that matters: a non-root user, the health check on /readyz, no test extras in the image, the
services, their health checks and start order, both pixelgate processes on one database, Redis and bucket,
the proxy in front of both), and by running the very command line the image runs: its ENTRYPOINT + CMD,
with its ENV and the compose service's environment (the values ``cp deploy/env.example .env`` gives, the
secrets filled in), pointed at the local PostgreSQL and Redis and a temporary data dir, with a Gemini
upstream simulated on loopback. Then the image's HEALTHCHECK command is run against that server.
"""

from __future__ import annotations

import contextlib
import io
import ipaddress
import json
import os
import re
import secrets
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import httpx
import openai
import pytest
import yaml
from packaging.specifiers import SpecifierSet
from packaging.version import Version
from PIL import Image

from conftest import PostgresDatabases, S3Service, ServerProcess, db_rows, free_port
from pixelgate.config import Settings
from test_usage_limits import REDIS_URL, redis_answers
from upstreams import GeminiSimulator

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "compose.yaml"
CADDYFILE = ROOT / "deploy" / "Caddyfile"
ENV_EXAMPLE = ROOT / "deploy" / "env.example"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

# The S3 blob store's settings: the MinIO they name is replaced here by the tests' S3 server (moto's).
S3_SETTINGS = frozenset(
    {
        "PIXELGATE_BLOB_STORE",
        "PIXELGATE_S3_ENDPOINT_URL",
        "PIXELGATE_BLOB_URLS",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_REGION",
    }
)
# Settings read by other code than pixelgate's Settings: the upstream keys (config.environment_channels).
UPSTREAM_SETTINGS = frozenset(
    {"GEMINI_API_KEY", "GOOGLE_GEMINI_BASE_URL", "OPENAI_API_KEY", "OPENAI_BASE_URL"}
)
FLASH = "gemini-3.1-flash-image"


# --- reading a Dockerfile ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str  # FROM, RUN, ... in upper case
    flags: dict[str, str]  # the --name=value options before the arguments
    rest: str  # the arguments after them, as written (continuation lines joined)

    @property
    def exec_form(self) -> list[str]:
        """The JSON array of an exec-form ENTRYPOINT, CMD or RUN (HEALTHCHECK: its CMD's)."""
        text = self.rest.removeprefix("CMD ").strip() if self.keyword == "HEALTHCHECK" else self.rest
        value = json.loads(text)
        assert isinstance(value, list) and all(isinstance(item, str) for item in value), text
        return value


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction:
        found = self.all(keyword)
        assert found, f"the stage from {self.base} has no {keyword}"
        return found[-1]

    def env(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for instruction in self.all("ENV"):
            for pair in shlex.split(instruction.rest):
                name, equals, value = pair.partition("=")
                assert equals, f"ENV {instruction.rest!r}: write NAME=value"
                values[name] = value
        return values


def parse_dockerfile(text: str) -> list[Stage]:
    """The stages of a Dockerfile, for the forms this project's uses: one instruction per logical line
    (backslash continuations joined, comment lines dropped, inside continuations too), flags as
    ``--name=value``, exec forms as JSON. No heredocs and no ``escape`` directive (asserted)."""
    assert not re.search(r"^#\s*escape\s*=", text, re.MULTILINE | re.IGNORECASE), "the parser knows \\ only"
    assert "<<" not in text, "the parser knows no heredocs"
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    assert not pending, "the last instruction ends with a continuation"
    stages: list[Stage] = []
    for line in lines:
        keyword, _, rest = line.partition(" ")
        flags: dict[str, str] = {}
        rest = rest.strip()
        while rest.startswith("--"):
            token, _, rest = rest.partition(" ")
            name, _, value = token[2:].partition("=")
            flags[name] = value
            rest = rest.strip()
        instruction = Instruction(keyword.upper(), flags, rest)
        if instruction.keyword == "FROM":
            base, *alias = rest.split()
            assert not alias or (len(alias) == 2 and alias[0].upper() == "AS"), line
            stages.append(Stage(base, alias[1] if alias else None))
        else:
            assert stages, f"{line!r} comes before any FROM"
            stages[-1].instructions.append(instruction)
    return stages


STAGES = parse_dockerfile(DOCKERFILE.read_text())
FINAL = STAGES[-1]
IMAGE_COMMAND = FINAL.last("ENTRYPOINT").exec_form + FINAL.last("CMD").exec_form


def option(argv: list[str], name: str) -> str:
    """The value of ``--name value`` in a command line."""
    assert argv.count(name) == 1, f"{name} once in {argv}"
    return argv[argv.index(name) + 1]


def replace_option(argv: list[str], name: str, value: str) -> list[str]:
    at = argv.index(name) + 1
    return [*argv[:at], value, *argv[at + 1 :]]


IMAGE_PORT = int(option(IMAGE_COMMAND, "--port"))
IMAGE_DATA_DIR = option(IMAGE_COMMAND, "--data-dir")


# --- reading .dockerignore --------------------------------------------------------------------------------


def _glob_regex(pattern: str) -> re.Pattern[str]:
    parts = re.split(r"(\*\*/|\*|\?)", pattern)
    wildcards = {"**/": "(?:.*/)?", "*": "[^/]*", "?": "[^/]"}
    return re.compile("".join(wildcards.get(part, re.escape(part)) for part in parts))


def sent_to_the_build(path: str, ignore_text: str) -> bool:
    """Whether ``docker build`` sends ``path`` (relative to the context): the last pattern that matches it or
    one of its parents decides, ``!`` taking it back in."""
    sent = True
    candidates = [str(p) for p in (PurePosixPath(path), *PurePosixPath(path).parents) if str(p) != "."]
    for line in ignore_text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keep = line.startswith("!")
        regex = _glob_regex(str(PurePosixPath(line.removeprefix("!"))))
        if any(regex.fullmatch(candidate) for candidate in candidates):
            sent = keep
    return sent


# --- reading compose.yaml ---------------------------------------------------------------------------------

COMPOSE_FILE: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE_FILE["services"]
PIXELGATES = sorted(name for name, service in SERVICES.items() if service.get("build") == ".")
VARIABLE = re.compile(r"\$(?:\$|\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\})")


def interpolate(value: str, variables: Mapping[str, str]) -> str:
    """Compose's ``${NAME}``, ``${NAME:-default}``, ``${NAME-default}``, ``${NAME:?error}``,
    ``${NAME?error}`` and ``$$``, as ``docker compose`` fills them in from ``.env``."""

    def one(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        if name is None:
            return "$"
        given = variables.get(name)
        missing = given is None or (given == "" and op is not None and op.startswith(":"))
        if op in (":?", "?") and missing:
            raise ValueError(f"compose would stop: {name}: {arg}")
        if op in (":-", "-") and missing:
            return arg
        return given or ""

    return VARIABLE.sub(one, value)


def variables_used() -> set[str]:
    return {match["name"] for match in VARIABLE.finditer(COMPOSE.read_text()) if match["name"]}


def env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, equals, value = line.partition("=")
            assert equals, f"env.example: {line!r} is not NAME=value"
            values[name.strip()] = value.strip()
    return values


def service_env(service: str, variables: Mapping[str, str]) -> dict[str, str]:
    given = SERVICES[service].get("environment", {})
    assert isinstance(given, dict), f"{service}: write environment as a mapping"
    return {name: interpolate(str(value), variables) for name, value in given.items()}


def filled_in() -> dict[str, str]:
    """The variables of a ``.env`` made from env.example, its secrets filled in."""
    variables = env_example()
    for name in ("PIXELGATE_ADMIN_KEY", "POSTGRES_PASSWORD", "MINIO_ROOT_PASSWORD"):
        assert variables[name] == "", f"env.example leaves {name} for the operator to choose"
        variables[name] = secrets.token_urlsafe(24)
    return variables


# --- the Dockerfile ---------------------------------------------------------------------------------------


def test_the_image_is_built_in_stages_on_a_python_that_pyproject_allows() -> None:
    assert len(STAGES) >= 2, "a build stage and the image"
    build = next(stage for stage in STAGES if stage.name is not None)
    for stage in (build, FINAL):
        match = re.fullmatch(r"python:(\d+\.\d+)-slim(?:-\w+)?", stage.base)
        assert match, f"{stage.base}: a slim Python image, by minor version"
        assert Version(match[1]) in SpecifierSet(PYPROJECT["project"]["requires-python"]), stage.base
    assert build.base == FINAL.base, "the wheels are built for the Python that installs them"
    built = " ".join(i.rest for i in build.all("RUN"))
    assert re.search(r"pip wheel .*--wheel-dir /wheels \.$|python -m build", built), built


def test_the_image_installs_the_wheels_without_test_extras() -> None:
    installs = [i for i in FINAL.all("RUN") if "pip install" in i.rest]
    assert len(installs) == 1, installs
    install = installs[0]
    assert install.flags["mount"] == "type=bind,from=build,source=/wheels,target=/wheels", install.flags
    words = shlex.split(install.rest)
    assert words[:2] == ["pip", "install"] and "--no-index" in words, "from the build stage's wheels only"
    assert words[-1] == PYPROJECT["project"]["name"], "pixelgate alone, with no [extras]"
    extras = PYPROJECT["project"]["optional-dependencies"]
    unwanted = {re.split(r"[<>=\[ ]", requirement)[0] for name in extras for requirement in extras[name]}
    everything = " ".join(i.rest for i in FINAL.instructions)
    assert "[" not in install.rest and not unwanted & set(re.findall(r"[\w.-]+", everything)), everything


def test_the_image_runs_as_a_user_of_its_own_who_owns_the_data_dir() -> None:
    user = FINAL.last("USER").rest
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) != 0 and gid != "0", (
        f"USER {user}: numeric, so that runAsNonRoot sees it"
    )
    setup = " ".join(i.rest for i in FINAL.all("RUN"))
    assert f"groupadd --system --gid {gid} pixelgate" in setup
    assert f"useradd --system --uid {uid} --gid pixelgate" in setup
    assert re.search(rf"install --directory --owner pixelgate --group pixelgate .*{IMAGE_DATA_DIR}$", setup)
    assert FINAL.last("WORKDIR").rest == IMAGE_DATA_DIR, "its working directory is the data dir"
    # Everything that runs as root comes before USER.
    assert FINAL.instructions.index(FINAL.last("USER")) > FINAL.instructions.index(FINAL.all("RUN")[-1])


def test_the_image_serves_its_port_on_every_interface_and_checks_readyz() -> None:
    assert IMAGE_COMMAND[:2] == ["pixelgate", "serve"], "exec form: pixelgate is PID 1 and gets SIGTERM"
    assert option(IMAGE_COMMAND, "--host") == "0.0.0.0"
    assert FINAL.last("EXPOSE").rest == str(IMAGE_PORT)
    check = FINAL.last("HEALTHCHECK")
    assert check.rest.startswith("CMD ["), "exec form: a slim image has no curl, python asks"
    assert f"http://127.0.0.1:{IMAGE_PORT}/readyz" in " ".join(check.exec_form)
    assert {"interval", "timeout", "start-period", "retries"} <= check.flags.keys()


def test_the_build_context_is_what_the_dockerfile_copies_and_nothing_else() -> None:
    ignore = (ROOT / ".dockerignore").read_text()
    copied = [word for stage in STAGES for i in stage.all("COPY") for word in shlex.split(i.rest)[:-1]]
    assert copied, "the build stage copies the sources"
    for source in copied:
        top = ROOT / source
        paths = (
            [top]
            if top.is_file()
            else [p for p in top.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
        )
        assert paths, source
        for path in paths:
            relative = path.relative_to(ROOT).as_posix()
            assert sent_to_the_build(relative, ignore), (
                f"{relative} is copied but .dockerignore leaves it out"
            )
    for secret_or_bulk in (
        ".env",
        ".git/config",
        ".venv/bin/python",
        "tests/conftest.py",
        "pixelgate-data/x",
    ):
        assert not sent_to_the_build(secret_or_bulk, ignore), f"{secret_or_bulk} would be sent to the build"
    assert not sent_to_the_build("src/pixelgate/__pycache__/cli.cpython-311.pyc", ignore)


# --- compose.yaml, the proxy and env.example --------------------------------------------------------------


def test_compose_runs_two_pixelgates_beside_postgres_redis_and_minio() -> None:
    assert PIXELGATES == ["pixelgate-1", "pixelgate-2"]
    assert set(SERVICES) == {*PIXELGATES, "proxy", "postgres", "redis", "minio", "minio-init"}
    for name in PIXELGATES:
        service = SERVICES[name]
        assert "command" not in service and "entrypoint" not in service, "the image's own command line runs"
        assert service["pull_policy"] == "build", "never an image of that name from a registry"
        assert f"pixelgate-data:{IMAGE_DATA_DIR}" in service["volumes"]
        assert service["depends_on"] == {
            "postgres": {"condition": "service_healthy"},
            "redis": {"condition": "service_healthy"},
            "minio-init": {"condition": "service_completed_successfully"},
        }
    published = {name for name, service in SERVICES.items() if service.get("ports")}
    assert published == {"proxy"}, "one port: the proxy's; the database, Redis and MinIO stay inside"


def test_every_service_that_others_wait_for_has_a_health_check() -> None:
    for name, service in SERVICES.items():
        if name == "minio-init":
            assert service["restart"] == "no", "a one-shot"
            continue
        if name in PIXELGATES:
            assert FINAL.all("HEALTHCHECK"), "pixelgate's health check is the image's"
            continue
        test = service["healthcheck"]["test"]
        assert test[0] == "CMD" and len(test) > 1, f"{name}: an exec-form health check"
    for name, service in SERVICES.items():
        for needed, how in service.get("depends_on", {}).items():
            assert needed in SERVICES, f"{name} waits for {needed}, which is not a service"
            if how["condition"] == "service_healthy":
                assert needed in PIXELGATES or "healthcheck" in SERVICES[needed], f"{name} -> {needed}"
    assert SERVICES["minio"]["healthcheck"]["test"] == ["CMD", "mc", "ready", "local"]
    assert "/readyz" in SERVICES["proxy"]["healthcheck"]["test"][-1]


def test_both_pixelgates_share_one_database_redis_and_bucket() -> None:
    variables = filled_in()
    first, second = (service_env(name, variables) for name in PIXELGATES)
    assert first == second, "the same settings, secrets included"
    database = urlsplit(first["PIXELGATE_DATABASE_URL"])
    postgres = service_env("postgres", variables)
    assert database.scheme == "postgresql+asyncpg" and database.hostname == "postgres"
    assert (database.username, database.password, database.path) == (
        postgres["POSTGRES_USER"],
        postgres["POSTGRES_PASSWORD"],
        f"/{postgres['POSTGRES_DB']}",
    )
    assert urlsplit(first["PIXELGATE_REDIS_URL"]).hostname == "redis"
    assert urlsplit(first["PIXELGATE_S3_ENDPOINT_URL"]).hostname == "minio"
    bucket = urlsplit(first["PIXELGATE_BLOB_STORE"])
    made = [interpolate(word, variables) for word in SERVICES["minio-init"]["command"]]
    assert bucket.scheme == "s3" and made[-1] == f"minio/{bucket.hostname}", "the bucket minio-init makes"
    minio = service_env("minio", variables)
    assert (first["AWS_ACCESS_KEY_ID"], first["AWS_SECRET_ACCESS_KEY"]) == (
        minio["MINIO_ROOT_USER"],
        minio["MINIO_ROOT_PASSWORD"],
    )
    assert first["PIXELGATE_BLOB_URLS"] in ("pixelgate", "presigned")
    assert len(first["PIXELGATE_ADMIN_KEY"]) >= 16


def test_every_setting_given_to_pixelgate_is_one_it_reads() -> None:
    known = {f"PIXELGATE_{name.upper()}" for name in Settings.model_fields}
    for name in SERVICES[PIXELGATES[0]]["environment"]:
        assert name in known | S3_SETTINGS | UPSTREAM_SETTINGS, f"{name}: no such setting (a typo?)"
    # serve's own flags win over these three, so the environment cannot set them: the image's CMD does.
    assert not {"PIXELGATE_HOST", "PIXELGATE_PORT", "PIXELGATE_DATA_DIR"} & set(FINAL.env())


def test_the_proxy_routes_to_both_pixelgates_and_is_the_one_they_trust() -> None:
    proxy = SERVICES["proxy"]
    assert proxy["image"].startswith("caddy:2")
    assert "./deploy/Caddyfile:/etc/caddy/Caddyfile:ro" in proxy["volumes"]
    assert proxy["depends_on"] == {name: {"condition": "service_healthy"} for name in PIXELGATES}
    (published,) = proxy["ports"]
    inside = published.rsplit(":", 1)[1]
    lines = [line for line in CADDYFILE.read_text().splitlines() if line.strip() and line.strip()[0] != "#"]
    caddyfile = [line.split() for line in lines]
    sites = [line.split()[0] for line in lines if not line[0].isspace() and line.endswith("{")]
    assert sites == [f":{inside}"], "one site, on the port compose publishes"
    (upstreams,) = [words[1:-1] for words in caddyfile if words[0] == "reverse_proxy"]
    assert sorted(upstreams) == [f"{name}:{IMAGE_PORT}" for name in PIXELGATES]
    directives = {words[0]: words[1:] for words in caddyfile}
    assert directives["health_uri"] == ["/readyz"]
    assert directives["flush_interval"] == ["-1"], "streams are not buffered"
    address = proxy["networks"]["default"]["ipv4_address"]
    (subnet,) = (entry["subnet"] for entry in COMPOSE_FILE["networks"]["default"]["ipam"]["config"])
    assert ipaddress.ip_address(address) in ipaddress.ip_network(subnet)
    trusted = service_env(PIXELGATES[0], filled_in())["PIXELGATE_FORWARDED_ALLOW_IPS"]
    assert Settings(forwarded_allow_ips=trusted).forwarded_allow_ips == [address]


def test_env_example_names_every_variable_compose_uses_and_env_stays_untracked() -> None:
    assert variables_used() <= env_example().keys(), variables_used() - env_example().keys()
    for required in ("PIXELGATE_ADMIN_KEY", "POSTGRES_PASSWORD", "MINIO_ROOT_PASSWORD"):
        with pytest.raises(ValueError, match=required):  # compose stops until the operator fills it in
            service_env(PIXELGATES[0], {**filled_in(), required: ""})
    ignored = subprocess.run(
        ["git", "check-ignore", "--no-index", "-q", ".env"], cwd=ROOT, check=False
    ).returncode
    assert ignored == 0, ".gitignore keeps .env (the secrets) out of the repository"


# --- the image's command line, run -------------------------------------------------------------------------


@dataclass
class ImageProcess(ServerProcess):
    """The image's ENTRYPOINT + CMD, in its WORKDIR, with only the environment a container would have."""

    argv: list[str] = field(default_factory=list)
    container_env: dict[str, str] = field(default_factory=dict)

    def command(self) -> list[str]:
        return self.argv

    def environment(self) -> dict[str, str]:
        return self.container_env


def container_path() -> str:
    """PATH in the container puts the Python that has pixelgate first (/usr/local/bin); here, this one's."""
    return f"{Path(sys.executable).parent}{os.pathsep}{os.defpath}"


@pytest.fixture(scope="module")
def gemini() -> Iterator[GeminiSimulator]:
    with GeminiSimulator(api_key="gemini-" + secrets.token_hex(8)) as sim:
        yield sim


@pytest.fixture(scope="module")
def image(
    postgres: PostgresDatabases | None,
    gemini: GeminiSimulator,
    s3: S3Service,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ImageProcess]:
    if postgres is None:
        pytest.skip("the image runs on PostgreSQL here: set PIXELGATE_TEST_DATABASE_URL")
    if not redis_answers():
        pytest.skip(f"no Redis answers at {REDIS_URL}")
    variables = {**filled_in(), "GEMINI_API_KEY": gemini.api_key or "", "GOOGLE_GEMINI_BASE_URL": gemini.url}
    database_url = postgres.create()
    # The compose hosts (postgres, redis, minio) are these, on this machine; the bucket is the one compose's
    # minio-init makes, made here in the S3 server instead.
    local = {
        "PIXELGATE_DATABASE_URL": database_url,
        "PIXELGATE_REDIS_URL": REDIS_URL,
        "PIXELGATE_S3_ENDPOINT_URL": s3.endpoint_url,
    }
    given = service_env(PIXELGATES[0], variables)
    assert local.keys() <= given.keys()
    bucket = urlsplit(given["PIXELGATE_BLOB_STORE"]).hostname
    assert bucket
    with contextlib.suppress(Exception):  # made already by an earlier run of this module
        s3.client().create_bucket(Bucket=bucket)
    settings = {**given, **local}
    data_dir = tmp_path_factory.mktemp("image-data")
    port = free_port()
    argv = replace_option(replace_option(IMAGE_COMMAND, "--port", str(port)), "--data-dir", str(data_dir))
    container_env = {
        **FINAL.env(),
        **settings,
        "PATH": container_path(),
        "HOME": str(data_dir),  # the user's home is the data dir
        "LANG": "C.UTF-8",  # as the python images set it
        # Where the image has pixelgate installed, this run finds this checkout's sources.
        **({"PYTHONPATH": os.environ["PYTHONPATH"]} if "PYTHONPATH" in os.environ else {}),
    }
    server = ImageProcess(
        data_dir=data_dir,
        database_url=database_url,
        port=port,
        cwd=data_dir,
        argv=argv,
        container_env=container_env,
    )
    server.start(timeout=60)
    yield server
    server.stop()


def healthcheck(port: int) -> subprocess.CompletedProcess[str]:
    """The image's HEALTHCHECK command, its port made ``port``, with the image's environment."""
    command = [word.replace(f":{IMAGE_PORT}/", f":{port}/") for word in FINAL.last("HEALTHCHECK").exec_form]
    env = {**FINAL.env(), "PATH": container_path()}
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=30, check=False)


def test_the_image_starts_with_keys_on_and_is_ready(image: ImageProcess) -> None:
    ready = httpx.get(f"{image.url}/readyz", timeout=10)
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"database": "ok", "workers": "running"}
    log = image.log()
    assert "it listens on 0.0.0.0, beyond loopback" in log and "PIXELGATE_ADMIN_KEY is set" in log, log
    assert "made the admin key" not in log, "the admin key is the one from .env"
    assert not (image.data_dir / "admin-key").exists()
    refused = httpx.get(f"{image.url}/v1/models", timeout=10)
    assert refused.status_code == 401, "no key, no answer"


def test_a_generation_with_the_admin_key_reaches_the_upstream(
    image: ImageProcess, gemini: GeminiSimulator, s3: S3Service
) -> None:
    admin_key = image.container_env["PIXELGATE_ADMIN_KEY"]
    client = openai.OpenAI(base_url=f"{image.url}/v1", api_key=admin_key, max_retries=0, timeout=60)
    response = client.images.generate(model=FLASH, prompt="a lighthouse at dusk", size="1024x1024")
    assert response.data and response.data[0].url, response
    fetched = httpx.get(response.data[0].url, timeout=30)  # a signed URL: no key needed
    assert fetched.status_code == 200, fetched.text
    assert Image.open(io.BytesIO(fetched.content)).size == (1024, 1024)
    assert len(gemini.calls(":generateContent")) == 1, "the upstream the environment named"
    assert db_rows(image, "SELECT count(*) FROM tasks") == [(1,)], "kept in PostgreSQL, not in SQLite"
    assert not (image.data_dir / "pixelgate.db").exists()
    store = urlsplit(image.container_env["PIXELGATE_BLOB_STORE"])
    task_id = response.data[0].url.split("/blobs/")[1].split("/")[0]
    listed = s3.client().list_objects_v2(Bucket=store.hostname, Prefix=f"{store.path.strip('/')}/{task_id}/")
    assert listed.get("Contents"), "the image went to the bucket compose names"
    assert not (image.data_dir / "blobs").exists()


def test_the_healthcheck_command_passes_against_the_server_and_fails_without_one(image: ImageProcess) -> None:
    passed = healthcheck(image.port)
    assert passed.returncode == 0, passed.stderr
    failed = healthcheck(free_port())
    assert failed.returncode != 0 and "Connection refused" in failed.stderr, failed.stderr
