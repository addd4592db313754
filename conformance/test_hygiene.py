"""Every target: its /metrics page fits the stores and scrapers it goes to (no traffic needed).

Labels per series against the label caps of common stores, labels sized at startup, series per family, the
page's size, and one series per engine and model. The caps and where they come from: hygiene.toml. What depends
on the store the page goes to passes with a warning naming the store (the suite cannot see it).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pytest_vllm_metrics import hygiene
from pytest_vllm_metrics.evaluate import across
from pytest_vllm_metrics.observe import Observation
from pytest_vllm_metrics.outcome import Level, Verdict

Observations = dict[str, Observation]
Enforce = Callable[[Verdict], None]


@pytest.mark.should
def test_labels_per_series_fit_the_stores(vllm_observations: Observations, vllm_level: Level,
                                          vllm_enforce: Enforce) -> None:
    verdict = across(vllm_observations.values(), lambda obs: hygiene.labels_per_series(obs, vllm_level), vllm_level)
    hygiene.warn(verdict)
    vllm_enforce(verdict)


@pytest.mark.may
def test_info_labels_stable_across_restarts(vllm_observations: Observations, vllm_level: Level,
                                            vllm_enforce: Enforce) -> None:
    verdict = across(vllm_observations.values(), lambda obs: hygiene.volatile_labels(obs, vllm_level), vllm_level)
    hygiene.warn(verdict)
    vllm_enforce(verdict)


@pytest.mark.should
def test_series_per_family_bounded(vllm_observations: Observations, vllm_level: Level, vllm_enforce: Enforce) -> None:
    vllm_enforce(across(vllm_observations.values(), lambda obs: hygiene.series_per_family(obs, vllm_level),
                        vllm_level))


@pytest.mark.should
def test_page_size_within_scrape_caps(vllm_observations: Observations, vllm_level: Level,
                                      vllm_enforce: Enforce) -> None:
    verdict = across(vllm_observations.values(), lambda obs: hygiene.page_size(obs, vllm_level), vllm_level)
    hygiene.warn(verdict)
    vllm_enforce(verdict)


@pytest.mark.must
def test_one_series_per_engine_and_model(vllm_observations: Observations, vllm_level: Level,
                                         vllm_enforce: Enforce) -> None:
    vllm_enforce(across(vllm_observations.values(), lambda obs: hygiene.duplicate_series(obs, vllm_level),
                        vllm_level))
