"""The Telegram side: handlers, texts, safe sending."""
