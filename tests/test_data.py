"""The one loader of the TOML data files (pytest_vllm_metrics/data.py): every bundled file decodes with its schema,
and a file of the wrong shape (a wrong type, an unknown key, a missing key) is one message naming the file, the
entry, the key and the expected type. The cases are small files in the format of the bundled ones."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import msgspec
import pytest

from pytest_vllm_metrics import data, schemas
from pytest_vllm_metrics.versions import VersionRange

ROOT = Path(__file__).parent.parent
ON_DISK = sorted([("conformance", p.name) for p in (ROOT / "conformance").glob("*.toml")]
                 + [("sim", p.name) for p in (ROOT / "pytest_vllm_metrics" / "sim").glob("*.toml")])
PACKAGES = {"conformance": data.CONFORMANCE, "sim": data.SIMULATOR}


# -- the bundled files -------------------------------------------------------------------------------------------


def test_every_data_file_of_the_package_has_a_schema() -> None:
    assert len(ON_DISK) >= 13
    assert {(PACKAGES[where], name) for where, name in ON_DISK} == set(data.BUNDLED)


@pytest.mark.parametrize(("where", "name"), ON_DISK, ids=[f"{w}/{n}" for w, n in ON_DISK])
def test_every_bundled_file_decodes_with_its_schema(where: str, name: str) -> None:
    # read from the file itself, not through the process-wide cache, so that a broken file fails here
    schema = data.BUNDLED[PACKAGES[where], name]
    decoded = data.read(data.bundled_path(PACKAGES[where], name), schema)
    assert isinstance(decoded, schema)
    assert data.bundled(PACKAGES[where], name) == decoded


ACCESSORS = {"catalog": "catalog.toml", "features": "features.toml", "limitations": "limitations.toml",
             "diagnosis": "diagnosis.toml", "accounting": "accounting.toml", "relations": "relations.toml",
             "hygiene": "hygiene.toml", "epp": "epp.toml", "upgrade": "upgrade.toml", "multinode": "multinode.toml",
             "dashboards": "dashboards.toml", "engines": "engines.toml",
             "sim_profiles": "profiles.toml", "sim_families": "families.toml"}


@pytest.mark.parametrize(("accessor", "name"), ACCESSORS.items())
def test_each_accessor_returns_its_own_bundled_file(accessor: str, name: str) -> None:
    # called here, not only through the readers that keep its result (accounting's rules, hygiene's caps)
    package = data.SIMULATOR if accessor.startswith("sim_") else data.CONFORMANCE
    found = getattr(data, accessor)()
    assert type(found) is data.BUNDLED[package, name]
    assert found == data.read(data.bundled_path(package, name), data.BUNDLED[package, name])


def test_every_bundled_file_has_its_accessor() -> None:
    assert {name for _, name in data.BUNDLED} == set(ACCESSORS.values())


# -- a file of the wrong shape -----------------------------------------------------------------------------------
# (schema, the file's text, the message after "data file <path>"): per file a wrong type, an unknown key and a
# missing key, each in the tables the file really has.

STORE = '[[store]]\nname = "VictoriaMetrics"\nflag = "-maxLabelsPerTimeseries"\nmax_labels = 30\nsource = "docs"\n'
GENERATION = ('[[generation]]\nname = "inference_pool"\nper_pod_queue = "inference_pool_per_pod_queue_size"\n'
              'pod_label = "model_server_pod"\nready = "inference_pool_ready_pods"\n'
              'average_kv = "inference_pool_average_kv_cache_utilization"\n'
              'average_queue = "inference_pool_average_queue_size"\n')
LIMITATION = ('[[limitation]]\nfeature = "prefix_caching"\ndevice = "cpu"\narch = ["arm64"]\n'
              'versions = ">=0.11.1,<0.12.0"\nmessage = "m"\nsource = "s"\nfix = "f"\n')
PROFILE = '[profile.x86_64]\ndescription = "d"\narch = "amd64"\nversion = "0.32.0"\nenable_prefix_caching = true\n'
FEATURES = ", ".join(["core", "prefix_caching", "lora", "spec_decode", "kv_connector", "kv_offload", "multimodal",
                      "mfu", "http"])

# conformance/engines.toml's SGLang entry
ENGINE = ('label_keys = ["llm-d.ai/engine-type"]\ndefault_engine = "vllm"\n[[engine]]\nname = "sglang"\n'
          'metrics_path = "/metrics"\nenable = "--enable-metrics"\nlora = ""\nmodel_label = "model_name"\n'
          'source = "s"\n'
          'queued = "sglang:num_queue_reqs"\nrunning = "sglang:num_running_reqs"\nkv_usage = "sglang:token_usage"\n'
          'settle_seconds = 35.0\n')

CASES: list[tuple[str, type[msgspec.Struct], str, str]] = [
    ("features-wrong-type", schemas.FeaturesFile, '[feature.lora]\nfamilies = "vllm:lora_requests_info"\n',
     ", [feature.lora]: families = 'vllm:lora_requests_info' is a string, not an array of strings."),
    ("features-unknown-key", schemas.FeaturesFile, '[feature.lora]\nfamilys = ["vllm:lora_requests_info"]\n',
     ", [feature.lora] has unknown field(s) familys; valid fields are always, info, label, equals, expected, "
     "families, prefixes."),
    ("features-unknown-feature", schemas.FeaturesFile, '[feature.prefix-caching]\nalways = true\n',
     f", [feature]: the key 'prefix-caching' is not one of {FEATURES}."),
    ("features-missing-key", schemas.FeaturesFile, "# no feature yet\n",
     " lacks the required top-level key(s) feature (a table)."),
    ("features-info-without-value", schemas.FeaturesFile, '[feature.prefix_caching]\ninfo = "vllm:cache_config_info"\n'
     'label = "enable_prefix_caching"\n',
     ", [feature.prefix_caching]: info = 'vllm:cache_config_info' needs label and equals too (the info label and "
     "its value)."),
    ("limitations-wrong-type", schemas.LimitationsFile, LIMITATION.replace('["arm64"]', '"arm64"'),
     ", entry 1: arch = 'arm64' is a string, not an array of strings."),
    ("limitations-unknown-key", schemas.LimitationsFile, LIMITATION + 'arches = ["arm64"]\n',
     ", entry 1 has unknown field(s) arches; valid fields are feature, device, arch, versions, message, source, "
     "fix."),
    ("limitations-missing-key", schemas.LimitationsFile, LIMITATION.replace('fix = "f"\n', ''),
     ", entry 1 lacks the required field(s) fix (a string)."),
    ("limitations-bad-versions", schemas.LimitationsFile, LIMITATION.replace('">=0.11.1,<0.12.0"', '"0.11.x"'),
     ", entry 1: versions = '0.11.x' is not a PEP 440 version specifier; write it like '>=0.11.1,<0.12.0'."),
    ("limitations-versions-not-text", schemas.LimitationsFile, LIMITATION.replace('">=0.11.1,<0.12.0"', "0.11"),
     ", entry 1: versions = 0.11 is a number, not a PEP 440 version specifier, like '>=0.9.2'."),
    ("diagnosis-wrong-type", schemas.DiagnosisFile, '[[rule]]\nid = "off"\nwhen = { arch_known = 0 }\nmessage = "m"\n',
     ", entry 1 (off), in when: arch_known = 0 is an integer, not true or false or a string."),
    ("diagnosis-unknown-fact", schemas.DiagnosisFile, '[[rule]]\nid = "off"\nwhen = { archknown = false }\n'
     'message = "m"\n',
     ", entry 1 (off), in when: the key 'archknown' is not one of family_missing, old_name_present, "
     "prefix_caching, arch_known, repeated_prefix, prefix_shorter_than_block, queries_moved."),
    ("diagnosis-missing-key", schemas.DiagnosisFile, '[[rule]]\nwhen = { arch_known = false }\nmessage = "m"\n',
     ", entry 1 (no name) lacks the required field(s) id (a string)."),
    ("accounting-wrong-type", schemas.AccountingFile, '[gauges]\nnames = ["vllm:num_requests_running"]\nstreams = 3.5\n'
     'max_tokens = 256\nwait_seconds = 10.0\nduring_seconds = 2.0\npoll_seconds = 0.2\n',
     ", [gauges]: streams = 3.5 is a number, not an integer."),
    ("accounting-unknown-quantity", schemas.AccountingFile, '[[exact]]\nname = "vllm:request_success_total"\n'
     'equals = "request"\n',
     ", [[exact]] entry 1 (vllm:request_success_total): equals = 'request' is not one of requests, choices, "
     "engine_prompt_tokens, generation_tokens, decode_steps, engine_max_tokens."),
    ("accounting-unknown-key", schemas.AccountingFile, '[[exact]]\nname = "vllm:request_success_total"\n'
     'equal = "choices"\n',
     ", [[exact]] entry 1 (vllm:request_success_total) has unknown field(s) equal; valid fields are name, equals, "
     "not_with_feature, not_with_why."),
    ("accounting-missing-key", schemas.AccountingFile, '[quantity]\nrequests = "one per request"\n[[exact]]\n'
     'name = "vllm:request_success_total"\nequals = "requests"\n',
     " lacks the required top-level key(s) gauges (a table)."),
    ("accounting-undescribed-quantity", schemas.AccountingFile, '[quantity]\nrequests = "one per request"\n[[exact]]\n'
     'name = "vllm:request_success_total"\nequals = "choices"\n[gauges]\nnames = []\nstreams = 3\nmax_tokens = 256\n'
     'wait_seconds = 10.0\nduring_seconds = 2.0\npoll_seconds = 0.2\n',
     ": [[exact]] vllm:request_success_total equals choices, which [quantity] does not describe; add choices = "
     "\"how it is counted\" to [quantity]."),
    ("relations-wrong-type", schemas.RelationsFile, '[[relation]]\nid = "r"\nkind = "at_most"\nentry = "e"\nwhy = "w"\n'
     'moved = ["vllm:spec_decode_num_drafts_total"]\n',
     ", entry 1 (r): moved = ['vllm:spec_decode_num_drafts_total'] is an array of 1 item, not a string."),
    ("relations-unknown-kind", schemas.RelationsFile,
     '[[relation]]\nid = "r"\nkind = "at-most"\nentry = "e"\nwhy = "w"\n',
     ", entry 1 (r): kind = 'at-most' is not one of at_most, non_increasing, refreshed."),
    ("relations-unknown-key", schemas.RelationsFile,
     '[[relation]]\nid = "r"\nkind = "at_most"\nentry = "e"\nwhy = "w"\n'
     'bigger = "x"\n',
     ", entry 1 (r) has unknown field(s) bigger; valid fields are id, kind, entry, why, smaller, larger, family, by, "
     "sums_to, moved."),
    ("relations-missing-keys", schemas.RelationsFile, '[[relation]]\nid = "r"\nentry = "e"\n',
     ", entry 1 (r) lacks the required field(s) kind (one of at_most, non_increasing, refreshed), why (a string)."),
    ("hygiene-wrong-type", schemas.HygieneFile, STORE.replace("30", '"30"'),
     ", [[store]] entry 1 (VictoriaMetrics): max_labels = '30' is a string, not an integer."),
    ("hygiene-unknown-key", schemas.HygieneFile, STORE.replace("max_labels", "max_label"),
     ", [[store]] entry 1 (VictoriaMetrics) has unknown field(s) max_label; valid fields are name, flag, "
     "max_labels, source."),
    ("hygiene-missing-key", schemas.HygieneFile, '[target_labels]\nServiceMonitor = ["instance", "job"]\n'
     'assumed = "ServiceMonitor"\n',
     ", [target_labels] lacks the required field(s) PodMonitor (an array of strings)."),
    ("hygiene-boolean-for-number", schemas.HygieneFile, "[series]\nmax_per_family = true\n",
     ", [series]: max_per_family = true is a boolean, not an integer."),
    ("epp-wrong-type", schemas.EppFile, '[settle]\nper_pod_seconds = 2.5\npool_seconds = "6 s"\npoll_seconds = 0.25\n',
     ", [settle]: pool_seconds = '6 s' is a string, not a number."),
    ("epp-unknown-key", schemas.EppFile, GENERATION + 'pod_labels = "x"\n',
     ", [[generation]] entry 1 (inference_pool) has unknown field(s) pod_labels; valid fields are name, "
     "per_pod_queue, pod_label, ready, average_kv, average_queue."),
    ("epp-missing-key", schemas.EppFile, GENERATION.replace('ready = "inference_pool_ready_pods"\n', ""),
     ", [[generation]] entry 1 (inference_pool) lacks the required field(s) ready (a string)."),
    ("engines-wrong-type", schemas.EnginesFile, ENGINE.replace("kv_usage", 'metrics_port = "8002"\nkv_usage'),
     ", [[engine]] entry 1 (sglang): metrics_port = '8002' is a string, not an integer."),
    ("engines-unknown-engine", schemas.EnginesFile, ENGINE.replace('name = "sglang"', 'name = "tgi"'),
     ", [[engine]] entry 1 (tgi): name = 'tgi' is not one of vllm, sglang, trtllm-serve, triton-tensorrt-llm."),
    ("engines-unknown-key", schemas.EnginesFile, ENGINE + "page_size = 1\n",
     ", [[engine]] entry 1 (sglang) has unknown field(s) page_size; valid fields are name, metrics_path, enable, "
     "lora, model_label, source, queued, running, kv_usage, settle_seconds, metrics_port, cache."),
    ("engines-missing-key", schemas.EnginesFile, ENGINE.replace('kv_usage = "sglang:token_usage"\n', ""),
     ", [[engine]] entry 1 (sglang) lacks the required field(s) kv_usage (a string)."),
    ("upgrade-wrong-type", schemas.UpgradeFile, '[removed_in]\n"vllm:time_per_output_token_seconds" = 0.15\n',
     ', [removed_in]: "vllm:time_per_output_token_seconds" = 0.15 is a number, not a string.'),
    ("upgrade-unknown-key", schemas.UpgradeFile, '[policy]\nflag = "f"\ntext = "t"\nhidden_minors = 1\nhidden = 2\n',
     ", [policy] has unknown field(s) hidden; valid fields are flag, text, hidden_minors."),
    ("upgrade-missing-key", schemas.UpgradeFile, '[policy]\nflag = "f"\ntext = "t"\n',
     ", [policy] lacks the required field(s) hidden_minors (an integer)."),
    ("multinode-wrong-type", schemas.MultinodeFile, '[flags]\nswitches = ["--headless"]\n[flags.aliases]\n"-dp" = 2\n',
     ", [flags.aliases]: -dp = 2 is an integer, not a string."),
    ("multinode-wrong-length", schemas.MultinodeFile, '[server]\nprograms = [["vllm"]]\nmodules = []\n',
     ", [server]: programs[0] = ['vllm'] is an array of 1 item, not an array of 2 strings (programs must be an "
     "array of arrays of 2 strings)."),
    ("multinode-unknown-key", schemas.MultinodeFile, '[flags]\nswitches = []\nalias = { "-dp" = "-d" }\n',
     ", [flags] has unknown field(s) alias; valid fields are switches, aliases."),
    ("multinode-missing-keys", schemas.MultinodeFile, '[lws]\nname = "n"\n',
     ", [lws] lacks the required field(s) group_index (a string), group_key (a string), worker_index (a string), "
     "leader_name (a string), worker_index_env (a string)."),
    ("multinode-missing-key", schemas.MultinodeFile, '[ray_worker]\nstart = ["ray", "start"]\nhead_flag = "--head"\n'
     'address_flags = ["--address"]\nscripts = [{ file = "multi-node-serving.sh", address_flag = "--ray_address" }]\n',
     ", [[ray_worker.scripts]] entry 1 lacks the required field(s) subcommand (a string)."),
    ("dashboards-wrong-type", schemas.DashboardsFile, '[kinds]\npanel = 1\n',
     ", [kinds]: panel = 1 is an integer, not a string."),
    ("dashboards-unknown-key", schemas.DashboardsFile,
     '[removed."vllm:num_requests_swapped"]\nwhy = "w"\nfixed = "f"\n',
     ', [removed."vllm:num_requests_swapped"] has unknown field(s) fixed; valid fields are why, fix.'),
    ("dashboards-missing-key", schemas.DashboardsFile, '[[feature_metric]]\nprefixes = ["vllm:lora_"]\n',
     f", [[feature_metric]] entry 1 lacks the required field(s) feature (one of {FEATURES})."),
    ("profiles-wrong-type", schemas.ProfilesFile, PROFILE + 'lora_modules = "sim-adapter"\n',
     ", [profile.x86_64]: lora_modules = 'sim-adapter' is a string, not an array of strings."),
    ("profiles-unknown-key", schemas.ProfilesFile, PROFILE + 'fault = "metrics-500"\n',
     ", [profile.x86_64] has unknown field(s) fault; valid fields are description, arch, version, "
     "enable_prefix_caching, model, block_size, max_model_len, num_gpu_blocks, lora_modules, max_loras, "
     "speculative_method, num_speculative_tokens, prompt_lookup_min, prompt_lookup_max, data_parallel_size_local, "
     "data_parallel_start_rank, engine."),
    ("profiles-missing-key", schemas.ProfilesFile, PROFILE.replace('version = "0.32.0"\n', ""),
     ", [profile.x86_64] lacks the required field(s) version (a string)."),
    ("families-wrong-type", schemas.FamiliesFile, '[[label_value]]\nfamily = "vllm:request_success"\n'
     'label = "finished_reason"\nvalue = "error"\nversions = [">=0.13.0"]\n',
     ", [[label_value]] entry 1 (vllm:request_success): versions = ['>=0.13.0'] is an array of 1 item, not a PEP 440 "
     "version specifier, like '>=0.9.2'."),
    ("families-unknown-feature", schemas.FamiliesFile, '[[feature]]\nname = "loras"\ndata = "d"\nbefore = "b"\n',
     f", [[feature]] entry 1 (loras): name = 'loras' is not one of {FEATURES}."),
    ("families-missing-key", schemas.FamiliesFile, '[[family]]\nname = "vllm:gpu_cache_usage_perc"\nhelp = "h"\n',
     ", [[family]] entry 1 (vllm:gpu_cache_usage_perc) lacks the required field(s) like (a string)."),
    # the bad key or value of a table is named, not the first one of it
    ("features-second-feature-unknown", schemas.FeaturesFile,
     '[feature.lora]\nfamilies = ["vllm:lora_requests_info"]\n[feature.prefix-caching]\nalways = true\n',
     f", [feature]: the key 'prefix-caching' is not one of {FEATURES}."),
    ("dashboards-second-value-wrong-type", schemas.DashboardsFile, '[kinds]\npanel = "panel"\nalert = 1\n',
     ", [kinds]: alert = 1 is an integer, not a string."),
    # an entry of an array of tables inside an entry of another, not a table: the array is named by its keys
    ("engines-cache-entry-not-a-table", schemas.EnginesFile, ENGINE + "cache = [5]\n",
     ", [[engine]] entry 1 (sglang): entry 1 is 5, not a table; write each entry as a [[engine.cache]] table."),
    # an item of an array inside an array: its place is written out, index by index
    ("multinode-wrong-item-type", schemas.MultinodeFile, '[server]\nprograms = [["vllm", 1]]\nmodules = []\n',
     ", [server]: programs[0][1] = 1 is an integer, not a string (programs must be an array of arrays of 2 strings)."),
    # an optional key names its choices, not "or none"
    ("accounting-unknown-feature", schemas.AccountingFile, '[[exact]]\nname = "vllm:request_success_total"\n'
     'equals = "choices"\nnot_with_feature = "loras"\n',
     f", [[exact]] entry 1 (vllm:request_success_total): not_with_feature = 'loras' is not one of {FEATURES}."),
    # a key of capitals, digits, _ and - is written bare, as in the file
    ("hygiene-capitalised-key-wrong-type", schemas.HygieneFile, '[target_labels]\nServiceMonitor = "instance"\n'
     'PodMonitor = ["pod"]\nassumed = "ServiceMonitor"\n',
     ", [target_labels]: ServiceMonitor = 'instance' is a string, not an array of strings."),
    # an unknown top-level key: the valid ones listed, or where entries go when the file is one array of tables
    ("features-unknown-top-level-key", schemas.FeaturesFile,
     '[features.lora]\nfamilies = ["vllm:lora_requests_info"]\n',
     " has unknown top-level key(s) features; valid top-level keys are feature."),
    ("hygiene-unknown-top-level-key", schemas.HygieneFile, STORE.replace("[[store]]", "[[stores]]"),
     " has unknown top-level key(s) stores; valid top-level keys are store, target_labels, volatile, series, page, "
     "duplicates."),
    ("epp-missing-keys", schemas.EppFile, "# no generation yet\n",
     " lacks the required top-level key(s) generation (an array of tables, written [[generation]]), settle (a table)."),
    # what the file holds, in TOML's words: a table, an array of n items, a date, false
    ("relations-table-for-string", schemas.RelationsFile, '[[relation]]\nid = "r"\nkind = "at_most"\nentry = "e"\n'
     'why = "w"\nmoved = { family = "vllm:spec_decode_num_drafts_total" }\n',
     ", entry 1 (r): moved = {...} is a table, not a string."),
    ("relations-two-items-for-string", schemas.RelationsFile, '[[relation]]\nid = "r"\nkind = "at_most"\nentry = "e"\n'
     'why = "w"\nmoved = ["vllm:spec_decode_num_drafts_total", "vllm:spec_decode_num_draft_tokens_total"]\n',
     ", entry 1 (r): moved = ['vllm:spec_decode_num_drafts_total', 'vllm:spec_decode_num_draft_tokens_total'] is an "
     "array of 2 items, not a string."),
    ("limitations-date-for-string", schemas.LimitationsFile, LIMITATION.replace('source = "s"', "source = 2025-11-20"),
     ", entry 1: source = datetime.date(2025, 11, 20) is a date or time, not a string."),
    ("hygiene-false-for-number", schemas.HygieneFile, "[series]\nmax_per_family = false\n",
     ", [series]: max_per_family = false is a boolean, not an integer."),
]


@pytest.mark.parametrize(("schema", "text", "message"), [case[1:] for case in CASES], ids=[c[0] for c in CASES])
def test_a_file_of_the_wrong_shape_names_file_entry_key_and_type(
        tmp_path: Path, schema: type[msgspec.Struct], text: str, message: str) -> None:
    path = tmp_path / "data.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(data.DataError) as excinfo:
        data.read(path, schema)
    assert str(excinfo.value) == f"data file {path}{message}"



class Probe(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Shapes a schema may take that no bundled file has yet: an array of choices, a constrained value, a table of
    version ranges. A new schema's messages must read like the others'."""

    features: tuple[schemas.Feature, ...] = ()
    retries: Annotated[int, msgspec.Meta(ge=0)] = 0
    stores: Annotated[tuple[schemas.Store, ...], msgspec.Meta(min_length=1)] = ()
    since: dict[str, VersionRange] = {}


PROBES = [
    ("array-of-choices-wrong-type", 'features = "lora"',
     f": features = 'lora' is a string, not an array of strings, each one of {FEATURES}."),
    ("array-of-choices-unknown-choice", 'features = ["lora", "loras"]',
     f": features[1] = 'loras' is not one of {FEATURES} (features must be an array of strings, each one of "
     f"{FEATURES})."),
    ("constrained-wrong-type", 'retries = "3"', ": retries = '3' is a string, not an integer."),
    ("constrained-array-of-tables-wrong-type", "stores = 1",
     ": stores = 1 is an integer, not an array of tables, written [[stores]]."),
    ("version-table-second-value", '[since]\n"vllm:a" = ">=0.9.2"\n"vllm:b" = 0.9\n',
     ', [since]: "vllm:b" = 0.9 is a number, not a PEP 440 version specifier, like \'>=0.9.2\'.'),
]


@pytest.mark.parametrize(("text", "message"), [case[1:] for case in PROBES], ids=[c[0] for c in PROBES])
def test_a_new_schema_shape_gets_the_same_words(text: str, message: str) -> None:
    with pytest.raises(data.DataError) as excinfo:
        data.decode(text, Probe, "data file probe.toml")
    assert str(excinfo.value) == f"data file probe.toml{message}"

def test_every_schema_has_its_three_shape_errors_tested() -> None:
    kinds = {schema: {name.split("-", 1)[1] for name, s, _, _ in CASES if s is schema} for _, schema, _, _ in CASES}
    assert {schema for schema in data.BUNDLED.values() if schema is not schemas.CatalogFile} == set(kinds)
    for schema, tested in kinds.items():
        assert any("wrong-type" in t or "wrong-length" in t for t in tested), schema
        assert any("unknown" in t for t in tested), schema
        assert any("missing" in t for t in tested), schema


def test_invalid_toml_names_the_file_and_the_line(tmp_path: Path) -> None:
    path = tmp_path / "epp.toml"
    path.write_text("[settle\n", encoding="utf-8")
    with pytest.raises(data.DataError) as excinfo:
        data.read(path, schemas.EppFile)
    message = str(excinfo.value)
    assert message.startswith(f"data file {path} is not valid TOML: ")
    assert "line 1" in message and message.endswith("; fix the syntax.")


def test_a_data_file_is_read_as_utf8_whatever_the_locale(ascii_locale: None, tmp_path: Path) -> None:
    # the bundled files hold non-ASCII text (limitations.toml's §); a user's catalog may too
    path = tmp_path / "limitations.toml"
    path.write_text(LIMITATION.replace('message = "m"', 'message = "counts \u2014 per block"'), encoding="utf-8")
    assert data.read(path, schemas.LimitationsFile).limitation[0].message == "counts \u2014 per block"
