"""Which policies a simulation compares, and how each is run: the registry behind `simulate` and `make bench`.

A runner takes the trace, profile and budget and returns one `ReplayResult`. Baselines are tuned: each runs on
every variant the budget allows (a baseline cannot swap) with a grid of its target settings, and the cheapest
run meeting the SLO attainment target is reported; if none meets it, the run with the best attainment is.
Adding a policy (the inferbudget engine's adapter does this) is one entry in `POLICY_RUNNERS`. `run_policies` runs
several in worker processes when asked to: each policy's runs depend on nothing but the context.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.queues
import queue
import signal
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from typing import TypeAlias

import numpy as np

from inferbudget.sim.budget import SimBudget, allowed_variants, with_declared_figures
from inferbudget.sim.fleet import FleetProfile, VariantModel
from inferbudget.sim.oracle import OracleChoices, OraclePolicy, oracle_choices, plan_oracle
from inferbudget.sim.policies import (
    FleetTarget,
    HorizontalPodAutoscaler,
    HpaSettings,
    KedaPrometheusScaler,
    KedaSettings,
    KnativePodAutoscaler,
    KpaSettings,
    Policy,
)
from inferbudget.sim.replay import ProgressCallback, ReplayOptions, ReplayResult, replay
from inferbudget.sim.start import START_MODES, warm_target
from inferbudget.sim.traces import Trace


@dataclass(frozen=True, slots=True)
class RunContext:
    """Everything a policy runner needs besides the policy itself. `start`: how the fleet stands at t=0
    (inferbudget.sim.start): "cold" or "warm", the same for every policy of a comparison."""

    trace: Trace
    profile: FleetProfile
    budget: SimBudget
    progress: ProgressCallback | None = None
    start: str = "cold"

    def __post_init__(self) -> None:
        if self.start not in START_MODES:
            raise ValueError(f"start {self.start!r} is not one of {', '.join(START_MODES)}")
        # Every policy is billed the budget's prices and credited its qualities, whoever built the context.
        object.__setattr__(self, "profile", with_declared_figures(self.profile, self.budget))

    def initial_fleet(self, variant: str) -> FleetTarget | None:
        """The fleet Ready at t=0 for a policy running `variant`; None: the policy's first decision (cold)."""
        if self.start == "cold":
            return None
        return warm_target(self.trace, self.profile, self.budget, variant)


PolicyRunner = Callable[[RunContext], ReplayResult]


@dataclass(frozen=True, slots=True)
class Baseline:
    """A baseline autoscaler: how to build it for a variant and a setting, and the settings to try.

    `settings(model, context)` lists target values from the cheapest (fewest replicas) to the most generous.
    """

    name: str
    build: Callable[[VariantModel, float, SimBudget], Policy]
    settings: Callable[[VariantModel, RunContext], list[float]]
    unit: str


@dataclass(slots=True)
class TuningLog:
    """Every run the tuner made, for the bench report."""

    runs: list[dict[str, object]] = field(default_factory=list)


def _hpa(model: VariantModel, target: float, budget: SimBudget) -> Policy:
    settings = HpaSettings(target_per_replica=target)
    return HorizontalPodAutoscaler(
        model.name, settings, replicas_min=budget.replicas_min, replicas_max=budget.replica_cap(model)
    )


def _keda(model: VariantModel, target: float, budget: SimBudget) -> Policy:
    settings = KedaSettings(threshold_rps_per_replica=target)
    return KedaPrometheusScaler(
        model.name, settings, replicas_min=budget.replicas_min, replicas_max=budget.replica_cap(model)
    )


def _kpa(model: VariantModel, target: float, budget: SimBudget) -> Policy:
    settings = KpaSettings(target_concurrency=target)
    return KnativePodAutoscaler(
        model.name, settings, replicas_min=budget.replicas_min, replicas_max=budget.replica_cap(model)
    )


def _concurrency_grid(model: VariantModel, context: RunContext) -> list[float]:
    """In-flight requests per pod: from near the batch limit down to a few."""
    lengths = np.asarray([context.trace.mean_input_tokens]), np.asarray([context.trace.mean_output_tokens])
    limit = float(model.batch_limit(*lengths)[0])
    return sorted(
        {max(1.0, round(limit * fraction)) for fraction in (0.75, 0.5, 0.35, 0.25, 0.15, 0.1, 0.05, 0.02)}, reverse=True
    )


def _rate_grid(model: VariantModel, context: RunContext) -> list[float]:
    """Requests/s per pod as fractions of the variant's saturation capacity for the trace's mean lengths."""
    capacity = float(model.capacity_rps(context.trace.mean_input_tokens, context.trace.mean_output_tokens))
    return [round(capacity * fraction, 3) for fraction in (0.9, 0.75, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1)]


BASELINES: dict[str, Baseline] = {
    "hpa": Baseline("hpa", _hpa, _concurrency_grid, "running+waiting requests per pod"),
    "keda": Baseline("keda", _keda, _rate_grid, "requests/s per pod"),
    "kpa": Baseline("kpa", _kpa, _concurrency_grid, "concurrency per pod"),
}


REFINE_STEPS = 3  # bisection steps between the two grid settings around the cheapest one that meets the target


def tune_baseline(
    baseline: Baseline, context: RunContext, log: TuningLog | None = None, *, attainment: float | None = None
) -> ReplayResult:
    """The cheapest run of `baseline` meeting the attainment target, over allowed variants and its settings.

    `attainment` replaces the budget's target (the bench asks what a baseline costs at inferbudget's attainment).
    Per variant the grid of settings is searched by bisection (a more generous setting costs more and meets the
    SLO at least as well), cheapest variants first; then REFINE_STEPS bisection steps between the cheapest
    setting that meets the target and the next cheaper one, so the grid's coarseness does not charge the
    baseline for replicas it does not need. A run stops as soon as it can no longer meet the target or can no
    longer be the cheapest, so most runs end early.
    """
    target = context.budget.attainment_target if attainment is None else attainment
    misses_allowed = (1.0 - target) * context.trace.total_requests
    best: ReplayResult | None = None
    fallback: ReplayResult | None = None

    def attempt(model: VariantModel, setting: float) -> str:
        """Run one setting: "meets" the target (kept when the cheapest yet), "misses" it, or "costs" more
        than the cheapest run that meets it (only cheaper settings can win)."""
        nonlocal best
        ceiling = best.cost if best is not None else None
        result = _run(baseline, model, setting, context, misses_allowed, ceiling, log)
        if result.meets(target):
            best = result if best is None or result.cost < best.cost else best
            return "meets"
        return "costs" if result.aborted and ceiling is not None and result.cost > ceiling else "misses"

    for model in _distinct(_by_cost_per_capacity(allowed_variants(context.budget, context.profile), context.trace)):
        settings = baseline.settings(model, context)
        low, high = 0, len(settings) - 1
        first_meeting: int | None = None  # index of this variant's cheapest grid setting that meets the target
        while low <= high:
            middle = (low + high) // 2
            outcome = attempt(model, settings[middle])
            if outcome == "meets":
                first_meeting, high = middle, middle - 1  # try cheaper settings
            elif outcome == "costs":
                high = middle - 1
            else:
                low = middle + 1  # misses the SLO: needs a more generous setting
        if first_meeting is not None and first_meeting > 0:  # the next cheaper grid setting did not: look between
            missing, meeting = settings[first_meeting - 1], settings[first_meeting]
            for _ in range(REFINE_STEPS):
                between = round((missing + meeting) / 2, 3)
                if attempt(model, between) == "meets":
                    meeting = between
                else:
                    missing = between
        if best is None and settings:
            generous = _run(baseline, model, settings[-1], context, None, None, log)
            fallback = generous if fallback is None or _better_effort(generous, fallback) else fallback
    chosen = best or fallback
    assert chosen is not None, "allowed_variants returns at least one variant and each has settings"
    return chosen


def _better_effort(candidate: ReplayResult, incumbent: ReplayResult) -> bool:
    if candidate.slo_attainment_requests != incumbent.slo_attainment_requests:
        return candidate.slo_attainment_requests > incumbent.slo_attainment_requests
    return candidate.cost < incumbent.cost


def _distinct(models: list[VariantModel]) -> list[VariantModel]:
    """Drop variants that perform and cost exactly like a better-quality one (FP8 vs INT8 W8A8 on H100 here)."""
    kept: list[VariantModel] = []
    for model in sorted(models, key=lambda m: -m.quality):
        if not any(_same_performance(model, other) for other in kept):
            kept.append(model)
    return [model for model in models if model in kept]


def _same_performance(a: VariantModel, b: VariantModel) -> bool:
    fields = ("gpu", "price_per_hour", "base_step_s", "decode_compute_s", "prefill_s_per_token", "startup_s")
    return all(getattr(a, name) == getattr(b, name) for name in fields)


def _by_cost_per_capacity(models: list[VariantModel], trace: Trace) -> list[VariantModel]:
    def dollars_per_request(model: VariantModel) -> float:
        capacity = float(model.capacity_rps(trace.mean_input_tokens, trace.mean_output_tokens))
        return model.price_per_hour / max(capacity, 1e-9)

    return sorted(models, key=dollars_per_request)


def _run(
    baseline: Baseline,
    model: VariantModel,
    setting: float,
    context: RunContext,
    misses_allowed: float | None,
    cost_ceiling: float | None,
    log: TuningLog | None,
) -> ReplayResult:
    policy = baseline.build(model, setting, context.budget)
    options = ReplayOptions(
        abort_above_violations=misses_allowed,
        abort_above_cost=cost_ceiling,
        keep_series=False,
        initial=context.initial_fleet(model.name),
        progress=_labelled(context.progress, f"{baseline.name} tuning {model.name} at {setting:g}"),
    )
    result = replay(context.trace, context.profile, context.budget, policy, options)
    result = replace(result, settings={"variant": model.name, "target": setting, "unit": baseline.unit})
    if log is not None:
        log.runs.append({**result.summary(), **result.settings, "aborted": result.aborted})
    return result


def with_series(result: ReplayResult, context: RunContext, baseline: Baseline) -> ReplayResult:
    """Re-run a tuned baseline's chosen setting in full, keeping the time series for plots."""
    model = context.profile.variant(str(result.settings["variant"]))
    target = float(str(result.settings["target"]))
    policy = baseline.build(model, target, context.budget)
    label = f"{baseline.name} final run ({model.name} at {target:g})"
    options = ReplayOptions(progress=_labelled(context.progress, label), initial=context.initial_fleet(model.name))
    full = replay(context.trace, context.profile, context.budget, policy, options)
    return replace(full, settings=result.settings)


ORACLE_PLANS = 4  # plans replayed at most, to land the oracle's attainment on the target
ORACLE_SLACK_USED = 0.95  # a replay missing this share of the allowed misses is close enough to the target


def run_oracle(context: RunContext) -> ReplayResult:
    """Plan with knowledge of the future, replay the plan, and plan again with the SLO's slack corrected by
    what the replay missed: the plan's model of the fleet is not the replay's (pods started ahead of need add
    capacity; backlog carries over), so a plan allowed 1% of misses can miss 0.9% and pay for the rest. The
    cheapest replay that meets the target is the oracle's result; when none does, the last."""
    budget = context.budget
    target = budget.attainment_target
    slack = 1.0 - target
    met: ReplayResult | None = None
    result: ReplayResult | None = None
    meeting: float | None = None  # the largest slack whose replay met the target
    missing: float | None = None  # the smallest slack whose replay missed it
    choices = oracle_choices(context.trace, context.profile, budget)
    for _ in range(ORACLE_PLANS):
        result = _oracle_replay(context, choices, slack)
        spent = 1.0 - result.slo_attainment_requests
        if result.meets(target):
            met = result if met is None or result.cost < met.cost else met
            meeting = slack if meeting is None else max(meeting, slack)
            if spent >= (1.0 - target) * ORACLE_SLACK_USED:
                break
            slack = slack * (1.0 - target) / max(spent, 1e-9) if missing is None else (slack + missing) / 2
        else:
            missing = slack if missing is None else min(missing, slack)
            slack = slack / 2 if meeting is None else (slack + meeting) / 2
    assert result is not None
    return met or result


def _oracle_replay(context: RunContext, choices: OracleChoices, slack: float) -> ReplayResult:
    schedule = plan_oracle(context.trace, context.profile, context.budget, miss_share=slack, choices=choices)
    first_variant = schedule.variants[int(schedule.variant_index[0])]
    options = ReplayOptions(
        max_surge_fraction=1.0,
        progress=_labelled(context.progress, f"oracle plan (misses {slack:.2%})"),
        initial=context.initial_fleet(first_variant),
    )
    result = replay(context.trace, context.profile, context.budget, OraclePolicy(schedule), options)
    return replace(result, settings={**result.settings, "planned_miss_share": round(slack, 6)})


def _baseline_runner(name: str) -> PolicyRunner:
    baseline = BASELINES[name]

    def run(context: RunContext) -> ReplayResult:
        return with_series(tune_baseline(baseline, context), context, baseline)

    return run


def run_inferbudget(context: RunContext) -> ReplayResult:
    """The operator's own engine (imported here, not at the top: engine_policy builds on this module)."""
    from inferbudget.sim.engine_policy import run_engine

    return run_engine(replace(context, progress=_labelled(context.progress, "inferbudget")))


POLICY_RUNNERS: dict[str, PolicyRunner] = {
    "inferbudget": run_inferbudget,
    "hpa": _baseline_runner("hpa"),
    "keda": _baseline_runner("keda"),
    "kpa": _baseline_runner("kpa"),
    "oracle": run_oracle,
}


def register_policy(name: str, runner: PolicyRunner) -> None:
    """Add a policy to the registry (the engine's adapter registers `inferbudget` this way)."""
    POLICY_RUNNERS[name] = runner


def run_policies(names: list[str], context: RunContext, *, jobs: int = 1) -> list[ReplayResult]:
    """Run the named policies (or every registered one for `all`) and return their results in the registry's order.

    With `jobs` above 1 the policies run in that many worker processes (a policy's runs are independent of the
    others', so the figures are the sequential ones). `context.progress` hears how many policies are done and
    what each running one is at, tuning runs included.
    """
    wanted = list(POLICY_RUNNERS) if names == ["all"] or "all" in names else names
    unknown = [name for name in wanted if name not in POLICY_RUNNERS]
    if unknown:
        raise KeyError(f"unknown policy {unknown[0]!r}; known: {', '.join(POLICY_RUNNERS)}")
    allowed_variants(context.budget, context.profile)  # a budget no policy can run fails here, before any run
    progress = PolicyProgress(len(wanted), context.progress) if context.progress is not None else None
    if jobs > 1 and len(wanted) > 1:
        return _run_in_workers(wanted, context, min(jobs, len(wanted)), progress)
    results = []
    for name in wanted:
        reported = context if progress is None else replace(context, progress=partial(progress.update, name))
        results.append(POLICY_RUNNERS[name](reported))
        if progress is not None:
            progress.finish(name)
    return results


class PolicyProgress:
    """Progress over several policies as one message: how many are done and what each running one is at."""

    def __init__(self, total: int, show: ProgressCallback) -> None:
        self.total = total
        self.show = show
        self.running: dict[str, tuple[float, str]] = {}
        self.finished: set[str] = set()

    def update(self, name: str, fraction: float, message: str) -> None:
        if name not in self.finished:  # a worker's last report can arrive after its result
            self.running[name] = (fraction, message)
            self._show()

    def finish(self, name: str) -> None:
        self.running.pop(name, None)
        self.finished.add(name)
        self._show()

    def _show(self) -> None:
        parts = [f"{len(self.finished)}/{self.total} policies done"]
        parts += [f"{message} {fraction:.0%}" for fraction, message in self.running.values()]
        self.show(len(self.finished) / self.total, ", ".join(parts))


def _labelled(progress: ProgressCallback | None, label: str) -> ProgressCallback | None:
    """A replay's progress under `label`, saying which policy and which of its runs (a baseline's tuning makes
    many): the replay's own message names only the policy."""
    if progress is None:
        return None
    return lambda fraction, _message: progress(fraction, label)


ProgressEvents: TypeAlias = "multiprocessing.queues.Queue[tuple[str, float, str]]"  # (policy, fraction, message)


def _run_in_workers(
    names: list[str], context: RunContext, jobs: int, progress: PolicyProgress | None
) -> list[ReplayResult]:
    """Each policy in a worker process. The workers get the context once, when they start (inherited, not pickled,
    where processes fork), and send their progress back through a queue that this process reads while it waits.

    Ctrl-C stops the whole run: the workers ignore it (else each would print its own traceback) and this process,
    interrupted, leaves the pool's block, which terminates them; a pool of the concurrent.futures kind would run
    its queued policies to the end first, for minutes on a long trace. Ctrl-C is held back while the pool starts:
    a worker must not take it before it can ignore it, nor this process inside Pool(), which then leaves the
    workers it has started running (and the interpreter waiting for them at exit)."""
    processes = multiprocessing.get_context()
    events: ProgressEvents | None = processes.Queue() if progress is not None else None
    quiet = replace(context, progress=None)  # the caller's callback stays here: it may not pickle
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        pool = processes.Pool(jobs, initializer=_start_worker, initargs=(quiet, events))
    except BaseException:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        raise
    with pool:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # a Ctrl-C held back is raised here
        running = {name: pool.apply_async(_run_in_worker, (name,)) for name in names}
        pending = dict(running)
        while pending:
            next(iter(pending.values())).wait(0.5)
            finished = [name for name, result in pending.items() if result.ready()]
            for name in finished:
                del pending[name]
            if progress is not None and events is not None:
                _read_events(events, progress)
                for name in finished:
                    progress.finish(name)
        return [running[name].get() for name in names]


def _read_events(events: ProgressEvents, progress: PolicyProgress) -> None:
    while True:
        try:
            progress.update(*events.get_nowait())
        except queue.Empty:
            return


_worker_context: RunContext | None = None
_worker_events: ProgressEvents | None = None


def _start_worker(context: RunContext, events: ProgressEvents | None) -> None:
    global _worker_context, _worker_events
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle (see _run_in_workers)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # held back since the fork: now ignored
    _worker_context, _worker_events = context, events


def _run_in_worker(name: str) -> ReplayResult:
    assert _worker_context is not None, "the pool's initializer sets the context"
    context, events = _worker_context, _worker_events
    if events is not None:
        context = replace(context, progress=lambda fraction, message: events.put((name, fraction, message)))
    return POLICY_RUNNERS[name](context)
