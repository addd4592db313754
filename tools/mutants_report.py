"""Per-module table of a mutmut 3 run: killed / survived / timeout / other / total, and the score.

    python tools/mutants_report.py [--mutants DIR] [--equivalent FILE] [--fail-under PERCENT]

Reads mutmut's result files (`mutants/<module>.py.meta`) and the reviewed list of equivalent mutants
(mutants-equivalent.toml: mutant name = one-line reason). A surviving mutant listed there counts as equivalent,
not as survived; the score is killed / (total - equivalent). In kube.py only the target selection is scored
(_target, _port, _container). Survivors not in the list are printed by name (`mutmut show NAME` prints the diff).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tomllib
from collections import Counter
from pathlib import Path

# The modules that decide verdicts, as configured in pyproject.toml's [tool.mutmut]; None scores the whole module.
SCORED: dict[str, tuple[str, ...] | None] = {
    "evaluate": None, "accounting": None, "snapshot": None, "readers": None, "series": None, "judging": None,
    "why_empty": None, "fleet": None, "promql": None, "prometheus": None, "diagnose": None, "features": None,
    "catalog": None, "_fastparse": None, "kube": ("_target", "_port", "_container"), "relations": None,
    "hygiene": None, "consumers": None, "cluster_readers": None, "epp": None, "_grafana": None,
    "_grafana_vars": None, "multinode": None, "_launch": None, "data": None, "schemas": None,
    # the model-server protocol, the endpoint picker's configuration, the GAIE report
    "engines": None, "model_server": None, "epp_config": None, "epp_errors": None, "gaie": None, "report_gaie": None,
    # the report layer and the upgrade forecast (_hooks_report: mutmut leaves decorated hooks alone)
    "rows": None, "gate": None, "implementations": None, "report": None, "report_terminal": None,
    "report_html": None, "report_markdown": None, "_html": None, "_markdown": None, "upgrade": None,
    "_hooks_report": None,
    # the vocabularies and the targets' selection
    "outcome": None, "versions": None, "targets": None,
    # the observation
    "scrape": None, "traffic": None, "observe": None,
    # the pytest-facing modules: shard in the whole-package run, the others one at a time (tools/mutants_one.py)
    "settings": None, "shard": None, "merge": None, "run": None, "plugin": None, "fixtures": None,
}
# mutmut's exit codes (mutmut/stats.py): 1 and 3 kill, 0 survives; the timeouts are SIGXCPU and its kin.
KILLED, SURVIVED, TIMEOUT = {1, 3}, {0}, {36, 24, -24, 152, 255}
NO_TESTS = {5, 33}


def function_of(mutant: str) -> str:
    """`pkg.mod.x__port__mutmut_3` -> `_port`; `pkg.mod.xǁClassǁmethod__mutmut_1` -> `Class.method`."""
    local = mutant.rsplit(".", 1)[-1]
    local = re.sub(r"__mutmut_\d+$", "", local)
    if local.startswith("xǁ"):
        return ".".join(local[2:].split("ǁ"))
    return local.removeprefix("x_")


def load_results(mutants: Path) -> dict[str, dict[str, int | None]]:
    """module -> mutant name -> exit code (None: not run yet), for the scored functions."""
    results: dict[str, dict[str, int | None]] = {}
    for module, functions in SCORED.items():
        meta = mutants / "pytest_vllm_metrics" / f"{module}.py.meta"
        if not meta.exists():
            continue
        codes: dict[str, int | None] = json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"]
        results[module] = {name: code for name, code in codes.items()
                           if functions is None or function_of(name) in functions}
    return results


def _percent(score: float | None) -> str:
    """The score column: killed (and timed out) among the mutants judged; '-' when none was run."""
    return f"{score:>6.1f}%" if score is not None else f"{'-':>7}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mutants", type=Path, default=Path("mutants"))
    parser.add_argument("--equivalent", type=Path, default=Path("mutants-equivalent.toml"))
    parser.add_argument("--fail-under", type=float, default=0.0, help="exit 1 when a module scores below this")
    args = parser.parse_args(argv)
    results = load_results(args.mutants)
    if not results:
        print(f"no mutmut results under {args.mutants}/ (run `mutmut run` first)", file=sys.stderr)
        return 2
    equivalent: dict[str, str] = {}
    if args.equivalent.exists():
        equivalent = tomllib.loads(args.equivalent.read_text(encoding="utf-8")).get("equivalent", {})
    header = f"{'module':<15} {'killed':>7} {'survived':>8} {'equiv':>6} {'timeout':>7} {'no test':>7} " \
             f"{'not run':>7} {'total':>6} {'score':>7}"
    print(header)
    print("-" * len(header))
    totals: Counter[str] = Counter()
    unexplained: list[str] = []
    stale: list[str] = []
    failing = False
    for module, codes in results.items():
        count: Counter[str] = Counter()
        for name, code in codes.items():
            if code in KILLED:
                count["killed"] += 1
                if name in equivalent:
                    stale.append(name)
            elif code in SURVIVED and name in equivalent:
                count["equivalent"] += 1
            elif code in SURVIVED:
                count["survived"] += 1
                unexplained.append(name)
            elif code in TIMEOUT:
                count["timeout"] += 1
            elif code in NO_TESTS:
                count["no tests"] += 1
                unexplained.append(name)
            elif code is None:
                count["not run"] += 1
            else:
                count["killed"] += 1  # suspicious exits (segfaults) also tell the mutant apart
        count["total"] = len(codes)
        totals.update(count)
        judged = count["total"] - count["equivalent"] - count["not run"]
        score = 100.0 * (count["killed"] + count["timeout"]) / judged if judged else None
        failing = failing or (score is not None and score < args.fail_under)
        print(f"{module:<15} {count['killed']:>7} {count['survived']:>8} {count['equivalent']:>6} "
              f"{count['timeout']:>7} {count['no tests']:>7} {count['not run']:>7} {count['total']:>6} "
              f"{_percent(score)}")
    judged = totals["total"] - totals["equivalent"] - totals["not run"]
    score = 100.0 * (totals["killed"] + totals["timeout"]) / judged if judged else None
    print("-" * len(header))
    print(f"{'all':<15} {totals['killed']:>7} {totals['survived']:>8} {totals['equivalent']:>6} "
          f"{totals['timeout']:>7} {totals['no tests']:>7} {totals['not run']:>7} {totals['total']:>6} "
          f"{_percent(score)}")
    if unexplained:
        print(f"\n{len(unexplained)} surviving mutant(s) not in {args.equivalent} (mutmut show NAME):")
        for name in sorted(unexplained):
            print(f"  {name}")
    if stale:
        print(f"\nlisted as equivalent but killed now (remove from {args.equivalent}):")
        for name in sorted(stale):
            print(f"  {name}")
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())
