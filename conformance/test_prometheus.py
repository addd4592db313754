"""Every target, through the Prometheus HTTP API (--prometheus-url): scraped, complete, and in agreement."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pytest_vllm_metrics import prometheus
from pytest_vllm_metrics.catalog import Catalog
from pytest_vllm_metrics.engines import Engine
from pytest_vllm_metrics.evaluate import across
from pytest_vllm_metrics.observe import Observation, Stage
from pytest_vllm_metrics.outcome import Level, Outcome, Verdict
from pytest_vllm_metrics.run import PrometheusState

Observations = dict[str, Observation]
Enforce = Callable[[Verdict], None]

pytestmark = pytest.mark.must


def _checked(state: PrometheusState, observations: Observations, level: Level,
             check: Callable[[Observation], Verdict], *stages: Stage,
             engines: tuple[Engine, ...] = (Engine.VLLM,)) -> Verdict:
    """Prometheus that cannot be asked makes every check inconclusive (the deployment may be right); otherwise
    each target gets its own verdict."""
    if state.error:
        return Verdict(Outcome.INCONCLUSIVE, state.error, level)

    def one(obs: Observation) -> Verdict:
        problem = obs.failure(*stages)
        if problem:
            return problem.verdict(level)
        try:
            return check(obs)
        except prometheus.PrometheusError as exc:  # Prometheus failing mid-run: a verdict, not a traceback
            return Verdict(Outcome.INCONCLUSIVE, str(exc), level)

    return across(observations.values(), one, level, engines)


def test_scraped_by_prometheus(vllm_prometheus: PrometheusState, vllm_observations: Observations,
                               vllm_level: Level, vllm_enforce: Enforce) -> None:
    vllm_enforce(_checked(vllm_prometheus, vllm_observations, vllm_level,
                          lambda obs: prometheus.scraped(vllm_prometheus.prom, obs), engines=tuple(Engine)))


def test_must_families_in_prometheus(vllm_prometheus: PrometheusState, vllm_observations: Observations,
                                     vllm_catalog: Catalog, vllm_level: Level, vllm_enforce: Enforce) -> None:
    vllm_enforce(_checked(vllm_prometheus, vllm_observations, vllm_level,
                          lambda obs: prometheus.families_there(vllm_prometheus.prom, obs, vllm_catalog), Stage.BEFORE))


def test_values_agree_with_direct_scrape(vllm_prometheus: PrometheusState, vllm_observations: Observations,
                                        vllm_level: Level, vllm_enforce: Enforce) -> None:
    vllm_enforce(_checked(vllm_prometheus, vllm_observations, vllm_level,
                          lambda obs: prometheus.values_agree(vllm_prometheus.prom, obs,
                                                              vllm_prometheus.held.get(obs.target.name),
                                                              vllm_prometheus.waited),
                          Stage.BEFORE, Stage.AFTER))
