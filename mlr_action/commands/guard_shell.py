"""The part of the shell language ``mlr guard`` reads, and nothing more.

:func:`read` turns a Bash command line into pipelines of simple commands, each a
tuple of words as bash would pass them to the program, and :func:`change_dir`
says where a ``cd`` leads, as bash's ``cd`` does it. Whatever this module does
not model raises :class:`Unmodelled` naming the construct, so a caller that
only acts on what :func:`read` returned cannot be led by a construct it never
saw. The subset is small on purpose: it is what an agent needs to submit a job
(``cd campaign && hf jobs run --flavor t4-small --timeout 1h img python t.py``)
and every word in it means one fixed string. The words themselves (quotes,
escapes, ``~``) are read by :mod:`mlr_action.commands.guard_lexer`.

Read:

- words of literal characters, ``'single quotes'``, ``"double quotes"`` (with
  no ``$``, backquote or ``!`` inside) and backslash escapes;
- a ``~`` or ``~user`` prefix at the start of a word, expanded as bash does
  (not when any of it is quoted; ``~`` needs ``HOME``, an unknown user stays
  literal);
- simple commands joined by ``&&``, ``;``, newlines and ``|``;
- ``NAME=value`` words before a command's name (its environment);
- ``cd`` (alone in its pipeline), and the builtins that change nothing in the
  shell (``echo``, ``true``, ``false``, ``pwd``, ``test``, ``:``). Any other
  command name is a program, which cannot change the shell it runs from.

Unmodelled, so refused: ``$`` in any form (``$X``, ``${X}``, ``$(...)``,
``$((...))``, ``$'...'``, ``$"..."``), backquotes, redirections and here-docs
(``<``, ``>``), process substitution, ``(`` and ``)`` (subshells, functions),
``{`` and ``}`` (brace expansion, groups), globs (``*``, ``?``, ``[``), ``!``,
``#`` comments, ``&`` (background), ``||``, ``|&``, ``;;``, line continuations,
control characters, reserved words (``if``, ``for``, ``while``, ``case``,
``time``, ``function``, ``coproc``, ...), every other builtin (``eval``,
``exec``, ``source``, ``command``, ``builtin``, ``alias``, ``export``,
``pushd``, ``set``, ``shopt``, ``trap``, ...), assignments with no command
(they could change ``HOME``, ``CDPATH`` or ``OLDPWD``), a ``~`` after an
unquoted ``=`` or ``:`` in a word, an unquoted ``=`` starting a word (zsh's
``=cmd``), and empty commands around ``&&``, ``|`` and ``;``.

Why a hand reader rather than a parser library: the decision needs a strict
subset, not a complete grammar, and a reader that stops at the first character
it does not expect fails closed by construction. bashlex is GPL-3.0 (this
project is MIT). tree-sitter-bash (MIT, compiled wheels that install on 3.10
and 3.13 here) is built for editors: it recovers from errors, reads
``cd a;;b`` without complaint, and groups ``a && b 2>&1 | c`` as
``(a && b) | c`` where bash runs ``a && (b | c)``; we would still have to
refuse every node type outside the subset and compute each word's value
ourselves, which is all this module does.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass

from mlr_action.commands.guard_lexer import Unmodelled, Word, expand_tilde, tokens


@dataclass(frozen=True)
class SimpleCommand:
    """One command: its ``NAME=value`` prefix and its words, expanded as bash would."""

    assignments: tuple[str, ...]
    words: tuple[str, ...]


Pipeline = list[SimpleCommand]

RESERVED = frozenset("if then else elif fi case esac for select while until do done in function time coproc "
                     "{ } ! [[ ]]".split())
# Builtins that change nothing in the shell they run in; every other builtin is refused.
HARMLESS = frozenset({"echo", "true", "false", "pwd", "test", ":"})
BUILTINS = frozenset(". : [ alias bg bind break builtin caller cd command compgen complete compopt continue declare "
                     "dirs disown echo enable eval exec exit export false fc fg getopts hash help history jobs kill "
                     "let local logout mapfile popd printf pushd pwd read readarray readonly return set shift shopt "
                     "source suspend test times trap true type typeset ulimit umask unalias unset wait".split())

_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\+?=")


def _command(words: list[Word], home: str | None) -> SimpleCommand:
    assignments = []
    while words and (m := _ASSIGNMENT.match(words[0].text)) and not any(words[0].quoted[: m.end()]):
        assignments.append(words.pop(0).text)
    if not words:
        raise Unmodelled("an assignment with no command (it changes the shell's own variables)")
    name = words[0].text
    if name in RESERVED:
        raise Unmodelled(f"the shell keyword {name}")
    if name in BUILTINS and name not in HARMLESS and name != "cd":
        raise Unmodelled(f"the builtin {name}")
    if name == "cd" and assignments:
        raise Unmodelled("an assignment before cd")
    return SimpleCommand(tuple(assignments), tuple(expand_tilde(w, home) for w in words))


def read(command: str, *, home: str | None) -> list[Pipeline]:
    """The pipelines of ``command`` in the order they run; raises :class:`Unmodelled`.

    ``&&``, ``;`` and newlines all separate pipelines: a caller that counts every
    command of every pipeline counts at least what runs.
    """
    if "\x00" in command:
        raise Unmodelled("a NUL character")
    pipelines: list[Pipeline] = []
    pipeline: Pipeline = []
    words: list[Word] = []
    previous = "\n"
    for token in [*tokens(command), "\n"]:
        if isinstance(token, Word):
            words.append(token)
            continue
        if words:
            pipeline.append(_command(words, home))
            words = []
        elif token != "\n" or previous in ("&&", "|"):
            raise Unmodelled(f"an empty command before {token!r}" if token != "\n" else f"a command ending in {previous}")
        previous = token
        if token == "|":
            continue
        if pipeline:
            if len(pipeline) > 1 and any(c.words[0] == "cd" for c in pipeline):
                raise Unmodelled("cd inside a pipeline (it runs in a subshell)")
            pipelines.append(pipeline)
            pipeline = []
    return pipelines


def _enterable(path: str) -> bool:
    return os.path.isdir(path) and os.access(path, os.X_OK)


def _canonical(path: str, is_dir: Callable[[str], bool]) -> str | None:
    """bash's logical canonical form of an absolute path: ``..`` removes the component before it.

    As bash does, each ``..`` needs the path before it to be a folder; when one is not, None
    (bash then falls back to the literal path, which fails the same way).
    """
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not is_dir("/" + "/".join(parts)):
                return None
            if parts:
                parts.pop()
            continue
        parts.append(part)
    return "/" + "/".join(parts)


def change_dir(args: tuple[str, ...] | list[str], *, cwd: str, oldpwd: str | None, home: str | None,
               cdpath: str | None, is_dir: Callable[[str], bool] = _enterable) -> str:
    """The folder ``cd ARGS`` run in ``cwd`` (absolute, logical) leads to, as bash's cd.

    Modelled: no argument (``$HOME``), ``-`` (``oldpwd``, the folder before this command's last
    cd), ``-L`` and ``--``, and one path, canonicalised logically (``link/..`` is the folder that
    holds ``link``). Raises :class:`Unmodelled` when the result is not certain: ``-P`` and other
    options, several arguments, an unknown ``HOME`` or ``OLDPWD``, a relative path that ``CDPATH``
    could redirect, or a folder that does not exist (cd would fail and the rest run elsewhere).
    """
    args = list(args)
    while args[:1] == ["-L"]:
        args.pop(0)
    if args[:1] == ["--"]:
        args.pop(0)
    shown = " ".join(["cd", *args])
    if len(args) > 1:
        raise Unmodelled(f"{shown} (more than one argument)")
    if args and (args[0].startswith("-") and args[0] != "-" or re.fullmatch(r"\+\d+", args[0])):
        raise Unmodelled(f"{shown} (an option or a directory-stack entry)")
    if not args:
        if not home:
            raise Unmodelled("cd with HOME unset")
        target = home
    elif args[0] == "-":
        if oldpwd is None:
            raise Unmodelled("cd - before any cd in this command (the shell's OLDPWD is unknown)")
        target = oldpwd
    else:
        target = args[0]
    if not target:
        raise Unmodelled("cd to an empty path")
    if cdpath and not target.startswith("/") and target.split("/", 1)[0] not in (".", ".."):
        raise Unmodelled(f"{shown} with CDPATH set")
    path = target if target.startswith("/") else cwd.rstrip("/") + "/" + target
    canonical = _canonical(path, is_dir)
    if canonical is None or not is_dir(canonical):
        raise Unmodelled(f"{shown} (no such folder, so cd fails and the rest runs elsewhere)")
    return canonical
