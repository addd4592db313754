"""Sharding a large fleet over several runs (--vllm-shard=K/N): which servers this run checks, and what it judges.

The rule: every target of the run is sorted by (namespace, name) (URL and simulator targets have no namespace:
by name), and the target at position i of that order belongs to shard i % N. Round robin rather than contiguous
blocks or a hash of the name: the shards' sizes differ by at most one whatever the names (a hash leaves a small
fleet's shards uneven, or empty), and pods of one deployment, whose names share a prefix and sort together, are
spread over the shards rather than all loaded by one. Each shard discovers the fleet on its own, so the rule
holds only when they all see the same fleet: every shard records the fleet it saw, and the merge refuses shards
that saw different ones.

Readers judged over the whole fleet (Grafana panels, alerting and recording rules, KEDA and prometheus-adapter,
the endpoint picker) are judged once, by shard 0 (`judges_fleet`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import pytest

T = TypeVar("T")

FORM = ("K/N with 0 <= K < N, e.g. --vllm-shard=0/4 (K counts from 0, as a Kubernetes Indexed Job's "
        "JOB_COMPLETION_INDEX)")
# What a reader judged over the fleet says when a shard can see only its own slice of it.
SLICE_ONLY = "a shard sees only its slice of the fleet; give --prometheus-url, or run unsharded"
_SPELLING = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")


@dataclass(frozen=True)
class Shard:
    """This run's shard: `index` of `count` (from 0)."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"shard {self.index} of {self.count}"

    @property
    def spelled(self) -> str:
        """As the option is given: '0/4'."""
        return f"{self.index}/{self.count}"

    @property
    def sliced(self) -> bool:
        """Whether this run sees only part of the fleet (a single shard sees all of it)."""
        return self.count > 1

    def select(self, items: Sequence[T], key: Callable[[T], tuple[str, str]]) -> list[T]:
        """The items of this shard, in their given order: position i of the (namespace, name) order is shard
        i % count's."""
        order = sorted(range(len(items)), key=lambda i: key(items[i]))
        mine = {i for position, i in enumerate(order) if position % self.count == self.index}
        return [item for i, item in enumerate(items) if i in mine]


def parse(raw: str, where: str) -> Shard:
    """--vllm-shard=K/N; a pytest.UsageError naming the valid form otherwise."""
    match = _SPELLING.fullmatch(raw)
    if match is None:
        raise pytest.UsageError(f"{where}: {raw!r} is not a shard; give it as {FORM}.")
    index, count = int(match[1]), int(match[2])
    if count == 0 or index >= count:
        raise pytest.UsageError(f"{where}: {raw!r} names no shard: shard K of N needs 0 <= K < N; give it as "
                                f"{FORM}.")
    return Shard(index, count)


def judges_fleet(shard: Shard | None) -> bool:
    """Whether this run judges the readers of the whole fleet: unsharded, or shard 0."""
    return shard is None or shard.index == 0


def in_shard(plain: Sequence[str], pods: Sequence[str], shard: Shard | None, namespace: str | None) -> list[str]:
    """The target names that `shard` checks (all of them unsharded), in the run's order: `plain` (URL and simulator
    targets, no namespace) then `pods` (discovered in `namespace`)."""
    names = [*plain, *pods]
    if shard is None:
        return names
    keys = {name: ("", name) for name in plain} | {name: (namespace or "", name) for name in pods}
    return shard.select(names, keys.__getitem__)
