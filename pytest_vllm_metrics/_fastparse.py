"""A fast path for the Prometheus text format as vLLM (prometheus_client) writes it.

prometheus_client's text parser costs ~9 ms for a 50 KB vLLM page (3-4x slower since 0.22, client_python
issue #1114), which dominates a scrape round of hundreds of pods. This reads the same families and samples,
strictly, with one compiled pattern run over the whole page in C: every line must be a `# HELP`/`# TYPE` line,
a sample without timestamp or exemplar, a comment, or empty, exactly as prometheus_client writes them. Any
other line (extra spaces, `\\r`, escapes, exemplars, timestamps) sends the whole page to prometheus_client's
parser instead, so odd pages get the reference behaviour. Label sets repeat on every page of a fleet, so each
distinct `{...}` text is read once and its labels shared. Tests check equal results on the real captures and
under fuzzing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_NUMBER = r"[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|[Ii]nf|NaN|nan)"
# One alternative per kind of line; the last one takes any other line, which the loop then judges.
_LINE = re.compile(
    rf"^(?:# (HELP|TYPE) ({_NAME})(?: ([^\s\\](?:[^\n\\]*[^\s\\])?))?[ \t]*"  # HELP: no escapes
    rf"|({_NAME})(?:\{{([^{{}}\n]*)\}})? ({_NUMBER})"  # a sample: name, label text, value
    r"|(.*))$",
    re.MULTILINE,
)
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="([^"\\]*)"(,|$)')
_ALLOWED = {"counter": ("",), "gauge": ("",), "summary": ("_count", "_sum", ""),
            "histogram": ("_count", "_sum", "_bucket")}
_TYPES = ("counter", "gauge", "summary", "histogram", "untyped")

LabelSet = tuple[tuple[str, str], ...]  # sorted by label name
Sample = tuple[str, LabelSet, float]
Family = tuple[str, str, str, list[Sample]]  # name, type, help, samples

# label text -> its labels, sorted and shared by every page of the run; bounded for unbounded label values
_LABEL_TEXTS: dict[str, LabelSet] = {}
_LABEL_SETS: dict[LabelSet, LabelSet] = {}
_BOUND = 200_000


class Unrecognised(Exception):
    """The page has a line the fast path does not prove; use the reference parser."""


def shared(labels: LabelSet) -> LabelSet:
    """One tuple per distinct label set, so hundreds of snapshots do not hold hundreds of copies."""
    if len(_LABEL_SETS) > _BOUND:
        _LABEL_SETS.clear()
    return _LABEL_SETS.setdefault(labels, labels)


def families(text: str) -> Iterator[Family]:
    """(family name, type, help, samples) exactly as prometheus_client's text parser reports them: the same
    state machine (HELP and TYPE start a family, a sample outside the family's names is an untyped one),
    with strict line patterns instead of its general tokenizer. Labels come sorted and shared."""
    name, documentation, typ = "", "", "untyped"
    samples: list[Sample] = []
    allowed: tuple[str, ...] = ()
    label_texts = _LABEL_TEXTS
    for kind, candidate, rest, sample_name, body, raw_value, other in _LINE.findall(text):
        if sample_name:
            labels = label_texts.get(body) if body else ()
            if labels is None:
                labels = _labels(body)
            sample = (sample_name, labels, float(raw_value))
            if sample_name in allowed:
                samples.append(sample)
                continue
            if name:
                yield _build(name, documentation, typ, samples)
            name, documentation, typ, samples, allowed = "", "", "untyped", [], ()
            yield _build(sample_name, "", "untyped", [sample])
        elif kind == "HELP":
            if candidate != name:
                if name:
                    yield _build(name, documentation, typ, samples)
                name, typ, samples, allowed = candidate, "untyped", [], (candidate,)
            documentation = rest
        elif kind:
            if rest not in _TYPES:
                raise Unrecognised(f"# TYPE {candidate} {rest}")
            if candidate != name:
                if name:
                    yield _build(name, documentation, typ, samples)
                name, documentation, samples = candidate, "", []
            typ = rest
            allowed = tuple(name + suffix for suffix in _ALLOWED.get(typ, ("",)))
        elif other and (other[0] != "#" or other.split(None, 2)[1:2] in (["HELP"], ["TYPE"])):
            raise Unrecognised(other)  # not a line this path proves (a plain comment or a blank line is fine)
    if name:
        yield _build(name, documentation, typ, samples)


def _build(name: str, documentation: str, typ: str, samples: list[Sample]) -> Family:
    if typ == "counter":
        if name.endswith("_total"):
            name = name[: -len("_total")]
        else:
            samples = [(sample_name + "_total", labels, value) for sample_name, labels, value in samples]
    return name, "unknown" if typ == "untyped" else typ, documentation, samples


def _labels(body: str) -> LabelSet:
    labels: dict[str, str] = {}
    position = 0
    while position < len(body):
        match = _LABEL.match(body, position)
        if match is None or match.group(1) in labels or (match.group(3) == "," and match.end() == len(body)):
            raise Unrecognised(body)  # spaces, escapes, duplicates, a trailing comma: the reference decides
        labels[match.group(1)] = match.group(2)
        position = match.end()
    result = shared(tuple(sorted(labels.items())))
    if len(_LABEL_TEXTS) > _BOUND:
        _LABEL_TEXTS.clear()
    _LABEL_TEXTS[body] = result
    return result
