"""A pod's command line read as the pod runs it (pytest_vllm_metrics/_launch.py): Kubernetes' $(VAR), the shell's
expansions, assignments and branches, and which vLLM program starts with which flags. In-process: the words as a
pod spec gives them. The real manifests these shapes come from are read in tests/test_multinode.py."""

from __future__ import annotations

import pytest

from pytest_vllm_metrics._launch import Launch, read
from pytest_vllm_metrics.targets import Balancing, DataParallel, Role


def sh(script: str, env: dict[str, str] | None = None, worker_index: str | None = None) -> Launch:
    """The launch of `sh -c SCRIPT`, as vLLM's and llm-d's multi-node manifests write their commands."""
    return read(["/bin/sh", "-c"], [script], env or {}, worker_index)


def flag(script: str, name: str, env: dict[str, str] | None = None) -> str | None:
    """The value `vllm serve m ... SCRIPT` gives the flag `name` (a script ending in the server's flags)."""
    return sh(script, env).flags.get(name, "<absent>")


# -- Kubernetes' $(VAR) -----------------------------------------------------------------------------------------


def test_kubernetes_expands_its_own_references_from_the_environment_only() -> None:
    launch = read([], ["vllm", "serve", "m", "--port", "$(PORT)", "--served-model-name", "$$(NAME)", "--host",
                       "$(MISSING)", "--x", "$(1BAD)", "--y", "a$$b"], {"PORT": "8000", "NAME": "n"})
    assert launch.flags == {"--port": "8000", "--served-model-name": "$(NAME)", "--host": "$(MISSING)",
                            "--x": "$(1BAD)", "--y": "a$b"}
    assert launch.unresolved == {"--served-model-name", "--host", "--x", "--y"}
    assert launch.how == "vllm serve"


# -- which words are a shell's script ------------------------------------------------------------------------------


@pytest.mark.parametrize(("command", "role"), [
    (["/bin/bash", "-c", "vllm serve m --headless"], Role.HEADLESS),
    (["bash", "-e", "-c", "vllm serve m --headless"], Role.HEADLESS),
    (["bash", "-lc", "vllm serve m --headless"], Role.HEADLESS),
    (["/usr/bin/dash", "-ec", "vllm serve m --headless"], Role.HEADLESS),
    # a script file the run cannot read, options without -c, -c without a script: the words as they are
    (["bash", "start.sh", "-c", "vllm serve m --headless"], Role.SERVER),
    (["bash", "-ex"], Role.SERVER),
    (["bash", "-c"], Role.SERVER),
    (["python", "-c", "vllm serve m --headless"], Role.SERVER),
    ([], Role.SERVER),
])
def test_only_a_shell_with_c_runs_its_script(command: list[str], role: Role) -> None:
    assert read(command, [], {}).role is role


# -- the shell's expansions -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("script", "env", "value"), [
    ("--data-parallel-address $HOST", {"HOST": "h"}, "h"),
    ("--data-parallel-address ${HOST}", {"HOST": "h"}, "h"),
    ("--data-parallel-address x${HOST}y", {"HOST": "h"}, "xhy"),
    # ${VAR:-x} replaces a missing or empty value, ${VAR-x} a missing one only; := and = as well
    ("--data-parallel-address ${HOST:-d}", {}, "d"),
    ("--data-parallel-address ${HOST:-d}", {"HOST": ""}, "d"),
    ("--data-parallel-address ${HOST:-d}", {"HOST": "h"}, "h"),
    ("--data-parallel-address x${HOST-d}y", {"HOST": ""}, "xy"),
    ("--data-parallel-address ${HOST-d}", {}, "d"),
    ("--data-parallel-address ${HOST:=d}", {"HOST": ""}, "d"),
    ("--data-parallel-address ${HOST=d}", {}, "d"),
    # nothing expands in single quotes; an escaped dollar stays a dollar
    ("--data-parallel-address '$HOST'", {"HOST": "h"}, "$HOST"),
    ("--data-parallel-address \\$HOST", {"HOST": "h"}, "$HOST"),
    # what the run cannot resolve stays as written
    ("--data-parallel-address $NOPE", {}, "$NOPE"),
    ("--data-parallel-address ${NOPE}", {}, "${NOPE}"),
    # a default that is itself an expansion: more than the run reads, so it stays unresolved (never guessed)
    ("--data-parallel-address ${HOST:-${OTHER}}", {"OTHER": "o"}, "${OTHER}"),
])
def test_the_shells_parameter_expansion(script: str, env: dict[str, str], value: str) -> None:
    assert flag(f"vllm serve m {script}", "--data-parallel-address", env) == value


@pytest.mark.parametrize(("expression", "env", "value"), [
    ("2 * 3", {}, 6), ("7 - 2 - 1", {}, 4), ("2 + 3 * 4", {}, 14), ("(2 + 3) * 4", {}, 20),
    ("7 / 2", {}, 3), ("7 % 4", {}, 3), ("-2 + 5", {}, 3),
    ("N * 2", {"N": "4"}, 8), ("$N * 2", {"N": "4"}, 8), ("${N} * 2", {"N": " 4 "}, 8),
    ("${N:-1} * 2", {}, 2), ("N + 5", {"N": "-3"}, 2),
    # what is not integer arithmetic over known values stays as written
    ("N + 1", {"N": "x"}, None), ("N + 1", {}, None), ("1 / 0", {}, None), ("2 ** 3", {}, None),
    ("2 << 1", {}, None), ("1.5 * 2", {}, None), ("+2", {}, None), ("2 +", {}, None),
])
def test_the_shells_arithmetic_over_integers(expression: str, env: dict[str, str], value: int | None) -> None:
    launch = sh(f"vllm serve m --data-parallel-size $(( {expression} ))", env)
    assert launch.data_parallel is not None
    if value is None:  # the flag's value cannot be resolved: said so, never guessed
        assert launch.data_parallel.unreadable == ("--data-parallel-size",)
    else:
        assert (launch.data_parallel.size, launch.data_parallel.unreadable) == (value, ())


# -- statements -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("script", "role"), [
    ("echo start; vllm serve m --headless", Role.HEADLESS),
    ("echo start && vllm serve m --headless", Role.HEADLESS),
    ("false || vllm serve m --headless", Role.HEADLESS),
    ("vllm serve m --headless | tee log", Role.HEADLESS),
    ("sleep 1 & vllm serve m --headless", Role.HEADLESS),
    ("echo start\nvllm serve m --headless", Role.HEADLESS),
    # a separator inside quotes or $( ) does not split the statement
    ("echo 'a; vllm serve m --headless'", Role.SERVER),
    ('echo "a && vllm serve m --headless"', Role.SERVER),
    ("echo ${A:-a;vllm serve m --headless}", Role.SERVER),
    ("X=${A:-a;b} vllm serve m --headless", Role.HEADLESS),  # a variable set for the one command
    # comments, and a # inside a word
    ("# vllm serve m --headless\necho done", Role.SERVER),
    ("echo a # ; vllm serve m --headless", Role.SERVER),
    ("echo a#b; vllm serve m --headless", Role.HEADLESS),
    # a line continuation joins the lines; an escaped separator is a character
    ("vllm serve m \\\n  --headless", Role.HEADLESS),
    ("vllm serve m --port 1 \\; --headless", Role.HEADLESS),
])
def test_the_script_is_split_where_the_shell_splits_it(script: str, role: Role) -> None:
    assert sh(script).role is role


def test_a_quoted_separator_and_an_escaped_quote_stay_in_their_word() -> None:
    launch = sh("vllm serve m --served-model-name \"a;b\" --host 'c&d' --x \"e\\\"f;g\" --y $(f a;b) && exit")
    assert (launch.flags["--served-model-name"], launch.flags["--host"], launch.flags["--x"]) == \
        ("a;b", "c&d", 'e"f;g')


# -- assignments -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("assignment", "value"), [
    ("HOST=h", "h"), ("export HOST=h", "h"), ("readonly HOST=h", "h"), ("local HOST=h", "h"),
    ("declare HOST=h", "h"), ('HOST="a b"', "a b"), ("HOST=$(( 2 + 2 ))", "4"), ("HOST=${BASE}-x", "b-x"),
    ("HOST=${BASE:-z}", "b"), ("HOST=h; HOST=${HOST}2", "h2"),
])
def test_an_assignment_sets_the_variable_for_the_commands_after_it(assignment: str, value: str) -> None:
    assert flag(f'{assignment}\nvllm serve m --data-parallel-address "$HOST"', "--data-parallel-address",
                {"BASE": "b"}) == value


def test_an_unquoted_variable_is_split_into_words_as_the_shell_splits_it() -> None:
    launch = sh('ARGS="--headless --data-parallel-size 2"\nvllm serve m $ARGS')
    assert (launch.role, launch.flags) == (Role.HEADLESS, {"--headless": None, "--data-parallel-size": "2"})


def test_a_variable_assigned_from_what_the_run_cannot_resolve_is_unresolved() -> None:
    launch = sh("HOST=$(hostname -i)\nvllm serve m --data-parallel-address $HOST --data-parallel-size 2")
    assert launch.flags["--data-parallel-address"] == "$HOST"
    assert launch.unresolved == {"--data-parallel-address"}
    assert launch.leader_address is None
    assert launch.data_parallel == DataParallel(size=2)  # the address the run cannot tell is left out


def test_eval_splits_its_string_again() -> None:
    launch = sh('eval "vllm serve m --headless --data-parallel-address $HOST"', {"HOST": "h"})
    assert (launch.role, launch.leader_address) == (Role.HEADLESS, "h")


# -- branches -----------------------------------------------------------------------------------------------------

BRANCHES = """if [ "$INDEX" -eq 0 ]; then
  vllm serve m --port 8000
elif [ "$INDEX" -eq 1 ]; then
  vllm serve m --headless --data-parallel-start-rank 2
else
  vllm serve m --headless --data-parallel-start-rank 4
fi"""


@pytest.mark.parametrize(("index", "role", "start"), [
    ("0", Role.SERVER, "<absent>"), ("1", Role.HEADLESS, "2"), ("2", Role.HEADLESS, "4"),
])
def test_the_branch_the_condition_picks_runs(index: str, role: Role, start: str) -> None:
    launch = sh(BRANCHES, {"INDEX": index})
    assert (launch.role, launch.flags.get("--data-parallel-start-rank", "<absent>")) == (role, start)


@pytest.mark.parametrize(("condition", "runs"), [
    ('[ "$N" -eq 3 ]', True), ("[ $N -eq 4 ]", False), ("[[ $N -ne 4 ]]", True), ("test $N -lt 4", True),
    ("[ $N -lt 3 ]", False), ("[ $N -le 3 ]", True), ("[ $N -le 2 ]", False), ("[ $N -gt 2 ]", True),
    ("[ $N -gt 3 ]", False), ("[ $N -ge 3 ]", True), ("[ $N -ge 4 ]", False), ('[ "$S" = "a" ]', True),
    ('[ "$S" == "b" ]', False), ('[ "$S" != "b" ]', True), ('[ "$S" != "a" ]', False), ("[ $N -eq 3 ];", True),
])
def test_a_condition_the_run_can_decide(condition: str, runs: bool) -> None:
    launch = sh(f"if {condition}; then\nvllm serve m --headless\nelse\nvllm serve m\nfi", {"N": "3", "S": "a"})
    assert launch.role is (Role.HEADLESS if runs else Role.SERVER)


@pytest.mark.parametrize("condition", [
    "[ $UNKNOWN -eq 0 ]", "[ $N -eq x ]", "[ -f /etc/ready ]", "[ $N -eq 3 -a $N -eq 3 ]", "[ $N -xx 3 ]",
    "[ $Q -eq 3 ]", "command -v vllm",
])
def test_a_condition_the_run_cannot_decide_reads_both_branches_as_unsure(condition: str) -> None:
    # neither launch is sure: the API server's, as the run always assumed, unless a worker index decides
    script = f"if {condition}; then\nvllm serve m --headless\nelse\nvllm serve m --port 1\nfi"
    env = {"N": "3", "Q": '"'}
    assert (sh(script, env).role, sh(script, env).flags) == (Role.SERVER, {"--port": "1"})
    assert sh(script, env, worker_index="1").role is Role.HEADLESS
    assert sh(script, env, worker_index="0").role is Role.SERVER


def test_a_sure_launch_wins_over_unsure_ones() -> None:
    script = "if [ -f x ]; then\nvllm serve m --port 1\nfi\nvllm serve m --headless --port 2"
    assert sh(script, worker_index="0").flags == {"--headless": None, "--port": "2"}
    # unsure only, and no launch of the wanted kind: the API server's, else the first
    only_headless = "if [ -f x ]; then\nvllm serve m --headless --port 1\nfi"
    assert sh(only_headless, worker_index="0").flags == {"--headless": None, "--port": "1"}
    assert sh(only_headless).role is Role.HEADLESS
    two = "if [ -f x ]; then\nvllm serve m --headless --port 1\nelse\nvllm serve m --headless --port 2\nfi"
    assert sh(two).flags["--port"] == "1" and sh(two, worker_index="3").flags["--port"] == "1"


@pytest.mark.parametrize(("script", "port"), [
    # a branch after one that ran does not run; an unsure earlier branch makes the later ones unsure
    ("if [ 1 -eq 1 ]; then vllm serve m --port 1; elif [ 1 -eq 1 ]; then vllm serve m --port 2; fi", "1"),
    ("if [ 1 -eq 0 ]; then vllm serve m --port 1; elif [ 1 -eq 1 ]; then vllm serve m --port 2; fi", "2"),
    ("if [ 1 -eq 0 ]; then vllm serve m --port 1; elif [ 1 -eq 0 ]; then vllm serve m --port 2; else vllm serve m "
     "--port 3; fi", "3"),
    ("if [ 1 -eq 1 ]; then vllm serve m --port 1; else vllm serve m --port 3; fi", "1"),
    ("if [ 1 -eq 0 ]; then\n  if [ 1 -eq 1 ]; then vllm serve m --port 1; fi\nelse\n  vllm serve m --port 3\nfi", "3"),
    ("if [ 1 -eq 1 ]; then\n  if [ 1 -eq 0 ]; then vllm serve m --port 1; fi\n  vllm serve m --port 2\nfi", "2"),
    ("if [ -f x ]; then echo; elif [ 1 -eq 1 ]; then vllm serve m --port 2; fi\nvllm serve m --port 9", "9"),
    ("if [ 1 -eq 1 ]; then echo; elif [ -f x ]; then vllm serve m --port 2; fi\nvllm serve m --port 9", "9"),
    ("if [ 1 -eq 0 ]; then echo; elif [ -f x ]; then vllm serve m --port 2; else vllm serve m --port 3; fi", "2"),
    # a stray fi or else outside any if (the shell would refuse the script): read on, without an error
    ("fi\nelse\nvllm serve m --port 4", "4"),
])
def test_if_elif_else_pick_one_branch(script: str, port: str) -> None:
    assert sh(script).flags["--port"] == port


def test_after_fi_the_commands_run_again() -> None:
    assert sh("if [ 1 -eq 0 ]; then\necho no\nfi\nvllm serve m --headless").role is Role.HEADLESS
    assert sh("if [ 1 -eq 0 ]; then\nvllm serve m --headless\nfi").role is Role.SERVER


# -- the programs -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("words", "how"), [
    (["/usr/local/bin/vllm", "serve", "m", "--headless"], "vllm serve --headless"),
    (["python3", "-m", "vllm.entrypoints.openai.api_server", "--headless"], "python -m vllm.entrypoints.openai."
                                                                            "api_server --headless"),
    (["python", "-u", "-m", "vllm.entrypoints.api_server", "--port", "1"], "python -m vllm.entrypoints.api_server"),
    (["vllm", "chat", "--headless"], ""), (["python", "-m", "other", "--headless"], ""), (["vllm"], ""),
])
def test_the_programs_that_start_vllms_server(words: list[str], how: str) -> None:
    assert read(words, [], {}).how == how


@pytest.mark.parametrize(("args", "flags"), [
    (["--data_parallel_size", "2"], {"--data-parallel-size": "2"}),
    (["--data-parallel-size=2", "--headless"], {"--data-parallel-size": "2", "--headless": None}),
    (["-dp", "4", "-dpl", "2", "-dpr", "2", "-dpn", "3", "-dpa", "h", "-dpb", "ray"],
     {"--data-parallel-size": "4", "--data-parallel-size-local": "2", "--data-parallel-start-rank": "2",
      "--data-parallel-rank": "3", "--data-parallel-address": "h", "--data-parallel-backend": "ray"}),
    (["-dph", "-dpe", "x"], {"--data-parallel-hybrid-lb": None, "--data-parallel-external-lb": None}),
    (["--headless", "x", "--port"], {"--headless": None, "--port": ""}),
    (["--seed", "-1", "--port", "--host", "h"], {"--seed": "-1", "--port": "", "--host": "h"}),
    (["-", "--a=", "--b=c=d", "m"], {"--a": "", "--b": "c=d"}),
])
def test_the_servers_flags_by_their_long_names(args: list[str], flags: dict[str, str | None]) -> None:
    assert read(["vllm", "serve", "m"], args, {}).flags == flags


def test_without_a_command_the_images_entrypoint_runs_the_args() -> None:
    # vllm/vllm-openai's entrypoint is `vllm serve`: vLLM's multi-node flags among the args say so
    assert (read([], ["m", "--data-parallel-size", "2"], {}).how, read([], ["m", "--headless"], {}).role) == \
        ("the image's entrypoint", Role.HEADLESS)
    assert read([], ["m", "--data-parallel-size", "2"], {}).data_parallel == DataParallel(size=2)
    assert read([], ["m", "--port", "8000"], {}) == Launch(Role.SERVER)
    assert read(["/entrypoint.sh"], ["--headless"], {}) == Launch(Role.SERVER)


# -- Ray workers ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("script", "how", "leader"), [
    ("ray start --address=10.0.0.5:6379 --block", "ray start --address=10.0.0.5:6379", "10.0.0.5"),
    ("ray start --block --address 10.0.0.5:6379", "ray start --address=10.0.0.5:6379", "10.0.0.5"),
    ("/usr/bin/ray start --address=head", "ray start --address=head", "head"),
    ("ray start --address=[fd00::5]:6379", "ray start --address=[fd00::5]:6379", "fd00::5"),
    ("ray start --address=fd00::5", "ray start --address=fd00::5", "fd00::5"),
    ("ray start --address=$HEAD:6379", "ray start --address=$HEAD:6379", None),
    ("bash multi-node-serving.sh worker --ray_address=h.svc", "multi-node-serving.sh worker --ray_address=h.svc",
     "h.svc"),
    ("bash ./multi-node-serving.sh worker --ray_address h.svc:6379", "multi-node-serving.sh worker "
                                                                    "--ray_address=h.svc:6379", "h.svc"),
    ("bash multi-node-serving.sh worker", "multi-node-serving.sh worker", None),
    ("bash multi-node-serving.sh worker --ray_address", "multi-node-serving.sh worker", None),
])
def test_a_ray_worker_and_its_heads_host(script: str, how: str, leader: str | None) -> None:
    launch = sh(script)
    assert (launch.role, launch.how, launch.leader_address) == (Role.RAY_WORKER, how, leader)


@pytest.mark.parametrize("script", [
    "ray start --head --port=6379", "ray start --block", "ray status --address=h", "ray",
    "multi-node-serving.sh leader", "bash multi-node-serving.sh worker-x --ray_address=h",
])
def test_what_is_not_a_ray_worker(script: str) -> None:
    assert sh(script) == Launch(Role.SERVER)


# -- data parallelism -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("args", "expected"), [
    ([], None), (["--data-parallel-size", "1"], None), (["--data-parallel-size", "0"], None),
    (["--data-parallel-size", "2"], DataParallel(size=2)),
    (["--data-parallel-size", "1", "--data-parallel-size-local", "1"], DataParallel(size=1, size_local=1)),
    (["--data-parallel-size-local", "2"], DataParallel(size_local=2)),
    (["--data-parallel-hybrid-lb"], DataParallel(balancing=Balancing.HYBRID)),
    (["--data-parallel-external-lb"], DataParallel(balancing=Balancing.EXTERNAL)),
    (["--data-parallel-rank", "3"], DataParallel(rank=3, balancing=Balancing.EXTERNAL)),
    (["--data-parallel-hybrid-lb", "--data-parallel-rank", "3"], DataParallel(rank=3, balancing=Balancing.HYBRID)),
    (["--data-parallel-size", "x"], DataParallel(unreadable=("--data-parallel-size",))),
    (["--data-parallel-size", "2", "--data-parallel-start-rank", "$R", "--data-parallel-rank", "r"],
     DataParallel(size=2, balancing=Balancing.EXTERNAL,
                  unreadable=("--data-parallel-start-rank", "--data-parallel-rank"))),
    (["--data-parallel-size", "2", "--data-parallel-backend", "ray", "--data-parallel-address", "h"],
     DataParallel(size=2, backend="ray", address="h")),
    (["--data-parallel-size", "2", "--data-parallel-backend", "", "--data-parallel-address", ""],
     DataParallel(size=2)),
    (["--data-parallel-size", "2", "--data-parallel-address", "$(LEADER)"], DataParallel(size=2)),
])
def test_the_data_parallel_flags(args: list[str], expected: DataParallel | None) -> None:
    launch = read(["vllm", "serve", "m"], args, {})
    assert launch.data_parallel == expected


def test_a_headless_worker_leads_to_its_data_parallel_address() -> None:
    launch = read(["vllm", "serve", "m"], ["--headless", "--data-parallel-address", "$(LEADER)"], {"LEADER": "l.svc"})
    assert (launch.role, launch.leader_address, launch.unresolved) == (Role.HEADLESS, "l.svc", frozenset())
    unresolved = read(["vllm", "serve", "m"], ["--headless", "--data-parallel-address", "$(LEADER)"], {})
    assert (unresolved.leader_address, unresolved.unresolved) == (None, {"--data-parallel-address"})


@pytest.mark.parametrize("condition", [
    # a list of tests: its first test alone does not decide it (the shell runs the then-branch here)
    "[ $N -eq 4 ] || [ $N -eq 3 ]", "[ $N -eq 3 ] && [ \"$S\" = \"b\" ]", "[ -f /etc/ready ] || [ $N -eq 3 ]",
])
def test_a_list_of_tests_is_not_decided_by_its_first(condition: str) -> None:
    script = f"if {condition}; then\nvllm serve m --headless\nelse\nvllm serve m --port 1\nfi"
    env = {"N": "3", "S": "a"}
    # undecided: both branches unsure, the API server's as always, or the one a worker index picks
    assert (sh(script, env).flags, sh(script, env, worker_index="1").role) == ({"--port": "1"}, Role.HEADLESS)
    # an elif with a list after a branch that ran: skipped, whatever the list says
    ran = f"if [ $N -eq 3 ]; then\nvllm serve m --port 2\nelif {condition}; then\nvllm serve m --headless\nfi"
    assert sh(ran, env).flags == {"--port": "2"}


@pytest.mark.parametrize(("script", "port"), [
    # elif and else after branches decided or not: True or undecided ran, False did not
    ("if [ $N -eq 3 ]; then\nvllm serve m --port 1\nelif [ -f x ]; then\nvllm serve m --port 2\nfi", "1"),
    ("if [ $N -eq 4 ]; then\nvllm serve m --port 1\nelif [ $N -eq 3 ]; then\nvllm serve m --port 2\nfi", "2"),
    ("if [ $N -eq 4 ]; then\nvllm serve m --port 1\nelse\nvllm serve m --port 2\nfi", "2"),
    ("if [ $N -eq 3 ]; then\nvllm serve m --port 1\nelse\nvllm serve m --port 2\nfi", "1"),
])
def test_the_branch_after_decided_conditions(script: str, port: str) -> None:
    assert sh(script, {"N": "3"}).flags == {"--port": port}


@pytest.mark.parametrize(("script", "role"), [
    # a whole statement between separators inside $( ) or ${ }, nested too, is part of the outer word
    ("echo $(a; vllm serve m --headless; b)", Role.SERVER),
    ("echo ${A:-x; vllm serve m --headless; y}", Role.SERVER),
    ("echo $(a $(b); vllm serve m --headless; c)", Role.SERVER),
    ("echo ${A:-$(b); vllm serve m --headless; c}", Role.SERVER),
    ("echo $((1 + (2)) ; vllm serve m --headless; c)", Role.SERVER),
    # after the ) or } that closes it, the separators split again
    ("echo $(a); vllm serve m --headless", Role.HEADLESS),
    ("echo ${A:-x}; vllm serve m --headless", Role.HEADLESS),
    ("echo $(a $(b) c); vllm serve m --headless", Role.HEADLESS),
    ("echo 'it''s'; vllm serve m --headless", Role.HEADLESS),
])
def test_a_statement_inside_a_substitution_stays_in_its_word(script: str, role: Role) -> None:
    assert sh(script).role is role


def test_a_line_continuation_inside_a_word_and_a_backslash_inside_single_quotes() -> None:
    # the shell joins the lines of a continuation even inside a word; inside single quotes \ is a plain character
    assert sh("vllm serve m --port 80\\\n00").flags == {"--port": "8000"}
    assert sh("echo 'a\\'; vllm serve m --headless").role is Role.HEADLESS


def test_an_upper_case_x_is_a_letter_of_its_word() -> None:
    # XVERSE, a model family vLLM serves: no character of a word but the shell's separators splits a statement
    assert sh("vllm serve xverse/XVERSE-13B-Chat --served-model-name XVERSE-13B").flags == {
        "--served-model-name": "XVERSE-13B"}
