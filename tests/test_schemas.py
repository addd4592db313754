"""The schemas of the data files (schemas.py): what each table accepts and refuses on its own, its defaults, and the
few methods a table carries. The cases are tables of the bundled files (conformance/*.toml, sim/profiles.toml)."""

from __future__ import annotations

import msgspec
import pytest

from pytest_vllm_metrics import data, schemas
from pytest_vllm_metrics.versions import VersionRange


def test_decoded_tables_are_frozen_and_typed() -> None:
    limitation = data.limitations().limitation[0]
    assert isinstance(limitation.versions, VersionRange)
    assert isinstance(limitation.arch, tuple)
    with pytest.raises(AttributeError):
        limitation.fix = "nothing"  # type: ignore[misc]


def test_a_profile_keeps_the_defaults_of_the_keys_it_leaves_out() -> None:
    row = data.sim_profiles().profile["x86_64-lora"]
    assert row.given() == {"description": row.description, "arch": "amd64", "version": "0.32.0",
                           "enable_prefix_caching": True, "lora_modules": ("sim-adapter",), "max_loras": 1}


def test_a_key_the_schema_does_not_name_is_refused_not_ignored() -> None:
    with pytest.raises(msgspec.ValidationError, match="unknown field `famillies`"):
        msgspec.convert({"famillies": ["vllm:lora_requests_info"]}, schemas.FeatureRule)


def test_a_metric_entry_keeps_the_catalogs_defaults() -> None:
    metric = data.decode('[[metric]]\nname = "vllm:num_requests_running"\ntype = "gauge"\nlevel = "MUST"\n'
                         'feature = "core"\nversions = ">=0.9.2"\n', schemas.CatalogFile, "catalog file t.toml")
    (entry,) = metric.metric
    assert (entry.labels, entry.present, entry.moves, entry.at_least, entry.replaced_by, entry.meaning) == (
        (), "startup", None, None, None, "")
    assert entry.versions == VersionRange(">=0.9.2")


@pytest.mark.parametrize("given", [{"info": "vllm:cache_config_info"},
                                   {"info": "vllm:cache_config_info", "label": "enable_prefix_caching"},
                                   {"info": "vllm:cache_config_info", "equals": "True"}])
def test_a_feature_read_from_an_info_metric_needs_its_label_and_value(given: dict[str, str]) -> None:
    with pytest.raises(ValueError, match=r"info = 'vllm:cache_config_info' needs label and equals too"):
        schemas.FeatureRule(**given)  # type: ignore[arg-type]


def test_a_feature_with_its_info_label_and_value_is_accepted() -> None:
    rule = schemas.FeatureRule(info="vllm:cache_config_info", label="enable_prefix_caching", equals="True")
    assert (rule.always, rule.expected, rule.families, rule.prefixes) == (False, False, (), ())


def test_an_exact_row_needs_its_quantity_described() -> None:
    gauges = schemas.AbortGauges(("vllm:num_requests_running",), 2, 64, 5.0, 2.0, 0.1)
    row = schemas.ExactRow("vllm:request_success_total", "choices")
    schemas.AccountingFile({"choices": "one per choice"}, (row,), gauges)  # described: accepted
    with pytest.raises(ValueError) as excinfo:
        schemas.AccountingFile({"requests": "one per request"}, (row,), gauges)
    assert str(excinfo.value) == ("[[exact]] vllm:request_success_total equals choices, which [quantity] does not "
                                  "describe; add choices = \"how it is counted\" to [quantity]")


def test_a_limitations_reason_quotes_vllm_and_the_servers_own_word() -> None:
    limitation = schemas.Limitation("prefix_caching", "cpu", ("arm64",), VersionRange(">=0.11.1,<0.12.0"),
                                    "Prefix caching is not supported for ARM CPUs", "vllm/engine/arg_utils.py",
                                    "upgrade to vLLM 0.12.0")
    assert limitation.reason("arm64", "0.11.1") == (
        'vLLM 0.11.1 disables prefix caching on arm64 CPUs: "Prefix caching is not supported for ARM CPUs" '
        '(vllm/engine/arg_utils.py); the server confirms it: vllm:cache_config_info has '
        'enable_prefix_caching="False"; fix: upgrade to vLLM 0.12.0')


def test_an_epp_generations_families_are_its_four_metrics_in_order() -> None:
    generation = data.epp().generation[0]
    assert generation.families == (generation.per_pod_queue, generation.ready, generation.average_kv,
                                   generation.average_queue)
    assert generation.pod_label not in generation.families
