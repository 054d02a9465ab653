# syntax=docker/dockerfile:1
#
# pixelgate's image: `docker build -t pixelgate .`, then
#   docker run -p 8000:8000 -e PIXELGATE_ADMIN_KEY=... -e GEMINI_API_KEY=... -v pixelgate-data:/data pixelgate
# Listening on 0.0.0.0 turns API keys on (auth/exposure.py): give it PIXELGATE_ADMIN_KEY (16 characters or
# more), or it makes one on the first start and writes it to /data/admin-key. Everything else comes from
# the environment too (PIXELGATE_DATABASE_URL, PIXELGATE_REDIS_URL, PIXELGATE_PUBLIC_URL, GEMINI_API_KEY,
# OPENAI_API_KEY, PIXELGATE_CONFIG for a channel file, ...); compose.yaml runs two of these behind one port.
# tests/test_deploy_files.py reads this file and runs its ENTRYPOINT + CMD and its HEALTHCHECK.

# --- build: the wheel of pixelgate and of everything it needs ---------------------------------------------
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY src ./src
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

# --- the image: those wheels installed (no test extras), run as a user of its own -------------------------
FROM python:3.11-slim-bookworm
ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
# From the build stage's wheels only (--no-index): nothing is fetched here, and no wheel stays in a layer.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links /wheels pixelgate
RUN groupadd --system --gid 10001 pixelgate \
    && useradd --system --uid 10001 --gid pixelgate --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin pixelgate \
    && install --directory --owner pixelgate --group pixelgate --mode 0750 /data
WORKDIR /data
USER 10001:10001
EXPOSE 8000
# /readyz: the database answers and the workers claim tasks (no key needed). Slim images have no curl.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=4)"]
# `serve` ignores PIXELGATE_HOST, PIXELGATE_PORT and PIXELGATE_DATA_DIR (its flags' defaults win), so
# those three are flags here; the rest of the configuration is read from the environment.
ENTRYPOINT ["pixelgate"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000", "--data-dir", "/data"]
