"""The one error type the kit raises for bad input: a problem and the fix, on one line."""
from __future__ import annotations

import sys

# Characters of a foreign message (an exception from TensorFlow, TF-MOT, a flatbuffer reader, a
# tool's output) a KitError keeps: enough for the cause, short enough to stay one readable line.
FOREIGN_CHARS = 300


class KitError(Exception):
    """A user-facing error. The CLI prints `error: <problem> — fix: <fix>` and exits 2.

    `kind` says which failure it is, stable when the message is reworded (the fuzz corpus compares
    it): the `code` given where one raise site has several failures, else the class and the
    function that raised it."""

    def __init__(self, problem: str, fix: str = "", code: str | None = None):
        self.problem = " ".join(str(problem).split())
        self.fix = " ".join(str(fix).split())
        self.code = code
        self.site = _raise_site()
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"{self.problem} — fix: {self.fix}" if self.fix else self.problem

    @property
    def kind(self) -> str:
        return self.code or f"{type(self).__name__}@{self.site}"


def _raise_site() -> str:
    """'module:function' (without 'converter.') of the code that built the KitError, above any
    subclass __init__."""
    frame = sys._getframe(2)  # 0: here, 1: KitError.__init__
    while frame is not None and frame.f_code.co_name == "__init__" and isinstance(frame.f_locals.get("self"), KitError):
        frame = frame.f_back
    if frame is None:
        return "?"
    return f"{frame.f_globals.get('__name__', '?').removeprefix('converter.')}:{frame.f_code.co_name}"


def foreign_text(error: BaseException | str, with_type: bool = False, tail: bool = False) -> str:
    """A foreign exception's message (or a tool's printed output) for a KitError: on one line, cut to
    FOREIGN_CHARS; `tail` keeps the end (a build log, where the cause comes last); `with_type` names
    the exception's class first."""
    text = " ".join(str(error).split())
    text = text[-FOREIGN_CHARS:] if tail else text[:FOREIGN_CHARS]
    return f"{type(error).__name__}: {text}" if with_type else text


class CheckFailed(Exception):
    """A check ran and found a difference (e.g. changed golden outputs): a result, not a crash."""
