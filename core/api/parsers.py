"""The API's JSON parser: DRF's, plus two refusals that would otherwise be 500s further in."""

from __future__ import annotations

import json

from rest_framework import parsers
from rest_framework.exceptions import ParseError


class JSONParser(parsers.JSONParser):
    """A body nested deeper than the interpreter can parse (``[[[[...`` 30,000 deep raises
    ``RecursionError`` in ``json``) and a string with a lone surrogate (``"\\ud800"``: valid
    JSON, not Unicode text; it cannot be hashed, stored or logged as UTF-8) are parse errors,
    answered 400 like any other malformed body."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply") from None
        try:
            json.dumps(data, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise ParseError("JSON parse error - a string holds a lone surrogate") from None
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply") from None
        return data
