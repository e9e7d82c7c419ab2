# Production image of the leaderboard: gunicorn serving "leaderboard:create_app()" as a non-root
# user, with the project's locked dependencies installed by uv.
#
#   docker build -t grader .
#   docker run -p 8000:8000 -v grader-data:/data -e GRADER_DATA_DIR=/data/datasets grader
#   docker run -v grader-data:/data grader grader roster import /data/roster.csv
#   docker run --cap-add SYS_ADMIN -v grader-data:/data grader grader worker   # model jobs (bwrap)
#   docker run --cap-add SYS_ADMIN -v datasets:/data/datasets grader grader worker \
#       --server https://server:8000 --token WORKER_TOKEN --broker redis://server:6379/0
#
# `grader serve` runs gunicorn's threaded workers with header and body timeouts, so slow clients
# cannot hold the site; facing the internet, publish the port to a buffering reverse proxy only
# (README, "Deployment: slow clients and a reverse proxy").
#
# State lives in /data: the SQLite database (or set GRADER_DATABASE_URL to PostgreSQL; uploads are
# stored in the database) and the datasets (mount them; the container has no network access to
# download them). Set GRADER_BROKER_URL to a Redis to send model jobs to remote workers.
FROM python:3.11-slim-bookworm

# bubblewrap: the sandbox for model submissions run by `grader worker`.
RUN apt-get update \
    && apt-get install -y --no-install-recommends bubblewrap \
    && rm -rf /var/lib/apt/lists/*

COPY --from=ghcr.io/astral-sh/uv:0.5 /uv /usr/local/bin/uv

ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PROJECT_ENVIRONMENT=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1

WORKDIR /app
# Dependencies first (cached while only the code changes), then the project itself.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --extra models --extra server --no-install-project
COPY grader ./grader
COPY reference ./reference
COPY leaderboard ./leaderboard
RUN uv sync --frozen --no-dev --extra models --extra server --compile-bytecode

RUN useradd --system --create-home --uid 10001 grader \
    && mkdir -p /data \
    && chown -R grader:grader /data
USER grader

ENV GRADER_DATABASE_URL=sqlite:////data/grader.db \
    GRADER_DATA_DIR=/data/datasets

VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s CMD python -c \
    "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/api/v1/leaderboard')"
CMD ["grader", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "4", "--threads", "8", \
     "--header-timeout", "10", "--read-timeout", "30"]
