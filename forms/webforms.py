"""Our XForms in a second real engine: `@getodk/xforms-engine`, the engine behind ODK Web Forms, under Node.

ODK Validate (JavaRosa, the engine of ODK Collect and KoBoCollect) checks that a form compiles and its
expressions parse. This engine goes further: it loads the form, fills it in the way an enumerator
does, evaluates `relevant`, `constraint`, `calculate` and `choice_filter`, gives constraint messages in
each language, and serializes the OpenRosa submission XML. It also restores a submission, which lets
the tests ask whether a generated submission is one the form could have produced.

`forms/engine/driver.mjs` does the work in one Node process per batch (Node costs about 1.5 s to start);
`forms/engine/package.json` pins the engine, and `scripts/setup` installs it with `npm ci`.
"""

from __future__ import annotations

import atexit
import json
import queue
import re
import shutil
import subprocess
import tempfile
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.errors import FormBuildError
from forms.schema import FormSchema, is_answer_key

ENGINE_DIR = Path(__file__).parent / "engine"
DRIVER = ENGINE_DIR / "driver.mjs"
ROOT = "/data"  # pyxform's root element (compile_xform passes form_name="data")
_INDEX = re.compile(r"\[\d+\]")


class EngineUnavailable(FormBuildError):
    """Node or the engine's npm packages are not installed."""


def unavailable_reason() -> str | None:
    """Why the engine cannot run here, or None when it can."""
    if shutil.which("node") is None:
        return "Node.js is not installed (Debian: apt-get install nodejs npm)"
    if not (ENGINE_DIR / "node_modules" / "@getodk" / "xforms-engine").is_dir():
        return f"the engine's npm packages are not installed: run `npm ci --prefix {ENGINE_DIR}` (scripts/setup does)"
    return None


@dataclass(frozen=True, slots=True)
class Violation:
    condition: str  # "constraint" or "required"
    messages: Mapping[str, str | None]  # language ("Arabic (ar)") → the form's message, None when it has none


@dataclass(frozen=True, slots=True)
class NodeState:
    ref: str  # the engine's reference: /data/participants[2]/sex
    type: str  # the engine's node type: input, select, group, repeat-instance, model-value, note, ...
    relevant: bool
    required: bool
    value: str | None  # as it would be serialized; None for groups and repeats
    violation: Violation | None

    @property
    def path(self) -> str:
        """The question's path in KoBo's JSON: participants/sex (no root, no repeat indexes)."""
        return _INDEX.sub("", self.ref)[len(ROOT) + 1:]


@dataclass(frozen=True, slots=True)
class EngineRun:
    """The outcome of one job: the form's load status and, when it loaded, the state of every node."""

    status: str  # the engine's load status: success, warning or failure
    error: str | None
    languages: tuple[str, ...]
    nodes: tuple[NodeState, ...]
    submission: str | None  # OpenRosa submission XML, when serialized
    payload_status: str | None  # "ready" when the engine would submit it, "pending" while a node is invalid

    def node(self, ref: str) -> NodeState:
        for n in self.nodes:
            if n.ref == ref:
                return n
        raise KeyError(f"the engine shows no node {ref}")

    @property
    def violations(self) -> list[NodeState]:
        return [n for n in self.nodes if n.violation is not None]


def answer(ref: str, value: str | Sequence[str]) -> dict[str, Any]:
    """A fill step: answer the question at `ref` (a list of choice names for a select_multiple)."""
    return {"ref": ref, "value": value if isinstance(value, str) else list(value)}


def add_repeats(ref: str, count: int = 1) -> dict[str, Any]:
    """A fill step: add `count` instances to the repeat at `ref` (it starts with one)."""
    return {"ref": ref, "add": count}


class EngineSession:
    """One Node process serving requests line by line (`driver.mjs --lines`): Node and the engine start once."""

    def __init__(self) -> None:
        reason = unavailable_reason()
        if reason:
            raise EngineUnavailable(f"cannot run @getodk/xforms-engine: {reason}")
        # stderr to a file, not a pipe: a long session's warnings must never fill a pipe nobody reads
        self._stderr = tempfile.TemporaryFile(mode="w+", encoding="utf-8")  # noqa: SIM115 (closed by close())
        self._proc = subprocess.Popen(["node", str(DRIVER), "--lines"], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=self._stderr, text=True, encoding="utf-8",
                                      cwd=ENGINE_DIR, bufsize=1)
        self._answers: queue.Queue[str] = queue.Queue()
        self._lock = threading.Lock()
        threading.Thread(target=self._read, name="xforms-engine", daemon=True).start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            self._answers.put(line)
        self._answers.put("")  # the process ended

    @property
    def alive(self) -> bool:
        return self._proc.poll() is None

    def request(self, payload: str, *, timeout: float) -> str:
        assert self._proc.stdin is not None
        with self._lock:
            try:
                self._proc.stdin.write(payload + "\n")
                self._proc.stdin.flush()
                line = self._answers.get(timeout=timeout)
            except (BrokenPipeError, queue.Empty) as exc:
                self._close_process()
                why = "did not answer in time" if isinstance(exc, queue.Empty) else "stopped"
                raise FormBuildError(f"@getodk/xforms-engine {why} ({timeout:.0f} s allowed)") from exc
            if not line:
                self._close_process()
                self._stderr.seek(0)
                lines = [ln.strip() for ln in self._stderr.read().splitlines() if ln.strip()]
                errors = [ln for ln in lines if re.match(r"\w*Error\b", ln)]
                raise FormBuildError("@getodk/xforms-engine failed: " + (" / ".join(errors or lines[-3:]) or
                                                                          "it stopped without a word"))
            return line

    def close(self) -> None:
        self._close_process()
        self._stderr.close()

    def _close_process(self) -> None:
        if self._proc.poll() is None:
            if self._proc.stdin:
                self._proc.stdin.close()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()


_session: EngineSession | None = None
_session_lock = threading.Lock()


def _shared_session() -> EngineSession:
    global _session
    with _session_lock:
        if _session is None or not _session.alive:
            _session = EngineSession()
            atexit.register(_session.close)
        return _session


def run_jobs(forms: Mapping[str, str], jobs: Sequence[Mapping[str, Any]], *, timeout: float = 600) -> list[EngineRun]:
    """Run `jobs` (see driver.mjs) on `forms` (name → XForm XML) in the engine's Node process (started on first
    use, kept for the life of this process)."""
    answer = _shared_session().request(json.dumps({"forms": dict(forms), "jobs": list(jobs)}), timeout=timeout)
    return [_run(r) for r in json.loads(answer)["results"]]


def _run(raw: Mapping[str, Any]) -> EngineRun:
    nodes = tuple(
        NodeState(ref=n["ref"], type=n["type"], relevant=bool(n["relevant"]), required=bool(n["required"]),
                  value=n["value"],
                  violation=Violation(n["violation"]["condition"], n["violation"]["messages"])
                  if n.get("violation") else None)
        for n in raw.get("nodes") or ())
    return EngineRun(status=raw.get("status", "failure"), error=raw.get("error"),
                     languages=tuple(raw.get("languages") or ()), nodes=nodes, submission=raw.get("submission"),
                     payload_status=raw.get("payload_status"))


def fill(xform: str, steps: Sequence[Mapping[str, Any]], *, serialize: bool = True) -> EngineRun:
    """Open a new instance of the form, apply `steps` in order (see `answer`, `add_repeats`), and report."""
    [run] = run_jobs({"form": xform}, [{"kind": "fill", "form": "form", "steps": list(steps), "serialize": serialize}])
    if run.error:
        raise FormBuildError(f"@getodk/xforms-engine: {run.error}")
    return run


def instance_xml(form_id: str, version: str | None, answers: Mapping[str, Any]) -> str:
    """The OpenRosa instance of a submission given as KoBo's JSON (group/question keys, repeats as lists)."""
    attrs = {"id": form_id, **({"version": version} if version else {})}
    root = ET.Element(ROOT.strip("/"), attrs)

    def group(parent: ET.Element, tag: str) -> ET.Element:
        found = parent.find(tag)
        return found if found is not None else ET.SubElement(parent, tag)

    def put(parent: ET.Element, prefix: str, mapping: Mapping[str, Any]) -> None:
        for key, value in mapping.items():
            if not is_answer_key(key):
                continue
            *groups, name = key[len(prefix):].split("/")
            element = parent
            for g in groups:
                element = group(element, g)
            if isinstance(value, list):
                for item in value:
                    put(ET.SubElement(element, name), f"{key}/", item)
            else:
                ET.SubElement(element, name).text = str(value)

    put(root, "", answers)
    return ET.tostring(root, encoding="unicode")


def _answered(answers: Mapping[str, Any], prefix: str = "", at: str = ROOT) -> Iterable[tuple[str, str]]:
    """(engine reference, value) of every answer in KoBo's JSON, repeats indexed from 1."""
    for key, value in answers.items():
        if not is_answer_key(key):
            continue
        ref = f"{at}/{key[len(prefix):]}"
        if isinstance(value, list):
            for index, item in enumerate(value, start=1):
                yield from _answered(item, f"{key}/", f"{ref}[{index}]")
        else:
            yield ref, str(value)


def _same(computed: str | None, stored: str) -> bool:
    """A calculation's result as the engine and as the submission have it: 73.0 and 73 are the same number."""
    if computed == stored:
        return True
    try:
        return float(computed or "nan") == float(stored)
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class RestoreFinding:
    submission: int  # index in the sample
    ref: str
    problem: str

    def __str__(self) -> str:
        return f"submission {self.submission}, {self.ref}: {self.problem}"


def restore_findings(schema: FormSchema, xform: str, submissions: Sequence[Mapping[str, Any]]) -> list[RestoreFinding]:
    """Restore each submission (KoBo JSON answers) of the form `schema` describes and `xform` compiles in the
    engine, and say what the form would not have produced: an answer to a question that is not relevant or not in
    the form, a constraint or `required` the engine finds violated, a calculation whose stored result differs
    from the engine's (metadata such as `start` is the device's, not a calculation)."""
    metadata = {f.path for f in schema.fields if f.is_metadata}
    jobs = [{"kind": "restore", "form": "form", "instance": instance_xml(schema.form_id, schema.version, s)}
            for s in submissions]
    findings: list[RestoreFinding] = []
    for index, (run, answers) in enumerate(zip(run_jobs({"form": xform}, jobs), submissions, strict=True)):
        if run.error or run.status == "failure":
            findings.append(RestoreFinding(index, ROOT, f"the engine could not restore it: {run.error}"))
            continue
        by_ref = {n.ref: n for n in run.nodes}
        for ref, value in _answered(answers):
            node = by_ref.get(ref)
            if node is None:
                findings.append(RestoreFinding(index, ref, f"answered ({value!r}) but the form has no such question"))
            elif not node.relevant and value != "":
                findings.append(RestoreFinding(index, ref, f"answered ({value!r}) but not relevant"))
            elif node.type == "model-value" and node.path not in metadata and not _same(node.value, value):
                findings.append(RestoreFinding(index, ref, f"stored calculation {value!r}, the form computes "
                                                           f"{node.value!r}"))
        for node in run.violations:
            violation = node.violation
            if node.relevant and violation is not None:
                message = next(iter(violation.messages.values()), None)
                findings.append(RestoreFinding(index, node.ref, f"{violation.condition} violated (value {node.value!r}"
                                                                f"{'; ' + message if message else ''})"))
    return findings
