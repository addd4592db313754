"""--vllm-upgrade-to=VERSION: per consumer of the metrics (Grafana panels, rules, scalers, the EPP's flags), does
it keep its data when the fleet moves to that vLLM? The run only scrapes (no workload); the upgrade table is in
the terminal summary, the HTML report and the JSON report."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pytest_vllm_metrics.catalog import Catalog
from pytest_vllm_metrics.observe import Observation
from pytest_vllm_metrics.outcome import Verdict
from pytest_vllm_metrics.readers import Reader
from pytest_vllm_metrics.run import RUN_KEY
from pytest_vllm_metrics.settings import Settings
from pytest_vllm_metrics.upgrade import judge


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "upgrade_consumer" not in metafunc.fixturenames:
        return
    run = metafunc.config.stash[RUN_KEY]
    consumers = run.panels + run.consumers
    metafunc.parametrize("upgrade_consumer", [pytest.param(c, id=f"{c.kind}:{c.id}") for c in consumers] or [
        pytest.param(None, marks=pytest.mark.skip(reason="no consumer of the metrics to judge: pass "
                                                         "--grafana-dashboard or --prometheus-rules"))],
        ids=None if consumers else ["no-consumer"])


@pytest.mark.must
def test_upgrade(upgrade_consumer: Reader, vllm_observations: dict[str, Observation], vllm_catalog: Catalog,
                 vllm_settings: Settings, vllm_enforce: Callable[[Verdict], None]) -> None:
    assert vllm_settings.vllm_upgrade_to  # collected only with --vllm-upgrade-to (plugin.pytest_ignore_collect)
    vllm_enforce(judge(upgrade_consumer, list(vllm_observations.values()), vllm_catalog,
                       vllm_settings.vllm_upgrade_to))
