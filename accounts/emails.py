"""The canonical form of an email address: the one rule for storage, lookup, uniqueness and
every throttle key.

Unicode NFKC, then ``str.casefold``, nothing else: ``kri\\u017ftis@`` (U+017F long s) and
``\\u212aristis@`` (U+212A Kelvin sign) become ``kristis@``; ``kr\\u0131stis@`` (U+0131 dotless i)
stays a different address. The database compares the stored canonical strings exactly; nothing
is case-folded on its side (PostgreSQL's ``UPPER()`` folds the dotless i to ``I`` and would make
two addresses one).
"""

from __future__ import annotations

import hashlib
import unicodedata


def canonical_email(email: str) -> str:
    """``email`` without surrounding whitespace, in NFKC, case-folded."""
    return unicodedata.normalize("NFKC", email.strip()).casefold()


def email_key(email: str) -> str:
    """A digest of the canonical form, for cache keys (any string, lone surrogates included)."""
    return hashlib.sha256(canonical_email(email).encode("utf-8", "surrogatepass")).hexdigest()
