"""`pytest-vllm-metrics merge`: the shards' JSON reports of a sharded run (--vllm-shard=K/N) made one report, the same
per server and check as one unsharded run's, in each format; files that do not belong together refused."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from pytest_vllm_metrics import merge, report
from pytest_vllm_metrics.outcome import Level
from pytest_vllm_metrics.rows import Row, RowOutcome, TargetResult
from pytest_vllm_metrics.settings import Settings
from pytest_vllm_metrics.shard import Shard

# Four simulators of three kinds: a current x86_64 server, an ARM CPU build (documented limitations: xfail), an old
# 0.10 server, and a twin of the first (two names that sort next to each other land in different shards).
FLEET = ("--vllm-sim=x86_64", "--vllm-sim=arm64-cpu", "--vllm-sim=x86_64-0.10", "--vllm-sim=x86_64")

# What legitimately differs between an unsharded run and its shards merged: when each ran and in what environment,
# and what depends on the moment: each request's duration, the page's size in bytes (its latency histograms' sums
# are printed with as many digits as they have), and the value of vllm:lora_requests_info (the time of its update).
DIFFERS = ("date", "environment")
_TIMED = {"seconds", "bytes"}


def _timed(key: str, within: dict[str, Any]) -> bool:
    return key in _TIMED or (key == "value" and "max_lora" in within)


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("-p", "no:cacheprovider", *args)


def merged(pytester: pytest.Pytester, out: str, *shards: str) -> int:
    return merge.main(["merge", "-o", str(pytester.path / out), *(str(pytester.path / s) for s in shards)])


def comparable(document: dict[str, Any]) -> dict[str, Any]:
    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if not _timed(k, value)}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return strip({k: v for k, v in document.items() if k not in DIFFERS})


def junit_cases(path: Path) -> dict[str, dict[str, str]]:
    """Test case name -> its properties, of a JUnit file."""
    root = ET.parse(path).getroot()
    return {case.attrib["name"]: {p.attrib["name"]: p.attrib["value"] for p in case.iter("property")}
            for case in root.iter("testcase")}


def test_merged_shards_equal_one_unsharded_run(pytester: pytest.Pytester) -> None:
    whole = run(pytester, *FLEET, "--vllm-report=whole.json", "--junitxml=whole.xml")
    run(pytester, *FLEET, "--vllm-report=whole.md")
    shard_runs = [run(pytester, *FLEET, f"--vllm-shard={k}/2", f"--vllm-report=shard-{k}.json") for k in (0, 1)]
    assert merged(pytester, "merged.json", "shard-1.json", "shard-0.json") == whole.ret == 0  # order of files free
    whole_doc = json.loads((pytester.path / "whole.json").read_text())
    merged_doc = json.loads((pytester.path / "merged.json").read_text())
    jsonschema.validate(merged_doc, report.schema())
    # each shard checked half of the fleet, and only that half
    checked = [[t["target"] for t in json.loads((pytester.path / f"shard-{k}.json").read_text())["implementations"]]
               for k in (0, 1)]
    assert checked == [["sim-arm64-cpu", "sim-x86_64-0.10"], ["sim-x86_64", "sim-x86_64-2"]]
    assert all(r.ret == 0 for r in shard_runs)
    # the same per server and check: rows (with each target's cell), tallies, result, exit code, implementations
    assert comparable(merged_doc) == comparable(whole_doc)
    assert merged_doc["result"] == "partial" and merged_doc["counts"] == whole_doc["counts"]
    assert "shard" not in merged_doc and merged_doc["environment"]["merged"]["shards"] == 2
    # the Markdown summary is the same text (it has no time in it)
    assert merged(pytester, "merged.md", "shard-0.json", "shard-1.json") == 0
    assert (pytester.path / "merged.md").read_text() == (pytester.path / "whole.md").read_text()
    # JUnit: one test case per check, with the properties the plugin's --junitxml gives it
    assert merged(pytester, "merged.xml", "shard-0.json", "shard-1.json") == 0
    assert junit_cases(pytester.path / "merged.xml") == junit_cases(pytester.path / "whole.xml")


def test_more_shards_than_servers_leave_a_shard_empty_and_the_merge_whole(pytester: pytest.Pytester) -> None:
    fleet = ("--vllm-sim=x86_64", "--vllm-sim=arm64-cpu")
    run(pytester, *fleet, "--vllm-report=whole.json")
    shards = [run(pytester, *fleet, f"--vllm-shard={k}/3", f"--vllm-report=shard-{k}.json") for k in (0, 1, 2)]
    assert json.loads((pytester.path / "shard-2.json").read_text())["implementations"] == []  # position 2 of 2
    assert [s.ret for s in shards] == [0, 0, 0]
    assert merged(pytester, "merged.json", "shard-0.json", "shard-1.json", "shard-2.json") == 0
    assert comparable(json.loads((pytester.path / "merged.json").read_text())) == comparable(
        json.loads((pytester.path / "whole.json").read_text()))


def test_a_failure_on_one_shard_fails_the_merged_report(pytester: pytest.Pytester) -> None:
    # --vllm-require-feature=lora: a MUST failure on every server without LoRA; sim-x86_64-lora alone has it
    fleet = ("--vllm-sim=x86_64-lora", "--vllm-sim=x86_64", "--vllm-require-feature=lora")
    whole = run(pytester, *fleet, "--vllm-report=whole.json")
    shards = [run(pytester, *fleet, f"--vllm-shard={k}/2", f"--vllm-report=shard-{k}.json") for k in (0, 1)]
    assert [s.ret for s in shards] == [1, 0] and whole.ret == 1  # sim-x86_64 sorts first: shard 0 has it
    assert merged(pytester, "merged.json", "shard-0.json", "shard-1.json") == 1
    merged_doc = json.loads((pytester.path / "merged.json").read_text())
    assert comparable(merged_doc) == comparable(json.loads((pytester.path / "whole.json").read_text()))
    assert merged_doc["exitCode"] == 1 and merged_doc["result"] == "failure"


def test_merged_html_is_a_page_of_its_own(pytester: pytest.Pytester) -> None:
    for k in (0, 1):
        run(pytester, "--vllm-sim=x86_64", "--vllm-sim=arm64-cpu", f"--vllm-shard={k}/2",
            f"--vllm-report=shard-{k}.json")
    assert merged(pytester, "out/merged.html", "shard-0.json", "shard-1.json") == 0
    page = (pytester.path / "out" / "merged.html").read_text()

    class Text(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.parts: list[str] = []
            self.scripts = 0

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            self.scripts += tag == "script" or any(name == "src" for name, _ in attrs)

        def handle_data(self, data: str) -> None:
            self.parts.append(data)

    text = Text()
    text.feed(page)
    shown = " ".join(text.parts)
    assert page.startswith("<!DOCTYPE html>") and text.scripts == 0  # self-contained: nothing loaded from anywhere
    assert "vLLM metrics conformance" in shown and "PARTIAL" in shown.upper()
    assert "sim-x86_64" in shown and "sim-arm64-cpu" in shown  # both shards' targets
    rows = json.loads((pytester.path / "shard-0.json").read_text())["tests"]
    assert all(row["id"] in shown for row in rows)  # every check in the table
    assert "merged from" in shown and "2 shards" in shown
    assert "pytest-html" not in shown  # a page of its own: no word of pytest-html's filters


@pytest.mark.spawns
def test_the_console_script_merges(pytester: pytest.Pytester) -> None:
    script = shutil.which("pytest-vllm-metrics")
    assert script is not None, "pip install -e . installs the console script of [project.scripts]"
    for k in (0, 1):
        run(pytester, "--vllm-sim=x86_64", "--vllm-sim=x86_64", f"--vllm-shard={k}/2", f"--vllm-report=s{k}.json")
    done = subprocess.run([script, "merge", "-o", "m.yaml", "s0.json", "s1.json"], cwd=pytester.path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "2 shards, 2 targets" in done.stdout and "SUCCESS" in done.stdout
    assert "kind: ConformanceReport" in (pytester.path / "m.yaml").read_text()


def test_the_merged_junit_has_one_case_per_check_with_its_outcome_element_and_the_suites_counts() -> None:
    def row(id: str, outcome: RowOutcome, why: str = "", target: str = "a") -> Row:
        return Row(id=id, target=target, check=id.rpartition("::")[2], level=Level.SHOULD, outcome=outcome,
                   reason=why)

    rows = [row("conformance/test_server.py::test_reachable", RowOutcome.PASSED),
            row("conformance/test_server.py::test_up[x]", RowOutcome.FAILED, "a: down\nsecond <line>"),
            row("../own/./test_mine.py::test_err", RowOutcome.ERROR, "boom & bust"),
            row("own//test_dbl.py::test_err2", RowOutcome.ERROR, "again"),
            row("test_s.py::test_skip", RowOutcome.SKIPPED, "not here"),
            row("test_s.py::test_inc", RowOutcome.INCONCLUSIVE, "could not tell\nwhy"),
            row("test_s.py::test_xf", RowOutcome.XFAILED, ""),
            row("test_s.py::test_fail2", RowOutcome.FAILED, "", target=""),
            row("test_bare.py", RowOutcome.PASSED)]
    model = report.build(rows, Settings(), implementations=[])

    def props(id: str, outcome: str, target: str = "a") -> str:
        return (f'<properties><property name="vllm_target" value="{target or "every target"}" />'
                f'<property name="vllm_check" value="{id.rpartition("::")[2]}" />'
                f'<property name="vllm_level" value="SHOULD" /><property name="vllm_outcome" value="{outcome}" />'
                + (f'<property name="vllm_target_outcome:{target}" value="{outcome}" />' if target else "")
                + "</properties>")

    assert merge.junit(model) == (
        '<?xml version="1.0" encoding="utf-8"?>\n<testsuites name="pytest tests">'
        f'<testsuite name="vllm-metrics" errors="2" failures="2" skipped="3" tests="9" '
        f'timestamp="{model.started.isoformat(timespec="seconds")}">'
        '<testcase classname="conformance.test_server" name="test_reachable">'
        f'{props("::test_reachable", "passed")}</testcase>'
        '<testcase classname="conformance.test_server" name="test_up[x]">'
        f'{props("::test_up[x]", "failed")}<failure message="a: down">a: down\nsecond &lt;line&gt;</failure></testcase>'
        '<testcase classname="own.test_mine" name="test_err">'
        f'{props("::test_err", "error")}<error message="error">boom &amp; bust</error></testcase>'
        '<testcase classname="own.test_dbl" name="test_err2">'
        f'{props("::test_err2", "error")}<error message="error">again</error></testcase>'
        '<testcase classname="test_s" name="test_skip">'
        f'{props("::test_skip", "skipped")}<skipped type="pytest.skip" message="not here" /></testcase>'
        '<testcase classname="test_s" name="test_inc">'
        f'{props("::test_inc", "inconclusive")}<skipped type="inconclusive" message="could not tell" /></testcase>'
        '<testcase classname="test_s" name="test_xf">'
        f'{props("::test_xf", "xfailed")}<skipped type="pytest.xfail" message="" /></testcase>'
        '<testcase classname="test_s" name="test_fail2">'
        f'{props("::test_fail2", "failed", "")}<failure message=""></failure></testcase>'
        '<testcase classname="test_bare" name="test_bare.py">'
        f'{props("test_bare.py", "passed")}</testcase>'
        "</testsuite></testsuites>\n")


# -- files that are not the shards of one run: exit code 2, one paragraph naming the file and the fix ------------


def _row(name: str, outcome: RowOutcome = RowOutcome.PASSED, level: Level = Level.MUST) -> Row:
    return Row(id="conformance/test_server.py::test_reachable", target=name, check="reachable", level=level,
               outcome=outcome, targets={name: TargetResult(outcome, f"{name}: {outcome}")})


def shard_file(path: Path, index: int, count: int, fleet: list[str], checked: list[str], rows: list[Row] | None = None,
               marks: dict[str, str] | None = None, **settings: Any) -> Path:
    """A shard's JSON report as the plugin writes it (report.build, report.write_data)."""
    model = report.build([_row(name) for name in checked] if rows is None else rows,
                         Settings(vllm_shard=Shard(index, count), **settings),
                         implementations=[{"target": name} for name in checked], fleet=fleet, checked=checked,
                         marks=marks)
    report.write_data(path, model)
    return path


def one_target_each(tmp_path: Path, rows: Sequence[Row] | None = None, fleet: Sequence[str] = ("a", "b"),
                    marks: dict[str, str] | None = None, **settings: Any) -> list[Path]:
    """The shards of `fleet`, one per target: shard k checks fleet[k], its report's rows [rows[k]] (by default, its
    target passed the check)."""
    return [shard_file(tmp_path / f"shard-{k}.json", k, len(fleet), list(fleet), [name],
                       None if rows is None else [rows[k]], marks, **settings) for k, name in enumerate(fleet)]


def edited(files: Sequence[Path], change: Callable[[dict[str, Any]], object]) -> Sequence[Path]:
    """The shards' JSON reports, each changed in place by `change` (as another version or a hand wrote them)."""
    for file in files:
        shard_doc = json.loads(file.read_text())
        change(shard_doc)
        file.write_text(json.dumps(shard_doc))
    return files


def merged_model(files: Sequence[Path]) -> report.Report:
    """The merged report's model, as the console script builds it from these shards."""
    return merge.merged(merge.check_together([merge.load(file) for file in files]))


@pytest.fixture
def two(tmp_path: Path) -> tuple[Path, Path]:
    first, second = one_target_each(tmp_path)
    return first, second


def refused(capsys: pytest.CaptureFixture[str], *args: str | Path) -> str:
    assert merge.main(["merge", *(str(a) for a in args)]) == merge.EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1, err  # one paragraph
    return err


def test_two_good_shards_merge(two: tuple[Path, Path], tmp_path: Path) -> None:
    assert merge.main(["merge", "-o", str(tmp_path / "m.json"), *map(str, two)]) == 0
    tests = json.loads((tmp_path / "m.json").read_text())["tests"]
    assert [(t["target"], list(t["targets"])) for t in tests] == [("", ["a", "b"])]


def test_a_check_of_several_shards_targets_takes_its_marks_level(tmp_path: Path) -> None:
    # one target per shard: each shard's row states its target's verdict, here failed at SHOULD under a MUST mark
    # (a row of one target takes its verdict's level); one run over both states the mark's, and fails at MUST
    fleet, mark = ["a", "b"], {"conformance/test_server.py::test_reachable": "MUST"}
    files = one_target_each(tmp_path, [_row(name, RowOutcome.FAILED, Level.SHOULD) for name in fleet], fleet, mark)
    assert json.loads(files[0].read_text())["result"] == "partial"  # a SHOULD failure: each shard passes
    assert merge.main(["merge", "-o", str(tmp_path / "m.json"), *map(str, files)]) == 1
    merged_doc = json.loads((tmp_path / "m.json").read_text())
    assert [(t["level"], t["outcome"]) for t in merged_doc["tests"]] == [("MUST", "failed")]
    assert merged_doc["tests"][0]["reason"].startswith("fails on a, b (2 of 2 targets).")


@pytest.mark.parametrize("count", [1, 2])
def test_the_merged_report_keeps_the_shards_fail_on_features_and_exclusive_run(tmp_path: Path, count: int) -> None:
    # a SHOULD failure under --vllm-fail-on=should fails the merged run as it failed the shard
    fleet = ["a", "b"][:count]
    options: dict[str, Any] = {"vllm_fail_on": "should", "vllm_exempt_feature": ("lora",),
                               "vllm_require_feature": ("prefix_caching",), "vllm_exclusive": True}
    files = one_target_each(tmp_path, [_row(name, RowOutcome.FAILED, Level.SHOULD) for name in fleet], fleet, **options)
    assert merge.main(["merge", "-o", str(tmp_path / "m.json"), *map(str, files)]) == 1
    doc = json.loads((tmp_path / "m.json").read_text())
    assert (doc["failOn"], doc["result"], doc["features"]) == (
        "SHOULD", "failure", {"required": ["prefix_caching"], "exempt": ["lora"]})
    assert doc["environment"]["merged"]["shards"] == count
    # servers whose counters moved by exactly the workload: no hint to pass --vllm-exclusive, it was passed
    def exclusive_looking(shard_doc: dict[str, Any]) -> None:
        for found in shard_doc["implementations"]:
            found["measured"] = {"looksExclusive": True}

    notes = merged_model(edited(files, exclusive_looking)).notes
    assert not any("--vllm-exclusive" in note for note in notes)


def test_shards_that_do_not_say_their_fail_on_level_merge_at_must(two: tuple[Path, Path], tmp_path: Path) -> None:
    # as an earlier format wrote them
    assert merged_model(edited(two, lambda shard_doc: shard_doc.pop("failOn"))).fail_on is Level.MUST


@pytest.mark.parametrize(("outcomes", "counted"), [
    ({"passed": 2, "skipped": 1}, {"passed": 2, "skipped": 1}),  # a test of its own passed beside the check
    ({"passed": 1, "failed": 1}, {"passed": 1, "failed": 1}),
    ({"passed": 0, "skipped": 1}, {"passed": 1, "skipped": 1}),  # its check not counted: none taken off, not -1
])
def test_the_merged_tally_is_shard_0s_tests_that_are_not_checks_plus_the_merged_checks(
        tmp_path: Path, outcomes: dict[str, int], counted: dict[str, int]) -> None:
    files = one_target_each(tmp_path)
    tally = merged_model(edited(files, lambda shard_doc: shard_doc["shard"].update(
        tally={"collected": 7, "outcomes": outcomes}))).tally
    # shard 0 collected 7 tests with its one check of "a"; merged, the check covers a and b: still one test
    assert tally == report.Tally(7, counted)


def test_shards_without_a_tally_merge_without_one(two: tuple[Path, Path]) -> None:
    assert merged_model(two).tally is None


def test_a_missing_shard_is_named(two: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = refused(capsys, "-o", tmp_path / "m.json", two[0])
    assert "shard 1 of 2 is missing" in err and "every shard's report" in err
    assert not (tmp_path / "m.json").exists()


def test_a_shard_given_twice_is_named(two: tuple[Path, Path], tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    copy = tmp_path / "copy.json"
    copy.write_text(two[1].read_text())
    err = refused(capsys, "-o", tmp_path / "m.json", *two, copy)
    assert f"{two[1]} and {copy} are both shard 1 of 2" in err


def test_shards_of_different_splits_are_refused(two: tuple[Path, Path], tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    other = shard_file(tmp_path / "of3.json", 2, 3, ["a", "b", "c"], ["c"])
    err = refused(capsys, "-o", tmp_path / "m.json", *two, other)
    assert f"{other} is shard 2 of 3" in err and "split differently" in err


def test_shards_that_saw_different_fleets_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    zero = shard_file(tmp_path / "shard-0.json", 0, 2, ["a", "b"], ["a"])
    one = shard_file(tmp_path / "shard-1.json", 1, 2, ["a", "b", "c"], ["b"])
    err = refused(capsys, "-o", tmp_path / "m.json", zero, one)
    assert f"{one} saw another fleet than {zero} (it saw c that" in err and "rerun the shards" in err


@pytest.mark.parametrize(("gained", "lost", "said"), [
    (5, 0, "it saw n0, n1, n2, n3, n4 that {zero} did not"),  # five are all named
    (6, 0, "it saw n0, n1, n2, n3, n4 and 1 more that {zero} did not"),
    (0, 1, "it did not see a"),
    (1, 1, "it saw n0 that {zero} did not; it did not see a"),
])
def test_a_fleet_difference_names_at_most_five_and_counts_the_rest(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                   gained: int, lost: int, said: str) -> None:
    zero = shard_file(tmp_path / "shard-0.json", 0, 2, ["a", "b"], ["a"])
    fleet = ["a", "b"][lost:] + [f"n{i}" for i in range(gained)]
    one = shard_file(tmp_path / "shard-1.json", 1, 2, fleet, ["b"])
    err = refused(capsys, "-o", tmp_path / "m.json", zero, one)
    assert err == (f"pytest-vllm-metrics merge: error: {one} saw another fleet than {zero} "
                   f"({said.format(zero=zero)}): the fleet changed while the shards discovered it (a rollout, or an "
                   f"autoscaler), so a target may have been checked twice or never; rerun the shards once the fleet is "
                   f"steady.\n")


def test_shards_that_do_not_add_up_name_the_targets_checked_twice_and_never(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fleet = ["a", "b", "c"]
    zero = shard_file(tmp_path / "shard-0.json", 0, 2, fleet, ["a", "b"])
    one = shard_file(tmp_path / "shard-1.json", 1, 2, fleet, ["b"])
    err = refused(capsys, "-o", tmp_path / "m.json", zero, one)
    assert ("the shards' targets do not add up to their fleet (checked twice: b; never: c): the reports come from "
            "different runs; merge the shards of one run.") in err


def test_shards_run_with_other_options_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    zero = shard_file(tmp_path / "shard-0.json", 0, 2, ["a", "b"], ["a"])
    one = shard_file(tmp_path / "shard-1.json", 1, 2, ["a", "b"], ["b"], vllm_fail_on="should")
    err = refused(capsys, "-o", tmp_path / "m.json", zero, one)
    assert "--vllm-fail-on" in err and "same image and options" in err


def test_shards_of_another_suite_version_are_refused(two: tuple[Path, Path], tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    document = json.loads(two[1].read_text())
    document["suiteVersion"] = "0.0.1"
    two[1].write_text(json.dumps(document))
    err = refused(capsys, "-o", tmp_path / "m.json", *two)
    assert f"{two[1]} has pytest-vllm-metrics version \"0.0.1\"" in err


def test_an_unsharded_report_is_refused(two: tuple[Path, Path], tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    whole = tmp_path / "whole.json"
    report.write_data(whole, report.build([_row("a")], Settings()))
    err = refused(capsys, "-o", tmp_path / "m.json", two[0], whole)
    assert f"{whole} is the report of a run without --vllm-shard" in err


@pytest.mark.parametrize(("content", "said"), [
    ("", "is not JSON"),
    ("groups: []\n", "is not JSON"),  # a YAML report, or another file
    ('{"kind": "Something"}', "is not a conformance report"),
])
def test_a_file_that_is_no_report_is_named(two: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                           content: str, said: str) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    err = refused(capsys, "-o", tmp_path / "m.json", two[0], bad)
    assert f"{bad} {said}" in err


@pytest.mark.parametrize(("edit", "said"), [
    (lambda row: row.pop("check"), "missing 1 required positional argument: 'check'"),
    (lambda row: row.update(outcome="fine"), "'fine' is not a valid RowOutcome"),
    (lambda row: row.update(targets={"a": {"outcome": "passed", "why": "x"}}), "unexpected keyword argument 'why'"),
    (lambda row: row.update(targets=["a"]), "'list' object has no attribute 'items'"),
])
def test_a_shards_row_that_is_not_a_row_is_named(two: tuple[Path, Path], tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str], edit: Any, said: str) -> None:
    # a hand-edited shard, or one of another version: the file, the test and the fix, in one paragraph
    document = json.loads(two[1].read_text())
    edit(document["tests"][0])
    two[1].write_text(json.dumps(document))
    err = refused(capsys, "-o", tmp_path / "m.json", *two)
    assert (f"{two[1]}: its test 1 (conformance/test_server.py::test_reachable) is not a row as this version of "
            f"pytest-vllm-metrics writes them (") in err and said in err and err.endswith("rerun that shard.\n")


def test_a_missing_file_and_an_unknown_format_are_named(two: tuple[Path, Path], tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    err = refused(capsys, "-o", tmp_path / "m.json", two[0], tmp_path / "nope.json")
    assert f"{tmp_path / 'nope.json'} cannot be read (No such file or directory)" in err
    err = refused(capsys, "-o", tmp_path / "m.txt", *two)
    assert re.search(r"-o \S+m\.txt: the suffix does not name a report format; end the file name in \.json", err)


def test_usage_is_argparse_s(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        merge.main(["merge", "shard-0.json"])
    assert exit_info.value.code == 2 and "-o/--output" in capsys.readouterr().err


# -- what the console script says, and where it writes ----------------------------------------------------------


def test_the_help_names_the_command_its_files_and_the_exit_codes(capsys: pytest.CaptureFixture[str],
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "1000")  # argparse wraps at the terminal's width: one line per paragraph here
    for args in (["--help"], ["merge", "--help"]):
        with pytest.raises(SystemExit) as exit_info:
            merge.main(args)
        assert exit_info.value.code == 0
    top, sub = capsys.readouterr().out.split("usage: pytest-vllm-metrics merge")
    assert top.startswith("usage: pytest-vllm-metrics [-h] COMMAND ...\n\nTools of pytest-vllm-metrics.\n")
    assert re.search(r"\n +merge +merge the JSON reports of a sharded run \(--vllm-shard=K/N\) into one report\n", top)
    assert sub.startswith(" [-h] -o OUT SHARD.json [SHARD.json ...]\n\nMerge the JSON reports of the shards of one run "
                          "(--vllm-shard=K/N, every K from 0 to N-1 once) into one report, as one run over the whole "
                          "fleet would have written it. Exit code: 0 when the merged result passes (success or "
                          "partial), 1 on a failure at or above the shards' --vllm-fail-on, 75 when inconclusive, 2 "
                          "when the files are not the shards of one run.\n")
    assert re.search(r"\n +SHARD\.json +the shards' JSON reports\n", sub)
    assert re.search(r"\n +-o OUT, --output OUT +the merged report: \.json or \.yaml \(the conformance report\), \.md "
                     r"\(Markdown summary\), \.html \(a self-contained page\) or \.xml \(JUnit, one test case per "
                     r"check\)\n", sub)


def test_without_a_command_the_usage_names_it(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        merge.main([])
    assert exit_info.value.code == 2
    assert "error: the following arguments are required: COMMAND" in capsys.readouterr().err


def test_the_merge_says_what_it_merged_and_where_it_wrote(two: tuple[Path, Path], tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "m.json"
    assert merge.main(["merge", "-o", str(out), *map(str, two)]) == 0
    assert capsys.readouterr().out == (f"pytest-vllm-metrics merge: 2 shards, 2 targets, 1 checks: SUCCESS (1 passed); "
                                       f"wrote {out}\n")


def test_the_report_is_written_in_new_directories_and_markdown_under_either_suffix(two: tuple[Path, Path],
                                                                                    tmp_path: Path) -> None:
    for out in (tmp_path / "m.md", tmp_path / "ci" / "merged" / "m.markdown"):
        assert merge.main(["merge", "-o", str(out), *map(str, two)]) == 0
    assert (tmp_path / "ci" / "merged" / "m.markdown").read_text() == (tmp_path / "m.md").read_text()
    assert (tmp_path / "m.md").read_text().startswith("#")  # Markdown, not the JSON report


def test_an_output_that_cannot_be_written_or_is_a_directory_is_named(two: tuple[Path, Path], tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "reports").write_text("a file where a directory is meant")
    out = tmp_path / "reports" / "m.json"
    assert refused(capsys, "-o", out, *two) == (f"pytest-vllm-metrics merge: error: cannot write {out} (File exists); "
                                                f"check that its directory is writable.\n")
    (tmp_path / "m.json").mkdir()
    assert refused(capsys, "-o", tmp_path / "m.json", *two) == (
        f"pytest-vllm-metrics merge: error: -o {tmp_path / 'm.json'} is a directory; name the merged report's file, "
        f"e.g. {tmp_path / 'm.json'}/report.json.\n")


def test_an_unknown_format_lists_every_suffix(two: tuple[Path, Path], tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert refused(capsys, "-o", tmp_path / "m.txt", *two).endswith(
        ": the suffix does not name a report format; end the file name in .json, .yaml, .yml, .md, .markdown, .html, "
        ".xml.\n")


# -- files that are not shards' reports, continued ----------------------------------------------------------------


@pytest.mark.parametrize("content", [
    "[]",  # JSON, but not an object
    '{"kind": "ConformanceReport", "tests": {}}',  # its tests not a list
])
def test_json_that_is_no_report_is_named(two: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         content: str) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    assert f"{bad} is not a conformance report of pytest-vllm-metrics" in refused(capsys, "-o", tmp_path / "m.json",
                                                                                 two[0], bad)


def test_a_report_saved_as_utf16_is_named(two: tuple[Path, Path], tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    # Windows PowerShell 5's `>` redirection writes UTF-16 with a byte-order mark (`pytest ... > shard-1.json`)
    two[1].write_bytes(two[1].read_text().encode("utf-16"))
    assert refused(capsys, "-o", tmp_path / "m.json", *two).startswith(
        f"pytest-vllm-metrics merge: error: {two[1]} cannot be read ('utf-8' codec can't decode byte 0xff in position "
        f"0: invalid start byte); check the path, and pass the JSON reports")


def test_an_unsharded_report_is_refused_with_the_fix(two: tuple[Path, Path], tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    whole = tmp_path / "whole.json"
    report.write_data(whole, report.build([_row("a")], Settings()))
    assert refused(capsys, "-o", tmp_path / "m.json", two[0], whole).endswith(
        "there is nothing to merge it with. Pass the JSON reports the runs with --vllm-shard=K/N wrote "
        "(--vllm-report=shard-K.json), one per K.\n")


def test_a_shard_section_without_what_the_merge_needs_is_named(two: tuple[Path, Path], tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    edited([two[1]], lambda shard_doc: [shard_doc["shard"].pop(key) for key in ("testsFailed", "pytestStatus")])
    assert refused(capsys, "-o", tmp_path / "m.json", *two) == (
        f"pytest-vllm-metrics merge: error: {two[1]}: its shard section lacks pytestStatus, testsFailed; it was not "
        f"written by this version of pytest-vllm-metrics, or was edited: rerun that shard.\n")


@pytest.mark.parametrize("test", ["conformance/test_server.py::test_reachable", {"check": "reachable"}])
def test_a_shards_test_without_an_id_is_named_by_its_position(two: tuple[Path, Path], tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str], test: Any) -> None:
    edited([two[1]], lambda shard_doc: shard_doc.update(tests=[test]))
    assert f"{two[1]}: its test 1 is not a row as this version of pytest-vllm-metrics writes them (" in refused(
        capsys, "-o", tmp_path / "m.json", *two)


# -- shards that do not belong together, continued -------------------------------------------------------------


def test_a_shard_of_another_split_is_named_wherever_it_is_given(two: tuple[Path, Path], tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    other = shard_file(tmp_path / "of3.json", 2, 3, ["a", "b", "c"], ["c"])
    err = refused(capsys, "-o", tmp_path / "m.json", two[0], other, two[1])
    assert f"{other} is shard 2 of 3, and {two[0]} shard 0 of 2: the reports come from runs split differently" in err


def test_several_missing_shards_are_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    zero = shard_file(tmp_path / "shard-0.json", 0, 3, ["a", "b", "c"], ["a"])
    assert refused(capsys, "-o", tmp_path / "m.json", zero) == (
        "pytest-vllm-metrics merge: error: shards 1, 2 of 3 are missing: a merged report must cover the whole fleet; "
        "pass every shard's report (0 to 2), rerunning the shards that wrote none.\n")


@pytest.mark.parametrize(("key", "value", "what"), [
    ("apiVersion", "pytest-vllm-metrics/v0", "report format"),
    ("failOn", "SHOULD", "--vllm-fail-on"),
    ("features", {"required": ["lora"], "exempt": []}, "required and exempt features"),
])
def test_a_shard_of_another_format_fail_on_or_features_is_named(two: tuple[Path, Path], tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str], key: str,
                                                                value: Any, what: str) -> None:
    before = json.loads(two[0].read_text())[key]
    edited([two[1]], lambda shard_doc: shard_doc.update({key: value}))
    assert refused(capsys, "-o", tmp_path / "m.json", *two) == (
        f"pytest-vllm-metrics merge: error: {two[1]} has {what} {json.dumps(value)} and {two[0]} "
        f"{json.dumps(before)}: run every shard with the same image and options, then merge.\n")


def _shard_run_with(path: Path, index: int, name: str, **options: Any) -> Path:
    """Shard `index` of 2 of the fleet a, b, run with these options given (its report's settings name them)."""
    sources = {option: "command line" for option in (*options, "vllm_shard", "vllm_report")}
    return shard_file(path, index, 2, ["a", "b"], [name], vllm_report=path.name, sources=sources, **options)


def test_shards_run_with_other_options_name_the_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # an option given to one shard, to the other, and to both with other values
    zero = _shard_run_with(tmp_path / "shard-0.json", 0, "a", vllm_timeout=5.0, vllm_requests=4)
    one = _shard_run_with(tmp_path / "shard-1.json", 1, "b", vllm_timeout=30.0, vllm_model="m")
    assert refused(capsys, "-o", tmp_path / "m.json", zero, one) == (
        f"pytest-vllm-metrics merge: error: {one} was run with other options than {zero} (--vllm-model, "
        f"--vllm-requests, --vllm-timeout): the shards' checks are the same only with the same options; run every "
        f"shard with the same ones (only --vllm-shard and --vllm-report differ), then merge.\n")


def test_shards_that_saw_the_fleet_in_another_order_are_refused(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    zero = shard_file(tmp_path / "shard-0.json", 0, 2, ["a", "b"], ["a"])
    one = shard_file(tmp_path / "shard-1.json", 1, 2, ["b", "a"], ["b"])
    assert f"{one} saw another fleet than {zero} (in another order): " in refused(capsys, "-o", tmp_path / "m.json",
                                                                                   zero, one)


@pytest.mark.parametrize(("fleet", "checked", "said"), [
    (["a", "b", "c"], (["a"], ["b"]), "checked twice: none; never: c"),
    (["a", "b"], (["a", "b"], ["b"]), "checked twice: b; never: none"),
])
def test_shards_that_do_not_add_up_say_none_where_none(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                       fleet: list[str], checked: tuple[list[str], list[str]],
                                                       said: str) -> None:
    files = [shard_file(tmp_path / f"shard-{k}.json", k, 2, fleet, mine) for k, mine in enumerate(checked)]
    assert f"the shards' targets do not add up to their fleet ({said}): " in refused(capsys, "-o", tmp_path / "m.json",
                                                                                      *files)


# -- the merged report: the run's, not a shard's -----------------------------------------------------------------


def test_the_merged_report_states_the_run_not_each_shard(tmp_path: Path) -> None:
    files = [_shard_run_with(tmp_path / f"shard-{k}.json", k, name, vllm_timeout=5.0) for k, name in enumerate("ab")]
    layout = [{"dashboard": "vllm", "dashboardTitle": "vLLM", "title": "Throughput", "row": "", "grid": [0, 0, 12, 8]}]

    def in_a_cluster(shard_doc: dict[str, Any]) -> None:
        k = shard_doc["shard"]["index"]
        shard_doc["date"] = ("2026-03-02T10:00:09+00:00", "2026-03-02T10:00:04+00:00")[k]  # shard 1 started first
        shard_doc["environment"]["generated"] = f"2026-03-02T10:01:0{k}+00:00"
        shard_doc["environment"]["kubernetes"] = {"context": "prod", "notes": ["nodes cannot be listed (403)"]}
        shard_doc["shard"]["layout"] = layout

    out = tmp_path / "m.json"
    model = merge.merged(merge.check_together([merge.load(file) for file in edited(files, in_a_cluster)]), out)
    doc = report.document(model)
    assert doc["date"] == "2026-03-02T10:00:04+00:00"  # when the first shard started
    environment = doc["environment"]
    assert "shard" not in environment and environment["kubernetes"]["context"] == "prod"
    assert environment["python"] == json.loads(files[0].read_text())["environment"]["python"]
    assert environment["settings"] == {"--vllm-timeout": "5.0 (from command line)"}  # without the shard's own
    assert environment["merged"] == {"shards": 2, "files": [str(file) for file in files],
                                     "generated": ["2026-03-02T10:01:00+00:00", "2026-03-02T10:01:01+00:00"]}
    assert model.notes[:1] == ("nodes cannot be listed (403)",)  # the cluster's note, as a run's terminal shows it
    assert model.layout == tuple(layout) and model.path == str(out)


@pytest.mark.parametrize(("outcomes", "statuses", "failed", "exit_code"), [
    # each shard's one failed test is its SHOULD check: partial, 0
    ((RowOutcome.FAILED, RowOutcome.FAILED), (1, 1), (1, 1), 0),
    # shard 0 also failed a test of its own, beside the check: 1
    ((RowOutcome.FAILED, RowOutcome.FAILED), (1, 1), (2, 1), 1),
    # shard 1 was interrupted: pytest's status 2 says more than the checks
    ((RowOutcome.PASSED, RowOutcome.PASSED), (0, 2), (0, 0), 2),
])
def test_the_merged_exit_code_counts_the_shards_own_failures_and_status(
        tmp_path: Path, outcomes: tuple[RowOutcome, RowOutcome], statuses: tuple[int, int], failed: tuple[int, int],
        exit_code: int) -> None:
    files = one_target_each(tmp_path, [_row(name, outcome, Level.SHOULD)
                                       for name, outcome in zip("ab", outcomes, strict=True)])

    def as_pytest_ended(shard_doc: dict[str, Any]) -> None:
        k = shard_doc["shard"]["index"]
        shard_doc["shard"].update(pytestStatus=statuses[k], testsFailed=failed[k])

    assert merged_model(edited(files, as_pytest_ended)).exit_code == exit_code


def _own(outcome: RowOutcome, reason: str = "") -> Row:
    """A row of a test without targets (a user's own test, run by every shard)."""
    return Row(id="tests/test_mine.py::test_mine", target="", check="test_mine", level=Level.MUST, outcome=outcome,
               reason=reason)


@pytest.mark.parametrize(("rows", "merged_outcome"), [
    ((_own(RowOutcome.PASSED), _own(RowOutcome.FAILED, "no")), RowOutcome.FAILED),
    ((_own(RowOutcome.SKIPPED), _own(RowOutcome.INCONCLUSIVE, "?")), RowOutcome.INCONCLUSIVE),
])
def test_a_test_without_targets_merges_as_its_worst_outcome(tmp_path: Path, rows: tuple[Row, Row],
                                                            merged_outcome: RowOutcome) -> None:
    files = one_target_each(tmp_path, rows)
    assert [row.outcome for row in merged_model(files).rows] == [merged_outcome]


def test_a_check_that_broke_on_one_shard_merges_as_that_error(tmp_path: Path) -> None:
    broke = replace(_row("b", RowOutcome.ERROR), reason="Traceback: KeyError 'model'", targets={})
    files = one_target_each(tmp_path, [_row("a"), broke])
    assert merged_model(files).rows == (broke,)


def test_a_check_of_one_target_among_shards_without_targets_keeps_its_target(tmp_path: Path) -> None:
    # one server, two shards: shard 1 checks none, and its row of the check names no target
    files = [shard_file(tmp_path / "shard-0.json", 0, 2, ["a"], ["a"], [_row("a")]),
             shard_file(tmp_path / "shard-1.json", 1, 2, ["a"], [],
                        [replace(_row(""), outcome=RowOutcome.SKIPPED, reason="no vLLM target", targets={})])]
    [row] = merged_model(files).rows
    assert (row.target, row.outcome, list(row.targets)) == ("a", RowOutcome.PASSED, ["a"])


def test_a_check_without_a_mark_takes_the_strictest_level_its_rows_state(tmp_path: Path) -> None:
    files = one_target_each(tmp_path, [_row(name, RowOutcome.FAILED, level)
                                       for name, level in zip("ab", (Level.MAY, Level.SHOULD), strict=True)])
    assert [row.level for row in merged_model(files).rows] == [Level.SHOULD]


def test_a_failed_checks_reason_names_the_targets_and_its_diagnosis_says_why(tmp_path: Path) -> None:
    def failed(name: str) -> Row:
        return replace(_row(name, RowOutcome.FAILED), reason=f"{name}: 0 requests counted",
                       targets={name: TargetResult(RowOutcome.FAILED, f"{name}: 0 requests counted",
                                                   "the server restarted during the workload")})

    files = one_target_each(tmp_path, [failed(name) for name in "ab"])
    [row] = merged_model(files).rows
    assert row.reason == "fails on a, b (2 of 2 targets).\na: 0 requests counted\nb: 0 requests counted"
    assert row.diagnosis == "a, b: the server restarted during the workload"


def test_a_shards_row_of_several_targets_without_one_targets_evidence_merges(tmp_path: Path) -> None:
    # a row of two targets whose evidence names one (as a report edited by hand, or of an earlier version, has it)
    def pair(names: str) -> Row:
        return Row(id="conformance/test_server.py::test_reachable", target="", check="reachable", level=Level.MUST,
                   outcome=RowOutcome.PASSED, evidence={names[0]: {"up": 1}},
                   targets={name: TargetResult(RowOutcome.PASSED) for name in names})

    files = [shard_file(tmp_path / f"shard-{k}.json", k, 2, ["a", "b", "c", "d"], list(names), [pair(names)])
             for k, names in enumerate(("ac", "bd"))]
    [row] = merged_model(files).rows
    assert row.evidence == {"a": {"up": 1}, "b": {"up": 1}, "c": {}, "d": {}}


def test_shards_whose_environment_is_empty_merge(two: tuple[Path, Path]) -> None:
    # the schema asks for an object, of any content: a report trimmed before it was shared
    model = merged_model(edited(two, lambda shard_doc: shard_doc.update(environment={})))
    assert model.environment == {"settings": {}, "merged": {"shards": 2, "files": [str(file) for file in two],
                                                            "generated": [None, None]}}
    assert model.path is None  # built without an output file, the model names none
