"""Targets (targets.py): the servers a run checks, their names, URLs, and the data-parallel flags that tell how many
engines each one runs."""

from __future__ import annotations

import pytest

from pytest_vllm_metrics.targets import (
    Balancing,
    DataParallel,
    Role,
    Target,
    TargetSource,
    host_port,
    ranks,
    redact_url,
    sim_target_names,
    url_targets,
)

# -- names of --vllm-url targets and of simulators ------------------------------------------------------------


def test_a_url_target_is_named_by_its_address_and_keeps_its_url_and_arch() -> None:
    (target,) = url_targets(("http://10.0.0.7:8000",), "arm64")
    assert target == Target("10.0.0.7:8000", "http://10.0.0.7:8000", arch="arm64", source=TargetSource.URL)


def test_a_url_with_a_path_keeps_it_in_its_base_url_and_leaves_it_out_of_its_name() -> None:
    # a vLLM served under a prefix (a path-routing ingress); the metrics path itself is taken off by the settings
    (target,) = url_targets(("https://gw.example.com/vllm/decode",), "unknown")
    assert target.name == "gw.example.com"
    assert target.url("/metrics") == "https://gw.example.com/vllm/decode/metrics"


def test_urls_of_one_address_are_named_apart_in_their_order() -> None:
    urls = ("http://127.0.0.1:8000", "http://127.0.0.1:8001", "http://127.0.0.1:8000/a", "http://127.0.0.1:8000/b")
    assert [t.name for t in url_targets(urls, "amd64")] == [
        "127.0.0.1:8000", "127.0.0.1:8001", "127.0.0.1:8000-2", "127.0.0.1:8000-3"]


def test_a_url_target_is_named_without_its_credentials() -> None:
    (target,) = url_targets(("http://user:s3cret@10.0.0.7:8000",), "amd64")
    assert target.name == "10.0.0.7:8000"
    assert target.shown_url == "http://***@10.0.0.7:8000"
    assert target.base_url == "http://user:s3cret@10.0.0.7:8000"  # still what the client connects with


@pytest.mark.parametrize(("url", "name"), [
    ("http://[fd00::7]:8000", "[fd00::7]:8000"),  # an IPv6 address keeps its brackets before the port
    ("https://vllm.example.com", "vllm.example.com"),  # no port given: none shown
    ("http://vllm.example.com:80/", "vllm.example.com:80"),
])
def test_host_port(url: str, name: str) -> None:
    assert host_port(url) == name


@pytest.mark.parametrize(("profiles", "names"), [
    (("x86_64",), ["sim-x86_64"]),
    (("x86_64", "arm64-cpu", "x86_64", "x86_64"), ["sim-x86_64", "sim-arm64-cpu", "sim-x86_64-2", "sim-x86_64-3"]),
    ((), []),
])
def test_simulators_of_one_profile_are_named_apart(profiles: tuple[str, ...], names: list[str]) -> None:
    assert sim_target_names(profiles) == names


# -- one target ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("base", ["http://10.0.0.7:8000", "http://10.0.0.7:8000/"])
def test_a_path_is_joined_to_the_base_url_with_one_slash(base: str) -> None:
    assert Target("t", base).url("/v1/models") == "http://10.0.0.7:8000/v1/models"


def test_the_source_is_checked_and_a_plain_word_accepted() -> None:
    assert Target("t", "http://x", source="kubernetes").source is TargetSource.KUBERNETES  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Target("t", "http://x", source="k8s")  # type: ignore[arg-type]


def test_client_options_never_show_in_a_targets_repr() -> None:
    target = Target("t", "http://x", client_options={"headers": {"Authorization": "Bearer tok-123"}})
    assert "tok-123" not in repr(target)


@pytest.mark.parametrize(("url", "shown"), [
    ("http://user:pw@10.0.0.7:8000/x", "http://***@10.0.0.7:8000/x"),
    ("https://token@gw.example.com", "https://***@gw.example.com"),
    ("http://10.0.0.7:8000/a@b", "http://10.0.0.7:8000/a@b"),  # an @ in the path is no credential
    ("http://10.0.0.7:8000", "http://10.0.0.7:8000"),
])
def test_redact_url_replaces_only_the_credentials(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_only_the_api_server_role_is_not_a_worker() -> None:
    assert [role.worker for role in Role] == [False, True, True]


# -- engine ranks ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("numbers", "shown"), [
    ([8, 9, 10, 11, 12, 13, 14, 15], "8-15"),
    ([5, 0, 2, 6, 7], "0, 2, 5-7"),
    (["1", "0", "0"], "0-1"),  # labels as the page writes them, each once
    ([3], "3"),
    ([0, 1, "x"], "0-1, x"),  # a label that is no number is shown as it is, after the numbers
    ([], ""),
])
def test_ranks_in_short(numbers: list[int | str], shown: str) -> None:
    assert ranks(numbers) == shown


# -- how many engines a server's data-parallel flags give it -----------------------------------------------------


@pytest.mark.parametrize(("flags", "expected"), [
    (DataParallel(), (1, 0, "")),  # no flag: one engine, rank 0
    (DataParallel(size=4), (4, 0, "")),  # internal balancing: every rank, from 0
    (DataParallel(size=4, size_local=2, start_rank=2, balancing=Balancing.HYBRID), (2, 2, "")),
    (DataParallel(size=4, size_local=2, balancing=Balancing.HYBRID), (2, 0, "")),  # vLLM's default start rank
    (DataParallel(size=4, rank=3, balancing=Balancing.EXTERNAL), (1, 3, "")),  # one externally balanced rank
])
def test_expected_engines(flags: DataParallel, expected: tuple[int | None, int | None, str]) -> None:
    assert flags.expected_engines() == expected


@pytest.mark.parametrize(("flags", "first", "why"), [
    (DataParallel(unreadable=("--data-parallel-size",)), 0, "--data-parallel-size has a value the run cannot resolve"
                                                           " (--data-parallel-size)"),
    (DataParallel(size=4, start_rank=2, balancing=Balancing.HYBRID), 2,
     "hybrid load balancing runs --data-parallel-size-local engines, and it is not given"),
    (DataParallel(size=4, rank=1, balancing=Balancing.EXTERNAL, unreadable=("--data-parallel-size-local",)), 1,
     "external load balancing runs --data-parallel-size-local engines, and its value cannot be resolved "
     "(--data-parallel-size-local)"),
    (DataParallel(size=4, size_local=2, balancing=Balancing.HYBRID, unreadable=("--data-parallel-start-rank",)),
     None, ""),
    (DataParallel(size=4, size_local=2, balancing=Balancing.HYBRID, backend="ray"), 0,
     "with --data-parallel-backend=ray, vLLM may place the local ranks itself"),
    # without the local count, that is the reason, whatever the backend
    (DataParallel(size=4, balancing=Balancing.HYBRID, backend="ray"), 0,
     "hybrid load balancing runs --data-parallel-size-local engines, and it is not given"),
])
def test_expected_engines_unknown_says_why(flags: DataParallel, first: int | None, why: str) -> None:
    count, got_first, got_why = flags.expected_engines()
    if why:
        assert (count, got_first, got_why) == (None, first, why)
    else:  # the count is known, the first rank is not
        assert (count, got_first, got_why) == (2, None, "")


def test_flags_are_quoted_as_the_manifest_gives_them() -> None:
    assert DataParallel(size=4, size_local=2, start_rank=2, balancing=Balancing.HYBRID).flags() == (
        "--data-parallel-hybrid-lb --data-parallel-size 4 --data-parallel-size-local 2 --data-parallel-start-rank 2")
    assert DataParallel(size=2, balancing=Balancing.EXTERNAL, backend="ray",
                        unreadable=("--data-parallel-rank",)).flags() == (
        "--data-parallel-external-lb --data-parallel-size 2 --data-parallel-rank (unresolved) "
        "--data-parallel-backend ray")
    # a rank given is external balancing already: the switch is not quoted again
    assert DataParallel(rank=1, balancing=Balancing.EXTERNAL).flags() == "--data-parallel-rank 1"


def test_the_reports_dict_of_the_flags() -> None:
    assert DataParallel(size=4, size_local=2, start_rank=2, balancing=Balancing.HYBRID).as_dict() == {
        "size": 4, "sizeLocal": 2, "startRank": 2, "rank": None, "balancing": "hybrid", "backend": "mp",
        "address": None, "unresolved": [], "expectedEngines": 2, "firstEngine": 2}
    # an unknown count has no first engine either
    assert DataParallel(size=4, balancing=Balancing.HYBRID).as_dict()["firstEngine"] is None
