"""Which characters a short, single-line text that other people see (a conversation title, a
display name, an email address) may hold.

Refused, not stripped: stripping silently changes what the sender typed, and a refusal tells a
client what to fix. Refused are control characters (Unicode category Cc, tab and newline
included), format characters (Cf: the bidirectional embeddings and overrides U+202A-U+202E, the
isolates U+2066-U+2069, the marks U+200E/U+200F, zero-width spaces, ...), lone surrogates (Cs)
and the line and paragraph separators (Zl, Zp). The zero-width non-joiner and joiner (U+200C,
U+200D) stay allowed: Persian and Indic names and emoji sequences need them.
"""

from __future__ import annotations

import unicodedata

REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
ALLOWED_FORMAT_CHARACTERS = frozenset({"\u200c", "\u200d"})


def unsafe_characters(text: str) -> list[str]:
    """The refused characters in ``text``, each once, as ``U+XXXX`` (empty when it is fine)."""
    found = []
    for char in text:
        if char in ALLOWED_FORMAT_CHARACTERS or unicodedata.category(char) not in REFUSED_CATEGORIES:
            continue
        code = f"U+{ord(char):04X}"
        if code not in found:
            found.append(code)
    return found
