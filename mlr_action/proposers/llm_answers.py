"""Reading the Anthropic API's answers: SDK objects in, plain data out.

Guarantees: nothing here imports ``anthropic`` or makes a call; every
function reads its object by duck typing and never raises on a malformed
one. An answer that is a refusal, cut off or holds no JSON object becomes a
:class:`Parsed` with ``problems`` (:func:`judge`); a validation error
becomes at most ten one-line problems (:func:`read_problems`); a research
turn's blocks add their text, searches, sources (each URL once) and search
errors to a :class:`~mlr_action.proposers.research.SearchOutcome`
(:func:`collect`). :func:`unavailable_text` says what to fix for a request
the API refused. Text taken from an exception is redacted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mlr_action.core.redaction import redact
from mlr_action.proposers.research import SearchOutcome
from mlr_action.render.words import shorten


@dataclass
class Parsed:
    """One structured-output call: the parsed answer, the raw text, and what is wrong with it."""

    answer: Any = None
    text: str = ""
    problems: list[str] = field(default_factory=list)


def judge(message: Any, text: str) -> Parsed:
    stop = getattr(message, "stop_reason", None)
    if stop == "refusal":
        return Parsed(text=text, problems=["the model refused to answer (stop_reason refusal)"])
    answer = getattr(message, "parsed_output", None)
    if stop == "max_tokens":
        return Parsed(text=text, problems=["the answer was cut off at max_tokens before the JSON was complete"])
    if answer is None:
        return Parsed(text=text, problems=[f"the answer held no JSON object (stop_reason {stop})"])
    return Parsed(answer=answer, text=text)


def read_problems(exc: Exception) -> list[str]:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        try:
            return [
                f"{'.'.join(str(p) for p in e.get('loc', ())) or 'answer'}: {shorten(str(e.get('msg', '')), 160)}"
                for e in errors()[:10]
            ]
        except Exception:  # pragma: no cover - pydantic always gives a list
            pass
    return [f"the answer could not be read ({type(exc).__name__}: {shorten(redact(str(exc)), 160)})"]


def collect(blocks: list[Any], outcome: SearchOutcome) -> None:
    seen = {url for _, url in outcome.sources}
    for block in blocks:
        kind = getattr(block, "type", None)
        if kind == "text" and isinstance(getattr(block, "text", None), str):
            outcome.text += block.text
        elif kind == "server_tool_use":
            outcome.searches += 1
        elif kind == "web_search_tool_result":
            content = getattr(block, "content", None)
            if isinstance(content, list):
                for result in content:
                    url, title = getattr(result, "url", None), getattr(result, "title", None)
                    if isinstance(url, str) and url not in seen:
                        seen.add(url)
                        outcome.sources.append((title if isinstance(title, str) else url, url))
            else:
                outcome.errors.append(str(getattr(content, "error_code", "unknown")))


def as_param(block: Any) -> Any:
    to_dict = getattr(block, "to_dict", None)
    return to_dict(warnings=False) if callable(to_dict) else block


def api_message(exc: Exception) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return str(body["error"].get("message", ""))
    return str(getattr(exc, "message", "") or exc)


def unavailable_text(status: Any, detail: str, model: str) -> str:
    fixes = {
        401: "the API key was refused: check the ANTHROPIC_API_KEY secret",
        403: "the API key may not do this: check the key's workspace and permissions",
        404: f"model {model} was not found: check --model (or the action's model input)",
        413: "the request was too large",
    }
    fix = fixes.get(status, "the API refused the request")
    return f"{fix} (HTTP {status}: {detail})"
