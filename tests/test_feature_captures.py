"""The real pages of a LoRA and a speculative-decoding vLLM 0.32 (tests/data/captures) against the catalog, the
feature rules and the simulator, family by family, without a real vLLM.

The simulator has no LoRA or speculative-decoding profile: its x86_64 page must differ from these servers' pages
by exactly the feature's own families, so anything else the features change would show here.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from pytest_vllm_metrics import features
from pytest_vllm_metrics.catalog import load_catalog
from pytest_vllm_metrics.relations import newest
from pytest_vllm_metrics.sim import SimHost, get_profile, profile_names
from pytest_vllm_metrics.snapshot import Snapshot

CAPTURES = Path(__file__).parent / "data" / "captures"
# capture -> (feature, the families the feature adds to a vLLM 0.32 page, as the text parser names them)
FEATURE_PAGES = {
    "lora": ("lora", {"vllm:lora_requests_info"}),
    "spec-decode": ("spec_decode", {"vllm:spec_decode_num_drafts", "vllm:spec_decode_num_draft_tokens",
                                    "vllm:spec_decode_num_accepted_tokens",
                                    "vllm:spec_decode_num_accepted_tokens_per_pos"}),
}


def families(text: str) -> dict[str, tuple[str, frozenset[str], tuple[str, ...]]]:
    """vllm:/http_ family -> (type, label names, bucket bounds), ignoring _created and values."""
    out = {}
    for metric in text_string_to_metric_families(text):
        if metric.name.endswith("_created") or not metric.name.startswith(("vllm:", "http_")):
            continue
        labels = frozenset(k for s in metric.samples for k in s.labels if k != "le")
        buckets = tuple(sorted({s.labels["le"] for s in metric.samples if "le" in s.labels}))
        out[metric.name] = (metric.type, labels, buckets)
    return out


def page(name: str) -> str:
    return (CAPTURES / f"{name}.prom").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def sim_page() -> str:
    """The x86_64 simulator's page after one completion (so http_* families appear), as the captures were."""
    with SimHost() as host, httpx.Client(base_url=host.start(get_profile("x86_64")).url, timeout=30) as client:
        client.post("/v1/completions", json={"model": "tiny", "prompt": "the metrics", "max_tokens": 4})
        return client.get("/metrics").text


@pytest.mark.parametrize("capture", list(FEATURE_PAGES))
def test_simulator_differs_from_a_feature_server_only_by_the_feature_families(capture: str, sim_page: str) -> None:
    feature, own = FEATURE_PAGES[capture]
    real, sim = families(page(f"{capture}.after")), families(sim_page)
    assert set(real) - set(sim) == own
    assert set(sim) <= set(real)
    for name, shape in sim.items():
        assert real[name] == shape, name
    # no profile simulates the feature yet; once one does, compare it with this capture directly
    assert not [p for p in profile_names() if feature.replace("_", "-") in p or "lora" in p], profile_names()


@pytest.mark.parametrize("capture", list(FEATURE_PAGES))
def test_catalog_knows_every_family_of_a_feature_server(capture: str) -> None:
    feature, own = FEATURE_PAGES[capture]
    catalog = load_catalog()
    snapshot = Snapshot.parse(page(f"{capture}.after"))
    unknown = sorted(n for n in snapshot.names() if n.startswith("vllm:") and catalog.get(n) is None)
    assert not unknown
    for name in own:
        entry = catalog.get(name if name.endswith("_info") else name + "_total")
        assert entry is not None and entry.feature == feature and entry.applies_to("0.32.0"), name
        assert set(entry.labels) == snapshot.family(entry.name).label_names, name  # type: ignore[union-attr]


@pytest.mark.parametrize("when", ["before", "after"])
@pytest.mark.parametrize("capture", list(FEATURE_PAGES))
def test_feature_detected_on_its_server_only(capture: str, when: str) -> None:
    # lora_requests_info has no series before the first request, but its # TYPE line is there already
    detected = features.detect(Snapshot.parse(page(f"{capture}.{when}")))
    assert {"lora", "spec_decode"} & detected == {FEATURE_PAGES[capture][0]}
    assert not {"lora", "spec_decode"} & features.detect(Snapshot.parse(page(f"prefix-caching-on.{when}")))


def test_newest_lora_series_is_the_highest_value_not_the_first() -> None:
    # read while an adapter request ran, after a base-model request: the empty set is first on the page
    snapshot = Snapshot.parse(page("lora.during"))
    first = dict(snapshot.series("vllm:lora_requests_info")[0].labels)
    latest = newest(snapshot, "vllm:lora_requests_info")
    assert latest is not None
    assert dict(latest.labels)["running_lora_adapters"] == "e2e-adapter" != first["running_lora_adapters"]
    assert newest(Snapshot.parse(page("lora.before")), "vllm:lora_requests_info") is None
