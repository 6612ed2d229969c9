"""A Telegram bot that turns a writer's voice notes into article drafts."""
