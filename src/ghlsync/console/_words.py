"""Errors in plain words: what an office manager can read and act on.

The raw error stays visible next to it (for whoever they ask for help); this is the first
line they read.
"""

from __future__ import annotations

import re

__all__ = ["plain_error"]

# (pattern in the raw error or its class, the sentence shown); the first match wins.
_RULES: tuple[tuple[str, str], ...] = (
    (  # first: a mapping problem's message may quote a value that looks like a status
        r"cannot map|cannot be mapped|unknown event|is not an? (email|phone|date|number)",
        "The event's data does not fit the mapping. Try its payload in the Mapping tester.",
    ),
    (
        r"\b401\b|unauthori[sz]ed|invalid token|token.*expired",
        "GHL refused the sign-in token. Reconnect GHL (Connections) or replace the token.",
    ),
    (
        r"\b403\b|forbidden|scope",
        "GHL says the token may not do this. Give the app the missing permission, then replay.",
    ),
    (
        r"\b429\b|rate.?limit|too many",
        "GHL's rate limit was reached. ghlsync waits and retries by itself.",
    ),
    (
        r"\b404\b|not.?found",
        "GHL no longer has the record (deleted there?). Replay creates it again if needed.",
    ),
    (
        r"\b(400|422)\b|invalid|validation|unprocessable",
        "GHL refused the data (a field it does not accept). Check the mapping, then replay.",
    ),
    (
        r"never synced|not synced|no contact|missing contact",
        "The customer this belongs to has not reached GHL yet. It is retried once they have.",
    ),
    (
        r"timeout|timed out|connect|network|outcome ?unknown|5\d\d\b",
        "GHL did not answer in time or had an error of its own. ghlsync retries by itself.",
    ),
    (r"uninstall", "The location was uninstalled from GHL, so nothing is sent there any more."),
)
_COMPILED = [(re.compile(pattern, re.IGNORECASE), words) for pattern, words in _RULES]


def plain_error(raw: str | None, error_class: str = "") -> str:
    """One sentence for an error message (and its class name, when known)."""
    text = f"{error_class} {raw or ''}"
    for pattern, words in _COMPILED:
        if pattern.search(text):
            return words
    return "Something unexpected went wrong; the details below say what."
