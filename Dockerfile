# The bot in a container: small, non-root, dependencies in their own cached layer.
# Models, SQLite (when used) and audio waiting for transcription live in the /data volume.
#
# No `# syntax=` line on purpose: it makes BuildKit fetch a frontend image from Docker Hub
# before building, so the image would not build on a machine that only reaches a package
# mirror. The build needs its base image and the package indexes (PyPI, Debian), nothing else.
# Another base (a mirror's copy, a pinned digest): --build-arg PYTHON_IMAGE=...
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS deps
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /build
# Only the lock file: this layer is rebuilt when the pinned versions change, not the code;
# the image installs exactly what the tests ran with (scripts/lock writes the file). No test
# or lint tools: they are in requirements/test.txt, which the image never reads.
COPY requirements/base.txt ./requirements.txt
RUN /opt/venv/bin/pip install --no-cache-dir -r requirements.txt

FROM ${PYTHON_IMAGE}
ENV PATH=/opt/venv/bin:$PATH \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DATA_DIR=/data \
    HF_HOME=/data/models/huggingface
# git: /publish commits drafts to a repository (PUBLISH_GIT_DIR, e.g. a mounted clone).
RUN apt-get update \
    && apt-get install -y --no-install-recommends git openssh-client \
    && rm -rf /var/lib/apt/lists/*
# A fixed numeric uid/gid: files in the volume keep one owner across rebuilds, and
# orchestrators that require a non-root user can check it.
RUN groupadd --gid 10001 bot \
    && useradd --uid 10001 --gid 10001 --create-home bot \
    && mkdir -p /data \
    && chown 10001:10001 /data
COPY --from=deps /opt/venv /opt/venv
WORKDIR /app
# The bot finds migrations/ and prompts/ next to bot/, so the tree is copied as it is and the
# project installed in place (editable) without dependencies: the lock installed them all.
COPY pyproject.toml README.md alembic.ini ./
COPY migrations ./migrations
COPY prompts ./prompts
COPY bot ./bot
# The import from another folder proves the installed package finds the tree.
RUN pip install --no-cache-dir --no-deps -e . \
    && cd / && python -c "import bot.cli"

USER 10001:10001
VOLUME ["/data"]
# Webhook mode only (WEBHOOK_URL set); long polling needs no port.
EXPOSE 8443
# Checks the settings (one line naming the setting and the fix if one is wrong), applies
# migrations, loads the transcriber, then takes updates (polling or webhook).
CMD ["python", "-m", "bot"]
