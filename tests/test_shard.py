"""--vllm-shard=K/N: each run checks a stable slice of the fleet (position % N == K in (namespace, name) order), only
shard 0 judges the fleet's readers, and a reader a shard cannot judge from its slice is inconclusive with the cause."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import CURRENT, NS, write_kubeconfig
from pytest_vllm_metrics.epp import compare
from pytest_vllm_metrics.settings import Settings
from pytest_vllm_metrics.shard import SLICE_ONLY, Shard, in_shard, judges_fleet, parse
from pytest_vllm_metrics.sim import SimHost, get_profile
from pytest_vllm_metrics.sim.kubeapi import ALL, Cluster, KubeDouble, PodSpec
from pytest_vllm_metrics.targets import Target

DASHBOARD = Path(__file__).parent.parent / "examples" / "dashboards" / "llm-d-performance.json"


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("-p", "no:cacheprovider", *args)


def report(pytester: pytest.Pytester, name: str = "report.json") -> dict:  # type: ignore[type-arg]
    return json.loads((pytester.path / name).read_text())  # type: ignore[no-any-return]


# -- the option ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["3/2", "2/2", "x", "-1/2", "0/0", "1", "1/2/3", "0.5/2", ""])
def test_a_bad_shard_is_a_usage_error_naming_the_form(pytester: pytest.Pytester, bad: str) -> None:
    result = run(pytester, "--vllm-sim=x86_64", f"--vllm-shard={bad}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: --vllm-shard: {bad!r} * give it as K/N with 0 <= K < N, e.g. "
                                 f"--vllm-shard=0/4 (K counts from 0, as a Kubernetes Indexed Job's "
                                 f"JOB_COMPLETION_INDEX)."])
    assert "Traceback" not in result.stderr.str()


@pytest.mark.parametrize(("raw", "shard"), [
    ("0/1", Shard(0, 1)), ("1/2", Shard(1, 2)), ("3/4", Shard(3, 4)), (" 2 / 12 ", Shard(2, 12)),
    ("10/11", Shard(10, 11))])
def test_a_shard_is_read_as_k_of_n_spaces_aside(raw: str, shard: Shard) -> None:
    assert parse(raw, "--vllm-shard") == shard


@pytest.mark.parametrize(("bad", "said"), [
    ("2/2", "names no shard: shard K of N needs 0 <= K < N"),  # K = N: one past the last
    ("0/0", "names no shard: shard K of N needs 0 <= K < N"),
    ("1/2/3", "is not a shard"), ("K/N", "is not a shard"), ("1", "is not a shard")])
def test_a_shard_one_past_the_last_or_misspelt_says_which_and_the_form(bad: str, said: str) -> None:
    with pytest.raises(pytest.UsageError) as caught:
        parse(bad, "PYTEST_VLLM_SHARD")
    assert str(caught.value) == (f"PYTEST_VLLM_SHARD: {bad!r} {said}; give it as K/N with 0 <= K < N, e.g. "
                                 f"--vllm-shard=0/4 (K counts from 0, as a Kubernetes Indexed Job's "
                                 f"JOB_COMPLETION_INDEX).")


def test_a_shard_is_spelled_as_given_and_said_in_words() -> None:
    assert (Shard(1, 4).spelled, str(Shard(1, 4))) == ("1/4", "shard 1 of 4")
    assert Shard(0, 2).sliced and not Shard(0, 1).sliced  # a single shard sees the whole fleet


def test_the_last_shard_and_a_single_shard_are_valid(pytester: pytest.Pytester) -> None:
    last = run(pytester, "--vllm-sim=x86_64", "--vllm-sim=x86_64", "--vllm-shard=1/2", "-k", "test_reachable")
    assert last.ret == 0
    last.stdout.fnmatch_lines(["vllm-metrics: targets: sim-x86_64, sim-x86_64-2; *",
                               "  shard 1 of 2: checks the targets at positions 1, 3, 5, ... of their (namespace, "
                               "name) order; leaves the fleet's readers to shard 0",
                               "*--vllm-shard: 1/2 (shard 1 of 2) (from option)"])
    assert run(pytester, "--vllm-sim=x86_64", "--vllm-shard=0/1", "-k", "test_reachable").ret == 0


def test_the_shard_comes_from_the_environment_or_the_ini_file(pytester: pytest.Pytester,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makeini("[pytest]\nvllm_shard = 1/3\n")
    result = run(pytester, "--vllm-sim=x86_64", "-k", "test_reachable", "--vllm-report=ini.json")
    result.stdout.fnmatch_lines(["*--vllm-shard: 1/3 (shard 1 of 3) (from ini)"])
    assert report(pytester, "ini.json")["environment"]["shard"] == "shard 1 of 3"
    # an Indexed Job's pod: PYTEST_VLLM_SHARD set from JOB_COMPLETION_INDEX; the environment beats the ini file
    monkeypatch.setenv("PYTEST_VLLM_SHARD", "0/3")
    run(pytester, "--vllm-sim=x86_64", "-k", "test_reachable").stdout.fnmatch_lines(
        ["*--vllm-shard: 0/3 (shard 0 of 3) (from env)"])
    # and the option beats both
    run(pytester, "--vllm-sim=x86_64", "--vllm-shard=2/3", "-k", "test_reachable").stdout.fnmatch_lines(
        ["*--vllm-shard: 2/3 (shard 2 of 3) (from option)"])


def test_the_upgrade_forecast_is_not_sharded(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--vllm-sim=x86_64", "--vllm-upgrade-to=0.13.0", "--vllm-shard=0/2")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --vllm-upgrade-to forecasts over the versions of the whole fleet, and "
                                 "--vllm-shard=0/2 sees only a slice of it: run the forecast unsharded*"])


# -- the rule ---------------------------------------------------------------------------------------------------

# Pod names as llm-d's modelservice chart makes them (a Deployment's ReplicaSet hash and a random suffix), listed in
# the API server's order, which is not the sorted one.
PODS = ["ms-llama-decode-6f9d8b7c5-x2k9p", "ms-llama-decode-6f9d8b7c5-a7q4r", "ms-llama-prefill-5c8d7f6b9-m3n8t",
        "ms-llama-decode-6f9d8b7c5-k1z2w", "ms-llama-prefill-5c8d7f6b9-b4c5d"]


@pytest.mark.parametrize("count", [1, 2, 3, 5, 6, 7])
def test_every_target_is_in_exactly_one_shard_and_the_shards_are_even(count: int) -> None:
    shards = [in_shard(["sim-b", "sim-a"], PODS, Shard(k, count), NS) for k in range(count)]
    every = [name for shard in shards for name in shard]
    assert sorted(every) == sorted(["sim-b", "sim-a", *PODS])  # none twice, none left out
    assert max(map(len, shards)) - min(map(len, shards)) <= 1  # 7 targets over 6 or 7 shards: one each, or two
    assert all(shard == [n for n in ["sim-b", "sim-a", *PODS] if n in shard] for shard in shards)  # the run's order


def test_positions_in_namespace_then_name_order_go_round_robin() -> None:
    # sorted: the URL/simulator targets (no namespace) first, then the pods by name
    # sim-a, sim-b, decode-…-a7q4r, decode-…-k1z2w, decode-…-x2k9p, prefill-…-b4c5d, prefill-…-m3n8t: positions
    # 0, 3 and 6 are shard 0's of 3, kept in the run's order
    assert in_shard(["sim-b", "sim-a"], PODS, Shard(0, 3), NS) == ["sim-a", "ms-llama-prefill-5c8d7f6b9-m3n8t",
                                                                   "ms-llama-decode-6f9d8b7c5-k1z2w"]
    assert in_shard(["sim-b", "sim-a"], PODS, Shard(1, 3), NS) == ["sim-b", "ms-llama-decode-6f9d8b7c5-x2k9p"]
    assert in_shard(["sim-b", "sim-a"], PODS, None, NS) == ["sim-b", "sim-a", *PODS]  # unsharded: every one
    assert in_shard(["a"], [], Shard(1, 2), None) == []  # more shards than targets: an empty shard
    assert judges_fleet(None) and judges_fleet(Shard(0, 4)) and not judges_fleet(Shard(1, 4))


def test_url_targets_sort_before_pods_of_any_namespace_even_one_starting_with_a_digit() -> None:
    # Kubernetes namespaces are lowercase and may start with a digit: no namespace ("") still sorts first
    assert in_shard(["z-sim"], ["a-pod"], Shard(0, 2), "0-team") == ["z-sim"]
    assert in_shard(["z-sim"], ["a-pod"], Shard(1, 2), "0-team") == ["a-pod"]


@pytest.fixture
def five_pods(sim_host: SimHost) -> KubeDouble:
    pods = [PodSpec(name, CURRENT, "node-a", {"metrics": 8200}, backend=sim_host.start(get_profile("x86_64")).url)
            for name in PODS]
    return KubeDouble(sim_host, Cluster(namespaces={NS: pods}, nodes={"node-a": "amd64"}, tokens={"admin": ALL}))


def test_discovered_pods_are_sharded_and_only_the_slice_is_observed(pytester: pytest.Pytester, five_pods: KubeDouble,
                                                                   tmp_path: Path) -> None:
    kubeconfig = write_kubeconfig(tmp_path / "kc", five_pods, "admin")
    seen = []
    for k in (0, 1):
        result = run(pytester, f"--kubeconfig={kubeconfig}", f"--vllm-namespace={NS}", f"--vllm-shard={k}/2",
                     f"--vllm-report=shard-{k}.json")
        assert result.ret == 0, result.stdout.str()
        document = report(pytester, f"shard-{k}.json")
        # each pod was sent the workload by its own shard only: the other shard never observed it
        seen.append([impl["target"] for impl in document["implementations"]])
        assert document["shard"]["fleet"] == sorted(PODS)  # discovery orders the pods by name
        assert document["shard"]["checked"] == seen[-1]
        assert {name for row in document["tests"] for name in row["targets"]} == set(seen[-1])
    ordered = sorted(PODS)
    assert [sorted(names) for names in seen] == [ordered[0::2], ordered[1::2]]


# -- the fleet's readers: judged by shard 0 alone ------------------------------------------------------------------


def test_only_shard_0_judges_panels_and_without_prometheus_they_are_inconclusive(pytester: pytest.Pytester) -> None:
    args = ("--vllm-sim=x86_64", "--vllm-sim=x86_64", f"--grafana-dashboard={DASHBOARD}")
    one = run(pytester, *args, "--vllm-epp-url=http://127.0.0.1:9", "--vllm-shard=1/2", "--vllm-report=one.json")
    assert one.ret == 0
    # the bundled files of the fleet's readers are not even collected there (nothing deselected)
    assert not [row for row in report(pytester, "one.json")["tests"]
                if row["check"].startswith("panel: ") or "test_epp.py" in row["id"]]
    assert "deselected" not in one.parseoutcomes()
    zero = run(pytester, *args, "--vllm-shard=0/2", "--vllm-report=zero.json")
    panels = [row for row in report(pytester, "zero.json")["tests"] if row["check"].startswith("panel: ")]
    # what a slice cannot tell is inconclusive; only what the panel's own queries say is judged (a panel on
    # another component's metrics is not a vLLM panel, whatever the fleet)
    inconclusive = [row for row in panels if row["outcome"] == "inconclusive"]
    assert len(inconclusive) == 10 and {row["outcome"] for row in panels} == {"inconclusive", "skipped"}
    assert all(row["reason"].endswith(f"is evaluated over the whole fleet, and {SLICE_ONLY}.") for row in inconclusive)
    assert zero.ret == 75  # inconclusive: never a pass it cannot know
    # a single shard sees the whole fleet: its panels are judged
    whole = run(pytester, *args, "--vllm-shard=0/1", "--vllm-report=whole.json")
    judged = [row for row in report(pytester, "whole.json")["tests"] if row["check"].startswith("panel: ")]
    assert len(judged) == len(panels) and not [row for row in judged if SLICE_ONLY in row["reason"]]
    # (some stay inconclusive for their own reasons: a matcher on a label only Prometheus adds)
    assert whole.ret == 75 and sum(row["outcome"] == "inconclusive" for row in judged) < len(inconclusive)


def test_a_users_own_panel_test_runs_on_shard_0_only(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_team="""
        import pytest

        @pytest.mark.must
        def test_my_panel(vllm_panel, vllm_judge_panel, vllm_enforce):
            vllm_enforce(vllm_judge_panel(vllm_panel))
    """)
    args = ("--vllm-sim=x86_64", "--vllm-sim=x86_64", f"--grafana-dashboard={DASHBOARD}", "test_team.py")
    one = run(pytester, *args, "--vllm-shard=1/2")
    one.assert_outcomes(deselected=len(json.loads(DASHBOARD.read_text())["panels"]) - _rows_of(DASHBOARD))
    zero = run(pytester, *args, "--vllm-shard=0/2")
    assert zero.parseoutcomes().get("inconclusive", 0) > 0


def _rows_of(dashboard: Path) -> int:
    """The panels of type row: layout only, not judged."""
    return sum(1 for panel in json.loads(dashboard.read_text())["panels"] if panel.get("type") == "row")


def test_the_endpoint_picker_is_not_compared_with_a_slice() -> None:
    settings = Settings(vllm_shard=Shard(0, 2), vllm_epp_url="http://127.0.0.1:9")
    found = asyncio.run(compare(Target("epp", "http://127.0.0.1:9"), [Target("decode-0", "http://127.0.0.1:9")],
                                settings))
    assert found.error is not None and found.error.inconclusive
    assert "shard 0 of 2 sees only its slice of the fleet; run the endpoint-picker check unsharded" in (
        found.error.message)


def test_with_prometheus_shard_0_judges_the_panels_over_the_whole_fleet(
    pytester: pytest.Pytester, sim_host: SimHost, prometheus_server: Callable[..., str]
) -> None:
    first, second = sim_host.start(get_profile("x86_64")), sim_host.start(get_profile("x86_64"))
    prom = prometheus_server({"decode-0": first.url, "decode-1": second.url})
    result = run(pytester, f"--vllm-url={first.url}", f"--vllm-url={second.url}", f"--prometheus-url={prom}",
                 f"--grafana-dashboard={DASHBOARD}", "--vllm-shard=0/2", "--vllm-report=report.json", "-rA")
    rows = report(pytester)["tests"]
    assert not [row for row in rows if SLICE_ONLY in row["reason"]]
    # Prometheus answers the panels' queries over every pod it scrapes, whichever shard observed it
    result.stdout.fnmatch_lines(["PASSED *test_panel[[]llm-d-performance::Time to First Token (TTFT)[]]"])
    # while the checks of each server, Prometheus' scrape of it included, are this shard's slice only
    scraped = next(row for row in rows if row["check"] == "scraped_by_prometheus")
    assert scraped["outcome"] == "passed" and len(scraped["targets"]) == 1
    assert result.parseoutcomes().get("failed", 0) == 0, result.stdout.str()
