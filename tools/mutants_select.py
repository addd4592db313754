"""pytest plugin for mutation runs: keep the fast in-process unit tests, deselect the slow ones.

Loaded by mutmut (`pytest_add_cli_args` in pyproject.toml's [tool.mutmut]). A test is slow, for a mutation run,
when it runs pytest in a subprocess (the `pytester` fixture), starts a real Prometheus (`prometheus_server`),
goes through TLS or a proxy to the Kubernetes API-server double, or drives a browser; each mutant would pay
seconds for it. Those tests still run in the ordinary suite. The plain API-server double (`cluster`, `double`)
is an HTTP server on loopback in the test's own process, as fast as the simulator: its tests run. A pytester
test marked `quick_run` stays: an in-process run of a few checks that need no server (the report hooks' own tests).
A test marked `spawns` never runs under mutation: it starts processes (pytest-xdist's workers, the console script)
that import the package outside mutmut's reach.

The pytester runs stay out of the whole-package run. The pytest-facing modules (settings, run, plugin, fixtures,
merge), which are used through pytest runs, are scored one at a time by tools/mutants_one.py against their own test
module, pytester runs included (MUTANTS_WITH_PYTESTER=1 keeps them).

mutmut forks every mutant's run from the process that ran all the tests once (to learn which tests reach which
function): what that run left in the process-wide caches would answer before a mutant's code runs. Each test
starts without snapshot's shared page layouts and what was computed of them (Snapshot.per_structure), as in a
fresh process.
"""

from __future__ import annotations

import os

import pytest

from pytest_vllm_metrics import snapshot

SLOW_FIXTURES = frozenset({"pytester", "prometheus_server", "tls_double", "connect_proxy"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # tools/mutants_one.py scores one pytest-facing module with its own pytester runs: it keeps them
    slow_fixtures = SLOW_FIXTURES - {"pytester"} if os.environ.get("MUTANTS_WITH_PYTESTER") else SLOW_FIXTURES
    slow = [item for item in items if item.get_closest_marker("spawns") is not None or (
        slow_fixtures & set(getattr(item, "fixturenames", ())) and item.get_closest_marker("quick_run") is None)]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if item not in slow]


def pytest_runtest_setup(item: pytest.Item) -> None:
    for layout in snapshot._LAYOUTS.values():
        layout.memo.clear()  # a snapshot made before (at import) may hold one of these layouts
    snapshot._LAYOUTS.clear()
