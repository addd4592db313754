"""The real pages of a LoRA and a speculative-decoding vLLM 0.32 (tests/data/captures) against the catalog, the
feature rules and the simulator, family by family, without a real vLLM.

The simulator's x86_64-lora and x86_64-spec-decode profiles serve these servers' pages: the same families (names,
types, help, label names, buckets) with the same series, before any request and after the captured requests. The
plain x86_64 profile differs from them by exactly the feature's own families, so anything else the features
change would show here.
"""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import capture_text, observation
from pytest_vllm_metrics import evaluate, features
from pytest_vllm_metrics.catalog import Entry, load_catalog
from pytest_vllm_metrics.outcome import Outcome, Verdict
from pytest_vllm_metrics.relations import newest
from pytest_vllm_metrics.settings import Policy
from pytest_vllm_metrics.sim import SimHost, get_profile
from pytest_vllm_metrics.snapshot import Snapshot
from pytest_vllm_metrics.versions import VersionRange

# capture -> (feature, the families the feature adds to a vLLM 0.32 page, as the text parser names them)
FEATURE_PAGES = {
    "lora": ("lora", {"vllm:lora_requests_info"}),
    "spec-decode": ("spec_decode", {"vllm:spec_decode_num_drafts", "vllm:spec_decode_num_draft_tokens",
                                    "vllm:spec_decode_num_accepted_tokens",
                                    "vllm:spec_decode_num_accepted_tokens_per_pos"}),
}
PROFILES = {"lora": "x86_64-lora", "spec-decode": "x86_64-spec-decode"}
CAPTURED_ADAPTER, ADAPTER = "e2e-adapter", "sim-adapter"  # the captured server's adapter, the profile's
# the captures' requests (tests/data/captures/README.md)
PROMPT = "the metrics of every server the metrics of every server"
# The feature servers' cache_config_info says mamba_ssm_cache_dtype="float32", the plain server's "auto": vLLM's
# CPU platform sets it by the CPU's AVX-512 BF16 support (platforms/cpu.py), whatever the features.
HOST_LABELS = ("mamba_ssm_cache_dtype",)
INFO = "vllm:lora_requests_info"


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


def served(text: str) -> dict[str, tuple[str, str, frozenset[str], tuple[str, ...], frozenset[tuple[str, ...]]]]:
    """vllm:/http_ family -> (type, help, label names, bucket bounds, its series): all but values and _created.
    A series is its sorted label pairs, the captured adapter's name read as the profile's."""
    out = {}
    shapes = families(text)
    for metric in text_string_to_metric_families(text):
        if metric.name.endswith("_created") or not metric.name.startswith(("vllm:", "http_")):
            continue
        series = frozenset(
            tuple(sorted(f"{k}={v.replace(CAPTURED_ADAPTER, ADAPTER)}" for k, v in s.labels.items()
                         if k != "le" and k not in HOST_LABELS))
            for s in metric.samples if not s.name.endswith(("_bucket", "_sum")))
        shape = shapes.get(metric.name, (metric.type, frozenset(), ()))
        out[metric.name] = (metric.type, metric.documentation, *shape[1:], series)
    return out


def captured_requests(client: httpx.Client, capture: str) -> None:
    """What the capture's server was sent between its before and after pages (tests/data/captures/README.md)."""
    models = ["tiny", ADAPTER] if capture == "lora" else ["tiny"]
    for model in models:
        client.post("/v1/completions", json={"model": model, "prompt": PROMPT, "max_tokens": 16, "temperature": 0}
                    ).raise_for_status()


@pytest.fixture(scope="module")
def profile_pages(host: SimHost) -> dict[str, str]:
    """capture.when -> the feature profile's page at the same moment, after the same requests."""
    pages = {}
    for capture, profile in PROFILES.items():
        with httpx.Client(base_url=host.start(get_profile(profile)).url, timeout=30) as client:
            pages[f"{capture}.before"] = client.get("/metrics").text
            captured_requests(client, capture)
            pages[f"{capture}.after"] = client.get("/metrics").text
    return pages


@pytest.fixture(scope="module")
def sim_page() -> str:
    """The x86_64 simulator's page after one completion (so http_* families appear), as the captures were."""
    with SimHost() as host, httpx.Client(base_url=host.start(get_profile("x86_64")).url, timeout=30) as client:
        client.post("/v1/completions", json={"model": "tiny", "prompt": "the metrics", "max_tokens": 4})
        return client.get("/metrics").text


@pytest.mark.parametrize("capture", list(FEATURE_PAGES))
def test_simulator_differs_from_a_feature_server_only_by_the_feature_families(capture: str, sim_page: str) -> None:
    own = FEATURE_PAGES[capture][1]
    real, sim = families(capture_text(f"{capture}.after")), families(sim_page)
    assert set(real) - set(sim) == own
    assert set(sim) <= set(real)
    for name, shape in sim.items():
        assert real[name] == shape, name


@pytest.mark.parametrize("when", ["before", "after"])
@pytest.mark.parametrize("capture", list(FEATURE_PAGES))
def test_feature_profile_serves_its_server_page_family_by_family(capture: str, when: str,
                                                                 profile_pages: dict[str, str]) -> None:
    real, sim = served(capture_text(f"{capture}.{when}")), served(profile_pages[f"{capture}.{when}"])
    assert sorted(sim) == sorted(real)
    for name, family in real.items():
        assert sim[name] == family, name
    own = {name: real[name][-1] for name in FEATURE_PAGES[capture][1]}
    if capture == "lora":  # no series before the first request; one per adapter set afterwards
        assert own == {INFO: frozenset() if when == "before" else frozenset(
            {("max_lora=1", "running_lora_adapters=", "waiting_lora_adapters="),
             ("max_lora=1", f"running_lora_adapters={ADAPTER}", f"waiting_lora_adapters={ADAPTER}")})}
    else:  # every counter there at startup, one series per draft position
        assert own["vllm:spec_decode_num_accepted_tokens_per_pos"] == {
            ("engine=0", "model_name=tiny", f"position={p}") for p in "01"}


@pytest.mark.parametrize("capture", list(FEATURE_PAGES))
def test_feature_profile_page_is_detected_as_its_feature(capture: str, profile_pages: dict[str, str]) -> None:
    for when in ("before", "after"):
        detected = features.detect(Snapshot.parse(profile_pages[f"{capture}.{when}"]))
        assert {"lora", "spec_decode"} & detected == {FEATURE_PAGES[capture][0]}, when


@pytest.mark.parametrize("source", ["capture", "profile"])
def test_spec_decode_counters_keep_vllms_relations_after_the_captured_request(
        source: str, profile_pages: dict[str, str]) -> None:
    """The counters moved, and as vLLM's do: accepted at most drafted, at most k=2 drafted per draft, per position
    non-increasing and summing to accepted (the capture: 6 drafts, 11 drafted, 9 accepted)."""
    snapshot = Snapshot.parse(capture_text("spec-decode.after") if source == "capture"
                              else profile_pages["spec-decode.after"])

    def value(name: str, position: str | None = None) -> float:
        got = snapshot.value(f"vllm:spec_decode_num_{name}_total", {"position": position} if position else None)
        assert got is not None, name
        return got

    drafts, drafted, accepted = value("drafts"), value("draft_tokens"), value("accepted_tokens")
    per_position = [value("accepted_tokens_per_pos", p) for p in "01"]
    assert drafts > 0 and 0 < accepted <= drafted <= 2 * drafts, (drafts, drafted, accepted)
    assert per_position[0] >= per_position[1] and sum(per_position) == accepted, per_position


def test_lora_profile_page_while_an_adapter_streams_matches_the_capture(host: SimHost) -> None:
    """As lora.during.prom was read: a base-model completion, then the page after the tenth line of a stream to
    the adapter. The adapter's series is the newest, though not the first on the page."""
    with httpx.Client(base_url=host.start(get_profile(PROFILES["lora"])).url, timeout=30) as client:
        client.post("/v1/completions", json={"model": "tiny", "prompt": "the metrics", "max_tokens": 4}
                    ).raise_for_status()
        body = {"model": ADAPTER, "prompt": PROMPT, "max_tokens": 600, "temperature": 0, "stream": True}
        during = None
        with client.stream("POST", "/v1/completions", json=body) as response:
            response.raise_for_status()
            for index, _ in enumerate(response.iter_lines()):  # bounded: 600 tokens, 30 s per read
                if index == 10:
                    during = client.get("/metrics").text
        after = client.get("/metrics").text
    assert during is not None
    assert served(during)[INFO] == served(capture_text("lora.during"))[INFO]
    snapshot = Snapshot.parse(during)
    running = newest(snapshot, INFO)
    assert running is not None and dict(running.labels) == {
        "max_lora": "1", "running_lora_adapters": ADAPTER, "waiting_lora_adapters": ADAPTER}
    assert dict(snapshot.series(INFO)[0].labels)["running_lora_adapters"] == ""
    finished = newest(Snapshot.parse(after), INFO)
    assert finished is not None and dict(finished.labels)["running_lora_adapters"] == ""
    assert finished.value > running.value  # the value is the update time


@pytest.mark.parametrize("capture", list(FEATURE_PAGES))
def test_catalog_knows_every_family_of_a_feature_server(capture: str) -> None:
    feature, own = FEATURE_PAGES[capture]
    catalog = load_catalog()
    snapshot = Snapshot.parse(capture_text(f"{capture}.after"))
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
    detected = features.detect(Snapshot.parse(capture_text(f"{capture}.{when}")))
    assert {"lora", "spec_decode"} & detected == {FEATURE_PAGES[capture][0]}
    assert not {"lora", "spec_decode"} & features.detect(Snapshot.parse(capture_text(f"prefix-caching-on.{when}")))


def test_newest_lora_series_is_the_highest_value_not_the_first() -> None:
    # read while an adapter request ran, after a base-model request: the empty set is first on the page
    snapshot = Snapshot.parse(capture_text("lora.during"))
    first = dict(snapshot.series("vllm:lora_requests_info")[0].labels)
    latest = newest(snapshot, "vllm:lora_requests_info")
    assert latest is not None
    assert dict(latest.labels)["running_lora_adapters"] == "e2e-adapter" != first["running_lora_adapters"]
    assert newest(Snapshot.parse(capture_text("lora.before")), "vllm:lora_requests_info") is None


# -- feature detection and gating (features.detect, features.status) -------------------------------------------


def detected(*lines: str) -> set[str]:
    """The features the run report lists for a server whose /metrics page has these lines."""
    from pytest_vllm_metrics import features
    return features.detect(Snapshot.parse("\n".join(["# TYPE vllm:num_requests_running gauge",
                                                      "vllm:num_requests_running 0", *lines]) + "\n"))


@pytest.mark.parametrize(("lines", "found"), [
    ((), {"core"}),
    (('# TYPE vllm:cache_config_info gauge', 'vllm:cache_config_info{enable_prefix_caching="True"} 1'),
     {"core", "prefix_caching"}),
    (('# TYPE vllm:cache_config_info gauge', 'vllm:cache_config_info{enable_prefix_caching="False"} 1'), {"core"}),
    (('# TYPE vllm:lora_requests_info gauge', 'vllm:lora_requests_info{max_lora="1"} 1'), {"core", "lora"}),
    (('# TYPE vllm:num_requests_kv_fetch_by_stage gauge', 'vllm:num_requests_kv_fetch_by_stage 0'),
     {"core", "kv_connector"}),
    (('# TYPE vllm:nixl_num_failed_transfers counter', 'vllm:nixl_num_failed_transfers_total 0'),
     {"core", "kv_connector"}),
    (('# TYPE vllm:kv_offload_bytes gauge', 'vllm:kv_offload_bytes 0'), {"core", "kv_offload"}),
])
def test_features_the_page_shows_are_detected(lines: tuple[str, ...], found: set[str]) -> None:
    """kills the `always`, `families` and `prefixes` keys of features.detect, `found.add(feature)` ->
    `add(None)`, and `families ... or prefixes` -> `and` (kv_connector by a family alone, by a prefix alone)."""
    assert detected(*lines) == found


def lora_entry() -> Entry:
    return Entry(name="vllm:lora_requests_info", type="gauge", level="SHOULD", feature="lora",
                 versions=VersionRange(">=0.9.2"))


def lora_presence(page_has_lora: bool, policy: Policy) -> Verdict:
    lines = ["# TYPE vllm:lora_requests_info gauge", 'vllm:lora_requests_info{max_lora="1"} 1'] if page_has_lora else []
    snapshot = Snapshot.parse("\n".join(["# TYPE vllm:num_requests_running gauge", "vllm:num_requests_running 0",
                                         *lines]) + "\n")
    return evaluate.presence(lora_entry(), observation(snapshot, snapshot), policy)


def test_checks_of_a_detected_optional_feature_run() -> None:
    """kills `feature in detected` -> `not in` and `FeatureStatus(True)` -> None / False in features.status."""
    assert lora_presence(True, Policy()).outcome == Outcome.PASSED


def test_checks_of_an_optional_feature_not_detected_are_skipped_saying_how_to_require_it() -> None:
    """kills the last `FeatureStatus(False, ...)` -> `True` / the flag dropped in features.status."""
    verdict = lora_presence(False, Policy())
    assert verdict.outcome == Outcome.SKIPPED
    assert verdict.message == ("feature lora is not enabled on this server (not detected from its metrics); pass "
                               "--vllm-require-feature=lora to require it")


def test_required_feature_not_detected_fails() -> None:
    """kills `feature in required` -> `not in` in features.status: a required feature's absence is the failure."""
    verdict = lora_presence(False, Policy(require=("lora",)))
    assert verdict.outcome == Outcome.FAILED
    assert verdict.message.startswith("decode-0 (vLLM 0.32.0): vllm:lora_requests_info is missing from /metrics")


def test_exempted_feature_is_skipped_even_when_detected() -> None:
    """kills `feature in exempt` -> `not in` and the exemption message of features.status."""
    verdict = lora_presence(True, Policy(exempt=("lora",)))
    assert verdict.outcome == Outcome.SKIPPED
    assert verdict.message == "feature lora exempted by --vllm-exempt-feature=lora"
