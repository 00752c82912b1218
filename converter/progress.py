"""Typed progress events and the sinks that receive them.

Long work (phases of a conversion, training epochs, search trials) reports through a sink passed
in by the caller: a callable that takes one event. Nothing is global; a caller that passes no sink
hears nothing. Two sinks ship here:

- `ConsoleSink(write)` turns each event into one human line (the CLI prints these);
- `EventLog()` keeps the events (a list) for programs: `phase_seconds()` for timing tables,
  `write_jsonl(path)` for a file. The bench times phases from it, never from log text.

Other helpers add events here (e.g. `Trial` for a search); a sink ignores kinds it does not know.
"""
from __future__ import annotations

import contextlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional, Union


@dataclass(frozen=True)
class PhaseStarted:
    """A phase of a flow begins: `name` is stable (e.g. 'load', 'train', 'golden'), `detail` is for people."""

    name: str
    detail: str = ""
    step: Optional[int] = None   # stages are numbered: step of steps
    steps: Optional[int] = None


@dataclass(frozen=True)
class PhaseEnded:
    name: str
    seconds: float


@dataclass(frozen=True)
class Epoch:
    """One finished training epoch of a stage."""

    stage: str
    n: int
    of: int
    loss: Optional[float] = None


@dataclass(frozen=True)
class Trial:
    """One finished trial of a search (optimize, federated rounds): its number and its score."""

    study: str
    n: int
    of: Optional[int] = None
    value: Optional[float] = None
    detail: str = ""


@dataclass(frozen=True)
class Note:
    """Anything else worth a line (e.g. 'trying the model once in a separate process')."""

    text: str


Event = Union[PhaseStarted, PhaseEnded, Epoch, Trial, Note]
Sink = Callable[[Event], None]


def silent(event: Event) -> None:
    """The sink of a caller who wants no progress."""


def describe(event: Event) -> Optional[str]:
    """One human line for an event, or None when a person need not see it (a phase's end)."""
    if isinstance(event, PhaseStarted):
        if event.step is not None:
            return f"stage {event.step}/{event.steps}: {event.detail or event.name}"
        return event.detail or event.name
    if isinstance(event, Epoch):
        return f"  {event.stage}: epoch {event.n}/{event.of}" + (f", loss {event.loss:.4f}" if event.loss is not None else "")
    if isinstance(event, Trial):
        of = f"/{event.of}" if event.of else ""
        value = f": {event.value:.4g}" if event.value is not None else ""
        return f"  {event.study}: trial {event.n}{of}{value}" + (f" ({event.detail})" if event.detail else "")
    if isinstance(event, Note):
        return event.text
    return None


class ConsoleSink:
    """Writes one line per event a person wants to see."""

    def __init__(self, write: Callable[[str], None] = print):
        self.write = write

    def __call__(self, event: Event) -> None:
        line = describe(event)
        if line is not None:
            self.write(line)


class EventLog(list):
    """Keeps every event, in order, with the time it arrived (perf_counter seconds)."""

    def __init__(self):
        super().__init__()
        self.times: list[float] = []

    def __call__(self, event: Event) -> None:
        self.append(event)
        self.times.append(time.perf_counter())

    def phase_seconds(self) -> dict[str, float]:
        """Phase name -> seconds it took (summed when a name repeats), from the PhaseEnded events."""
        out: dict[str, float] = {}
        for event in self:
            if isinstance(event, PhaseEnded):
                out[event.name] = round(out.get(event.name, 0.0) + event.seconds, 2)
        return out

    def started_at(self, name: str) -> float:
        """When phase `name` first started (perf_counter seconds)."""
        return next(t for e, t in zip(self, self.times) if isinstance(e, PhaseStarted) and e.name == name)

    def write_jsonl(self, path: Path) -> None:
        lines = [json.dumps({"event": type(e).__name__, **asdict(e)}) for e in self]
        Path(path).write_text("".join(line + "\n" for line in lines))


def notes(sink: Sink) -> Callable[[str], None]:
    """A `log(text)` function that sends each line to `sink` as a Note: what a flow hands to the helpers
    that report in plain lines (search bookkeeping, firmware builds)."""
    def note(text: str) -> None:
        sink(Note(text))
    return note


def fan_out(*sinks: Sink) -> Sink:
    """One sink that hands every event to each of `sinks`."""
    def sink(event: Event) -> None:
        for each in sinks:
            each(event)
    return sink


@contextlib.contextmanager
def phase(sink: Sink, name: str, detail: str = "", step: Optional[int] = None,
          steps: Optional[int] = None) -> Iterator[None]:
    """Report a phase's start, and its end with its duration (also when it fails)."""
    started = time.perf_counter()
    sink(PhaseStarted(name, detail, step, steps))
    try:
        yield
    finally:
        sink(PhaseEnded(name, round(time.perf_counter() - started, 3)))
