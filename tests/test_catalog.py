"""Unit tests of pytest_vllm_metrics.catalog, checked against a real vLLM 0.32.0 capture."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import capture
from pytest_vllm_metrics.catalog import (
    FEATURES,
    LEVELS,
    PRESENT,
    TYPES,
    Catalog,
    CatalogError,
    Entry,
    bundled_catalog_path,
    load_catalog,
)
from pytest_vllm_metrics.versions import VersionRange

CAPTURE_VERSION = "0.32.0"
VALID_FIELDS = ("name", "type", "level", "feature", "versions", "labels", "present", "moves", "at_least",
                "info_labels", "replaced_by", "replaces", "meaning")


def bundled() -> Catalog:
    return load_catalog()


def shown_type(entry: Entry) -> str:
    """The type /metrics shows for a catalog type: an info metric is exposed as a gauge."""
    return "gauge" if entry.type == "info" else entry.type


def startup_must_core_entries() -> list[Entry]:
    return [e for e in bundled() if e.level == "MUST" and e.feature == "core" and e.present == "startup"
            and e.applies_to(CAPTURE_VERSION)]


def write_catalog(tmp_path: Path, body: str, name: str = "user.toml") -> Path:
    path = tmp_path / name
    path.write_text(body, encoding="utf-8")
    return path


def metric_table(**fields: object) -> str:
    """One [[metric]] table; strings are quoted, lists written as TOML arrays."""
    lines = ["[[metric]]"]
    for key, value in fields.items():
        if isinstance(value, list):
            lines.append(f"{key} = [{', '.join(repr(v).replace(chr(39), chr(34)) for v in value)}]")
        else:
            lines.append(f'{key} = "{value}"')
    return "\n".join(lines) + "\n"


def valid_fields(**overrides: object) -> dict[str, object]:
    fields: dict[str, object] = {
        "name": "my:queue_depth", "type": "gauge", "level": "SHOULD", "feature": "core",
        "versions": ">=0.9.0", "labels": ["engine", "model_name"],
    }
    fields.update(overrides)
    return fields


# -- the bundled catalog ---------------------------------------------------------------------------


def test_bundled_catalog_loads_with_unique_names() -> None:
    catalog = bundled()
    names = [entry.name for entry in catalog]

    assert len(catalog) > 40
    assert len(names) == len(set(names))
    assert all(entry.source == "bundled" for entry in catalog)


def test_bundled_catalog_path_is_the_conformance_file() -> None:
    path = bundled_catalog_path()

    assert path.name == "catalog.toml"
    assert path.is_file()


def test_bundled_entries_use_only_known_choices() -> None:
    for entry in bundled():
        assert entry.level in LEVELS, entry.name
        assert entry.type in TYPES, entry.name
        assert entry.feature in FEATURES, entry.name
        assert entry.present in PRESENT, entry.name


def test_bundled_catalog_has_the_prefix_cache_counters_as_must() -> None:
    catalog = bundled()

    for name in ("vllm:prefix_cache_queries_total", "vllm:prefix_cache_hits_total"):
        entry = catalog.get(name)
        assert entry is not None
        assert entry.level == "MUST"
        assert entry.type == "counter"
        assert entry.feature == "prefix_caching"


def test_rename_chain_points_both_ways() -> None:
    catalog = bundled()

    for entry in catalog:
        if entry.replaced_by:
            successor = catalog.get(entry.replaced_by)
            assert successor is not None, entry.name
            assert successor.replaces == entry.name
        if entry.replaces:
            predecessor = catalog.get(entry.replaces)
            assert predecessor is not None, entry.name
            assert predecessor.replaced_by == entry.name


def test_get_of_an_unknown_name_is_none() -> None:
    assert bundled().get("vllm:no_such_family") is None


def test_entry_id_is_its_exposed_name() -> None:
    entry = bundled().get("vllm:e2e_request_latency_seconds")

    assert entry is not None
    assert entry.id == "vllm:e2e_request_latency_seconds"


def test_entry_applies_within_its_version_range() -> None:
    entry = bundled().get("vllm:gpu_cache_usage_perc")  # >=0.7.3,<0.11.0

    assert entry is not None
    assert entry.applies_to("0.10.2") is True
    assert entry.applies_to("0.7.3") is True
    assert entry.applies_to("0.11.0") is False
    assert entry.applies_to(CAPTURE_VERSION) is False


def test_unknown_version_counts_as_the_newest_vllm() -> None:
    retired = bundled().get("vllm:gpu_cache_usage_perc")  # >=0.7.3,<0.11.0
    current = bundled().get("vllm:kv_cache_usage_perc")  # >=0.9.2

    assert retired is not None
    assert current is not None
    assert retired.applies_to(None) is False
    assert current.applies_to(None) is True


@pytest.mark.parametrize("entry", startup_must_core_entries(), ids=lambda e: e.name)
def test_must_core_startup_entry_is_in_the_real_032_capture(entry: Entry) -> None:
    family = capture("prefix-caching-on.before").family(entry.name)

    assert family is not None, f"{entry.name} missing from the real vLLM {CAPTURE_VERSION} /metrics"
    assert family.type == shown_type(entry)
    assert set(entry.labels) <= family.label_names


def test_there_are_must_core_startup_entries_to_check() -> None:
    names = {entry.name for entry in startup_must_core_entries()}

    assert {"vllm:num_requests_running", "vllm:kv_cache_usage_perc", "vllm:cache_config_info"} <= names


def test_info_labels_of_cache_config_are_filled_in_the_real_capture() -> None:
    entry = bundled().get("vllm:cache_config_info")
    info = capture("prefix-caching-on.before").info("vllm:cache_config_info")

    assert entry is not None
    assert info is not None
    assert entry.info_labels
    assert all(info.get(label) for label in entry.info_labels)


@pytest.mark.parametrize("name", ["prefix-caching-on.before", "prefix-caching-on.after",
                                  "prefix-caching-off.before", "prefix-caching-off.after"])
def test_every_vllm_family_of_the_capture_is_in_the_catalog(name: str) -> None:
    catalog = bundled()

    unknown = sorted(n for n in capture(name).names() if n.startswith("vllm:") and catalog.get(n) is None)

    assert unknown == []


def test_catalog_types_match_the_capture_for_every_family_it_shares() -> None:
    snapshot = capture("prefix-caching-on.after")

    for entry in bundled():
        family = snapshot.family(entry.name)
        if family is not None:
            assert family.type == shown_type(entry), entry.name
            assert set(entry.labels) <= family.label_names, entry.name


def test_entries_absent_from_032_are_out_of_its_range_or_optional_features() -> None:
    snapshot = capture("prefix-caching-on.after")

    for entry in bundled():
        if snapshot.family(entry.name) is None and entry.applies_to(CAPTURE_VERSION):
            assert entry.feature not in ("core", "prefix_caching"), entry.name


# -- user catalogs ---------------------------------------------------------------------------------


def test_user_entry_with_a_bundled_name_replaces_it(tmp_path: Path) -> None:
    path = write_catalog(tmp_path, metric_table(**valid_fields(
        name="vllm:num_requests_running", level="MAY", versions=">=0.20.0", labels=["model_name"])))

    catalog = load_catalog([path])
    entry = catalog.get("vllm:num_requests_running")

    assert len(catalog) == len(bundled())
    assert entry is not None
    assert entry.level == "MAY"
    assert entry.labels == ("model_name",)
    assert entry.versions == VersionRange(">=0.20.0")
    assert entry.source == str(path)
    assert [e.name for e in catalog].count("vllm:num_requests_running") == 1


def test_user_entry_with_a_new_name_is_added(tmp_path: Path) -> None:
    path = write_catalog(tmp_path, metric_table(**valid_fields(meaning="my dashboards plot it")))

    catalog = load_catalog([path])
    entry = catalog.get("my:queue_depth")

    assert len(catalog) == len(bundled()) + 1
    assert entry is not None
    assert entry.type == "gauge"
    assert entry.level == "SHOULD"
    assert entry.labels == ("engine", "model_name")
    assert entry.present == "startup"  # the default
    assert entry.moves is None
    assert entry.meaning == "my dashboards plot it"
    assert entry.source == str(path)


def test_later_user_file_wins_over_an_earlier_one(tmp_path: Path) -> None:
    first = write_catalog(tmp_path, metric_table(**valid_fields(level="MUST")), "first.toml")
    second = write_catalog(tmp_path, metric_table(**valid_fields(level="MAY")), "second.toml")

    entry = load_catalog([first, second]).get("my:queue_depth")

    assert entry is not None
    assert entry.level == "MAY"
    assert entry.source == str(second)


def test_user_file_without_entries_changes_nothing(tmp_path: Path) -> None:
    path = write_catalog(tmp_path, "# nothing yet\n")

    assert load_catalog([path]) == bundled()


def test_movement_fields_of_a_user_entry(tmp_path: Path) -> None:
    path = write_catalog(tmp_path, metric_table(**valid_fields(
        name="my:tokens_total", type="counter", present="traffic", moves="increases",
        at_least="prompt_tokens")))

    catalog = load_catalog([path])
    entry = catalog.get("my:tokens_total")

    assert entry is not None
    assert (entry.present, entry.moves, entry.at_least) == ("traffic", "increases", "prompt_tokens")
    assert entry in catalog.moving()


# -- catalog errors --------------------------------------------------------------------------------


def test_typo_field_names_file_entry_and_valid_fields(tmp_path: Path) -> None:
    fields = valid_fields()
    fields["levle"] = "MUST"
    del fields["level"]
    path = write_catalog(tmp_path, metric_table(**fields))

    with pytest.raises(CatalogError) as excinfo:
        load_catalog([path])

    message = str(excinfo.value)
    assert str(path) in message
    assert "entry 1 (my:queue_depth)" in message
    assert "unknown field(s) levle" in message
    assert "valid fields are " + ", ".join(VALID_FIELDS) in message


def test_typo_in_second_entry_is_numbered(tmp_path: Path) -> None:
    body = metric_table(**valid_fields()) + metric_table(**valid_fields(name="my:other", lables=["engine"]))
    path = write_catalog(tmp_path, body)

    with pytest.raises(CatalogError, match=r"entry 2 \(my:other\) has unknown field\(s\) lables"):
        load_catalog([path])


def test_invalid_toml_is_a_catalog_error_naming_the_file(tmp_path: Path) -> None:
    path = write_catalog(tmp_path, '[[metric]\nname = "x"\n')

    with pytest.raises(CatalogError) as excinfo:
        load_catalog([path])

    message = str(excinfo.value)
    assert str(path) in message
    assert "is not valid TOML" in message
    assert "line 1" in message
    assert "fix the syntax" in message


def test_missing_file_is_a_catalog_error_naming_the_option(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.toml"

    with pytest.raises(CatalogError) as excinfo:
        load_catalog([path])

    message = str(excinfo.value)
    assert f"catalog file {path} does not exist" in message
    assert "--vllm-catalog" in message


def test_invalid_toml_points_to_the_bundled_catalog_for_the_format(tmp_path: Path) -> None:
    path = write_catalog(tmp_path, '[[metric]\nname = "x"\n')

    with pytest.raises(CatalogError) as excinfo:
        load_catalog([path])

    assert str(excinfo.value).endswith("fix the syntax (see conformance/catalog.toml in the plugin for the format).")


@pytest.mark.usefixtures("ascii_locale")
def test_a_utf8_catalog_is_read_as_utf8_whatever_the_locale(tmp_path: Path) -> None:
    path = write_catalog(tmp_path, "# maintained by the caf\u00e9 team\n" + metric_table(**valid_fields()))

    assert load_catalog([path]).get("my:queue_depth") is not None


def test_non_utf8_file_is_a_catalog_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'[[metric]]\nname = "caf\xe9"\n')

    with pytest.raises(CatalogError, match="cannot be read"):
        load_catalog([path])


def test_bad_level_value_lists_the_valid_levels(tmp_path: Path) -> None:
    path = write_catalog(tmp_path, metric_table(**valid_fields(level="must")))

    with pytest.raises(CatalogError) as excinfo:
        load_catalog([path])

    message = str(excinfo.value)
    assert str(path) in message
    assert "(my:queue_depth)" in message
    assert "level = 'must' is not one of MUST, SHOULD, MAY" in message


@pytest.mark.parametrize(("field", "value", "valid"), [
    ("type", "histo", ", ".join(TYPES)),
    ("feature", "prefix-caching", ", ".join(FEATURES)),
    ("present", "always", ", ".join(PRESENT)),
    ("moves", "decreases", "increases"),
    ("at_least", "tokens", "requests, prompt_tokens, generation_tokens, block_size"),
])
def test_bad_choice_lists_the_valid_values(tmp_path: Path, field: str, value: str, valid: str) -> None:
    path = write_catalog(tmp_path, metric_table(**valid_fields(**{field: value})))

    with pytest.raises(CatalogError, match=f"{field} = '{value}' is not one of {valid}"):
        load_catalog([path])


def test_bad_versions_specifier_is_a_catalog_error(tmp_path: Path) -> None:
    path = write_catalog(tmp_path, metric_table(**valid_fields(versions="0.11.x")))

    with pytest.raises(CatalogError) as excinfo:
        load_catalog([path])

    message = str(excinfo.value)
    assert str(path) in message
    assert "(my:queue_depth)" in message
    assert "versions = '0.11.x' is not a PEP 440 version specifier" in message
    assert "'>=0.11.1,<0.12.0'" in message


def test_missing_required_field_is_named(tmp_path: Path) -> None:
    fields = valid_fields()
    del fields["versions"]
    path = write_catalog(tmp_path, metric_table(**fields))

    expected = r"entry 1 \(my:queue_depth\) lacks the required field\(s\) versions"
    with pytest.raises(CatalogError, match=expected):
        load_catalog([path])


def test_entry_without_a_name_says_so(tmp_path: Path) -> None:
    fields = valid_fields()
    del fields["name"]
    path = write_catalog(tmp_path, metric_table(**fields))

    with pytest.raises(CatalogError, match=r"entry 1 \(no name\) lacks the required field\(s\) name"):
        load_catalog([path])


def test_unknown_top_level_table_is_a_catalog_error(tmp_path: Path) -> None:
    path = write_catalog(tmp_path, metric_table(**valid_fields()).replace("[[metric]]", "[[metrics]]"))

    expected = r"unknown top-level key\(s\) metrics; entries go in \[\[metric\]\]"
    with pytest.raises(CatalogError, match=expected):
        load_catalog([path])


def test_metric_that_is_not_an_array_of_tables_is_a_catalog_error(tmp_path: Path) -> None:
    path = write_catalog(tmp_path, 'metric = "vllm:num_requests_running"\n')

    expected = r"metric = 'vllm:num_requests_running' is a string, not an array of tables, written \[\[metric\]\]"
    with pytest.raises(CatalogError, match=expected):
        load_catalog([path])


# -- what a user reads when a catalog file is wrong, and the defaults of an entry ---------------------------------
# The messages are built by data.explain from msgspec's error and the file's own tables (tests/test_data.py has
# the other data files' cases).


def load_error(tmp_path: Path, body: str) -> tuple[Path, str]:
    path = write_catalog(tmp_path, body)
    with pytest.raises(CatalogError) as excinfo:
        load_catalog([path])
    return path, str(excinfo.value)


@pytest.mark.parametrize(("field", "value"), [("type", "histo"), ("feature", "prefix-caching"),
                                              ("present", "always"), ("moves", "decreases"),
                                              ("at_least", "tokens")])
def test_bad_choice_names_the_file_and_the_entry(tmp_path: Path, field: str, value: str) -> None:
    """Every choice field's message names the file and the entry, then the key and its value."""
    path, message = load_error(tmp_path, metric_table(**valid_fields(**{field: value})))
    assert message.startswith(f"catalog file {path}, entry 1 (my:queue_depth): {field} = '{value}' is not one of ")


@pytest.mark.parametrize(("field", "value"), [("labels", "engine"), ("labels", [1]), ("info_labels", "block_size"),
                                              ("info_labels", [1])])
def test_labels_that_are_not_a_list_of_names_are_refused(tmp_path: Path, field: str, value: object) -> None:
    """A bare string is not a list of label names, nor is a list holding a number: the message names the value,
    its type and the expected one."""
    fields = {k: v for k, v in valid_fields().items() if k != field}
    line = f'{field} = "{value}"\n' if isinstance(value, str) else f"{field} = {value}\n"
    path, message = load_error(tmp_path, metric_table(**fields) + line)
    wanted = 'a list of label names, like ["engine", "model_name"]'
    if isinstance(value, str):  # the value, its type and the expected type
        assert message == (f"catalog file {path}, entry 1 (my:queue_depth): {field} = {value!r} is a string, not "
                           f"{wanted}.")
    else:  # the item of the list that is no label name
        assert message == (f"catalog file {path}, entry 1 (my:queue_depth): {field}[0] = 1 is an integer, not a "
                           f"string ({field} must be {wanted}).")


def test_empty_versions_asks_for_a_specifier(tmp_path: Path) -> None:
    """An empty specifier is refused (packaging would read it as "any version")."""
    path, message = load_error(tmp_path, metric_table(**valid_fields(versions="  ")))
    assert message == (f"catalog file {path}, entry 1 (my:queue_depth): versions is empty; write a specifier like "
                       f"'>=0.9.2' (any version: '>=0').")


def test_several_unknown_or_missing_fields_are_listed_with_commas(tmp_path: Path) -> None:
    """All the unknown fields of an entry, then all its missing ones with their types, not only the first."""
    path, message = load_error(tmp_path, metric_table(**valid_fields(unit="s", help="h")))
    assert message.startswith(f"catalog file {path}, entry 1 (my:queue_depth) has unknown field(s) help, unit; "
                              f"valid fields are name, type, level, feature, versions, labels, ")
    _, message = load_error(tmp_path, metric_table(name="my:queue_depth", type="gauge", level="SHOULD"))
    assert message.endswith(f"entry 1 (my:queue_depth) lacks the required field(s) feature (one of "
                            f"{', '.join(FEATURES)}), versions (a PEP 440 version specifier, like '>=0.9.2').")


def test_several_unknown_top_level_keys_are_listed_with_commas(tmp_path: Path) -> None:
    """All the unknown top-level keys, sorted."""
    _, message = load_error(tmp_path, 'version = 1\n[[metrics]]\nname = "x"\n')
    assert "has unknown top-level key(s) metrics, version; entries go in [[metric]] tables." in message


def test_metric_array_of_values_names_the_first_entry_that_is_no_table(tmp_path: Path) -> None:
    """Entries are numbered from 1."""
    path, message = load_error(tmp_path, 'metric = [5, "x"]\n')
    assert message == (f"catalog file {path}: entry 1 is 5, not a table; write each entry as a [[metric]] table.")


def test_optional_fields_left_out_take_their_defaults(tmp_path: Path) -> None:
    """The defaults of the optional fields."""
    fields = {k: v for k, v in valid_fields().items() if k != "labels"}
    path = write_catalog(tmp_path, metric_table(**fields))
    entry = load_catalog([path]).get("my:queue_depth")
    assert entry is not None
    assert (entry.labels, entry.info_labels, entry.meaning, entry.present) == ((), (), "", "startup")
    assert (entry.moves, entry.at_least, entry.replaced_by, entry.replaces) == (None, None, None, None)
    assert entry.source == str(path)
