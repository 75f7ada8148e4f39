"""Load counted by the size of the requests, not only their number.

A replica's capacity is tokens, not requests: one that serves 2 requests/s of 13k-token prompts serves about 1 of
26k-token prompts. Counting every request as one, the engine saw a load growing in size as a load standing
still, and learned each change of size through a breach of the latency budget (engine.learning): the Mooncake
trace's rate stays near 4 req/s while its prompts grow from 13k to 24k tokens in 17 minutes, and from a warm start
the bench's budget missed 1.21% of the requests, 11 of its 48 misses in the last minute.

So a request counts as its size over a reference size. Sizes are the mean tokens per request (prompt and
generated) over the latency window, taken only from windows of at least MIN_REFERENCE_REQUESTS requests: fewer
(a smoke test's, or a quiet hour's with one long prompt in it) say little about the next ones, and one such mean
counted into the load would be remembered as a burst (engine.bursts). The first size so measured is the reference
(EngineState.request_tokens), the latest the size the load is counted at (EngineState.recent_request_tokens),
held through windows with too few requests and cycles whose token rate is missing, so that the unit never
switches back and forth between sizes and plain requests. Both are kept in the state, so a restart counts in the
same unit. Once a reference is set, the engine's loads, capacity hints and learned capacities are in requests of
that size; a decision message that names a load says so when the sizes differ by more than NOTE_BEYOND
(`size_note`). Until then, and where the server exports no token counters (the triton preset, custom queries
without a tokenRate), every request counts as one, as before.

Counting by size, engine-only replays of the bench's budgets (share of requests within the threshold, cost): from
a warm start Mooncake 98.79%, $5.43 became 99.05%, $5.88 (the oracle: 99.03%, $5.74) and Azure 98.78%, $8.79
became 99.40%, $10.68; from a cold start Mooncake 94.73%, $5.80 became 94.70%, $5.48 and Azure 97.38%, $10.98
became 97.40%, $10.44; the 14-day ServeGen trace cost 0.2% more at the same 99.2%.

Prompt and generated tokens are weighted alike. On the simulator's H100 model a generated token costs 4 to 36
times a prompt token (its decode step reads the whole context), but the weight hardly matters: with the reference
at the trace's mean size, weights 0, 1 and 2 gave the same figures on both traces, and 10 gave Mooncake 99.03%,
$6.04 and Azure 99.37%, $10.42. Tokens processed is also what vLLM's and TGI's metrics count.
"""

from dataclasses import replace

from inferbudget.engine.observation import Observation
from inferbudget.engine.state import EngineState

NOTE_BEYOND = 0.1  # a message names the sizes once the latest differs from the reference by more than this
MIN_REFERENCE_REQUESTS = 100  # the mean of 100 sizes spread as a lognormal of sigma 1 is within 13% (one sd)


def remember_size(state: EngineState, observation: Observation, window_seconds: float) -> EngineState:
    """The state with the size of this window's requests, when it was measured over at least
    MIN_REFERENCE_REQUESTS of them: the first such size is the reference, the latest the one counted at."""
    size, rate = observation.tokens_per_request, observation.requests_per_second
    if size is None or rate is None or rate * window_seconds < MIN_REFERENCE_REQUESTS:
        return state
    reference = state.request_tokens if state.request_tokens is not None else size
    return state.model_copy(update={"request_tokens": reference, "recent_request_tokens": size})


def size_factor(state: EngineState) -> float:
    """How many reference-size requests one request of the latest size counts as (1 before any size)."""
    reference, recent = state.request_tokens, state.recent_request_tokens
    if reference is None or recent is None or reference <= 0:
        return 1.0
    return recent / reference


def in_reference_requests(observation: Observation, state: EngineState) -> Observation:
    """The observation with its load counted in requests of the reference size (implausible figures, as a
    reference of a few tokens could make, as missing)."""
    factor, rate = size_factor(state), observation.requests_per_second
    if factor == 1.0 or rate is None:
        return observation
    return replace(observation, requests_per_second=rate * factor).plausible()


def size_note(state: EngineState) -> str:
    """' (loads in requests of 13300 tokens; these average 18600)' when the latest size differs from the
    reference by more than NOTE_BEYOND; '' otherwise."""
    if abs(size_factor(state) - 1.0) <= NOTE_BEYOND:
        return ""
    return f" (loads in requests of {state.request_tokens:.0f} tokens; these average {state.recent_request_tokens:.0f})"
