"""Load counted by the size of the requests, not only their number.

A replica's capacity is tokens, not requests: one that serves 2 requests/s of 13k-token prompts serves about 1 of
26k-token prompts. Counting every request as one, the engine saw a load growing in size as a load standing
still, and learned each change of size through a breach of the latency budget (engine.learning): the Mooncake
trace's rate stays near 4 req/s while its prompts grow from 13k to 24k tokens in 17 minutes, and from a warm start
the bench's budget missed 1.21% of the requests, 11 of its 48 misses in the last minute.

So a request counts as its size over a reference size: the mean tokens per request (prompt and generated) first
observed for the target over a window of at least MIN_REFERENCE_REQUESTS requests (a few requests, such as a
smoke test's, would make a typical request count as many), kept in the state (EngineState.request_tokens) so that
a restart counts in the same unit. All the engine's loads, capacity hints and learned capacities are in requests
of that size; a decision message says so when the requests observed differ from it by more than NOTE_BEYOND
(`size_note`). Without a token measure (a server
preset exporting no token counters, custom queries without a tokenRate), every request counts as one, as before.

Counting by size, engine-only replays of the bench's budgets (share of requests within the threshold, cost): from
a warm start Mooncake 98.79%, $5.43 became 99.05%, $5.88 (the oracle: 99.03%, $5.74) and Azure 98.78%, $8.79
became 99.40%, $10.68; from a cold start Mooncake 94.73%, $5.80 became 94.70%, $5.48 and Azure 97.38%, $10.98
became 97.40%, $10.44; the 14-day ServeGen trace cost 0.2% more at the same 99.2%.

Prompt and generated tokens are weighted alike. On the simulator's H100 model a generated token costs 4 to 36
times a prompt token (its decode step reads the whole context), but the weight hardly matters: with the reference
at the trace's mean size, weights 0, 1 and 2 gave the same figures on both traces, and 10 gave Mooncake 99.03%,
$6.04 and Azure 99.37%, $10.42. Tokens processed is also the figure every server exports.
"""

from dataclasses import replace

from inferbudget.engine.observation import Observation
from inferbudget.engine.state import EngineState

NOTE_BEYOND = 0.1  # a message mentions the size once requests differ from the reference by more than this
MIN_REFERENCE_REQUESTS = 100  # the mean of 100 sizes spread as a lognormal of sigma 1 is within 13% (one sd)


def remember_size(state: EngineState, observation: Observation, window_seconds: float) -> EngineState:
    """The state with its reference size: the first tokens per request measured over at least
    MIN_REFERENCE_REQUESTS requests, kept from then on."""
    size, rate = observation.tokens_per_request, observation.requests_per_second
    if state.request_tokens is not None or size is None or rate is None:
        return state
    if rate * window_seconds < MIN_REFERENCE_REQUESTS:
        return state
    return state.model_copy(update={"request_tokens": size})


def size_factor(observation: Observation, reference: float | None) -> float:
    """How many reference-size requests one observed request counts as (1 without both sizes)."""
    size = observation.tokens_per_request
    if size is None or reference is None or reference <= 0:
        return 1.0
    return size / reference


def in_reference_requests(observation: Observation, reference: float | None) -> Observation:
    """The observation with its load counted in requests of the reference size."""
    factor, rate = size_factor(observation, reference), observation.requests_per_second
    if factor == 1.0 or rate is None:
        return observation
    return replace(observation, requests_per_second=rate * factor)


def size_note(observation: Observation, reference: float | None) -> str:
    """' (loads in requests of 13300 tokens; these average 18600)' when the sizes differ by more than
    NOTE_BEYOND; '' otherwise."""
    factor = size_factor(observation, reference)
    if abs(factor - 1.0) <= NOTE_BEYOND or observation.tokens_per_request is None or reference is None:
        return ""
    return f" (loads in requests of {reference:.0f} tokens; these average {observation.tokens_per_request:.0f})"
