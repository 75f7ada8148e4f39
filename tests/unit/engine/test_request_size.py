"""Load counted in requests of the size first seen (engine.work)."""

from hypothesis import given
from hypothesis import strategies as st
from tests.unit.engine.builders import Fleet, budget, seen

from inferbudget.engine import EngineState, decide
from inferbudget.engine.work import in_reference_requests, remember_size, size_note


def sized(reference: float, recent: float) -> EngineState:
    return EngineState(request_tokens=reference, recent_request_tokens=recent)


def test_the_first_size_measured_over_enough_requests_is_the_reference_and_the_latest_is_counted_at() -> None:
    state = remember_size(EngineState(), seen(4.0, tokens_per_request=None), 60)
    assert state.request_tokens is None  # nothing measured: nothing to count in yet
    state = remember_size(state, seen(1.0, tokens_per_request=30.0), 60)
    assert state.request_tokens is None  # 60 requests in the window: a smoke test's are no measure of the rest
    state = remember_size(state, seen(4.0, tokens_per_request=1200.0), 60)
    state = remember_size(state, seen(4.0, tokens_per_request=2400.0), 60)
    assert (state.request_tokens, state.recent_request_tokens) == (1200.0, 2400.0)


def test_a_window_with_too_few_requests_or_no_token_rate_keeps_the_latest_size() -> None:
    state = sized(1200.0, 2400.0)
    assert remember_size(state, seen(1.0, tokens_per_request=90_000.0), 60) == state  # one long prompt in 60
    assert remember_size(state, seen(4.0, tokens_per_request=None), 60) == state  # the token query failed
    assert in_reference_requests(seen(3.0, tokens_per_request=None), state).requests_per_second == 6.0


def test_requests_twice_the_size_count_twice() -> None:
    assert in_reference_requests(seen(3.0), sized(1200.0, 2400.0)).requests_per_second == 6.0
    assert in_reference_requests(seen(3.0), EngineState()).requests_per_second == 3.0  # no size yet
    assert in_reference_requests(seen(None), sized(1200.0, 2400.0)).requests_per_second is None


def test_a_reference_of_next_to_nothing_makes_the_load_missing_not_infinite() -> None:
    assert in_reference_requests(seen(3.0), sized(1e-300, 1e9)).requests_per_second is None


def test_the_message_says_the_sizes_only_when_they_differ() -> None:
    assert size_note(sized(1200.0, 1250.0)) == ""
    assert size_note(EngineState()) == ""
    assert size_note(sized(1200.0, 1800.0)) == " (loads in requests of 1200 tokens; these average 1800)"


def test_longer_requests_at_the_same_rate_add_replicas_before_any_breach() -> None:
    fleet = Fleet(budget(), replicas=2)
    steady = fleet.run(0, 300, 6.0, tokens_per_request=1000.0)
    assert steady.replicas == 2  # 6 req/s at 4 a replica
    grown = fleet.step(315, 6.0, latency_ms=500.0, tokens_per_request=2000.0)
    assert grown.action == "ScaleUp" and grown.replicas == 3  # 12 req/s of the first size
    assert grown.message.startswith("12.0 req/s needs more replicas")
    assert grown.message.endswith(" (loads in requests of 1000 tokens; these average 2000)")


def test_a_message_that_names_no_load_names_no_size() -> None:
    spec = budget(replicas={"min": 3, "max": 10})
    decision, _ = decide(spec, seen(6.0, tokens_per_request=2000.0), sized(1000.0, 2000.0), 0.0)
    assert decision.reason == "ReplicaBounds" and "tokens" not in decision.message


def test_without_token_counters_a_request_counts_as_one() -> None:
    fleet = Fleet(budget(), replicas=2)
    assert fleet.run(0, 600, 6.0).replicas == 2
    assert fleet.state.request_tokens is None


@given(rate=st.floats(0.1, 30), smaller=st.floats(100, 20_000), larger=st.floats(100, 20_000),
       replicas=st.integers(1, 10))
def test_larger_requests_at_the_same_rate_never_get_fewer_replicas(rate: float, smaller: float, larger: float,
                                                                    replicas: int) -> None:
    smaller, larger = min(smaller, larger), max(smaller, larger)
    spec = budget()
    outcomes = [decide(spec, seen(rate, replicas=replicas, tokens_per_request=size), sized(1000.0, 1000.0), 0.0)[0]
                for size in (smaller, larger)]
    assert outcomes[1].replicas >= outcomes[0].replicas


def test_a_restart_counts_in_the_same_sizes() -> None:
    spec = budget()
    _, state = decide(spec, seen(6.0, at=0.0, tokens_per_request=1000.0), EngineState(), 0.0)
    restarted = EngineState.from_json(state.to_json())
    assert (restarted.request_tokens, restarted.recent_request_tokens) == (1000.0, 1000.0)
    old = EngineState.from_json({"version": 1})  # a state saved before sizes were counted
    assert (old.request_tokens, old.recent_request_tokens) == (None, None)


def test_a_new_workload_under_the_same_name_keeps_the_sizes_its_capacities_are_in() -> None:
    state = sized(1000.0, 1500.0).model_copy(update={"target": "old-uid"})
    renewed = state.for_target("new-uid")
    assert (renewed.request_tokens, renewed.recent_request_tokens) == (1000.0, 1500.0)


def test_stale_metrics_measure_no_size() -> None:
    spec = budget()
    _, state = decide(spec, seen(6.0, at=0.0, tokens_per_request=1000.0), EngineState(), 10_000.0)
    assert state.request_tokens is None


def test_an_implausible_size_is_not_measured() -> None:
    assert seen(1.0, tokens_per_request=0.0).plausible().tokens_per_request is None
    assert seen(1.0, tokens_per_request=-5.0).plausible().tokens_per_request is None
    assert seen(1.0, tokens_per_request=1e12).plausible().tokens_per_request is None
    assert seen(1.0, tokens_per_request=900.0).plausible().tokens_per_request == 900.0
