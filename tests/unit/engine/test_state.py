"""The engine's memory survives the resource's status: JSON in, JSON out, and a restart resumes exactly."""

import json
from typing import Any

from inferbudget.engine import EngineState, FailedRollout, decide

from .builders import budget, seen

# A day in the life of a budget: load rises, a variant becomes cheaper, metrics drop out, a rollout fails, and
# a breach on the one Ready replica while the others start.
SCENARIO: list[tuple[float, float | None, dict[str, Any]]] = [
    *[(t * 15.0, 2.0 + t * 0.5, {}) for t in range(40)],
    *[(600.0 + t * 15.0, 22.0, {"latency_ms": 1400.0}) for t in range(20)],
    *[(900.0 + t * 15.0, None, {"metrics_available": False}) for t in range(8)],
    *[(1020.0 + t * 15.0, 5.0, {"failed_rollout": FailedRollout(variant="small", failed_at=1000.0)})
      for t in range(40)],
    *[(1620.0 + t * 15.0, 12.0, {"latency_ms": 4000.0, "ready": 1}) for t in range(12)],
]


def run(restart_every_cycle: bool) -> list[tuple[object, ...]]:
    spec = budget()
    state = EngineState()
    variant, replicas = "big", 1
    outcomes: list[tuple[object, ...]] = []
    for now, rps, fields in SCENARIO:
        if restart_every_cycle:
            state = EngineState.from_json(json.loads(json.dumps(state.to_json())))
        observation = seen(rps, variant=variant, replicas=replicas, at=now, **fields)
        decision, state = decide(spec, observation, state, now)
        variant, replicas = decision.variant or variant, decision.replicas
        outcomes.append((decision.action, decision.reason, decision.message, decision.variant, decision.replicas,
                         decision.predicted_latency_ms, decision.predicted_cost_per_hour, decision.feasible))
    return outcomes


def test_a_restart_between_every_cycle_changes_no_decision() -> None:
    assert run(restart_every_cycle=True) == run(restart_every_cycle=False)


def test_the_scenario_exercises_more_than_holding() -> None:
    actions = {outcome[0] for outcome in run(restart_every_cycle=False)}
    assert {"ScaleUp", "Swap", "Hold"} <= actions


def test_state_round_trips_through_json_unchanged() -> None:
    spec = budget()
    state = EngineState()
    for t in range(30):
        _, state = decide(spec, seen(3.0 + t, at=t * 15.0, replicas=3), state, t * 15.0)
    assert EngineState.from_json(json.loads(json.dumps(state.to_json()))) == state


def test_the_json_uses_the_status_conventions() -> None:
    _, state = decide(budget(), seen(3.0, at=0.0), EngineState(), 0.0)
    data = state.to_json()
    assert data["version"] == 1
    assert "observingSince" in data and "lastPrediction" in data


def test_no_saved_state_is_a_fresh_state() -> None:
    assert EngineState.from_json(None) == EngineState()


def test_a_fleet_saved_before_ready_since_has_had_its_ready_replicas_since_it_last_changed() -> None:
    state = EngineState.from_json({"version": 1, "fleet": {"variant": "big", "desired": 3, "ready": 2, "since": 100.0}})
    assert state.fleet is not None and state.fleet.ready_unchanged_since() == 100.0


def test_the_state_stays_small_over_a_long_run() -> None:
    spec = budget()
    state = EngineState()
    for t in range(2000):
        _, state = decide(spec, seen(5.0 + t % 7, at=t * 15.0, replicas=3), state, t * 15.0)
    assert len(json.dumps(state.to_json())) < 8000


def test_a_new_target_object_keeps_the_lessons_about_variants_and_drops_the_old_objects_bookkeeping() -> None:
    spec = budget()
    state = EngineState().for_target("uid-1")
    for t in range(40):
        _, state = decide(spec, seen(3.0 + t, at=t * 15.0, replicas=3), state, t * 15.0)
    state = state.model_copy(update={"failures": {"small": 500.0}, "last_swap_at": 550.0})
    assert state.fleet is not None and state.observing_since is not None and state.learned

    assert state.for_target("uid-1") == state, "the same object: nothing changes"
    fresh = state.for_target("uid-2")
    assert fresh.target == "uid-2"
    assert (fresh.learned, fresh.fits, fresh.failures) == (state.learned, state.fits, state.failures)
    assert (fresh.fleet, fresh.observing_since, fresh.last_swap_at, fresh.preferred) == (None, None, None, None)
    assert (fresh.rates, fresh.window, fresh.starting_since, fresh.last_prediction) == ((), (), None, None)


def test_a_state_saved_before_targets_were_recorded_adopts_the_target_as_it_is() -> None:
    _, state = decide(budget(), seen(3.0, at=0.0), EngineState(), 0.0)
    assert state.target is None
    assert state.for_target("uid-1") == state.model_copy(update={"target": "uid-1"})
