"""Structured output from any OpenAI-compatible endpoint: negotiated, bounded, streamed.

- **Negotiated:** the first request asks for `json_schema`; an endpoint that refuses it (any
  4xx or 5xx whose body names `response_format`, `json_schema` or `schema`) is asked for JSON
  mode with the schema attached (llama.cpp, vLLM and others constrain output to it), then for
  plain JSON mode with the schema only in the prompt, then without `response_format` at all.
  What worked is remembered per endpoint and model (in the database, via an EndpointMemory).
- **Bounded:** every request carries `max_tokens` (sized by the caller for its task, capped by
  LLM_MAX_OUTPUT_TOKENS) and a deadline of `timeout` seconds; an answer cut off by the limit
  (`finish_reason: length`) or going round in circles raises OutputCutOff, never a context
  error.
- **Streamed:** answers arrive as a stream, so a request the bot gives up on (deadline, loop)
  is closed and the server stops generating instead of working on for nobody; a retry never
  queues behind it. Endpoints that cannot stream are asked without.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx2
import openai
from pydantic import BaseModel, ValidationError

from bot.domain import UserError
from bot.llm.modes import EndpointMemory, Negotiated, OutputMode, describe, endpoint_key
from bot.llm.repetition import RepetitionGuard
from bot.llm.usage import TokenUsage, estimate_tokens, report

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)

MAX_BACKOFF_S = 20.0
# Low but not zero: faithful editing, with enough freedom to turn speech into prose.
DRAFT_TEMPERATURE = 0.2
# A remembered refusal is tried again after this long: servers gain features.
RENEGOTIATE_AFTER = timedelta(days=7)
# Our deadline fires first; the SDK's own timeout only backs it up.
SDK_TIMEOUT_MARGIN_S = 5.0


class LLMError(UserError):
    """The LLM step failed; `message` is written for the writer, `kind` for the logs."""

    def __init__(self, message: str, *, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


class ContextTooLong(Exception):
    """The request did not fit the model's context window; send less."""


class OutputCutOff(Exception):
    """The answer was cut off: the output limit (`length`) or the model looping (`repetition`).

    `partial` is what arrived before the cut.
    """

    def __init__(self, reason: str, partial: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.partial = partial


class _Unsupported(Exception):
    """The endpoint refused how structured output was asked for."""


class _Interrupted(Exception):
    """The stream ended without a finished answer (a server that cuts a stream for another)."""


UNAVAILABLE = (
    "The drafting model is not answering right now. Your notes are safe; "
    "try /draft again in a few minutes."
)
TIMED_OUT = (
    "The drafting model did not finish an answer within {seconds:g} s, so I stopped it. Your "
    "notes are safe. A model on a CPU can need several minutes: raise OPENAI_TIMEOUT_SECONDS."
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
NO_STRUCTURED_OUTPUT = (
    "The LLM endpoint refuses every way of asking for JSON that I know. Your notes are safe; "
    "try another model or server (OPENAI_MODEL, OPENAI_BASE_URL)."
)

# Words in an error body that mean "this way of asking for JSON is not supported here".
_FORMAT_WORDS = ("response_format", "json_schema", "schema")


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


def _error_text(exc: openai.APIStatusError) -> str:
    """What the endpoint said, however it said it (OpenAI error object, FastAPI detail…)."""
    parts = [str(exc.message or "")]
    body = exc.body
    if body is not None:
        parts.append(json.dumps(body, ensure_ascii=False, default=str))
    with contextlib.suppress(Exception):
        parts.append(exc.response.text)
    return " ".join(parts).lower()


def _names_format(exc: openai.APIStatusError) -> bool:
    return any(word in _error_text(exc) for word in _FORMAT_WORDS)


def _names(exc: openai.APIStatusError, *words: str) -> bool:
    text = f"{_error_text(exc)} {getattr(exc, 'param', '') or ''}"
    return any(word in text for word in words)


_STREAM_WORD = re.compile(r"\bstream(ing)?\b(?!_options)")


def _names_streaming(exc: openai.APIStatusError) -> bool:
    return bool(_STREAM_WORD.search(_error_text(exc)))


def _is_context_error(exc: openai.APIStatusError) -> bool:
    return getattr(exc, "code", None) == "context_length_exceeded" or _names(
        exc, "context length", "context window", "maximum context"
    )


def extract_json(text: str) -> str:
    """The JSON object in an answer that may wrap it in prose or a ``` fence."""
    start = text.find("{")
    if start < 0:
        return text
    try:
        _, end = json.JSONDecoder().raw_decode(text[start:])
    except ValueError:
        return text[start:]
    return text[start : start + end]


@dataclass
class _Answer:
    content: str
    usage: Any = None


class StructuredLLM:
    """Asks an OpenAI-compatible endpoint for JSON matching a pydantic model."""

    def __init__(
        self,
        *,
        base_url: str | None,
        api_key: str,
        model: str,
        timeout: float,
        max_retries: int,
        max_output_tokens: int = 4096,
        memory: EndpointMemory | None = None,
        parallel_requests: int = 0,
        http_client: httpx2.AsyncClient | None = None,
    ) -> None:
        # The SDK's own retries would also retry insufficient_quota; ours decide per error.
        # `http_client`: a seam for tests that record what is sent.
        self._client = openai.AsyncOpenAI(
            base_url=base_url or None,
            api_key=api_key or "not-needed",
            timeout=timeout + SDK_TIMEOUT_MARGIN_S,
            max_retries=0,
            http_client=http_client,
        )
        self.model = model
        self.endpoint = endpoint_key(base_url)
        self.timeout = timeout
        self.max_output_tokens = max_output_tokens
        self._max_retries = max_retries
        self._memory = memory
        self._negotiated: Negotiated | None = None
        self._negotiation_lock = asyncio.Lock()
        self._send_temperature = True
        self._stream_usage = True
        # Newer OpenAI models take the bound as max_completion_tokens and refuse max_tokens.
        self._bound_name = "max_tokens"
        # A server that runs one request at a time makes the others wait; waiting here
        # does not count against a request's deadline, waiting there would.
        self._slots = asyncio.Semaphore(parallel_requests) if parallel_requests > 0 else None

    async def close(self) -> None:
        await self._client.close()

    @property
    def negotiated(self) -> Negotiated | None:
        """What this endpoint was found to accept (None before the first request)."""
        return self._negotiated

    async def complete(
        self, system: str, user: str, schema: type[M], *, purpose: str, max_tokens: int
    ) -> M:
        """One structured answer of at most `max_tokens` tokens; invalid output gets one
        repair attempt.

        `purpose` (drafting, checking, routing) labels the tokens each request spends.
        Raises OutputCutOff, ContextTooLong or LLMError.
        """
        max_tokens = max(16, min(max_tokens, self.max_output_tokens))
        messages: list[dict[str, str]] = [
            {"role": "system", "content": system},
            {"role": "user", "content": user},
        ]
        content = await self._ask(messages, schema, purpose, max_tokens)
        try:
            return schema.model_validate_json(extract_json(content))
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
        content = await self._ask(messages, schema, purpose, max_tokens)
        try:
            return schema.model_validate_json(extract_json(content))
        except ValidationError:
            raise LLMError(INVALID, kind="invalid_output") from None

    # -- negotiation -----------------------------------------------------------------------

    async def _current(self) -> Negotiated:
        """What to ask with: remembered, or json_schema and streaming until told otherwise."""
        if self._negotiated is None:
            async with self._negotiation_lock:
                if self._negotiated is None:
                    self._negotiated = await self._recall() or Negotiated(
                        OutputMode.JSON_SCHEMA, streaming=True
                    )
        return self._negotiated

    async def _recall(self) -> Negotiated | None:
        if self._memory is None:
            return None
        try:
            recalled = await self._memory.recall(self.endpoint, self.model)
        except Exception:
            log.warning("Could not read the remembered LLM mode", exc_info=True)
            return None
        if recalled is None:
            return None
        when = recalled.negotiated_at
        if when is not None and when.tzinfo is None:  # SQLite hands back naive UTC
            when = when.replace(tzinfo=UTC)
        if when is None or datetime.now(UTC) - when > RENEGOTIATE_AFTER:
            log.info("Remembered LLM mode of %s is old; negotiating again", self.model)
            return None
        log.info("Structured output for %s: %s (remembered)", self.model, describe(recalled))
        return recalled

    async def _settle(self, negotiated: Negotiated, why: str) -> Negotiated:
        settled = replace(negotiated, negotiated_at=datetime.now(UTC))
        self._negotiated = settled
        log.info("Structured output for %s: %s (%s)", self.model, describe(settled), why)
        if self._memory is not None:
            try:
                await self._memory.remember(self.endpoint, self.model, settled)
            except Exception:
                log.warning("Could not remember the LLM mode", exc_info=True)
        return settled

    async def _ask(
        self,
        messages: list[dict[str, str]],
        schema: type[BaseModel],
        purpose: str,
        max_tokens: int,
    ) -> str:
        negotiated = await self._current()
        while True:
            mode = negotiated.output_mode
            try:
                content = await self._create(
                    self._messages_for(mode, messages, schema),
                    self._response_format(mode, schema),
                    purpose,
                    max_tokens,
                    stream=negotiated.streaming,
                )
            except _NoStreaming:
                negotiated = await self._settle(
                    replace(negotiated, streaming=False), "the endpoint cannot stream"
                )
                continue
            except _Unsupported:
                lower = mode.fallback
                if lower is None:
                    raise LLMError(NO_STRUCTURED_OUTPUT, kind="no_structured_output") from None
                negotiated = await self._settle(
                    replace(negotiated, output_mode=lower), f"the endpoint refused {mode.value}"
                )
                continue
            if negotiated.negotiated_at is None:
                # The first answer confirms what was only assumed so far.
                await self._settle(negotiated, "it answered")
            return content

    @staticmethod
    def _response_format(mode: OutputMode, schema: type[BaseModel]) -> dict[str, Any] | None:
        if mode is OutputMode.JSON_SCHEMA:
            return {
                "type": "json_schema",
                "json_schema": {
                    "name": schema.__name__,
                    "schema": schema.model_json_schema(),
                    "strict": True,
                },
            }
        if mode is OutputMode.JSON_OBJECT_SCHEMA:
            return {"type": "json_object", "schema": schema.model_json_schema()}
        if mode is OutputMode.JSON_OBJECT:
            return {"type": "json_object"}
        return None

    @staticmethod
    def _messages_for(
        mode: OutputMode, messages: list[dict[str, str]], schema: type[BaseModel]
    ) -> list[dict[str, str]]:
        if not mode.schema_in_prompt:
            return messages
        schema_hint = json.dumps(schema.model_json_schema(), ensure_ascii=False)
        return [
            {
                "role": "system",
                "content": f"{messages[0]['content']}\n\nReply with one JSON object that "
                f"matches this JSON schema, and nothing else:\n{schema_hint}",
            },
            *messages[1:],
        ]

    # -- one request, retried --------------------------------------------------------------

    async def _create(
        self,
        messages: list[dict[str, str]],
        response_format: dict[str, Any] | None,
        purpose: str,
        max_tokens: int,
        *,
        stream: bool,
    ) -> str:
        attempt = 0
        while True:
            try:
                answer = await self._send(messages, response_format, max_tokens, stream=stream)
            except openai.RateLimitError as exc:
                if exc.code == "insufficient_quota" or exc.type == "insufficient_quota":
                    raise LLMError(QUOTA, kind="quota") from None
                wait, failure = _retry_after(exc), LLMError(RATE_LIMITED, kind="rate_limit")
            except TimeoutError:
                message = TIMED_OUT.format(seconds=self.timeout)
                wait, failure = None, LLMError(message, kind="timeout")
            except (openai.APITimeoutError, openai.APIConnectionError, _Interrupted):
                wait, failure = None, LLMError(UNAVAILABLE, kind="unavailable")
            except openai.AuthenticationError:
                raise LLMError(AUTH, kind="auth") from None
            except openai.PermissionDeniedError:
                raise LLMError(AUTH, kind="auth") from None
            except openai.NotFoundError as exc:
                if response_format is not None and _names_format(exc):
                    raise _Unsupported() from None
                raise LLMError(NOT_FOUND, kind="not_found") from None
            except openai.APIStatusError as exc:
                if _is_context_error(exc):
                    raise ContextTooLong() from None
                if self._bound_name == "max_tokens" and _names(exc, "max_completion_tokens"):
                    log.info("Model takes max_completion_tokens instead of max_tokens")
                    self._bound_name = "max_completion_tokens"
                    continue
                if self._send_temperature and _names(exc, "temperature"):
                    log.info("Model rejects a temperature; asking without one")
                    self._send_temperature = False
                    continue
                if stream and self._stream_usage and _names(exc, "stream_options"):
                    log.info("Endpoint rejects stream_options; streaming without usage")
                    self._stream_usage = False
                    continue
                # A body naming both (e.g. "JSON mode cannot stream"): drop streaming first.
                if stream and _names_streaming(exc):
                    raise _NoStreaming() from None
                if response_format is not None and _names_format(exc):
                    raise _Unsupported() from None
                if exc.status_code >= 500:
                    wait, failure = _retry_after(exc), LLMError(UNAVAILABLE, kind="unavailable")
                else:
                    # 400, 409, 413, 422, odd proxies: the request itself is the problem.
                    log.error("LLM endpoint rejected the request: HTTP %s", exc.status_code)
                    raise LLMError(INVALID, kind="bad_request") from None
            except openai.APIError as exc:
                log.error("LLM endpoint error: %s", type(exc).__name__)
                raise LLMError(UNAVAILABLE, kind="api_error") from None
            except OutputCutOff as cut:
                # The tokens were spent all the same.
                self._report_usage(_Answer(cut.partial), messages, purpose)
                raise
            else:
                self._report_usage(answer, messages, purpose)
                return answer.content
            attempt += 1
            if attempt > self._max_retries:
                raise failure
            delay = wait if wait is not None else min(MAX_BACKOFF_S, 0.5 * 2**attempt)
            delay = min(delay, MAX_BACKOFF_S) * random.uniform(0.8, 1.0)
            log.warning("LLM call failed (%s); retry %d in %.1f s", failure.kind, attempt, delay)
            await asyncio.sleep(delay)

    async def _send(
        self,
        messages: list[dict[str, str]],
        response_format: dict[str, Any] | None,
        max_tokens: int,
        *,
        stream: bool,
    ) -> _Answer:
        params: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            self._bound_name: max_tokens,
        }
        if response_format is not None:
            params["response_format"] = response_format
        if self._send_temperature:
            # Reasoning models reject a temperature; once told so, we stop sending it.
            params["temperature"] = DRAFT_TEMPERATURE
        async with self._slot(), asyncio.timeout(self.timeout):
            if stream:
                return await self._streamed(params)
            response = await self._client.chat.completions.create(**params)
        return self._whole(response)

    @contextlib.asynccontextmanager
    async def _slot(self) -> Any:
        if self._slots is None:
            yield
            return
        async with self._slots:
            yield

    async def _streamed(self, params: dict[str, Any]) -> _Answer:
        """Read the answer as it streams; close the stream (so the server stops) on any exit."""
        params = {**params, "stream": True}
        if self._stream_usage:
            params["stream_options"] = {"include_usage": True}
        pieces: list[str] = []
        guard = RepetitionGuard()
        finish: str | None = None
        usage = None
        stream = await self._client.chat.completions.create(**params)
        try:
            async for chunk in stream:
                if getattr(chunk, "usage", None) is not None:
                    usage = chunk.usage
                if not chunk.choices:
                    continue
                choice = chunk.choices[0]
                delta = choice.delta
                if delta is not None and getattr(delta, "refusal", None):
                    raise LLMError(REFUSED, kind="refusal")
                if delta is not None and delta.content:
                    pieces.append(delta.content)
                    if guard.feed(delta.content):
                        log.warning(
                            "LLM answer is looping (%s) after %d characters; cut short",
                            guard.reason,
                            sum(map(len, pieces)),
                        )
                        raise OutputCutOff("repetition", "".join(pieces))
                if choice.finish_reason:
                    finish = choice.finish_reason
        finally:
            # Closing the connection is what makes a server stop generating for us.
            await stream.close()
        content = "".join(pieces)
        if finish == "length":
            raise OutputCutOff("length", content)
        if finish is None and not _is_json(content):
            raise _Interrupted()
        return _Answer(content, usage)

    @staticmethod
    def _whole(response: Any) -> _Answer:
        choices = getattr(response, "choices", None) or []
        if not choices:
            raise LLMError(INVALID, kind="empty")
        message = choices[0].message
        if getattr(message, "refusal", None):
            raise LLMError(REFUSED, kind="refusal")
        content = str(message.content or "")
        if choices[0].finish_reason == "length":
            raise OutputCutOff("length", content)
        return _Answer(content, getattr(response, "usage", None))

    def _report_usage(self, answer: _Answer, messages: list[dict[str, str]], purpose: str) -> None:
        """Tokens as the endpoint counted them; estimated when it sent no `usage`."""
        prompt = getattr(answer.usage, "prompt_tokens", None)
        completion = getattr(answer.usage, "completion_tokens", None)
        if isinstance(prompt, int) and isinstance(completion, int):
            report(TokenUsage(purpose, self.model, prompt, completion, estimated=False))
            return
        report(
            TokenUsage(
                purpose,
                self.model,
                sum(estimate_tokens(m["content"]) for m in messages),
                estimate_tokens(answer.content),
                estimated=True,
            )
        )


class _NoStreaming(Exception):
    """The endpoint refused `stream: true`."""


def _is_json(text: str) -> bool:
    try:
        json.loads(extract_json(text))
    except ValueError:
        return False
    return True
