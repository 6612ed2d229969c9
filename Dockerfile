# The bot in a container: small, non-root, dependencies in their own cached layer.
# Models, SQLite (when used) and audio waiting for transcription live in the /data volume.

FROM python:3.11-slim AS deps
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /build
# Only the lock file: this layer is rebuilt when the pinned versions change, not the code;
# the image installs exactly what the tests ran with (scripts/lock writes the file).
COPY requirements/base.txt ./requirements.txt
RUN /opt/venv/bin/pip install --no-cache-dir -r requirements.txt

FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DATA_DIR=/data \
    HF_HOME=/data/models/huggingface
# git: /publish commits drafts to a repository (PUBLISH_GIT_DIR, e.g. a mounted clone).
RUN apt-get update \
    && apt-get install -y --no-install-recommends git openssh-client \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --create-home --uid 10001 bot \
    && mkdir -p /data \
    && chown bot:bot /data
COPY --from=deps /opt/venv /opt/venv
WORKDIR /app
# The bot finds migrations/ and prompts/ next to bot/, so the tree is copied as it is.
COPY alembic.ini ./
COPY migrations ./migrations
COPY prompts ./prompts
COPY bot ./bot

USER bot
VOLUME ["/data"]
# Webhook mode only (WEBHOOK_URL set); long polling needs no port.
EXPOSE 8443
# Applies migrations, loads the transcriber, then takes updates (polling or webhook).
CMD ["python", "-m", "bot"]
