"""A container's command line read as the pod runs it: which vLLM program starts, with which flags (kube.py's helper).

Kubernetes expands `$(VAR)` in `command` and `args` from the container's environment; when the command is a shell
(`sh -c`, `bash -c`), the shell then expands `$VAR`, `${VAR:-default}` and `$(( arithmetic ))`, runs assignments
and picks a branch of `if [ "$LWS_WORKER_INDEX" -eq 0 ]; then ... else ... fi`. This module does that much (what
vLLM's and llm-d's multi-node manifests use) and no more: a value it cannot resolve is reported as such, never
guessed. Which programs and flags matter is data (conformance/multinode.toml).
"""

from __future__ import annotations

import ast
import contextlib
import operator
import re
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from . import data, schemas
from .targets import Balancing, DataParallel, Role

SHELLS = frozenset({"sh", "bash", "dash", "ash", "zsh", "ksh"})
_UNSET = "\0unresolved"  # a shell variable assigned from something the run cannot resolve


def rules() -> schemas.MultinodeFile:
    return data.multinode()


@dataclass(frozen=True)
class Launch:
    """What a container's command line starts."""

    role: Role
    how: str = ""  # what shows the role: "vllm serve --headless", "ray start --address=vllm-0.vllm.ns:6379"
    flags: Mapping[str, str | None] = field(default_factory=dict)  # vLLM's flags by long name; None: a switch
    unresolved: frozenset[str] = frozenset()  # flags whose value holds a variable the run cannot resolve
    leader_address: str | None = None  # a worker's leader: --data-parallel-address, or its Ray head's host
    data_parallel: DataParallel | None = None


@dataclass
class _Command:
    words: list[str]
    sure: bool  # False inside a branch of a condition the run could not decide


def read(command: Sequence[str], args: Sequence[str], env: Mapping[str, str],
         worker_index: str | None = None) -> Launch:
    """The launch of a container with this `command`, `args` and environment (variables with a literal value).
    `worker_index` (a LeaderWorkerSet pod's) decides between a leader's and a worker's launch written side by
    side when the script's own condition cannot be decided."""
    words = [_kubernetes_expand(word, env) for word in [*command, *args]]
    script = _shell_script(words)
    commands = _interpret(script, dict(env)) if script is not None else [_Command(words, True)]
    servers = [(c, found) for c in commands if (found := _server_flags(c.words)) is not None]
    if not servers and not command:
        # no command: the image's entrypoint runs the args (vllm/vllm-openai's is `vllm serve`); vLLM's own
        # multi-node flags among them say which program that is
        flags = _flags(words)
        if "--headless" in flags or any(name.startswith("--data-parallel-") for name in flags):
            servers = [(_Command(words, True), ("the image's entrypoint", flags))]
    if servers:
        _, (program, values) = _pick(servers, worker_index)
        unresolved = frozenset(name for name, value in values.items() if value is not None and "$" in value)
        headless = "--headless" in values
        how = f"{program} --headless" if headless else program
        address = values.get("--data-parallel-address")
        return Launch(Role.HEADLESS if headless else Role.SERVER, how, values, unresolved,
                      address if address and "--data-parallel-address" not in unresolved else None,
                      _data_parallel(values, unresolved))
    for one in commands:
        ray = _ray_worker(one.words)
        if ray is not None:
            how, host = ray
            return Launch(Role.RAY_WORKER, how, leader_address=host if host and "$" not in host else None)
    return Launch(Role.SERVER)  # an image's own entrypoint, or a program the run does not know: scraped, as ever


_Server = tuple[_Command, tuple[str, dict[str, str | None]]]


def _pick(servers: list[_Server], worker_index: str | None) -> _Server:
    """One vLLM launch of several: the one the script surely runs; else, for a leader and a worker's launches side
    by side, the leader's (API server) for worker 0 of a LeaderWorkerSet and the headless one for the others."""
    sure = [s for s in servers if s[0].sure]
    if sure:
        return sure[0]
    if worker_index is not None:
        wanted_headless = worker_index != "0"
        for candidate in servers:
            if ("--headless" in candidate[1][1]) == wanted_headless:
                return candidate
    # undecidable: an API server, as the run always assumed (it is then scraped, and says so if it has no /metrics)
    return next((s for s in servers if "--headless" not in s[1][1]), servers[0])


# -- Kubernetes' and the shell's expansions -------------------------------------------------------------------


_KUBE_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def _kubernetes_expand(word: str, env: Mapping[str, str]) -> str:
    """Kubernetes' `$(VAR)` in command and args: a variable of the container's environment, `$$` for `$`; any
    other reference stays as written (as the kubelet leaves it)."""
    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))

    return _KUBE_REF.sub(one, word)


def _shell_script(words: list[str]) -> str | None:
    """The script of `sh -c SCRIPT` (any shell, any options ending in c), else None: the words run as they are."""
    if not words or PurePosixPath(words[0]).name not in SHELLS:
        return None
    for index, word in enumerate(words[1:], start=1):
        if not word.startswith("-"):
            return None  # `bash script.sh`: a file the run cannot read
        if "c" in word[1:] and index + 1 < len(words):
            return words[index + 1]
    return None


_SHELL_REF = re.compile(
    r"'[^']*'"  # single quotes: nothing expands inside
    r"|\\\$"  # an escaped dollar
    r"|\$\(\((?P<arith>.*?)\)\)"
    r"|\$\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-=])(?P<default>[^}]*))?\}"
    r"|\$(?P<plain>[A-Za-z_][A-Za-z0-9_]*)",
    re.S,
)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _expand(text: str, variables: dict[str, str]) -> str:
    """The shell's parameter and arithmetic expansion; what cannot be resolved stays as written (with its `$`)."""
    def one(match: re.Match[str]) -> str:
        whole = match.group(0)
        if match.group("arith") is not None:
            number = _arithmetic(_expand(match.group("arith"), variables), variables)
            return whole if number is None else str(number)
        name = match.group("braced") or match.group("plain")
        if name is None:
            return whole
        value = variables.get(name)
        # ${VAR:-x} also replaces an empty value, ${VAR-x} only a missing one
        if match.group("op") and (value is None or (value == "" and match.group("op").startswith(":"))):
            return _expand(match.group("default"), variables)
        if value is None or value == _UNSET:
            return whole
        return value

    return _SHELL_REF.sub(one, text)


_OPERATORS: dict[type[ast.AST], Callable[[int, int], int]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}


def _arithmetic(expression: str, variables: dict[str, str]) -> int | None:
    """`$(( ))` over integers: + - * / % and parentheses, bare names read as variables. None when a name has no
    integer value or the expression is something else."""
    def name(match: re.Match[str]) -> str:
        value = variables.get(match.group(0), "")
        return value if re.fullmatch(r"-?\d+", value.strip()) else "\0"

    text = _NAME.sub(name, expression).replace("/", "//")
    if "\0" in text or "$" in text:
        return None
    try:
        return _evaluate(ast.parse(text.strip(), mode="eval").body)
    except (SyntaxError, ValueError, ZeroDivisionError):
        return None


def _evaluate(node: ast.AST) -> int:
    if isinstance(node, ast.Constant) and isinstance(node.value, int):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_evaluate(node.operand)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        return _OPERATORS[type(node.op)](_evaluate(node.left), _evaluate(node.right))
    raise ValueError("not shell arithmetic")


# -- the script, statement by statement ---------------------------------------------------------------------


def _statements(script: str) -> list[str]:
    """The script's simple statements, split where the shell would (newlines, ;, &&, ||, |, &) outside quotes and
    $( ), with comments and line continuations removed."""
    out: list[str] = []
    current: list[str] = []
    quote = ""
    depth = 0
    i = 0
    while i < len(script):
        char = script[i]
        if char == "\\" and quote != "'":
            if script[i + 1: i + 2] == "\n":
                i += 2  # a line continuation
                continue
            current.append(script[i: i + 2])
            i += 2
            continue
        if quote:
            if char == quote:
                quote = ""
            current.append(char)
        elif char in "'\"":
            quote = char
            current.append(char)
        elif char == "$" and script[i + 1: i + 2] in ("(", "{"):
            depth += 1
            current.append(script[i: i + 2])
            i += 2
            continue
        elif depth and char in "({":
            depth += 1
            current.append(char)
        elif depth and char in ")}":
            depth -= 1
            current.append(char)
        elif depth:
            current.append(char)
        elif char == "#" and (not current or current[-1].isspace()):
            while i < len(script) and script[i] != "\n":
                i += 1
            continue
        elif char in "\n;&|":
            out.append("".join(current))
            current = []
        else:
            current.append(char)
        i += 1
    out.append("".join(current))
    return [statement.strip() for statement in out if statement.strip()]


_ASSIGNMENT = re.compile(r"(?:(?:export|readonly|local|declare)\s+)?([A-Za-z_][A-Za-z0-9_]*)="
                         r"((?:\$\(\(.*?\)\)|\$\{[^}]*\}|\"[^\"]*\"|'[^']*'|\S)*)", re.S)


def _interpret(script: str, variables: dict[str, str]) -> list[_Command]:
    """Run the script as far as reading it goes: assignments update the variables, `if`/`else` pick a branch
    when the condition can be decided (else both are read, as unsure), and every other statement is a command."""
    commands: list[_Command] = []
    # per open `if`: [does the branch being read run, did an earlier branch run], each True, False or None (the
    # run could not decide)
    frames: list[list[bool | None]] = []

    def state() -> bool | None:
        """Whether statements here run: True, False, or None when a condition could not be decided."""
        if any(frame[0] is False for frame in frames):
            return False
        return None if any(frame[0] is None for frame in frames) else True

    listed = False  # between `if`/`elif` and `then`: the condition goes on (`a || b`, `a && b`)
    for statement in _statements(script):
        keyword, rest = _first(statement)
        if listed and keyword != "then" and frames:
            # a list of tests: the run decides one test, not a list (its first test alone may not decide it)
            frames[-1][0] = _and(_not(frames[-1][1]), None)
            continue
        listed = False
        if keyword == "if":
            frames.append([_condition(rest.removesuffix("then"), variables), False])
            listed = not rest.endswith("then")
            continue
        if keyword in ("elif", "else") and frames:
            frame = frames[-1]
            frame[1] = _or(frame[1], frame[0])
            if keyword == "elif":
                frame[0] = _and(_not(frame[1]), _condition(rest.removesuffix("then"), variables))
                listed = not rest.endswith("then")
                continue
            frame[0] = _not(frame[1])
            statement = rest
            keyword, rest = _first(rest)
        if keyword == "then":
            statement = rest
        if keyword == "fi":
            if frames:
                frames.pop()
            continue
        runs = state()
        if not statement or runs is False:
            continue
        assignment = _ASSIGNMENT.fullmatch(statement)
        if assignment:
            value = _expand(assignment.group(2), variables)
            with contextlib.suppress(ValueError):  # unbalanced quotes: the value as written
                value = " ".join(shlex.split(value))
            variables[assignment.group(1)] = _UNSET if "$" in value else value
            continue
        words = _words(_expand(statement, variables))
        if words[:1] == ["eval"]:  # eval "vllm serve ...": the shell splits the string again
            words = _words(" ".join(words[1:]))
        commands.append(_Command(words, runs is True))
    return commands


def _words(text: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError:  # unbalanced quotes: split on blanks, as far as that goes
        return text.split()


def _first(statement: str) -> tuple[str, str]:
    """(first word, the rest) of a statement."""
    parts = statement.split(None, 1)
    return (parts[0] if parts else ""), (parts[1].strip() if len(parts) > 1 else "")


def _not(value: bool | None) -> bool | None:
    return None if value is None else not value


def _or(a: bool | None, b: bool | None) -> bool | None:
    return True if True in (a, b) else None if None in (a, b) else False


def _and(a: bool | None, b: bool | None) -> bool | None:
    return False if False in (a, b) else None if None in (a, b) else True


_TESTS: dict[str, Callable[[Any, Any], bool]] = {
    "-eq": operator.eq, "-ne": operator.ne, "-lt": operator.lt, "-le": operator.le, "-gt": operator.gt,
    "-ge": operator.ge, "=": operator.eq, "==": operator.eq, "!=": operator.ne,
}


def _condition(text: str, variables: dict[str, str]) -> bool | None:
    """`[ A OP B ]`, `[[ A OP B ]]` or `test A OP B` with the variables' values; None when it cannot be decided."""
    try:
        words = shlex.split(_expand(text.rstrip(";").strip(), variables))
    except ValueError:
        return None
    if words[:1] in (["["], ["[["]) and words[-1:] in (["]"], ["]]"]):
        words = words[1:-1]
    elif words[:1] == ["test"]:
        words = words[1:]
    if len(words) != 3 or words[1] not in _TESTS or any("$" in word for word in words):
        return None
    left, op, right = words
    if op.startswith("-"):
        try:
            return _TESTS[op](int(left), int(right))
        except ValueError:
            return None
    return _TESTS[op](left, right)


# -- what the commands start ----------------------------------------------------------------------------------


def _server_flags(words: list[str]) -> tuple[str, dict[str, str | None]] | None:
    """(the program, its flags) if these words start vLLM's API server (`vllm serve ...`, `python -m
    vllm.entrypoints.openai.api_server ...`), else None."""
    server = rules().server
    for index, word in enumerate(words):
        follows = words[index + 1] if index + 1 < len(words) else ""
        if any(PurePosixPath(word).name == program and follows == sub for program, sub in server.programs):
            return f"{PurePosixPath(word).name} {follows}", _flags(words[index + 2:])
        if word == "-m" and follows in server.modules:
            return f"python -m {follows}", _flags(words[index + 2:])
    return None


def _flags(words: list[str]) -> dict[str, str | None]:
    flags = rules().flags
    switches, aliases = set(flags.switches), flags.aliases
    found: dict[str, str | None] = {}
    index = 0
    while index < len(words):
        word = words[index]
        index += 1
        if not word.startswith("-") or word == "-":
            continue
        name, equals, value = word.partition("=")
        name = "--" + name[2:].replace("_", "-") if name.startswith("--") else aliases.get(name, name)
        name = aliases.get(name, name)
        if name in switches:
            found[name] = None
        elif equals:
            found[name] = value
        elif index < len(words) and not words[index].startswith("--"):
            found[name] = words[index]
            index += 1
        else:
            found[name] = ""
    return found


def _ray_worker(words: list[str]) -> tuple[str, str | None] | None:
    """(how, the leader's host) if these words join a Ray cluster as a worker node, else None."""
    ray = rules().ray_worker
    start = list(ray.start)
    for index, word in enumerate(words):
        if PurePosixPath(word).name == start[0] and words[index + 1: index + 2] == start[1:]:
            rest = words[index + 2:]
            if ray.head_flag in rest:
                return None
            address = _option(rest, ray.address_flags)
            if address is not None:
                return f"{' '.join(start)} --address={address}", _host(address)
        for script in ray.scripts:
            if PurePosixPath(word).name == script.file and words[index + 1: index + 2] == [script.subcommand]:
                address = _option(words[index + 2:], [script.address_flag])
                shown = f" {script.address_flag}={address}" if address else ""
                return f"{script.file} {script.subcommand}{shown}", _host(address) if address else None
    return None


def _option(words: list[str], names: Sequence[str]) -> str | None:
    for index, word in enumerate(words):
        name, equals, value = word.partition("=")
        if name in names:
            if equals:
                return value
            return words[index + 1] if index + 1 < len(words) else None
    return None


def _host(address: str) -> str:
    """host of host:port (a bracketed IPv6 address too)."""
    if address.startswith("["):
        return address[1:].partition("]")[0]
    return address.rpartition(":")[0] if address.count(":") == 1 else address


# -- data parallelism -------------------------------------------------------------------------------------------

_INTEGERS = {"--data-parallel-size": "size", "--data-parallel-size-local": "size_local",
             "--data-parallel-start-rank": "start_rank", "--data-parallel-rank": "rank"}


def _data_parallel(flags: Mapping[str, str | None], unresolved: frozenset[str]) -> DataParallel | None:
    """The server's data-parallel flags, or None when it runs one engine (no flag, or --data-parallel-size 1)."""
    values: dict[str, int] = {}
    unreadable: list[str] = []
    for flag, attribute in _INTEGERS.items():
        raw = flags.get(flag)
        if raw is None:
            continue
        try:
            values[attribute] = int(raw)
        except ValueError:
            unreadable.append(flag)
    if "--data-parallel-hybrid-lb" in flags:
        balancing = Balancing.HYBRID
    elif "--data-parallel-external-lb" in flags or "--data-parallel-rank" in flags:
        balancing = Balancing.EXTERNAL
    else:
        balancing = Balancing.INTERNAL
    if not unreadable and balancing is Balancing.INTERNAL and values.get("size", 1) <= 1 and not (
            set(values) - {"size"}):
        return None
    backend = flags.get("--data-parallel-backend") or "mp"
    address = flags.get("--data-parallel-address")
    return DataParallel(**values, balancing=balancing, backend=backend,
                        address=address if address and "--data-parallel-address" not in unresolved else None,
                        unreadable=tuple(unreadable))
