"""The forms a secret value takes in text, and one regular expression that finds them all.

Software rarely writes a secret exactly as it is: an exception quotes it through ``repr``, a
request body through JSON, a URL percent-encodes it, a Basic auth header base64-encodes it.
Redaction (runtime/secrets.py) must recognise each of these, and fast: it runs on every log
line and every write to stdout of a step.
"""

from __future__ import annotations

import base64
import functools
import json
import re
from collections.abc import Callable, Iterable
from urllib.parse import quote, quote_plus

_END = ""  # trie key marking that a form ends at this node


@functools.lru_cache(maxsize=1024)
def secret_forms(value: str) -> frozenset[str]:
    """The ways ``value`` shows up in text: as-is, escaped in a string literal (Python or
    JSON, once or twice), URL-encoded, base64 of the whole value."""
    quoted = {value, *_repr_bodies(value), *_json_bodies(value)}
    twice = {form for once in quoted for form in (_repr_body(once), *_json_bodies(once))}
    raw = _utf8(value)
    encoded = {
        quote(raw),
        quote(raw, safe=""),
        quote_plus(raw),
        quote_plus(raw, safe=""),
        *_base64(raw, base64.b64encode),
        *_base64(raw, base64.urlsafe_b64encode),
    }
    return frozenset(quoted | twice | encoded)


@functools.lru_cache(maxsize=64)
def forms_pattern(values: frozenset[str]) -> re.Pattern[str] | None:
    """A regex matching, at any position, the longest form of any of ``values`` (None when
    there are none)."""
    forms = {form for value in values for form in secret_forms(value) if form}
    if not forms:
        return None
    try:
        return re.compile(_trie_regex(forms))
    except (RecursionError, re.error):  # pathological nesting: the plain alternation is slower
        longest_first = sorted(forms, key=len, reverse=True)
        return re.compile("|".join(re.escape(form) for form in longest_first))


def _trie_regex(forms: Iterable[str]) -> str:
    """The forms as a prefix tree: where forms share a start the regex checks it once, so the
    cost per character of text does not grow with the number of forms (measured: 5x faster
    than ``a|b|c`` on 100 KB with 65 forms). Greedy optional tails make the longest form win."""
    trie: dict[str, dict] = {}
    for form in forms:
        node = trie
        for char in form:
            node = node.setdefault(char, {})
        node[_END] = {}
    return _node_regex(trie)


def _node_regex(node: dict[str, dict]) -> str:
    chain = []
    while True:  # a run of single children is a plain literal (and no recursion)
        children = [char for char in node if char != _END]
        if len(children) != 1 or _END in node:
            break
        chain.append(re.escape(children[0]))
        node = node[children[0]]
    if not children:
        return "".join(chain)
    branches = [re.escape(char) + _node_regex(node[char]) for char in sorted(children)]
    body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
    return "".join(chain) + (f"(?:{body})?" if _END in node else body)


def _repr_body(text: str) -> str:
    """``text`` as the inside of a single-quoted Python literal (a leading quote pair forces
    that style; Python never escapes a double quote)."""
    return repr("'\"" + text)[4:-1]


def _repr_bodies(value: str) -> set[str]:
    """str, ascii() and bytes literals, escaping ``'`` (single-quoted) or not (double-quoted)."""
    bodies = {
        _repr_body(value),
        ascii("'\"" + value)[4:-1],
        repr(b"'\"" + _utf8(value))[5:-1],
    }
    return bodies | {body.replace("\\'", "'") for body in bodies}


def _json_bodies(text: str) -> set[str]:
    return {json.dumps(text)[1:-1], json.dumps(text, ensure_ascii=False)[1:-1]}


def _base64(raw: bytes, encode: Callable[[bytes], bytes]) -> tuple[str, str]:
    """Padded and bare (JWT and URL-safe tokens drop the ``=``)."""
    text = encode(raw).decode()
    return text, text.rstrip("=")


def _utf8(value: str) -> bytes:
    """The bytes behind ``value``, also for an environment variable that was not UTF-8."""
    try:
        return value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogatepass")
