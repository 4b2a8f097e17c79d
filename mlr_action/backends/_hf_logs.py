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
- It returns the log lines (banner and launcher's last line dropped: the
  job did not print them) only when they
  are proven whole, by one of two proofs: the server closed the response
  after a whole event; or the read reached the launcher's last line
  (:data:`mlr_action.job.runner.SENTINEL`, printed after the script exits), after
  which the job prints nothing, so the read stops there whether or not the
  service ever closes the stream. For a job whose launcher prints that line
  (``sentinel``) and that *completed* (``required``), only the second proof
  counts: a replay the service closed before that line is not the whole log.
  A job submitted before the launcher printed it is read with the first
  proof alone, as before.
- A read has a deadline (``deadline_s``, the policy's ``log_deadline_s``): a
  stream kept open by keep-alives, or trickling a byte at a time, is cut
  there (at most one read timeout later), so a tick never reads past the
  workflow's time limit.
- Otherwise (the deadline passed, the replay stalled longer than the read
  timeout, the body broke off or ended mid-event, the launcher's last line
  is missing) it raises :class:`~mlr_action.core.jobs.LogIncomplete`
  with what was read and why, never a cut-off log as if it were whole; the
  step reads it again on a later tick.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any, Iterable

import httpx2

from mlr_action.core.jobs import LogIncomplete
from mlr_action.job.runner import SENTINEL

BANNER = "===== Job started"  # the service's first event; huggingface_hub drops it too
_LAST_LINE = re.compile(re.escape(SENTINEL) + r"-?\d+")


class _Events:
    """The log lines of an SSE body read so far, parsed as its bytes arrive (one pass, however it is chunked)."""

    def __init__(self, sentinel: bool) -> None:
        self.lines: list[str] = []
        self.rest = b""  # the bytes of a line not yet ended
        self.sentinel = sentinel  # the launcher prints SENTINEL last
        self.ended = False  # the launcher's last line was read (it is not one of ``lines``: the job did not print it)

    def feed(self, chunk: bytes) -> None:
        *whole, self.rest = (self.rest + chunk).split(b"\n")
        for raw in whole:
            line = _event_line(raw.decode("utf-8", "replace"))  # the service sends UTF-8; a cut character is replaced
            if line is None or self.ended:
                continue
            self.ended = self.sentinel and bool(_LAST_LINE.fullmatch(line))
            if not self.ended:
                self.lines.append(line)

    def text(self) -> str:
        return "".join(f"{line}\n" for line in self.lines)


def read_log(session: httpx2.Client, url: str, *, headers: dict[str, str], params: dict[str, Any], job_id: str,
             deadline_s: float, sentinel: bool = False, required: bool = False) -> list[str]:
    """The job's log lines, proven whole (see the module docstring); raises LogIncomplete or the SDK's HTTP error.

    ``sentinel``: the job's launcher prints :data:`SENTINEL` last; ``required``: the job completed, so it did.
    """
    from huggingface_hub.utils import hf_raise_for_status

    events, ends = _Events(sentinel), time.monotonic() + deadline_s
    read_s = {"connect": None, "read": deadline_s, "write": None, "pool": None}  # the policy's, when shorter
    with session.stream("GET", url, headers=headers, params=params, timeout=httpx2.Timeout(**read_s)) as response:
        if response.status_code != 200:
            response.read()
            hf_raise_for_status(response)
        try:
            for chunk in _until(response.iter_bytes(), ends, deadline_s):
                events.feed(chunk)
                if events.ended:
                    return events.lines  # nothing follows the launcher's last line: no need to wait for the close
        except _Deadline as late:
            raise _incomplete(job_id, events, str(late)) from None
        except httpx2.TimeoutException:
            raise _incomplete(job_id, events, "stalled: nothing more came within the read timeout, and the "
                                              "service did not end the replay") from None
        except httpx2.HTTPError as exc:  # the connection dropped, or the body ended before its declared end
            raise _incomplete(job_id, events, f"broke off ({type(exc).__name__})") from None
    if events.rest:
        raise _incomplete(job_id, events, "ended in the middle of an event")
    if required and not events.ended:
        raise _incomplete(job_id, events, "ended after {lines} lines, without the launcher's last line "
                                          f"(`{SENTINEL}<status>`) that a job which completed prints")
    return events.lines


class _Deadline(Exception):
    pass


def _until(chunks: Iterable[bytes], ends: float, deadline_s: float) -> Iterable[bytes]:
    for chunk in chunks:
        yield chunk
        if time.monotonic() > ends:
            raise _Deadline(f"did not end within its deadline ({deadline_s:g}s): the service kept the stream open "
                            "(keep-alives, or a trickle)")


def _event_line(raw: str) -> str | None:
    """The log line of one SSE line: a ``data:`` event's ``data``; None for comments, separators and the banner."""
    if not raw.startswith("data:"):
        return None  # a blank separator, a `: keep-alive` comment, an `event:` or `id:` field
    try:
        event = json.loads(raw[len("data:"):].strip())
    except ValueError:
        return None
    line = event.get("data") if isinstance(event, dict) else None
    return line if isinstance(line, str) and not line.startswith(BANNER) else None


def _incomplete(job_id: str, events: _Events, how: str) -> LogIncomplete:
    """``how`` the replay ended; ``{lines}`` in it is the count of lines read (else it is said after it)."""
    lines = len(events.lines)  # a partial last event is not a line read
    said = how.format(lines=lines) if "{lines}" in how else f"{how} after {lines} lines"
    return LogIncomplete(f"the log of job {job_id} is not whole: its replay {said}", text=events.text())
