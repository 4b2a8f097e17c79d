"""The body of the pull request check's comment: the worst-case spend and every change that matters.

Pure: the same inputs give the same Markdown; nothing is read or sent here
(the comment is written by :mod:`mlr_action.github.pr_comment`). Guarantees:

- :func:`render_validation` starts with :data:`MARKER`, says whether
  merging approves a budget and the worst case, and lists every change against the program
  approved on the default branch that can cost money or change what runs:
  each envelope key and the worst case; in the Campaign block ``namespace``,
  ``flavor`` and ``timeout`` (as a job gets them, defaults resolved),
  ``script``, each added, removed or changed parameter of ``params`` and
  key of ``fixed``, ``metric``, ``direction``, ``target``, ``patience``,
  ``name`` and ``seed`` (every key there is: none is left out); the
  training script's own content and any other file of the campaign folder
  (given as :class:`FileChanges`, read from git objects by the caller); and
  which prose sections changed (the Claude proposer reads them). When the
  approved program cannot be read, the comment says so instead of showing
  no change. Given the preflight's lines, it says what each job receives
  and every problem that would fail every job, each with its fix.
- Nothing from the pull request is rendered as Markdown or HTML: values,
  names and paths are code spans (:func:`mlr_action.core.markup.literal`: fenced
  longer than any backtick run inside, non-printable characters escaped, cut
  to a length), problems and the envelope are in fences longer than any
  backtick run.
- The body fits in one comment (GitHub's 65,536 characters) whatever the
  program: ``params`` and ``fixed`` show their first 40 changed entries and
  count the rest, files the first 50, problems the first 40; the envelope,
  the other Campaign keys and the script are never cut.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from mlr_action.core.markup import block, literal, visible
from mlr_action.github.pr_comment import MARKER

_DURATIONS = ("max_walltime", "max_timeout", "timeout", "scheduling_timeout")
_MAX_ENTRIES = 40  # lines per map (params, fixed) and paths of files shown: a comment holds 65,536 characters
_MAX_FILES = 50
_MAX_PROBLEMS = 40
_MAX_BLOCK = 20_000  # characters of a code block in the comment
_NOTES = {
    "namespace": "the Hugging Face account the jobs run in, and are billed to",
    "name": "the campaign id in the jobs' labels",
    "script": "what every job runs",
    "metric": "what is optimised",
    "direction": "what counts as better",
    "target": "stops the campaign when reached",
    "patience": "stops the campaign after this many experiments without improvement",
    "seed": "which experiments the search proposes",
    "image": "the container every HF job runs in",
    "dependencies": "packages installed into every job",
    "python": "the Python version every job runs with",
    "min_delta": "how much better a result must be to count as an improvement",
    "scheduling_timeout": "how long a job may wait for hardware; every job reserves it in the budget",
}
# What a change of these keys means for the budget: the step counts the jobs the backend lists under the
# campaign id's label in the namespace (mlr_action.core.budget.usage), so after the merge it lists none of the old ones.
_AFRESH = {
    "name": "under the new campaign id",
    "namespace": "in the new namespace",
}


@dataclass(frozen=True)
class FileChanges:
    """What changed in the campaign folder between the approved commit and the pull request, from git objects."""

    script: str  # the script the pull request's program.md names, relative to the campaign folder
    script_status: str  # "changed", "added" (not in the approved commit) or "unchanged"
    others: tuple[str, ...] = ()  # every other changed path in the campaign folder (program.md left out)


@dataclass(frozen=True)
class Baseline:
    """What the pull request is compared with: the default branch, and the program approved there."""

    branch: str
    state: str  # "approved", "none" (no program.md there), "invalid", "unreadable"
    program: Any = None
    detail: str = ""  # why it is invalid or unreadable



def _fence(text: str) -> str:
    """``text`` as a code block that nothing inside can close, with non-printable characters escaped."""
    text = visible(text, keep_newlines=True)
    return block(text if len(text) <= _MAX_BLOCK else text[: _MAX_BLOCK - 1] + "…")


def _problem_list(problems: list[str]) -> str:
    shown = [p if len(p) <= 400 else p[:399] + "…" for p in problems[:_MAX_PROBLEMS]]
    more = [f"... and {len(problems) - _MAX_PROBLEMS} more (run mlr validate to see them all)"] \
        if len(problems) > _MAX_PROBLEMS else []
    return "\n".join(f"- {p}" for p in shown + more)


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


def _text(key: str, value: Any) -> str:
    from mlr_action.core.durations import format_duration

    if key in _DURATIONS and isinstance(value, (int, float)):
        return format_duration(value)
    if isinstance(value, list):
        return "[" + ", ".join(map(_scalar, value)) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_text(k, v)}" for k, v in value.items()) + "}"
    return _scalar(value)


def _show(key: str, value: Any) -> str:
    return "not set" if value is None else literal(_text(key, value))


def _space(spec: Any) -> dict[str, Any]:
    """A parameter as it is written: only the keys that are set."""
    return {k: v for k, v in spec.model_dump().items() if v is not None and not (k == "log" and v is False)}


def envelope_changes(old, new) -> list[str]:
    """What the new program changes in the approved envelope, one line per key, plus the worst case."""
    from mlr_action.core.budget import worst_case
    from mlr_action.core.durations import format_duration

    before, after = old.envelope.model_dump(), new.envelope.model_dump()
    lines = [f"`{k}`: {_show(k, before.get(k))} → {_show(k, after.get(k))}"
             for k in after if before.get(k) != after.get(k)]
    (w0, d0), (w1, d1) = (worst_case(p.envelope, starting_s=p.campaign.scheduling_timeout) for p in (old, new))
    if (w0, round(d0, 2)) != (w1, round(d1, 2)):
        lines.append(f"worst case: {format_duration(w0)} and ${d0:.2f} → {format_duration(w1)} and ${d1:.2f}")
    return lines


def campaign_changes(old, new) -> list[str]:
    """What the new program changes in the approved Campaign block: every key, defaults resolved as a job gets them."""
    before, after = old.campaign.model_dump(), new.campaign.model_dump()
    lines = []
    for key in after:
        if key == "flavor":
            lines += _default_line("flavor", old.default_flavor, new.default_flavor, old.campaign.flavor,
                                   new.campaign.flavor, "the first of allowed_flavors")
        elif key == "timeout":
            lines += _default_line("timeout", old.default_timeout_s, new.default_timeout_s, old.campaign.timeout,
                                   new.campaign.timeout, "max_timeout")
        elif key == "params":
            lines += _mapping_changes("params", {k: _space(v) for k, v in old.campaign.params.items()},
                                      {k: _space(v) for k, v in new.campaign.params.items()})
        elif key == "fixed":
            lines += _mapping_changes("fixed", before["fixed"], after["fixed"])
        elif key == "final":  # the final evaluation: more jobs after the stop, paid from the reserve
            lines += _mapping_changes("final", _set_keys(before["final"]), _set_keys(after["final"]))
        elif before.get(key) != after.get(key):
            note = f" ({_NOTES[key]})" if key in _NOTES else ""
            line = f"`{key}`{note}: {_show(key, before.get(key))} → {_show(key, after.get(key))}"
            if key in _AFRESH:
                line += (f". The backend's count of the campaign's spend starts afresh {_AFRESH[key]}: the jobs run "
                         "so far are counted only as the ledger (`runs/ledger.jsonl`) records them")
            lines.append(line)
    return lines


def _set_keys(block: dict[str, Any] | None) -> dict[str, Any]:
    """A nested block as it is written: only the keys that are set."""
    return {k: v for k, v in (block or {}).items() if v is not None and v != {}}


def _default_line(key: str, old: Any, new: Any, old_set: Any, new_set: Any, fallback: str) -> list[str]:
    if old == new and old_set == new_set:
        return []
    shown = [_show(key, value) + ("" if was_set is not None else f" (not set: {fallback})")
             for value, was_set in ((old, old_set), (new, new_set))]
    return [f"`{key}` (each job's default): {shown[0]} → {shown[1]}"]


def _mapping_changes(name: str, old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    lines = []
    for key in [*old, *(k for k in new if k not in old)]:
        label = literal(f"{name}.{key}")
        if key not in new:
            lines.append(f"{label} removed (was {_show('', old[key])})")
        elif key not in old:
            lines.append(f"{label} added: {_show('', new[key])}")
        elif old[key] != new[key] or _text("", old[key]) != _text("", new[key]):  # 1 == True == 1.0, but not as argv
            lines.append(f"{label}: {_show('', old[key])} → {_show('', new[key])}")
    if len(lines) > _MAX_ENTRIES:
        lines = lines[:_MAX_ENTRIES] + [f"{literal(name)}: ... and {len(lines) - _MAX_ENTRIES} more entries changed"]
    return lines


def _prose_changes(old, new) -> list[str]:
    names = sorted(k for k in set(old.sections) | set(new.sections) if old.sections.get(k) != new.sections.get(k))
    if not names:
        return []
    return [f"the prose under {', '.join(names)} (the Claude proposer reads it as the brief)"]


def _file_lines(files: FileChanges | None) -> list[str]:
    if files is None:
        return []
    lines = []
    if files.script_status == "changed":
        lines.append(f"the training script {literal(files.script)} itself changed: every job after the merge runs the "
                     "new code")
    elif files.script_status == "added":
        lines.append(f"the training script {literal(files.script)} is new in this pull request: every job after the "
                     "merge runs it")
    if files.others:
        shown = ", ".join(literal(p) for p in files.others[:_MAX_FILES])
        more = f" and {len(files.others) - _MAX_FILES} more" if len(files.others) > _MAX_FILES else ""
        lines.append(f"other files in the campaign folder changed (each job runs with the whole folder): {shown}{more}")
    return lines


def program_changes(old, new, files: FileChanges | None = None) -> list[str]:
    """Every change against the approved program that can cost money or change what runs, one line each."""
    envelope = [f"Budget envelope: {line}" for line in envelope_changes(old, new)]
    campaign = [f"Campaign: {line}" for line in campaign_changes(old, new)]
    return envelope + campaign + _file_lines(files) + _prose_changes(old, new)


def _bullets(lines: list[str]) -> str:
    return "\n".join(f"- {line}" for line in lines)


def _comparison(program, baseline: Baseline | None, files: FileChanges | None) -> str | None:
    if baseline is None:
        return None
    where = literal(baseline.branch)
    if baseline.state == "unreadable":
        why = literal(baseline.detail or "no reason given", 200)
        return (f"⚠️ **The program approved on {where} could not be read** ({why}), so the changes against it are "
                "**not** shown here. Compare the envelope below with it by hand, or re-run this check.")
    if baseline.state == "none":
        lines = _file_lines(files)
        return (f"{where} has no approved program.md yet: this is the first budget."
                + ("\n\n" + _bullets(lines) if lines else ""))
    if baseline.state == "invalid":
        why = literal(baseline.detail or "see that branch", 200)
        return (f"The program.md on {where} is not valid ({why}), so nothing is approved there: review everything "
                "below as a first budget.")
    changes = program_changes(baseline.program, program, files)
    if not changes:
        return f"Nothing that can cost money or change what runs differs from the program approved on {where}."
    return (f"**Changes against the program approved on {where}** (everything that can cost money or change what "
            "runs):\n" + _bullets(changes))


def render_validation(*, path: str, program=None, problems: list[str] | None = None, approved=None,
                      base: str | None = None, sha: str = "", baseline: Baseline | None = None,
                      files: FileChanges | None = None, target: str | None = None,
                      preflight: list[str] | None = None) -> str:
    """The comment for ``path``: ``program`` when it is valid, else ``problems``.

    ``baseline`` is what is approved on the default branch (``approved`` and ``base`` are the short form: an
    approved program on ``base``, or none there when ``approved`` is None); ``files`` what changed in the campaign
    folder; ``target`` the branch the pull request merges into, when that is not the default branch;
    ``preflight`` what each job would receive and the preflight's findings (``problem: ...`` lines fail it).
    """
    from mlr_action.core.budget import worst_case
    from mlr_action.core.durations import format_duration
    from mlr_action.render.views import describe_envelope

    if baseline is None and base:
        baseline = Baseline(base, "approved" if approved is not None else "none", approved)
    parts = [MARKER]
    if program is None:
        parts += [f"### ❌ {literal(path)} is not valid",
                  "Nothing is spent until it is fixed. Every problem, each with its fix:",
                  _fence(_problem_list(problems or ["unknown problem"]))]
    else:
        walltime, dollars = worst_case(program.envelope, starting_s=program.campaign.scheduling_timeout)
        env = program.envelope
        if target and baseline is not None and target != baseline.branch:
            title = (f"### ✅ {literal(path)} is valid (this pull request merges into {literal(target)}: the budget is "
                     f"approved only when it reaches {literal(baseline.branch)})")
        else:
            title = f"### ✅ {literal(path)} is valid: merging this pull request approves this budget"
        parts += [title,
                  f"**Worst case:** at most {env.max_jobs} jobs, {format_duration(walltime)} of job walltime "
                  f"(each job's timeout and up to {format_duration(program.campaign.scheduling_timeout)} starting), "
                  f"${dollars:.2f} on the priciest allowed flavor (built-in price table, rounded up)."]
        compared = _comparison(program, baseline, files)
        if compared:
            parts.append(compared)
        if preflight is not None:
            parts.append(_preflight(preflight))
        parts.append("<details><summary>Envelope and campaign</summary>\n\n" + _fence(describe_envelope(program))
                     + "\n\n</details>")
    stamp = sha[:7] if re.fullmatch(r"[0-9a-fA-F]{7,64}", sha or "") else "this commit"
    parts.append(f"<sub>mlr-action · checked at {stamp} · this comment is updated in place</sub>")
    return "\n\n".join(parts) + "\n"


def _preflight(lines: list[str]) -> str:
    """The jobs' folder, dependencies and command, and every preflight problem with its fix (shown, never rendered)."""
    bad = [line for line in lines if line.startswith("problem: ")]
    head = (f"❌ **Every job would fail**: {len(bad)} preflight problem{'s' * (len(bad) != 1)}, each with its fix:\n"
            + _fence(_problem_list([line.removeprefix("problem: ") for line in bad])) if bad
            else "**Preflight:** no problem found in what each job receives.")
    return head + "\n\n<details><summary>What each job receives</summary>\n\n" + _fence("\n".join(lines)) + "\n\n</details>"

