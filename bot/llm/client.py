"""Structured output from any OpenAI-compatible endpoint, with bounded, selective retries."""

from __future__ import annotations

import asyncio
import json
import logging
import random
from typing import TypeVar

import openai
from pydantic import BaseModel, ValidationError

from bot.domain import UserError
from bot.llm.usage import TokenUsage, estimate_tokens, report

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)

MAX_BACKOFF_S = 20.0
# Low but not zero: faithful editing, with enough freedom to turn speech into prose.
DRAFT_TEMPERATURE = 0.2


class LLMError(UserError):
    """The LLM step failed; `message` is written for the writer, `kind` for the logs."""

    def __init__(self, message: str, *, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


class ContextTooLong(Exception):
    """The request did not fit the model's context window; send less."""


UNAVAILABLE = (
    "The drafting model is not answering right now. Your notes are safe; "
    "try /draft again in a few minutes."
)
RATE_LIMITED = (
    "The drafting model is rate-limiting us. Your notes are safe; try /draft again in a minute."
)
QUOTA = (
    "The LLM account has run out of quota. Your notes are safe; top up the account or "
    "change OPENAI_API_KEY, then /draft again."
)
AUTH = "The LLM endpoint rejected the API key. Check OPENAI_API_KEY."
NOT_FOUND = (
    "The LLM endpoint does not know the configured model. Check OPENAI_MODEL and OPENAI_BASE_URL."
)
REFUSED = "The drafting model refused to write this part. Your notes are safe."
INVALID = (
    "The drafting model returned something I could not use, twice. Your notes are safe; "
    "try /draft again."
)


def _retry_after(exc: openai.APIStatusError) -> float | None:
    headers = exc.response.headers
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value:
            try:
                return float(value) * scale
            except ValueError:
                return None
    return None


class StructuredLLM:
    """Asks for JSON matching a pydantic model, falling back to JSON mode where needed."""

    def __init__(
        self,
        *,
        base_url: str | None,
        api_key: str,
        model: str,
        timeout: float,
        max_retries: int,
    ) -> None:
        # The SDK's own retries would also retry insufficient_quota; ours decide per error.
        self._client = openai.AsyncOpenAI(
            base_url=base_url or None,
            api_key=api_key or "not-needed",
            timeout=timeout,
            max_retries=0,
        )
        self.model = model
        self._max_retries = max_retries
        self._json_schema_supported = True
        self._send_temperature = True

    async def close(self) -> None:
        await self._client.close()

    async def complete(self, system: str, user: str, schema: type[M], *, purpose: str) -> M:
        """One structured answer; invalid output gets one repair attempt.

        `purpose` (drafting, checking, routing) labels the tokens each request spends.
        """
        messages: list[dict[str, str]] = [
            {"role": "system", "content": system},
            {"role": "user", "content": user},
        ]
        content = await self._ask(messages, schema, purpose)
        try:
            return schema.model_validate_json(content)
        except ValidationError as exc:
            log.warning(
                "LLM output failed validation (%d errors); asking once to repair", exc.error_count()
            )
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'root'}: {e['msg']}" for e in exc.errors()[:5]
            )
            messages += [
                {"role": "assistant", "content": content[:4000]},
                {
                    "role": "user",
                    "content": "That reply is not valid for the required JSON schema "
                    f"({problems}). Reply again with only the corrected JSON.",
                },
            ]
        content = await self._ask(messages, schema, purpose)
        try:
            return schema.model_validate_json(content)
        except ValidationError:
            raise LLMError(INVALID, kind="invalid_output") from None

    async def _ask(
        self, messages: list[dict[str, str]], schema: type[BaseModel], purpose: str
    ) -> str:
        if self._json_schema_supported:
            try:
                return await self._create(messages, self._json_schema_format(schema), purpose)
            except openai.BadRequestError as exc:
                if not _is_response_format_unsupported(exc):
                    raise self._bad_request(exc) from None
                log.info("Endpoint does not support json_schema; using JSON mode instead")
                self._json_schema_supported = False
        schema_hint = json.dumps(schema.model_json_schema(), ensure_ascii=False)
        hinted = [
            {
                "role": "system",
                "content": f"{messages[0]['content']}\n\nReply with one JSON object that "
                f"matches this JSON schema:\n{schema_hint}",
            },
            *messages[1:],
        ]
        try:
            return await self._create(hinted, {"type": "json_object"}, purpose)
        except openai.BadRequestError as exc:
            raise self._bad_request(exc) from None

    @staticmethod
    def _json_schema_format(schema: type[BaseModel]) -> dict[str, object]:
        return {
            "type": "json_schema",
            "json_schema": {
                "name": schema.__name__,
                "schema": schema.model_json_schema(),
                "strict": True,
            },
        }

    def _bad_request(self, exc: openai.BadRequestError) -> Exception:
        if exc.code == "context_length_exceeded" or "context length" in str(exc.message).lower():
            return ContextTooLong()
        log.error("LLM endpoint rejected the request: %s", exc.code or exc.status_code)
        return LLMError(INVALID, kind="bad_request")

    async def _create(
        self, messages: list[dict[str, str]], response_format: object, purpose: str
    ) -> str:
        attempt = 0
        while True:
            try:
                # Reasoning models reject a temperature; once told so, we stop sending it.
                extra = {"temperature": DRAFT_TEMPERATURE} if self._send_temperature else {}
                response = await self._client.chat.completions.create(  # type: ignore[call-overload]
                    model=self.model,
                    messages=messages,
                    response_format=response_format,
                    **extra,
                )
            except openai.RateLimitError as exc:
                if exc.code == "insufficient_quota" or exc.type == "insufficient_quota":
                    raise LLMError(QUOTA, kind="quota") from None
                wait = _retry_after(exc)
                failure = LLMError(RATE_LIMITED, kind="rate_limit")
            except (openai.APITimeoutError, openai.APIConnectionError):
                wait, failure = None, LLMError(UNAVAILABLE, kind="unavailable")
            except openai.InternalServerError as exc:
                wait, failure = _retry_after(exc), LLMError(UNAVAILABLE, kind="unavailable")
            except openai.AuthenticationError:
                raise LLMError(AUTH, kind="auth") from None
            except openai.NotFoundError:
                raise LLMError(NOT_FOUND, kind="not_found") from None
            except openai.PermissionDeniedError:
                raise LLMError(AUTH, kind="auth") from None
            except openai.BadRequestError as exc:
                if self._send_temperature and _is_about(exc, "temperature"):
                    log.info("Model rejects a temperature; asking without one")
                    self._send_temperature = False
                    continue
                raise  # the caller tells a context-length or format problem from the rest
            except openai.APIError as exc:
                # Anything else the endpoint says (409, 413, 422, odd proxies): not retried.
                log.error("LLM endpoint error: %s", getattr(exc, "status_code", type(exc).__name__))
                raise LLMError(UNAVAILABLE, kind="api_error") from None
            else:
                self._report_usage(response, messages, purpose)
                return self._content(response)
            attempt += 1
            if attempt > self._max_retries:
                raise failure
            delay = wait if wait is not None else min(MAX_BACKOFF_S, 0.5 * 2**attempt)
            delay = min(delay, MAX_BACKOFF_S) * random.uniform(0.8, 1.0)
            log.warning("LLM call failed (%s); retry %d in %.1f s", failure.kind, attempt, delay)
            await asyncio.sleep(delay)

    def _report_usage(self, response: object, messages: list[dict[str, str]], purpose: str) -> None:
        """Tokens as the endpoint counted them; estimated when it sent no `usage`."""
        usage = getattr(response, "usage", None)
        prompt = getattr(usage, "prompt_tokens", None)
        completion = getattr(usage, "completion_tokens", None)
        if isinstance(prompt, int) and isinstance(completion, int):
            report(TokenUsage(purpose, self.model, prompt, completion, estimated=False))
            return
        choices = getattr(response, "choices", None) or []
        answer = str(getattr(choices[0].message, "content", "") or "") if choices else ""
        report(
            TokenUsage(
                purpose,
                self.model,
                sum(estimate_tokens(m["content"]) for m in messages),
                estimate_tokens(answer),
                estimated=True,
            )
        )

    @staticmethod
    def _content(response: object) -> str:
        choices = getattr(response, "choices", None) or []
        if not choices:
            raise LLMError(INVALID, kind="empty")
        message = choices[0].message
        if getattr(message, "refusal", None):
            raise LLMError(REFUSED, kind="refusal")
        if choices[0].finish_reason == "length":
            # The answer was cut off: a shorter input is the only cure.
            raise ContextTooLong()
        return str(message.content or "")


def _is_about(exc: openai.BadRequestError, *words: str) -> bool:
    text = f"{exc.message} {exc.param or ''}".lower()
    return any(word in text for word in words)


def _is_response_format_unsupported(exc: openai.BadRequestError) -> bool:
    return _is_about(exc, "response_format", "json_schema")
