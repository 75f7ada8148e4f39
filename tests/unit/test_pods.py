"""NamespacePods: one LIST per namespace per cycle, whatever the number of budgets in it."""

import asyncio

from tests.unit.test_reconcile import spec

from inferbudget.handlers import _target
from inferbudget.pods import NamespacePods, PodLabels, selected


class Lister:
    """A namespace's pods as the API server would list them, counting the LISTs."""

    def __init__(self, budgets: int) -> None:
        self.pods = {"ns": [(f"m-{i}-{j}", {"app": f"m-{i}", "tier": "serving"}) for i in range(budgets)
                            for j in range(3)]}
        self.lists: list[str] = []

    def __call__(self, namespace: str) -> list[PodLabels]:
        self.lists.append(namespace)
        return list(self.pods.get(namespace, []))


def test_a_selector_picks_the_pods_carrying_all_its_labels_with_their_variants() -> None:
    pods: list[PodLabels] = [("a", {"app": "m", "v": "1", "inferbudget.io/variant": "fp8"}), ("b", {"app": "m"}),
                             ("c", {"app": "n", "v": "1"})]
    assert selected(pods, {"app": "m"}) == {"a": "fp8", "b": None}
    assert selected(pods, {"app": "m", "v": "1"}) == {"a": "fp8"}
    assert selected(pods, {}) == {}  # an empty selector selects nothing, not the whole namespace


def test_the_budgets_of_a_namespace_share_one_list_per_cycle() -> None:
    lister, now = Lister(budgets=10), [0.0]
    pods = NamespacePods(lister, cycle_seconds=30, clock=lambda: now[0])

    async def cycle() -> list[set[str]]:
        return [set(own) for own in await asyncio.gather(*(pods.selected("ns", {"app": f"m-{i}"})
                                                           for i in range(10)))]

    async def go() -> None:
        first = await cycle()
        assert first == [{f"m-{i}-0", f"m-{i}-1", f"m-{i}-2"} for i in range(10)]
        assert lister.lists == ["ns"]  # not one per budget
        lister.pods["ns"].append(("m-0-3", {"app": "m-0"}))  # scaled up meanwhile
        now[0] += 30
        assert (await cycle())[0] == {"m-0-0", "m-0-1", "m-0-2", "m-0-3"}  # seen on the next cycle
        assert lister.lists == ["ns", "ns"]

    asyncio.run(go())


def test_an_empty_selector_costs_no_list() -> None:
    lister = Lister(budgets=1)
    assert asyncio.run(NamespacePods(lister, cycle_seconds=30).selected("ns", {})) == {}
    assert lister.lists == []


def test_a_namespace_nobody_asks_for_any_more_is_dropped() -> None:
    lister, now = Lister(budgets=1), [0.0]
    lister.pods["gone"] = [("x-0", {"app": "x"})]
    pods = NamespacePods(lister, cycle_seconds=30, clock=lambda: now[0])

    async def go() -> None:
        await pods.selected("gone", {"app": "x"})
        now[0] += 90  # the namespace's budgets were deleted: three cycles without a reconcile there
        await pods.selected("ns", {"app": "m-0"})

    asyncio.run(go())
    assert set(pods._lists) == {"ns"}  # its pods are not kept for ever


def test_only_pods_labelled_with_the_templates_variant_tell_its_memory() -> None:
    budget = spec()
    own = {"new-0": "fp8", "old-0": "bf16", "older-0": None}  # mid-swap: unlabelled pods predate the first swap
    assert _target("serving/llama", "serving", budget, own, "fp8").variant_pods == frozenset({"new-0"})
    assert _target("serving/llama", "serving", budget, own, "fp8").pods == set(own)  # all count for the load
    assert _target("serving/llama", "serving", budget, own, None).variant_pods is None  # the template says none
