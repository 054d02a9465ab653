"""The command line, run as a user runs it: ``python -m pixelgate ...`` in a child process."""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from conftest import MakeServer, ServerProcess, free_port, png_bytes
from pixelgate.catalog import default_catalog

BOX = str.maketrans("", "", "│╭╮╰╯─┃┏┓┗┛━")


def pixelgate(*args: str, columns: int = 80, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": str(columns), "NO_COLOR": "1", "TERM": "dumb"}
    env.pop("PIXELGATE_SERVER", None)
    return subprocess.run(
        [sys.executable, "-m", "pixelgate", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        stdin=subprocess.DEVNULL,
    )


def said(result: subprocess.CompletedProcess[str]) -> str:
    """stdout and stderr as one line of words: rich wraps long lines and draws boxes round errors."""
    return " ".join((result.stdout + result.stderr).translate(BOX).split())


def saved_images(folder: Path) -> list[Image.Image]:
    images = []
    for path in sorted(folder.iterdir()):
        with Image.open(path) as image:
            image.load()
            images.append(image)
    return images


# --- pixelgate models ---------------------------------------------------------------------------------------


def test_models_lists_every_catalog_id_on_a_wide_terminal() -> None:
    result = pixelgate("models", columns=250)
    assert result.returncode == 0, result.stderr
    for spec in default_catalog():
        assert spec.id in result.stdout, spec.id
    # Each size's published price (models.toml, read 2026-12-06 from Google's Gemini API pricing):
    # gemini-3-pro-image is 1120 tokens at 1K/2K and 2000 at 4K, at $120 per 1M image output tokens.
    assert "1K $0.1344 2K $0.1344 4K $0.2400" in result.stdout
    assert "1K $0.0387" in result.stdout  # gemini-2.5-flash-image: 1290 tokens x $30 per 1M


def test_models_lists_every_catalog_id_at_80_columns() -> None:
    result = pixelgate("models", columns=80)
    assert result.returncode == 0, result.stderr
    missing = [spec.id for spec in default_catalog() if spec.id not in result.stdout]
    assert not missing, f"ids not shown whole: {missing}"


# --- pixelgate generate -------------------------------------------------------------------------------------


def test_generate_saves_n_images_of_the_catalog_size(server: ServerProcess, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    result = pixelgate(
        "generate", "a red fox", "--model", "gemini-3.1-flash-image", "--aspect", "16:9", "--resolution", "512",
        "-n", "2", "-o", str(out), "--server", server.url,
    )  # fmt: skip
    assert result.returncode == 0, said(result)
    files = sorted(out.iterdir())
    assert len(files) == 2
    assert all(path.suffix == ".png" and path.name.startswith("task_img_") for path in files)
    images = saved_images(out)
    assert [(image.format, image.size) for image in images] == [("PNG", (688, 384))] * 2
    assert files[0].read_bytes() != files[1].read_bytes(), "the two images differ"
    assert "688x384" in said(result)


def test_generate_with_a_reference(server: ServerProcess, tmp_path: Path) -> None:
    reference = tmp_path / "ref.png"
    reference.write_bytes(png_bytes(64, 48, (255, 0, 0)))
    out = tmp_path / "out"
    out.mkdir()
    result = pixelgate(
        "generate", "this, as a poster", "--resolution", "512", "-r", str(reference), "--seed", "5",
        "-o", str(out), "--server", server.url,
    )  # fmt: skip
    assert result.returncode == 0, said(result)
    (image,) = saved_images(out)
    # No --aspect: the output follows the reference (64x48 is 4:3), so the reference reached the server.
    assert image.size == (600, 448)
    side, margin = 448 // 6, 448 // 24
    assert image.convert("RGB").getpixel((margin + side // 2, 448 - margin - side // 2)) == (255, 0, 0)


def test_generate_with_a_missing_reference_file(server: ServerProcess, tmp_path: Path) -> None:
    result = pixelgate("generate", "x", "-r", str(tmp_path / "nope.png"), "--server", server.url)
    assert result.returncode != 0
    # rich breaks a path longer than the line anywhere, even inside the file's name
    assert "nope.png" in said(result).replace(" ", "") and "does not exist" in said(result)


def test_unsupported_resolution_exits_with_the_servers_message(server: ServerProcess, tmp_path: Path) -> None:
    result = pixelgate("generate", "x", "--resolution", "8K", "-o", str(tmp_path), "--server", server.url)
    assert result.returncode == 2, "input the server refused is bad usage"
    assert (
        "400: resolution '8K' is not valid for gemini-3.1-flash-image: use 512, 1K, 2K or 4K (uppercase K)"
        in said(result)
    )
    assert result.stdout == "" and list(tmp_path.iterdir()) == []


def test_unsupported_aspect_exits_with_the_servers_message(server: ServerProcess) -> None:
    result = pixelgate(
        "generate", "x", "--model", "gemini-2.5-flash-image", "--aspect", "1:8", "--server", server.url
    )
    assert result.returncode == 2
    assert "aspect ratio 1:8 is not offered by gemini-2.5-flash-image: use 1:1, 2:3, 3:2" in said(result)


def test_unreachable_server(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = pixelgate("generate", "x", "-o", str(tmp_path), "--server", url)
    assert result.returncode == 5
    message = said(result)
    assert f"cannot reach {url}" in message
    assert "pixelgate serve --emulate" in message
    assert "Traceback" not in message


@pytest.fixture(scope="module")
def failing_server(backend: str, make_server: MakeServer) -> ServerProcess:
    return make_server(backend, "--emulate", "--emulate-faults", "503:1")


def test_failed_task_exits_with_its_error(failing_server: ServerProcess, tmp_path: Path) -> None:
    result = pixelgate("generate", "x", "-o", str(tmp_path), "--server", failing_server.url)
    assert result.returncode == 1
    message = said(result)
    assert "failed: the emulated upstream answered HTTP 503 (injected fault)" in message
    assert list(tmp_path.iterdir()) == []


@pytest.fixture()
def not_pixelgate() -> Iterator[str]:
    """An HTTP server that is not pixelgate: it answers every request with an HTML 404 page."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            body = b"<html><body><h1>404 Not Found</h1></body></html>"
            self.send_response(404)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_a_server_that_is_not_pixelgate(not_pixelgate: str, tmp_path: Path) -> None:
    result = pixelgate("generate", "x", "-o", str(tmp_path), "--server", not_pixelgate)
    assert result.returncode == 5
    message = said(result)
    assert "Traceback" not in message and "JSONDecodeError" not in message
    assert "404" in message


# --- pixelgate serve ----------------------------------------------------------------------------------------


def test_serve_refuses_an_unknown_fault(tmp_path: Path) -> None:
    result = pixelgate(
        "serve", "--emulate", "--emulate-faults", "bogus:1", "--port", str(free_port()),
        "--data-dir", str(tmp_path / "data"), timeout=30,
    )  # fmt: skip
    assert result.returncode != 0
    assert "fault 'bogus' in 'bogus:1' is not known: use 429, 500, 502, 503 or timeout" in said(result)


def test_serve_fault_error_names_the_option_without_pydantic_noise(tmp_path: Path) -> None:
    result = pixelgate(
        "serve", "--emulate", "--emulate-faults", "bogus:1", "--port", str(free_port()),
        "--data-dir", str(tmp_path / "data"), timeout=30,
    )  # fmt: skip
    assert result.returncode == 2
    message = said(result)
    assert "--emulate-faults" in message
    assert "validation error for Settings" not in message
    assert "errors.pydantic.dev" not in message


@pytest.mark.parametrize("plan", ["429:1.5", "429:0.6,503:0.5"])
def test_serve_refuses_bad_rates(tmp_path: Path, plan: str) -> None:
    result = pixelgate(
        "serve", "--emulate", "--emulate-faults", plan, "--port", str(free_port()),
        "--data-dir", str(tmp_path / "data"), timeout=30,
    )  # fmt: skip
    assert result.returncode != 0
    assert f"in '{plan}'" in said(result)


def test_help_lists_the_commands() -> None:
    result = pixelgate("--help", columns=120)
    assert result.returncode == 0
    assert {"serve", "models", "generate"} <= set(said(result).split())


def test_serve_takes_its_settings_from_the_environment_when_no_flag_is_given(tmp_path: Path) -> None:
    """PIXELGATE_* variables configure a container (the Dockerfile sets only a few flags): a flag's own
    default must not hide them."""
    port = free_port()
    env = {
        **os.environ,
        "PIXELGATE_PORT": str(port),
        "PIXELGATE_DATA_DIR": str(tmp_path / "from-env"),
        "PIXELGATE_EMULATE": "true",
        "PIXELGATE_EMULATE_LATENCY": "0.01",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "pixelgate", "serve", "--log-level", "warning"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        server = ServerProcess(data_dir=tmp_path / "from-env", port=port)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                made = httpx.post(
                    f"{server.url}/v1/images/generations",
                    json={
                        "model": "gemini-3.1-flash-image",
                        "prompt": "x",
                        "resolution": "512",
                        "async": False,
                    },
                    timeout=30,
                )
                break
            except httpx.TransportError:
                assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
                time.sleep(0.1)
        else:
            raise AssertionError(f"nothing listened on PIXELGATE_PORT {port}")
        assert made.status_code == 200, made.text  # PIXELGATE_EMULATE: the emulator answered
        assert (tmp_path / "from-env" / "blobs").is_dir(), "PIXELGATE_DATA_DIR holds the images"
        assert not (tmp_path / "pixelgate-data").exists()
    finally:
        process.terminate()
        process.wait(30)
