"""Reading a finished HF job's log whole, or saying that it could not be.

``HfApi.fetch_job_logs(follow=False)`` stops when the stream is silent for 5
seconds and returns what it had: a log service that pauses halfway through a
replay hands back half a log with no sign that anything is missing, and a
training script that prints ``val_loss=`` after every epoch would have an
early epoch's value recorded as its result. So this module reads the same
endpoint itself and reports how the stream ended.

What the endpoint sends (``GET /api/jobs/{namespace}/{id}/logs``, the
Server-Sent Events that huggingface_hub's ``_stream_sse_events`` parses): one
event per log line, ``data: {"data": "<line>", "timestamp": "<ISO time>"}``
and a blank line; first the banner ``===== Job started at ... =====``; a
``: keep-alive`` comment every 30 seconds while there is nothing to send. For
a job that is still running the stream stays open; for a finished job it is
a replay that the server ends by closing the response.

Guarantees of :func:`read_log`:

- It is a read through huggingface_hub's own session (the request hooks of
  its client, the transport and timeouts of :mod:`mlr_action.backends._hf_http`)
  with the SDK's headers; an HTTP error is raised as the SDK raises it.
- It returns the log lines (banner dropped, as the SDK does) only when the
  response ended by the server closing it after a whole event. A read that
  timed out (the replay stalled longer than the policy's read timeout) or a
  body that broke off raises :class:`~mlr_action.backends.base.LogIncomplete`
  with what was read and why, never a cut-off log as if it were whole.
"""

from __future__ import annotations

import json
from typing import Any

import httpx2

from mlr_action.backends.base import LogIncomplete

BANNER = "===== Job started"  # the service's first event; huggingface_hub drops it too


def read_log(session: httpx2.Client, url: str, *, headers: dict[str, str], params: dict[str, Any], job_id: str) -> list[str]:
    """The job's log lines, proven whole (see the module docstring); raises LogIncomplete or the SDK's HTTP error."""
    from huggingface_hub.utils import hf_raise_for_status

    chunks: list[bytes] = []
    with session.stream("GET", url, headers=headers, params=params) as response:
        if response.status_code != 200:
            response.read()
            hf_raise_for_status(response)
        try:
            for chunk in response.iter_bytes():
                chunks.append(chunk)
        except httpx2.TimeoutException:
            raise _incomplete(job_id, chunks, "stalled: nothing more came within the read timeout, and the "
                                              "service did not end the replay") from None
        except httpx2.HTTPError as exc:  # the connection dropped, or the body ended before its declared end
            raise _incomplete(job_id, chunks, f"broke off ({type(exc).__name__})") from None
    text = _text(chunks)
    if text and not text.endswith("\n"):
        raise _incomplete(job_id, chunks, "ended in the middle of an event")
    return parse_events(text)


def _text(chunks: list[bytes]) -> str:
    return b"".join(chunks).decode("utf-8", "replace")  # the service sends UTF-8; a cut character is replaced


def parse_events(text: str) -> list[str]:
    """The log lines of an SSE body: each ``data:`` event's ``data``, comments and the banner left out."""
    lines = []
    for raw in text.splitlines():
        if not raw.startswith("data:"):
            continue  # a blank separator, a `: keep-alive` comment, an `event:` or `id:` field
        try:
            event = json.loads(raw[len("data:"):].strip())
        except ValueError:
            continue
        line = event.get("data") if isinstance(event, dict) else None
        if isinstance(line, str) and not line.startswith(BANNER):
            lines.append(line)
    return lines


def _incomplete(job_id: str, chunks: list[bytes], how: str) -> LogIncomplete:
    lines = parse_events(_text(chunks).rpartition("\n")[0])  # a partial last event is not a line read
    read = "\n".join(lines) + ("\n" if lines else "")
    return LogIncomplete(f"the log of job {job_id} is not whole: its replay {how} after {len(lines)} lines", text=read)
