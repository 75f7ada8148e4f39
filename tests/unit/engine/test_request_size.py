"""Load counted in requests of the size first seen (engine.work)."""

from tests.unit.engine.builders import Fleet, budget, seen

from inferbudget.engine import EngineState, decide
from inferbudget.engine.work import in_reference_requests, remember_size, size_note


def test_the_first_size_measured_over_enough_requests_is_the_reference_and_stays() -> None:
    state = remember_size(EngineState(), seen(4.0, tokens_per_request=None), 60)
    assert state.request_tokens is None  # nothing measured: nothing to count in yet
    state = remember_size(state, seen(1.0, tokens_per_request=30.0), 60)
    assert state.request_tokens is None  # 60 requests in the window: a smoke test's are no measure of the rest
    state = remember_size(state, seen(4.0, tokens_per_request=1200.0), 60)
    state = remember_size(state, seen(4.0, tokens_per_request=2400.0), 60)
    assert state.request_tokens == 1200.0


def test_requests_twice_the_size_count_twice() -> None:
    assert in_reference_requests(seen(3.0, tokens_per_request=2400.0), 1200.0).requests_per_second == 6.0
    assert in_reference_requests(seen(3.0, tokens_per_request=None), 1200.0).requests_per_second == 3.0
    assert in_reference_requests(seen(3.0, tokens_per_request=2400.0), None).requests_per_second == 3.0


def test_the_message_says_the_size_only_when_it_differs() -> None:
    assert size_note(seen(3.0, tokens_per_request=1250.0), 1200.0) == ""
    assert size_note(seen(3.0, tokens_per_request=1800.0), 1200.0) == (
        " (loads in requests of 1200 tokens; these average 1800)")


def test_longer_requests_at_the_same_rate_add_replicas_before_any_breach() -> None:
    fleet = Fleet(budget(), replicas=2)
    steady = fleet.run(0, 300, 6.0, tokens_per_request=1000.0)
    assert steady.replicas == 2  # 6 req/s at 4 a replica
    grown = fleet.step(315, 6.0, latency_ms=500.0, tokens_per_request=2000.0)
    assert grown.action == "ScaleUp" and grown.replicas == 3  # 12 req/s of the first size
    assert grown.message.startswith("12.0 req/s needs more replicas")
    assert "loads in requests of 1000 tokens; these average 2000" in grown.message


def test_without_token_counters_a_request_counts_as_one() -> None:
    fleet = Fleet(budget(), replicas=2)
    assert fleet.run(0, 600, 6.0).replicas == 2
    assert fleet.state.request_tokens is None


def test_a_restart_counts_in_the_same_size() -> None:
    spec = budget()
    _, state = decide(spec, seen(6.0, at=0.0, tokens_per_request=1000.0), EngineState(), 0.0)
    restarted = EngineState.from_json(state.to_json())
    assert restarted.request_tokens == 1000.0
    assert EngineState.from_json({"version": 1}).request_tokens is None  # a state saved before sizes were counted


def test_a_new_workload_under_the_same_name_keeps_the_size_its_capacities_are_in() -> None:
    state = EngineState(target="old-uid", request_tokens=1000.0)
    assert state.for_target("new-uid").request_tokens == 1000.0


def test_an_implausible_size_is_not_measured() -> None:
    assert seen(1.0, tokens_per_request=0.0).plausible().tokens_per_request is None
    assert seen(1.0, tokens_per_request=-5.0).plausible().tokens_per_request is None
    assert seen(1.0, tokens_per_request=1e12).plausible().tokens_per_request is None
    assert seen(1.0, tokens_per_request=900.0).plausible().tokens_per_request == 900.0
