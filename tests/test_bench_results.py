"""bench/results.md is rendered from optimize search files only: rows, goals and the honest delta."""
import json

from bench import results_render
from bench.mlperf_models import MODELS


def _trial(number, phase, params, status, model_bytes, flash, arena, instructions, metrics):
    cost = {"model_bytes": model_bytes, "flash_bytes": flash, "flash_source": "linked image", "arena_bytes": arena,
            "arena_source": "emulated target", "instructions": instructions}
    return {"number": number, "phase": phase, "params": params, "status": status, "reason": "", "metrics": metrics,
            "cost": cost}


def _search(best, winner_bytes, winner_flash, metrics):
    plain = {"top1_agreement": 1.0, "accuracy_float": 0.9, "accuracy_quantized": 0.9, "accuracy_drop": 0.0,
             "min_sqnr_db": 30.0}
    trials = [_trial(0, "reference", {"clusters:a": 0}, "passed", 50_000, 200_000, 20_000, 1_000, plain),
              _trial(1, "tpe", {"clusters:a": 4}, "passed", winner_bytes, winner_flash, 25_000, 1_200, metrics),
              {"number": 2, "phase": "tpe", "params": {"clusters:a": 2}, "status": "error", "reason": "x",
               "metrics": {}, "cost": None}]
    return {"summary": {"best_trial": best}, "trials": trials,
            "bench": {"command": "tflm-kit optimize R", "wall_seconds": 12.5}}


def test_rows_goals_and_deltas_come_from_the_search(tmp_path, monkeypatch):
    monkeypatch.delenv("TFLM_KIT_SHARED_DATA", raising=False)  # no reference file: no ratio, goal not met
    good = {"top1_agreement": 0.97, "accuracy_float": 0.9, "accuracy_quantized": 0.895, "accuracy_drop": 0.005,
            "min_sqnr_db": 25.0}
    (tmp_path / "kws.json").write_text(json.dumps(_search(1, 20_000, 210_000, good)))
    (tmp_path / "demo.json").write_text(json.dumps(_search(0, 20_000, 210_000, good)))
    rows, missing = results_render.load_rows(tmp_path)
    assert [r.key for r in rows] == ["demo", "kws"] and set(missing) == set(MODELS) - {"demo", "kws"}
    kws = rows[1]
    assert (kws.winner, kws.winner_model_bytes, kws.image_plain, kws.image_winner) == ("a:4", 20_000, 200_000, 210_000)
    assert (kws.trials, kws.passed, kws.failed, kws.wall_seconds) == (3, 2, 1, 12.5)
    assert kws.ratio is None and kws.goal_met is False
    assert rows[0].winner == "plain int8" and rows[0].goal_met is None  # the demo has no goal in the issue
    text = results_render.markdown(rows, missing, "note")
    assert "200,000 -> 210,000 (+10,000)" in text  # compression that costs more code than it saves shows a +
    assert "python -m bench.run --only vww" in text


def test_goal_needs_size_and_every_quality_guard():
    kws, ad = MODELS["kws"], MODELS["ad"]
    good = {"top1_agreement": 0.96, "accuracy_drop": 0.005}
    assert results_render.goal_met(kws, 0.39, good) is True
    assert results_render.goal_met(kws, 0.41, good) is False
    assert results_render.goal_met(kws, 0.39, good | {"accuracy_drop": 0.02}) is False
    assert results_render.goal_met(kws, 0.39, {"top1_agreement": 0.96}) is False  # a guard without its value
    assert results_render.goal_met(ad, 0.45, {"min_sqnr_db": 21.0}) is True
    assert results_render.goal_met(ad, 0.45, {"min_sqnr_db": 19.0}) is False
