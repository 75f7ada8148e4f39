"""What the engine learns from the pods: each variant's capacity and start-up time, and what the fleet did.

Capacity starts from the declared capacityHint and is then learned with the latency model (engine.latency)
from steady fleets only: the same variant and replica count for a whole latency window, no rollout, so the
percentile describes the replicas that are running now. The estimate used for planning moves towards the
fitted line's capacity by a bounded step per observation, so one odd sample cannot swing it: down by at most
MAX_STEP_DOWN (less capacity means more replicas, the safe direction, so evidence of a breach acts quickly)
and up by at most MAX_STEP_UP, only to MAX_EXTRAPOLATION times a load seen within the threshold, and never above
a load at which the latency was seen over it (until it is seen within it there again).

One exception to steady fleets: while replicas start, the Ready ones carry the load alone, so a breach they show
is evidence about them as well. Waiting for a steady fleet, a capacity far above the truth fell one bounded step
per scale-up, a start-up and a latency window apart: the example chat budget (12.8 req/s a replica) on the
Mooncake trace's long prompts (about 0.5) added one replica every 165 s. Such a breach is taken only under a load
level over the latency window (every rate within JUMP of their mean): the latency of a ramp or a burst is the
queue it left, which the replicas on their way will drain. (Taking those too, the Azure trace from a cold start,
bench budget, learned a tenth of its capacity from the queue of its first ramp and ran 15 replicas for minutes:
$24.84 against $10.98.) And it lowers the capacity to no less than the load it breached at scaled by threshold
over latency (as many replicas as a controller proportional to the latency would add), so a queue, whose latency
grows faster than its load, cannot teach a capacity of nothing: two observations with the same latency at
different loads put the line's at none (without this, the bench's Mooncake budget went from 9 to 18 replicas in
the trace's last two minutes, from a warm start). Engine-only replays, from cold and warm starts: the example
budget on the Mooncake trace 74.2% and 93.4% of the requests within the threshold ($3.49, $5.89) became 85.9%
and 96.2% ($6.63, $8.45); the bench's Mooncake budget 94.36% and 98.65% ($4.88, $5.11) became 94.73% and 98.79%
($5.80, $5.43); Azure's moved by 3 cents, and the 14-day ServeGen trace cost $93 and $117 less in $32,900.

A hint is a claim, and a scale-down acts on it only as far as the fleet has shown it: a scale-down plans each
replica for at most MAX_EXTRAPOLATION times the highest load per replica seen served within the threshold
(`proven_at`), or for what one replica fewer than now would each carry at that load if that is more (a fleet of
2 may try 1; see engine.planning.proven_capacity), so a fleet idling at a tenth of an over-optimistic hint
shrinks a step at a time, each step proving the next, rather than at once to the hint. (A budget declaring
12.8 req/s a replica, true for chat lengths, on the Mooncake trace's 15k-token prompts, where a replica serves
about 0.5 req/s: a warm fleet of 7 was cut to 1 at the first scale-down, the 95th percentile went from 5.5 s to
25-120 s, and 34% of the requests missed the budget. With the cap, 7% missed; replays of the bench's budgets did
not change.)

A hint can also claim too little, and then the fleet must show more than it is asked to carry. Learning up is
bounded the same way, to MAX_EXTRAPOLATION times a load served within the threshold, with one exception: when
no latency line can be drawn because latency has not grown with load (one steady load, served within the latency
model's base latency, a quarter of the threshold), capacity may rise to what one replica fewer would carry
(`extrapolation`), so the fleet tries one replica fewer and the load each then carries proves the next step.
Such a fleet taught nothing at all before: its observations draw no line, and learning waited for one. (The
example budget's fp8 hint, 12.8 req/s a replica, on 30 req/s of 1000-token prompts: 3 replicas answered in 0.7 s
of 8 s and ran for ever, $19.42 over 2 hours where KEDA and the oracle ran one for $6.48; now they step down to 1
in 17 minutes, $7.67, every request within the budget.) Where a line can be drawn, low latency alone is no such
evidence: a continuously batching server's latency stays low until it nears saturation. Taking the rule there too,
a ramp from 5 to 60 req/s had 2 replicas answering in 1.1 s of 8 s at 37 req/s cut to 1, whose p95 went to 38 s
(96.4% of requests within the budget, against 100%); and at 1.3 s of 2 s (the Azure trace) a fleet of 5 cut to 4
missed its next burst and went to 7. Replays of the bench's budgets did not change.

A variant that has not run yet is judged by its hint scaled by what the running variant taught: if the pods
carry 60% of their declared capacity under the real traffic (burstier, longer requests than the benchmark
behind the hints), the other variants most likely would too. Without that, every untried variant would look
better than the running one, whose optimistic hint has been corrected while theirs have not. The lesson applies
from the first observation, as the running variant's own correction does: with a correction of its own but not
of the others, a variant identical to the running one looks better and is swapped to. The proven load carries
over in proportion too, or a swap would be the way round it (the fleet of 7 above went to 1 replica of
another variant instead).
"""

from collections.abc import Callable
from dataclasses import dataclass

from inferbudget.api.spec import InferenceBudgetSpec, Variant
from inferbudget.api.status import LearnedVariant
from inferbudget.engine.forecast import JUMP
from inferbudget.engine.latency import BASE_LATENCY_FRACTION, Line, fitted_line, observe
from inferbudget.engine.observation import Observation
from inferbudget.engine.state import EngineState, Fleet, LatencyFit

DEFAULT_STARTUP_SECONDS = 60.0  # neither declared nor learned yet: a typical model-server start
MAX_STEP_DOWN = 0.25
MAX_STEP_UP = 0.1
MAX_EXTRAPOLATION = 1.25  # capacity rises to at most this multiple of a load observed within the threshold
STARTUP_LEARNING_RATE = 0.5
MAX_STARTUP_SAMPLE_SECONDS = 3600.0  # longer "start-ups" are crash loops, not start-up time
ONE_FEWER_HEADROOM = 1.1  # see extrapolation
MIN_CAPACITY = 1e-3  # requests/s per replica: keeps replica counts finite when latency misses at any load
BREACH_CLEARANCE = 0.95  # within the threshold at 95% of a breached load clears the breach
MIN_LEVEL_SAMPLES = 3  # rates in the latency window before a load is called level
# Share of the recent steady observations over the threshold above which the capacity is too high. Measured on
# the replays (cold and warm): 0.1 also lifts Azure but costs m-large 0.5%; 0.3 leaves most of Mooncake's misses.
SUSTAINED_BREACH_SHARE = 0.15


@dataclass(frozen=True, slots=True)
class Performance:
    """What one replica of a variant is believed to do."""

    capacity: float | None  # requests/s per replica at the latency threshold; None: unknown
    slope: float | None  # of the latency line; None: unknown
    startup_seconds: float
    proven: float | None = None  # the most requests/s per replica seen served within the threshold

    def line(self, threshold_s: float) -> Line | None:
        """The latency line through the planning capacity (so predictions agree with replica counts)."""
        if self.capacity is None or self.slope is None:
            return None
        return Line.through_capacity(self.capacity, self.slope, threshold_s)


def performance(variant: Variant, state: EngineState, threshold_s: float, hint_factor: float,
                proven_factor: float | None = None) -> Performance:
    """What one replica of `variant` is believed to do; `hint_factor` and `proven_factor` (see those) scale the
    hints of variants without observations of their own."""
    learned = state.learned.get(variant.name, LearnedVariant())
    hint = capacity_hint(variant)
    line = fitted_line(state.fits.get(variant.name, LatencyFit()), hint, threshold_s)
    capacity = learned.requests_per_second_per_replica if learned.samples else (
        hint * hint_factor if hint is not None else None)
    return Performance(
        capacity=capacity,
        slope=line.slope if line is not None else None,
        startup_seconds=_startup_seconds(variant, learned),
        proven=learned.proven_at if learned.proven_at is not None else (
            hint * proven_factor if hint is not None and proven_factor is not None else None),
    )


def hint_factor(spec: InferenceBudgetSpec, state: EngineState, running: str | None) -> float:
    """Learned capacity over declared capacity: of the running variant once it has been observed, else of
    the variant observed the most. A swap must not forget how the hints compare with the real fleet: a variant
    just swapped to would otherwise look as slow as its bare hint, and the engine would swap straight back."""
    factor = _taught(spec, state, running, lambda learned: learned.requests_per_second_per_replica)
    return 1.0 if factor is None else factor


def proven_factor(spec: InferenceBudgetSpec, state: EngineState, running: str | None) -> float | None:
    """The proven load (LearnedVariant.proven_at) over declared capacity, as `hint_factor` takes it: what a
    variant that has not run may be planned to carry at most, in proportion to its hint. None: nothing proven."""
    return _taught(spec, state, running, lambda learned: learned.proven_at)


def _taught(spec: InferenceBudgetSpec, state: EngineState, running: str | None,
            figure: Callable[[LearnedVariant], float | None]) -> float | None:
    """A learned figure over the hint, of the running variant once observed, else of the most observed one."""
    observed = sorted((v for v in spec.variants if v.name != running),
                      key=lambda v: -state.learned.get(v.name, LearnedVariant()).samples)
    running_variant = spec.variant(running) if running else None
    for variant in ([running_variant] if running_variant is not None else []) + observed:
        learned = state.learned.get(variant.name)
        hint = capacity_hint(variant)
        if learned is None or not learned.samples or hint is None:
            continue
        value = figure(learned)
        if value is not None:
            return value / hint
    return None


def capacity_hint(variant: Variant) -> float | None:
    return variant.capacity_hint.requests_per_second if variant.capacity_hint is not None else None


def startup_seconds(spec: InferenceBudgetSpec, state: EngineState, name: str | None) -> float:
    """Start-up time of the named variant: declared, else learned, else DEFAULT_STARTUP_SECONDS."""
    variant = spec.variant(name) if name else None
    if variant is None:
        return DEFAULT_STARTUP_SECONDS
    return _startup_seconds(variant, state.learned.get(variant.name, LearnedVariant()))


def _startup_seconds(variant: Variant, learned: LearnedVariant) -> float:
    if variant.startup_seconds is not None:
        return float(variant.startup_seconds)
    if learned.startup_seconds is not None:
        return learned.startup_seconds
    return DEFAULT_STARTUP_SECONDS


# --- bookkeeping of the fleet ------------------------------------------------------------------------------


def track_fleet(state: EngineState, spec: InferenceBudgetSpec, observation: Observation,
                now: float) -> EngineState:
    """Note variant changes (swaps), failed rollouts, and start-up times, from what the workload shows."""
    previous = state.fleet
    ready_since = now
    if previous is not None and (previous.variant, previous.ready) == (observation.variant, observation.ready_replicas):
        ready_since = previous.ready_unchanged_since()
    fleet = Fleet(variant=observation.variant, desired=observation.desired_replicas,
                  ready=observation.ready_replicas, since=now, ready_since=ready_since)
    swapped = previous is not None and previous.variant is not None and previous.variant != fleet.variant
    unchanged = previous is not None and (previous.variant, previous.desired, previous.ready) == (
        fleet.variant, fleet.desired, fleet.ready)
    state = state.model_copy(update={
        "fleet": previous if unchanged else fleet,
        "last_swap_at": now if swapped else state.last_swap_at,
        "failures": _failures(state, spec, observation, now),
    })
    return _track_startup(state, spec, observation, now)


def _failures(state: EngineState, spec: InferenceBudgetSpec, observation: Observation,
              now: float) -> dict[str, float]:
    """Failed variants still within their back-off (older failures are forgotten, keeping the state small)."""
    backoff = spec.policy.swap.failure_backoff_seconds
    failures = dict(state.failures)
    failed = observation.failed_rollout
    if failed is not None and failed.failed_at + backoff > now:
        failures[failed.variant] = max(failures.get(failed.variant, failed.failed_at), failed.failed_at)
    return {name: at for name, at in failures.items() if at + backoff > now}


def _track_startup(state: EngineState, spec: InferenceBudgetSpec, observation: Observation,
                   now: float) -> EngineState:
    """Time from replicas missing (ready < desired, or a rollout under way) to all Ready and rolled out, as
    the start-up time of the variant then running."""
    starting = observation.ready_replicas < observation.desired_replicas or observation.rollout_in_progress
    if starting:
        return state if state.starting_since is not None else state.model_copy(update={"starting_since": now})
    started = state.starting_since
    if started is None:
        return state
    state = state.model_copy(update={"starting_since": None})
    variant = spec.variant(observation.variant) if observation.variant else None
    if variant is None:
        return state
    sample = min(now - started, MAX_STARTUP_SAMPLE_SECONDS)
    learned = state.learned.get(variant.name, LearnedVariant())
    startup = sample if learned.startup_seconds is None else (
        learned.startup_seconds + STARTUP_LEARNING_RATE * (sample - learned.startup_seconds))
    return _with_learned(state, variant.name, learned.model_copy(update={"startup_seconds": startup}))


# --- learning capacity -------------------------------------------------------------------------------------


def learn_capacity(state: EngineState, spec: InferenceBudgetSpec, observation: Observation,
                   now: float) -> EngineState:
    """Add the observation to the variant's latency fit and move its capacity towards the fit's."""
    variant = spec.variant(observation.variant) if observation.variant else None
    rate = observation.per_replica_rate()
    latency_ms = observation.latency_ms
    if variant is None or rate is None or rate <= 0 or latency_ms is None or latency_ms <= 0:
        return state
    within = latency_ms <= spec.latency.threshold_ms
    starting = not within and _breach_while_starting(state, spec, observation, now)
    if not (starting or _steady(state, spec, observation, now)):
        return state
    threshold_s = spec.latency.threshold_ms / 1000.0
    fit = _count_breach(observe(state.fits.get(variant.name, LatencyFit()), rate, latency_ms / 1000.0), within)
    state = state.model_copy(update={"fits": {**state.fits, variant.name: fit}})
    line = fitted_line(fit, capacity_hint(variant), threshold_s)
    if line is None and not within:
        return state
    learned = state.learned.get(variant.name, LearnedVariant())
    breached_at = _breached_at(learned.breached_at, rate, within)
    hint = capacity_hint(variant)
    current = learned.requests_per_second_per_replica if learned.samples else (
        hint * hint_factor(spec, state, variant.name) if hint is not None else None)  # where planning started
    # Latency flat with load and far within the threshold: see the module's docstring
    flat = line is None and latency_ms <= BASE_LATENCY_FRACTION * spec.latency.threshold_ms
    reach = rate * (extrapolation(observation.ready_replicas) if flat else MAX_EXTRAPOLATION)
    # No line: latency has not grown with load. Within the threshold, only the bounds on learning up apply.
    fitted = max(line.capacity(threshold_s), MIN_CAPACITY) if line is not None else max(current or 0.0, reach)
    if not within and fit.breached > SUSTAINED_BREACH_SHARE * fit.weight:
        fitted = min(fitted, rate * BREACH_CLEARANCE)
    if current is not None and fitted > current:
        # Optimism needs evidence near the claim: a fleet idling at low load says little about where its
        # latency would reach the threshold, and extrapolating with a slope fitted elsewhere makes counts flap.
        fitted = min(fitted, max(current, reach)) if within else current
        if breached_at is not None:
            fitted = min(fitted, max(current, breached_at))
    capacity = fitted if current is None else _bounded_step(current, fitted)
    if starting and current is not None:
        capacity = max(capacity, min(current, rate * spec.latency.threshold_ms / latency_ms))
    proven = max(learned.proven_at or 0.0, rate) if within else learned.proven_at
    return _with_learned(state, variant.name, learned.model_copy(update={
        "requests_per_second_per_replica": capacity, "samples": learned.samples + 1, "breached_at": breached_at,
        "proven_at": proven}))


def extrapolation(replicas: int) -> float:
    """How many times the load per replica that `replicas` served within the threshold one replica may be
    believed to carry when latency is flat with load: MAX_EXTRAPOLATION, or, if more, what one replica fewer
    would each carry at that load, ONE_FEWER_HEADROOM above it (a window's peak load sits above its mean). Without
    it, a fleet of 5 or fewer (5 / 4 = 1.25) could never shrink by a whole replica."""
    if replicas <= 1:
        return MAX_EXTRAPOLATION
    return max(MAX_EXTRAPOLATION, replicas / (replicas - 1) * ONE_FEWER_HEADROOM)


def _count_breach(fit: LatencyFit, within: bool) -> LatencyFit:
    """The fit with this observation counted as a breach or not (engine.latency.observe fades the count).

    The line is fitted to 1 / latency, where a p99 of 25 s (0.04) weighs hardly more than one of 6 s (0.17): a
    fleet that breaches on one cycle in three, by far, at a load the line puts within the threshold, keeps a
    capacity that the line never lowers, and the plan holds a count that misses requests. The share of recent
    steady observations over the threshold says so directly: above SUSTAINED_BREACH_SHARE (a request percentile
    of 99 cannot be met when about one cycle in seven misses it, by seconds), a breach pulls the capacity down to
    below the load it was seen at (BREACH_CLEARANCE of it), by the bounded step, and the plan adds replicas
    instead of holding. An occasional breach, as every percentile has, leaves the line alone."""
    return fit if within else fit.model_copy(update={"breached": fit.breached + 1.0})


def _breached_at(previous: float | None, rate: float, within: bool) -> float | None:
    """The lowest per-replica load seen over the threshold, forgotten once the latency is within it at nearly
    that load (BREACH_CLEARANCE). Learning up stops there: without it, capacity extrapolated from a fleet idling
    within budget creeps above the truth, a scale-down breaches, the scale-up undoes it, and so on for ever."""
    if not within:
        return rate if previous is None else min(previous, rate)
    if previous is not None and rate >= previous * BREACH_CLEARANCE:
        return None
    return previous


def _steady(state: EngineState, spec: InferenceBudgetSpec, observation: Observation, now: float) -> bool:
    """The latency window saw only the replicas running now."""
    fleet = state.fleet
    return (not observation.rollout_in_progress and fleet is not None
            and observation.ready_replicas == observation.desired_replicas
            and fleet.since <= now - spec.latency.window_seconds)


def _breach_while_starting(state: EngineState, spec: InferenceBudgetSpec, observation: Observation,
                           now: float) -> bool:
    """Replicas are starting, and the latency window saw only the Ready ones, under a level load (every rate
    sampled in it within JUMP of their mean)."""
    fleet = state.fleet
    if observation.rollout_in_progress or fleet is None:
        return False
    if not 0 < observation.ready_replicas < observation.desired_replicas:
        return False
    window_start = now - spec.latency.window_seconds
    rates = [rps for t, rps in state.rates if t > window_start] + [observation.requests_per_second or 0.0]
    mean = sum(rates) / len(rates)
    level = len(rates) >= MIN_LEVEL_SAMPLES and all(mean / (1 + JUMP) <= rps <= mean * (1 + JUMP) for rps in rates)
    return fleet.ready_unchanged_since() <= window_start and level


def _bounded_step(current: float, target: float) -> float:
    return min(max(target, current * (1.0 - MAX_STEP_DOWN)), current * (1.0 + MAX_STEP_UP))


def _with_learned(state: EngineState, name: str, learned: LearnedVariant) -> EngineState:
    return state.model_copy(update={"learned": {**state.learned, name: learned}})
