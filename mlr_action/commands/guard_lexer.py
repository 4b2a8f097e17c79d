"""The words of a Bash command line as ``mlr guard`` reads them: characters in, words and separators out.

:func:`tokens` splits a command into :class:`Word` s (each character marked
quoted or not) and the separators ``;``, ``&&``, ``|`` and newline;
:func:`expand_tilde` gives a word's text after bash's tilde expansion, the
only expansion the guard models. Guarantees: a word's text is exactly the
string bash would pass (quotes removed, backslash escapes applied); every
character this reader does not expect (``$``, backquotes, redirections,
globs, braces, parentheses, ``!``, ``#``, ``&``, ``||``, control characters,
line continuations, unterminated quotes, a ``~`` after an unquoted ``=`` or
``:``) raises :class:`Unmodelled` naming the construct, so it fails closed.
The commands these words make are :mod:`mlr_action.commands.guard_shell`'s.
"""

from __future__ import annotations

from dataclasses import dataclass


class Unmodelled(ValueError):
    """A construct the guard does not model; the message names it."""


_UNQUOTED = {
    "$": "a $ expansion ($VAR, ${VAR}, $(...), $((...)), $'...')",
    "`": "a command substitution (`...`)",
    "<": "a redirection, here-doc or process substitution (<, <<, <<<, <(...))",
    ">": "a redirection or process substitution (>, >>, >(...))",
    "(": "a subshell, function or pattern ( (...) )",
    ")": "a subshell, function or pattern ( (...) )",
    "{": "a brace expansion or command group ({...})",
    "}": "a brace expansion or command group ({...})",
    "*": "a glob (*, ?, [...])",
    "?": "a glob (*, ?, [...])",
    "[": "a glob (*, ?, [...])",
    "!": "! (history expansion or negation)",
}
_DOUBLE_QUOTED = {"$": _UNQUOTED["$"], "`": _UNQUOTED["`"], "!": _UNQUOTED["!"]}
_CONTINUATION = "a line continuation (backslash-newline)"

@dataclass
class Word:
    chars: list[str]
    quoted: list[bool]

    def add(self, text: str, quoted: bool) -> None:
        self.chars.extend(text)
        self.quoted.extend([quoted] * len(text))

    @property
    def text(self) -> str:
        return "".join(self.chars)


def _single(command: str, i: int, word: Word) -> int:
    end = command.find("'", i + 1)
    if end < 0:
        raise Unmodelled("an unterminated ' quote")
    word.add(command[i + 1 : end], True)
    return end + 1


def _double(command: str, i: int, word: Word) -> int:
    i += 1
    while i < len(command):
        c = command[i]
        if c == '"':
            return i + 1
        if c in _DOUBLE_QUOTED:
            raise Unmodelled(_DOUBLE_QUOTED[c])
        if c == "\\" and i + 1 < len(command):
            nxt = command[i + 1]
            if nxt == "\n":
                raise Unmodelled(_CONTINUATION)
            word.add(nxt if nxt in '$`"\\' else c + nxt, True)
            i += 2
            continue
        word.add(c, True)
        i += 1
    raise Unmodelled('an unterminated " quote')


def tokens(command: str) -> list[Word | str]:
    """Words and the separators ``;``, ``&&``, ``|`` and newline."""
    tokens: list[Word | str] = []
    word: Word | None = None
    i = 0
    while i < len(command):
        c = command[i]
        if c in " \t\n;&|":
            if word is not None:
                tokens.append(word)
                word = None
            op = command[i : i + 2]
            if op in ("||", "|&", ";;", "&>") or (c == "&" and op != "&&"):
                raise Unmodelled({"||": "||", "|&": "|&", ";;": ";;"}.get(op, "& (a background job or &> redirection)"))
            if c in ";|\n" or op == "&&":
                tokens.append(op if op == "&&" else c)
            i += 2 if op == "&&" else 1
            continue
        if word is None:
            word = Word([], [])
            if c == "#":
                raise Unmodelled("a # comment")
            if c == "=":
                raise Unmodelled("a word starting with = (zsh's =command)")
        if c == "'":
            i = _single(command, i, word)
        elif c == '"':
            i = _double(command, i, word)
        elif c == "\\":
            if i + 1 >= len(command):
                raise Unmodelled("a backslash at the end of the command")
            if command[i + 1] == "\n":
                raise Unmodelled(_CONTINUATION)
            word.add(command[i + 1], True)
            i += 2
        elif c in _UNQUOTED:
            raise Unmodelled(_UNQUOTED[c])
        elif ord(c) < 32 or c == "\x7f":
            raise Unmodelled(f"a control character ({c!r})")
        else:
            if c == "~" and word.chars and word.chars[-1] in "=:" and not word.quoted[-1]:
                raise Unmodelled(f"a ~ after {word.chars[-1]} (expanded in some words and not others)")
            word.add(c, False)
            i += 1
    if word is not None:
        tokens.append(word)
    return tokens


def expand_tilde(word: Word, home: str | None) -> str:
    """The word's text after bash's tilde expansion (no other expansion reaches here)."""
    text = word.text
    if not text.startswith("~") or word.quoted[0]:
        return text
    end = next((k for k, ch in enumerate(text) if ch == "/" and not word.quoted[k]), len(text))
    if any(word.quoted[:end]):
        return text  # bash expands no tilde prefix that has a quoted character in it
    name = text[1:end]
    if not name:
        if not home:
            raise Unmodelled("~ with HOME unset")
        return home + text[end:]
    if ":" in name or name[0] in "+-" or name.isdigit():
        raise Unmodelled(f"~{name} (the directory stack, or a ~ prefix ending in :)")
    try:
        import pwd

        return pwd.getpwnam(name).pw_dir + text[end:]
    except KeyError:
        return text  # no such user: bash leaves the word as it is
    except ImportError:
        raise Unmodelled(f"~{name} (no user database on this system)") from None

