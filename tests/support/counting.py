"""Counting the calls a piece of code makes to an object (the cache, a client)."""

from __future__ import annotations


def count_outermost_calls(monkeypatch, target, names: tuple[str, ...]) -> list[str]:
    """The names of ``target``'s methods ``names`` as they are called, outermost calls only
    (LocMemCache's ``get_many`` calls its own ``get``, ``set_many`` its ``set``)."""
    calls: list[str] = []
    depth: list[str] = []

    def counted(name, original):
        def method(*args, **kwargs):
            if not depth:
                calls.append(name)
            depth.append(name)
            try:
                return original(*args, **kwargs)
            finally:
                depth.pop()

        return method

    for name in names:
        monkeypatch.setattr(target, name, counted(name, getattr(target, name)))
    return calls
