# The bot in a container: SQLite and models live in the /data volume.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DATA_DIR=/data

WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY bot ./bot
COPY migrations ./migrations
COPY prompts ./prompts
# Editable, so migrations/ and prompts/ stay next to the package where the bot finds them.
RUN pip install --no-cache-dir -e . \
    && useradd --create-home --uid 1000 writer \
    && mkdir -p /data && chown writer /data

USER writer
VOLUME ["/data"]
# Applies migrations, loads the whisper model, then long-polls Telegram.
CMD ["python", "-m", "bot"]
