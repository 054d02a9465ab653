"""The processes a benchmark compares: the fixed-image upstream, pixelgate relaying to it, LiteLLM, and the
bare gateway (the least code that relays and stores each image)."""

from __future__ import annotations

from pathlib import Path

import httpx

from bench.common import Service, free_port, python_command

MODEL = "gemini-3.1-flash-image"  # pixelgate's public name; the upstream is asked for "bench-image"
UPSTREAM_MODEL = "bench-image"


def upstream(workdir: Path, image: str, latency: float = 0.0) -> Service:
    port = free_port()
    command = python_command("-m", "bench.upstream", "--port", str(port), "--image", image)
    return Service(
        name=f"upstream ({image})",
        command=[*command, "--latency", str(latency)],
        health_url=f"http://127.0.0.1:{port}/healthz",
        log_path=workdir / f"upstream-{port}.log",
    )


def base_url(service: Service) -> str:
    """``http://127.0.0.1:<port>``: the service's address without its health path."""
    scheme, _, host, *_ = service.health_url.split("/", 3)
    return f"{scheme}//{host}"


def generations(up: Service) -> int:
    """How many images the upstream has answered: the count CPU per image is divided by."""
    return int(httpx.get(f"{base_url(up)}/stats", timeout=10).json()["generations"])


class CpuPerImage:
    """The CPU time of some processes per image the upstream makes, from now until :meth:`ms` is read.
    Warm-up requests are counted in both (each makes one image, and its CPU is counted too)."""

    def __init__(self, up: Service, *services: Service | None) -> None:
        self.up = up
        self.services = services
        self.made = generations(up)
        self.cpu = [service.cpu_seconds() if service is not None else 0.0 for service in services]

    def ms(self) -> list[float | None]:
        """Milliseconds of CPU per image for each service (None for a service not given), rounded."""
        images = max(1, generations(self.up) - self.made)
        return [
            round((service.cpu_seconds() - before) / images * 1000, 1) if service is not None else None
            for service, before in zip(self.services, self.cpu, strict=True)
        ]


def pixelgate_serve(workdir: Path, name: str, *args: str, env: dict[str, str] | None = None) -> Service:
    """``pixelgate serve ARGS`` as one process on a free port, with SQLite in a fresh data dir: every task
    is persisted, as in production."""
    port = free_port()
    data_dir = workdir / f"pixelgate-{port}"
    data_dir.mkdir(parents=True)
    command = python_command(
        "-m", "pixelgate", "serve", "--port", str(port), "--data-dir", str(data_dir), "--log-level", "warning"
    )
    return Service(
        name=name,
        command=[*command, *args],
        health_url=f"http://127.0.0.1:{port}/healthz",
        env=env or {},
        log_path=workdir / f"pixelgate-{port}.log",
        data_dir=data_dir,
    )


def pixelgate(
    workdir: Path,
    upstream_url: str,
    *args: str,
    concurrency: int = 1024,
    worker_concurrency: int = 1024,
    name: str = "pixelgate",
    env: dict[str, str] | None = None,
) -> Service:
    """pixelgate relaying to ``upstream_url`` (an OpenAI Images API) through one ``openai`` channel;
    ``args``: more ``serve`` flags (``--blob-store s3://…``)."""
    config = workdir / f"pixelgate-{free_port()}.toml"
    config.write_text(
        f"""
[[channels]]
name = "bench"
provider = "openai"
base_url = "{upstream_url}/v1"
api_key_env = "BENCH_UPSTREAM_KEY"
models = {{ "{MODEL}" = "{UPSTREAM_MODEL}" }}
concurrency = {concurrency}
timeout = 600
"""
    )
    return pixelgate_serve(
        workdir,
        name,
        "--no-auth",  # a real upstream's channel would require keys, which the load clients do not send
        "--config",
        str(config),
        "--worker-concurrency",
        str(worker_concurrency),
        *args,
        env={"BENCH_UPSTREAM_KEY": "bench", **(env or {})},
    )


def bare(workdir: Path, upstream_url: str) -> Service:
    """``bench.bare``: the least code that relays and stores each image, the baseline of CPU per image."""
    port = free_port()
    data_dir = workdir / f"bare-{port}"
    command = python_command("-m", "bench.bare", "--port", str(port), "--upstream", upstream_url)
    return Service(
        name="bare",
        command=[*command, "--data-dir", str(data_dir)],
        health_url=f"http://127.0.0.1:{port}/healthz",
        log_path=workdir / f"bare-{port}.log",
        data_dir=data_dir,
    )


def litellm(workdir: Path, executable: Path, upstream_url: str) -> Service:
    """The LiteLLM proxy, one process, relaying ``bench-image`` to ``upstream_url``."""
    from bench.litellm_proxy import litellm_service

    return litellm_service(executable, upstream_url, free_port(), workdir)
