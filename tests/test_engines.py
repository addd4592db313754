"""engines.py: the model servers of the model-server protocol, as conformance/engines.toml describes them, and how a
pod or a URL target gets its engine."""

from __future__ import annotations

from typing import get_args

import pytest

from pytest_vllm_metrics import data, engines, schemas
from pytest_vllm_metrics.engines import REQUIRED, Engine, Metric, UnknownEngine
from pytest_vllm_metrics.targets import Target, url_targets, with_port


def test_every_engine_has_a_profile_and_the_data_file_names_only_those() -> None:
    assert set(engines.profiles()) == set(Engine)
    assert set(get_args(schemas.EngineName)) == {e.value for e in Engine}
    assert REQUIRED == (Metric.QUEUED, Metric.RUNNING, Metric.KV_USAGE)
    # vLLM's load probe (the abort probe of exclusive runs) reads the gauges the protocol names for vLLM
    assert sorted(engines.profile(Engine.VLLM).required.values()) == sorted(data.accounting().gauges.names)
    assert not Metric.BLOCK_SIZE.required and not Metric.NUM_BLOCKS.required


@pytest.mark.parametrize(("engine", "queued", "running", "kv_usage"), [
    # the GAIE model-server protocol's table (003-model-server-protocol), as llm-d-router's built-in engineConfigs
    (Engine.VLLM, "vllm:num_requests_waiting", "vllm:num_requests_running", "vllm:kv_cache_usage_perc"),
    (Engine.SGLANG, "sglang:num_queue_reqs", "sglang:num_running_reqs", "sglang:token_usage"),
    (Engine.TRTLLM_SERVE, "trtllm_num_requests_waiting", "trtllm_num_requests_running", "trtllm_kv_cache_utilization"),
    (Engine.TRITON_TENSORRT_LLM, 'nv_trt_llm_request_metrics{request_type="waiting"}',
     'nv_trt_llm_request_metrics{request_type="scheduled"}',
     'nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="fraction"}'),
])
def test_each_engine_names_the_protocols_three_required_gauges(engine: Engine, queued: str, running: str,
                                                                kv_usage: str) -> None:
    assert dict(engines.profile(engine).required) == {Metric.QUEUED: queued, Metric.RUNNING: running,
                                                      Metric.KV_USAGE: kv_usage}


def test_where_each_engine_serves_its_page_and_what_turns_it_on() -> None:
    shown = {e: (p.metrics_path, p.metrics_port, p.enable, p.model_label) for e, p in engines.profiles().items()}
    assert shown == {Engine.VLLM: ("/metrics", 0, "", "model_name"),
                     Engine.SGLANG: ("/metrics", 0, "--enable-metrics", "model_name"),
                     Engine.TRTLLM_SERVE: ("/prometheus/metrics", 0, "", "model_name"),
                     Engine.TRITON_TENSORRT_LLM: ("/metrics", 8002, "", "model")}
    # only vLLM has a LoRA mapping in the protocol
    assert {e for e, p in engines.profiles().items() if p.lora} == {Engine.VLLM}


@pytest.mark.parametrize(("version", "block_size"), [
    ("0.5.9", ("sglang:cache_config_info", "page_size")),  # llm-d-router testdata/sglang-old.prom, SGLang v0.5.9
    ("0.5.11", ("sglang:cache_config_info", "page_size")),  # one below the change
    ("0.5.12", ("sglang:page_size", "")),  # the release that replaced the info series with gauges
    ("0.5.16", ("sglang:page_size", "")),  # llm-d-router testdata/sglang-new.prom
])
def test_sglang_serves_its_block_size_in_one_form_per_version(version: str, block_size: tuple[str, str]) -> None:
    forms = engines.profile(Engine.SGLANG).cache_forms(version)
    assert [(f.block_size.name, f.block_size.label) for f in forms] == [block_size]


def test_an_unknown_version_accepts_every_form() -> None:
    assert len(engines.profile(Engine.SGLANG).cache_forms(None)) == 2


@pytest.mark.parametrize(("labels", "engine", "key"), [
    ({}, Engine.VLLM, ""),  # unlabelled: the endpoint picker's defaultEngine
    ({"llm-d.ai/engine-type": "sglang"}, Engine.SGLANG, "llm-d.ai/engine-type"),
    ({"inference.networking.k8s.io/engine-type": "trtllm-serve"}, Engine.TRTLLM_SERVE,
     "inference.networking.k8s.io/engine-type"),  # the older key, still read
    # both: the current key wins
    ({"inference.networking.k8s.io/engine-type": "vllm", "llm-d.ai/engine-type": "Triton-TensorRT-LLM"},
     Engine.TRITON_TENSORRT_LLM, "llm-d.ai/engine-type"),
])
def test_a_pods_engine_is_its_label_as_the_endpoint_picker_reads_it(labels: dict[str, str], engine: Engine,
                                                                   key: str) -> None:
    assert engines.of_labels(labels) == (engine, key)


def test_a_label_naming_no_known_engine_says_which_are_known() -> None:
    with pytest.raises(UnknownEngine) as excinfo:
        engines.of_labels({"llm-d.ai/engine-type": "tgi"})
    assert str(excinfo.value) == (
        "the pod label llm-d.ai/engine-type is 'tgi', which names no model server this suite knows (vllm, sglang, "
        "trtllm-serve, triton-tensorrt-llm); its metrics are not checked.")


def test_url_targets_read_each_engines_page_where_it_serves_it() -> None:
    vllm, = url_targets(("http://10.0.0.1:8000",), "amd64")
    assert (vllm.engine, vllm.metrics_path, vllm.page_target()) == (Engine.VLLM, None, vllm)  # --vllm-metrics-path
    trt, = url_targets(("http://10.0.0.1:8000",), "amd64", Engine.TRTLLM_SERVE)
    assert (trt.metrics_path, trt.page_target().base_url) == ("/prometheus/metrics", "http://10.0.0.1:8000")
    triton, = url_targets(("http://user:pw@[fd00::1]:8000/",), "amd64", Engine.TRITON_TENSORRT_LLM)
    assert (triton.url("/v1/models"), triton.metrics_path) == ("http://user:pw@[fd00::1]:8000/v1/models", "/metrics")
    assert triton.page_target().url("/metrics") == "http://user:pw@[fd00::1]:8002/metrics"


@pytest.mark.parametrize(("url", "moved"), [
    ("http://10.0.0.1:8000", "http://10.0.0.1:8002"),
    ("http://10.0.0.1", "http://10.0.0.1:8002"),  # no port given
    ("https://user:pw@triton.example:443/base", "https://user:pw@triton.example:8002/base"),
    ("http://[fd00::1]:8000", "http://[fd00::1]:8002"),
])
def test_a_url_on_another_port_keeps_scheme_credentials_host_and_path(url: str, moved: str) -> None:
    assert with_port(url, 8002) == moved


@pytest.mark.parametrize(("image", "version"), [
    ("lmsysorg/sglang:v0.5.9-cu129", "0.5.9"),  # SGLang's images: v<release>-<CUDA>
    ("docker.io/lmsysorg/sglang:v0.5.12", "0.5.12"),
    ("nvcr.io/nvidia/tritonserver:25.12-trtllm-python-py3", "25.12"),  # Triton's: <year>.<month>-<flavour>
    ("ghcr.io/acme/sglang:0.5.16@sha256:0123", "0.5.16"),
    ("registry.example:5000/sglang", None),  # a registry's port is not a tag
    ("registry.example:5000/lmsysorg/sglang:v0.5.9-cu129", "0.5.9"),  # a registry's port, then the tag
    ("tritonserver:25.12-trtllm-python-py3", "25.12"),  # a bare name, as `kind load docker-image` leaves it
    ("lmsysorg/sglang:latest", None), ("sglang@sha256:0123", None), (None, None),
])
def test_another_engines_version_is_its_images_tag(image: str | None, version: str | None) -> None:
    assert engines.version_of_image(image) == version


def test_a_target_accepts_the_engine_as_its_name() -> None:
    assert Target("t", "http://x", engine="sglang").engine is Engine.SGLANG  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Target("t", "http://x", engine="tgi")  # type: ignore[arg-type]


def test_a_spec_with_bare_label_values_reads_as_the_endpoint_picker_quotes_it() -> None:
    # the endpoint picker quotes bare label values before parsing (spec.go addQuotesToLabelValues) and keeps only
    # the `=` matchers
    text = "nv_trt_llm_request_metrics{request_type=waiting, model!=x}"
    assert engines.selector(text) == engines.Selector(text, "nv_trt_llm_request_metrics", {"request_type": "waiting"})
    with pytest.raises(ValueError, match=r"^'sum\(x\)' is not a metric selector such as name\{label=\"value\"\}$"):
        engines.selector("sum(x)")
