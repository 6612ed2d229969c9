"""A Telegram bot that turns a writer's voice notes into article drafts."""

import os

# Opt in to python-telegram-bot's future behaviour (durations as timedelta) now, so the
# code is written once for it and no deprecation warnings are logged.
os.environ.setdefault("PTB_TIMEDELTA", "1")
