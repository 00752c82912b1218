"""Typed progress events: a console sink for people, an event log for programs."""
import json

import pytest

from converter.progress import (ConsoleSink, Epoch, EventLog, Note, PhaseEnded, PhaseStarted, Trial, describe,
                                fan_out, phase)


def test_console_lines():
    lines = []
    sink = ConsoleSink(lines.append)
    for event in (PhaseStarted("load", "loading the model and data"), PhaseStarted("train", "train", 1, 4),
                  Epoch("train", 2, 6, 0.12345), PhaseEnded("train", 1.5), Note("hello"),
                  Trial("search", 3, 10, 0.5, "clusters=8")):
        sink(event)
    assert lines == ["loading the model and data", "stage 1/4: train", "  train: epoch 2/6, loss 0.1235", "hello",
                     "  search: trial 3/10: 0.5 (clusters=8)"]
    assert describe(PhaseEnded("x", 1.0)) is None


def test_phases_are_timed_from_events_also_when_they_fail(tmp_path):
    log = EventLog()
    with phase(log, "load"):
        pass
    with pytest.raises(RuntimeError):
        with phase(log, "train", step=1, steps=2):
            raise RuntimeError("boom")
    with phase(log, "train", step=2, steps=2):
        pass
    assert [type(e).__name__ for e in log] == ["PhaseStarted", "PhaseEnded"] * 3
    assert set(log.phase_seconds()) == {"load", "train"}
    assert log.started_at("train") <= log.times[-1]
    path = tmp_path / "events.jsonl"
    log.write_jsonl(path)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert rows[0] == {"event": "PhaseStarted", "name": "load", "detail": "", "step": None, "steps": None}


def test_fan_out_feeds_every_sink():
    a, b = EventLog(), EventLog()
    fan_out(a, b)(Note("x"))
    assert list(a) == list(b) == [Note("x")]
