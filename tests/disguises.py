"""A token in every disguise a job's output can give it, and an oracle that finds a token in any of them.

:func:`disguises` is pasted (by :data:`SOURCE`) into the training scripts of
the attack tests, so a real job computes the lines from its own environment.
:func:`exposed` decodes whatever looks encoded in a text (base64 and
base64url at every offset, hex, percent and backslash escapes, lines joined
back together) and looks for any 16 bytes of the token in the result, so it
finds a leak whatever the redaction does, without sharing its code.
"""

from __future__ import annotations

import base64
import inspect
import re
import urllib.parse


def disguises(token: str) -> list[str]:
    """Lines that hold ``token``: plainly, encoded, escaped, wrapped at a column."""
    import base64

    raw = token.encode()
    b64 = base64.b64encode(raw).decode()
    blob = base64.encodebytes(b'{"registry": "ghcr.io", "note": "forty bytes of padding", "auth": "' + raw + b'"}').decode()
    hexed = raw.hex()
    lines = [
        "plain " + token,
        "base64 " + b64,
        "base64-unpadded " + b64.rstrip("="),
        "base64url " + base64.urlsafe_b64encode(b"\xfb\xff" + raw + b"\xfe").decode().rstrip("="),
        "hex " + hexed,
        "HEX " + hexed.upper(),
        "percent " + "".join("%%%02X" % b for b in raw),
        "percent-some " + "".join(c if i % 2 else "".join("%%%02x" % b for b in c.encode()) for i, c in enumerate(token)),
        "escaped " + "".join("\\x%02x" % b for b in raw),
        "json " + "".join("\\u%04x" % ord(c) for c in token),
        "wrapped " + token[:11] + "\n" + token[11:],
        "wrapped-indented " + token[:20] + "\r\n        " + token[20:],
        "base64 -w76\n" + blob.rstrip("\n"),
        "xxd -p\n" + "\n".join(hexed[i:i + 30] for i in range(0, len(hexed), 30)),
    ]
    for prefix in ("x-access-token:", "xx-access-token:", "xxx-access-token:"):  # the three byte alignments
        lines.append("Authorization: Basic " + base64.b64encode(prefix.encode() + raw).decode())
    return lines


SOURCE = inspect.getsource(disguises)
WINDOW = 16  # bytes of a token that count as a leak


def _views(text: str) -> list[bytes]:
    """``text`` with its lines joined (JSON-escaped line breaks too), then percent- and backslash-decoded."""
    flat = re.sub(r"(?:\\[rn]|[\r\n])(?:\\[rnt]|[\r\n \t])*", "", text)
    unescaped = re.sub(rb"\\+x([0-9a-fA-F]{2})", lambda m: bytes([int(m.group(1), 16)]), flat.encode("utf-8", "replace"))
    unescaped = re.sub(rb"\\+u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)).encode("utf-8", "replace"), unescaped)
    return [flat.encode("utf-8", "replace"), urllib.parse.unquote_to_bytes(flat), unescaped]


def _decoded(view: bytes) -> list[bytes]:
    out = [view]
    for run in re.findall(rb"[0-9A-Fa-f]{16,}", view):
        for start in (0, 1):
            chunk = run[start:]
            out.append(bytes.fromhex(chunk[: len(chunk) // 2 * 2].decode()))
    for run in re.findall(rb"[A-Za-z0-9+/_-]{12,}", view):
        standard = run.replace(b"-", b"+").replace(b"_", b"/")
        for start in range(4):
            chunk = standard[start:]
            if len(chunk) % 4 == 1:
                chunk = chunk[:-1]
            out.append(base64.b64decode(chunk + b"=" * (-len(chunk) % 4)))
    return out


def exposed(text: str, secrets: dict[str, str]) -> list[str]:
    """The names of the secrets any 16 bytes of which ``text`` holds, in any disguise."""
    found = []
    blobs = [blob for view in _views(text) for blob in _decoded(view)]
    for name, value in secrets.items():
        raw = value.encode()
        windows = {raw[i:i + WINDOW] for i in range(max(1, len(raw) - WINDOW + 1))}
        if any(window in blob for blob in blobs for window in windows):
            found.append(name)
    return found
