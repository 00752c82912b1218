"""The search: sensitivity first, then Optuna's TPE over the space, trials run as Ray tasks.

Order of trials:
1. reference: nothing compressed (plain int8), the yardstick for size and quality;
2. sensitivity (when the budget has room: at least two trials per layer): each layer alone at
   4 clusters, which says what each layer costs in quality and saves in bytes; with less room, one
   'uniform' trial instead: every layer at 16 clusters;
3. greedy: every layer that held the guards alone at 4 clusters gets 4, the others 16;
4. TPE: Optuna's tree-structured Parzen estimator with the guards as constraints (constrained TPE:
   a candidate is feasible when every guard value is <= 0) minimizing the objective. Every earlier
   trial is an observation it learns from, including those of an interrupted run (resume).

Each trial is a Ray task with its own CPU budget; as many run at once as the workers allow. A task
whose worker dies is recorded as crashed and the search goes on.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Callable, Optional

from ..errors import foreign_text
from ..progress import Sink, Trial, notes
from .space import Space, describe, touched_layers
from .store import SearchStore, comparable_key, search_value
from .trial import CRASHED, ERROR, TrialResult, TrialSpec


@dataclass(frozen=True)
class SearchPlan:
    space: Space
    trials: int                   # all trials, the plain int8 reference included
    objective: str
    workers: int
    cpus_per_trial: int
    seed: int
    template: TrialSpec           # number, phase and params are filled in per trial
    ray_address: Optional[str] = None


def fixed_candidates(space: Space, store: SearchStore, budget: int) -> list[tuple[str, dict]]:
    """Reference and sensitivity trials not yet run (in order). A budget too small for sensitivity
    starts from 4-bit candidates instead: packed int4 on the large layers, then on every layer (when
    the compress step has int4), and every layer at 16 clusters (4-bit LUT indices)."""
    wanted = [("reference", space.reference())]
    if budget >= 2 * len(space.layers):
        wanted += [("sensitivity", space.only(layer)) for layer in space.layers]
    elif budget >= 1:
        if space.int4:  # packed int4 needs no DECODE kernel: the lever that can shrink the deployed image
            wanted += [("int4", space.int4_large()), ("int4", space.int4_all())]
        uniform = space.uniform()
        if uniform is not None:
            wanted.append(("uniform", uniform))
    done = {(t.phase, tuple(sorted(t.params.items()))) for t in store.trials}
    unique: dict = {}  # a small model can make two of these the same candidate: run it once
    for phase, params in wanted:
        unique.setdefault(tuple(sorted(params.items())), (phase, params))
    return [(phase, params) for key, (phase, params) in unique.items() if (phase, key) not in done]


def greedy_candidate(space: Space, store: SearchStore) -> Optional[dict]:
    """From finished sensitivity trials: layers that kept quality alone at 4 clusters get 4, others 16
    (on a flatbuffer base: the layers that kept it alone as int4 are packed, see Space.greedy)."""
    sensitivity = store.done_phase("sensitivity")
    if len(sensitivity) < len(space.layers) or store.done_phase("greedy"):
        return None
    safe = {layer for t in sensitivity if t.passed for layer in touched_layers(t.params)}
    return space.greedy(safe)


class Optimizer:
    """Constrained TPE (Optuna) over the space, fed every finished trial."""

    def __init__(self, space: Space, objective: str, seed: int, penalty: float):
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.optuna, self.space, self.objective, self.penalty = optuna, space, objective, penalty
        self.distributions = {name: optuna.distributions.CategoricalDistribution(space.choices(name))
                              for name in space.parameter_names()}
        # constraints set on each trial (guard -> value, <= 0 when it holds) make this c-TPE
        sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=4, multivariate=True, constant_liar=True)
        self.study = optuna.create_study(direction="minimize", sampler=sampler)

    def _observation(self, result: TrialResult):
        """(state, value, constraints); errors are infeasible points, crashes carry no information."""
        state = self.optuna.trial.TrialState
        if result.status == CRASHED:
            return state.FAIL, None, None
        if result.status == ERROR or not result.cost:
            return state.COMPLETE, self.penalty, {"error": 10.0}
        value = search_value(result.cost, self.objective)
        return state.COMPLETE, float(self.penalty if value is None else value), dict(result.constraints)

    def observe(self, result: TrialResult) -> None:
        if set(result.params) != set(self.distributions):
            return
        state, value, constraints = self._observation(result)
        self.study.add_trial(self.optuna.trial.create_trial(
            params=result.params, distributions=self.distributions, state=state,
            value=value, constraints=constraints))

    def ask(self):
        trial = self.study.ask(self.distributions)
        return trial, dict(trial.params)

    def tell(self, trial, result: TrialResult) -> None:
        state, value, constraints = self._observation(result)
        for guard, value_of_guard in (constraints or {}).items():
            trial.set_constraint(guard, value_of_guard)
        self.study.tell(trial, value if state == self.optuna.trial.TrialState.COMPLETE else None, state=state)


def _ask_new(optimizer: Optimizer, store: SearchStore, attempts: int = 20):
    """A TPE suggestion not tried yet. A repeat of a finished trial is told that trial's result (the
    same candidate builds the same model) and TPE asks again; after `attempts`, the repeat runs."""
    finished = {tuple(sorted(t.params.items())): t for t in store.trials}
    for _ in range(attempts):
        asked, params = optimizer.ask()
        earlier = finished.get(tuple(sorted(params.items())))
        if earlier is None:
            break
        optimizer.tell(asked, earlier)
    return asked, params


def progress_line(store: SearchStore, running: int, total: int, objective: str) -> str:
    counts, best = store.counts(), store.best(objective)
    key = comparable_key([t for t in store.trials if t.passed and t.cost], objective)
    best_text = (f"best so far: trial {best.number} ({describe(best.params)}), {objective} {best.cost[key]:,}"
                 if best else "no candidate has passed the guards yet")
    return (f"trials: {counts['done']}/{total} done ({counts['passed']} passed, {counts['failed']} failed), "
            f"{running} running; {best_text}")


def _ray_init(plan: SearchPlan):
    # keep Ray's current behaviour (no accelerators here) without its warning about a future change
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    import ray

    if ray.is_initialized():  # the caller's Ray (tests, notebooks): use it and leave it running
        return ray, False
    if plan.ray_address:
        ray.init(address=plan.ray_address, log_to_driver=False)
    else:
        cpus = (plan.workers * plan.cpus_per_trial) if plan.workers > 0 else os.cpu_count()
        ray.init(num_cpus=cpus, object_store_memory=200 * 2**20, include_dashboard=False, log_to_driver=False)
    return ray, True


def _penalty(store: SearchStore, objective: str) -> float:
    """The objective value of a candidate that could not be built: twice the plain int8 reference's."""
    for trial in store.done_phase("reference"):
        if search_value(trial.cost, objective):
            return 2.0 * search_value(trial.cost, objective)
    return 1e12


def run_search(plan: SearchPlan, store: SearchStore, trial_fn: Callable[[TrialSpec], TrialResult],
               events: Sink) -> SearchStore:
    """Run trials as Ray tasks until the store holds plan.trials: start-up, then one loop that keeps every
    worker busy with the next candidate and records each result as it comes back. Each finished trial is
    a typed `Trial` event (its objective value); the rest of the progress is Note lines."""
    log = notes(events)
    total = plan.trials
    fixed = fixed_candidates(plan.space, store, plan.trials - 1)
    optimizer = Optimizer(plan.space, plan.objective, plan.seed, _penalty(store, plan.objective))
    for result in store.trials:
        optimizer.observe(result)
    if len(store.trials) >= total:
        log(f"search already has {len(store.trials)} trials (asked for {total}); nothing to run")
        return store
    ray, started = _ray_init(plan)
    plan = _sized(plan, ray)
    log(f"running trials as Ray tasks: {plan.workers} at a time, {plan.cpus_per_trial} CPU each")
    remote = ray.remote(num_cpus=plan.cpus_per_trial, max_retries=0)(trial_fn)
    pending: dict = {}
    number = store.next_number()
    try:
        while pending or len(store.trials) + len(pending) < total:
            while len(pending) < plan.workers and len(store.trials) + len(pending) < total:
                phase, params, asked = _next_candidate(fixed, plan.space, store, optimizer)
                spec = replace(plan.template, number=number, phase=phase, params=params)
                pending[remote.remote(spec)] = (spec, asked)
                log(f"trial {number} ({phase}) started: {describe(params)}")
                number += 1
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)  # wakes up for Ctrl-C
            if ready:
                spec, asked = pending.pop(ready[0])
                result = _result(ray, ready[0], spec)
                _record(result, asked, store, optimizer, plan.objective)
                events(Trial("search", result.number, total, search_value(result.cost, plan.objective),
                             f"{result.status}" + (f": {result.reason}" if result.reason else "") +
                             f", {result.seconds} s"))
                log(progress_line(store, len(pending), total, plan.objective))
    finally:
        for ref in pending:
            ray.cancel(ref, force=True)
        if started:
            ray.shutdown()
    return store


def _sized(plan: SearchPlan, ray) -> SearchPlan:
    """workers 0 (auto): every CPU of the machine or cluster, one trial per cpus_per_trial."""
    if plan.workers > 0:
        return plan
    return replace(plan, workers=max(1, int(ray.cluster_resources().get("CPU", 1)) // plan.cpus_per_trial))


def _next_candidate(fixed: list, space: Space, store: SearchStore, optimizer: Optimizer):
    """(phase, params, the optimizer's trial or None): the fixed candidates first, then greedy steps from
    the best so far, then TPE's suggestions."""
    if fixed:
        phase, params = fixed.pop(0)
        return phase, params, None
    greedy = greedy_candidate(space, store)
    if greedy is not None:
        return "greedy", greedy, None
    asked, params = _ask_new(optimizer, store)
    return "tpe", params, asked


def _result(ray, ref, spec: TrialSpec) -> TrialResult:
    try:
        return ray.get(ref)
    except Exception as error:  # the worker died (segfault, out of memory) or Ray lost it
        return TrialResult(spec.number, spec.phase, spec.params, CRASHED, reason=foreign_text(error, with_type=True))


def _record(result: TrialResult, asked, store: SearchStore, optimizer: Optimizer, objective: str) -> None:
    """Store the result and teach the optimizer (its own trial, or an observed one)."""
    store.add(result)
    if asked is not None:
        optimizer.tell(asked, result)
    else:
        optimizer.observe(result)
    optimizer.penalty = _penalty(store, objective)
