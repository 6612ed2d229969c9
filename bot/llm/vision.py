"""Photos described by a vision model on any OpenAI-compatible endpoint.

The image travels as OpenAI-style image content (a data: URL in an `image_url` part); the
answer is plain text: what the image shows, and any text in it, transcribed.
"""

from __future__ import annotations

import base64
import logging

import openai

from bot.llm.prompts import Prompt, load_prompt
from bot.llm.usage import TokenUsage, estimate_tokens, report

log = logging.getLogger(__name__)

VISION = "vision"
DESCRIBE_PROMPT = "describe_image"
DESCRIBE_VARIABLES = {"caption"}
MAX_DESCRIPTION_TOKENS = 800


class VisionRefused(Exception):
    """The endpoint or model does not take images (a request it will always refuse)."""


class VisionUnavailable(Exception):
    """The endpoint did not answer (down, timed out, rate-limited): worth a later try."""


class ImageDescriber:
    def __init__(self, *, base_url: str | None, api_key: str, model: str, timeout: float) -> None:
        self._client = openai.AsyncOpenAI(
            base_url=base_url or None,
            api_key=api_key or "not-needed",
            timeout=timeout,
            max_retries=1,
        )
        self.model = model
        # Loaded now so a broken prompt file stops the start, not the first photo.
        self._prompt: Prompt = load_prompt(DESCRIBE_PROMPT, DESCRIBE_VARIABLES)

    async def close(self) -> None:
        await self._client.close()

    async def describe(self, image: bytes, mime_type: str, caption: str) -> str:
        """What the image shows and the text in it; VisionRefused / VisionUnavailable."""
        system = self._prompt.render(caption=caption.strip() or "(no caption)")
        url = f"data:{mime_type};base64,{base64.b64encode(image).decode('ascii')}"
        try:
            response = await self._client.chat.completions.create(
                model=self.model,
                messages=[
                    {"role": "system", "content": system},
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "Describe this image."},
                            {"type": "image_url", "image_url": {"url": url}},
                        ],
                    },
                ],
                max_tokens=MAX_DESCRIPTION_TOKENS,
            )
        except (openai.BadRequestError, openai.NotFoundError, openai.UnprocessableEntityError):
            # A text-only model or server: asking again will not help.
            raise VisionRefused() from None
        except (openai.APIConnectionError, openai.APITimeoutError, openai.APIStatusError) as exc:
            raise VisionUnavailable(type(exc).__name__) from None
        choice = response.choices[0] if response.choices else None
        text = (choice.message.content or "").strip() if choice is not None else ""
        usage = response.usage
        report(
            TokenUsage(
                VISION,
                self.model,
                usage.prompt_tokens if usage else estimate_tokens(system),
                usage.completion_tokens if usage else estimate_tokens(text),
                estimated=usage is None,
            )
        )
        if not text:
            raise VisionRefused()
        return text
