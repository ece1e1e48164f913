"""Back-office processes as standard BPMN 2.0, run by SpiffWorkflow.

Each service item's approval process is a BPMN definition (the standard one, ``data/standard_process.bpmn``:
受理 → 审查 → 决定 → 送达 with 补正 loops and refusals; or an item's own, e.g. with parallel branches for
several departments). SpiffWorkflow parses and runs it; a running instance is serialised to JSON and kept
with the application, so the process survives restarts and each step is one transaction.

Definitions are data written by staff, so they are held to a safe subset: the XML is parsed without DTDs,
entities or network access; script and service tasks are refused (nothing executes code); gateway
conditions are expressions over the task data in a small grammar (names, literals, comparisons,
``and``/``or``/``not``, ``in``), checked when the definition is loaded and evaluated by our own
interpreter, never by ``eval``. User tasks name their role by their lane (``window``, ``reviewer``,
``decider``, ``applicant`` ...).
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import lru_cache
from importlib import resources
from typing import Any
from uuid import UUID

from lxml import etree  # type: ignore[import-untyped]
from SpiffWorkflow.bpmn import BpmnWorkflow  # type: ignore[import-untyped]
from SpiffWorkflow.bpmn.parser import BpmnParser  # type: ignore[import-untyped]
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine  # type: ignore[import-untyped]
from SpiffWorkflow.bpmn.script_engine.python_environment import (  # type: ignore[import-untyped]
    BasePythonScriptEngineEnvironment,
)
from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer  # type: ignore[import-untyped]
from SpiffWorkflow.bpmn.specs.mixins.user_task import UserTask  # type: ignore[import-untyped]
from SpiffWorkflow.exceptions import WorkflowException  # type: ignore[import-untyped]
from SpiffWorkflow.util.task import TaskState  # type: ignore[import-untyped]

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
_NS = {"bpmn": BPMN_NS}
#: Elements that would run code or call out: refused in a definition.
_FORBIDDEN = ("scriptTask", "serviceTask", "businessRuleTask", "sendTask", "receiveTask")
MAX_BYTES = 500_000


class ProcessError(ValueError):
    """A process definition that cannot be used, or a step that does not fit the running process."""


# --- conditions ------------------------------------------------------------------------------------


_ALLOWED_NODES = (
    ast.Expression,
    ast.BoolOp,
    ast.And,
    ast.Or,
    ast.UnaryOp,
    ast.Not,
    ast.Compare,
    ast.Eq,
    ast.NotEq,
    ast.Lt,
    ast.LtE,
    ast.Gt,
    ast.GtE,
    ast.In,
    ast.NotIn,
    ast.Name,
    ast.Load,
    ast.Constant,
    ast.Tuple,
    ast.List,
)


def check_condition(expression: str) -> ast.Expression:
    """Parse a gateway condition, refusing anything outside the grammar."""
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        raise ProcessError(f"condition {expression!r}: not an expression ({exc.msg})") from exc
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED_NODES):
            raise ProcessError(
                f"condition {expression!r}: {type(node).__name__} is not allowed "
                "(use names, literals, comparisons, and/or/not, in)"
            )
    return tree


def _value(node: ast.AST, data: Mapping[str, Any]) -> Any:
    if isinstance(node, ast.Expression):
        return _value(node.body, data)
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return data.get(node.id)
    if isinstance(node, ast.Tuple | ast.List):
        return [_value(e, data) for e in node.elts]
    if isinstance(node, ast.UnaryOp):  # only ``not``
        return not _value(node.operand, data)
    if isinstance(node, ast.BoolOp):
        values = (_value(v, data) for v in node.values)
        return all(values) if isinstance(node.op, ast.And) else any(values)
    if isinstance(node, ast.Compare):
        left = _value(node.left, data)
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            right = _value(right_node, data)
            try:
                ok = _compare(op, left, right)
            except TypeError:
                ok = False
            if not ok:
                return False
            left = right
        return True
    raise ProcessError(f"cannot evaluate {type(node).__name__}")


def _compare(op: ast.cmpop, left: Any, right: Any) -> bool:
    if isinstance(op, ast.Eq):
        return bool(left == right)
    if isinstance(op, ast.NotEq):
        return bool(left != right)
    if isinstance(op, ast.In):
        return bool(left in right)
    if isinstance(op, ast.NotIn):
        return bool(left not in right)
    if left is None or right is None:
        return False
    if isinstance(op, ast.Lt):
        return bool(left < right)
    if isinstance(op, ast.LtE):
        return bool(left <= right)
    if isinstance(op, ast.Gt):
        return bool(left > right)
    return bool(left >= right)


class _SafeEnvironment(BasePythonScriptEngineEnvironment):  # type: ignore[misc]
    """Evaluates gateway conditions with our grammar; executes nothing."""

    def evaluate(self, expression: str, context: Mapping[str, Any], external_context: Any = None) -> Any:
        return _value(check_condition(expression), dict(context))

    def execute(self, script: str, context: Any, external_context: Any = None) -> bool:
        raise ProcessError("scripts are not run")

    def call_service(self, context: Any, **kwargs: Any) -> Any:
        raise ProcessError("service calls are not run")


_ENGINE = PythonScriptEngine(environment=_SafeEnvironment())
_SERIALIZER = BpmnWorkflowSerializer()


# --- definitions -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """A user task of a definition: its id, name and the role (lane) that does it."""

    id: str
    name: str
    role: str
    #: The decisions the step may take: the words the following gateway routes on (``decision == "x"``)
    #: plus its default flow's name (or ``proceed``); ``done`` when no gateway follows.
    decisions: tuple[str, ...] = ("done",)


@dataclass(frozen=True)
class Definition:
    process_id: str
    name: str
    steps: tuple[Step, ...]
    #: End events by id with their names (办结, 不予受理 ...).
    ends: dict[str, str]
    xml: str
    #: The steps a new instance waits in first (受理): the application is ``submitted`` while it waits
    #: there, and the time limit starts when it leaves them for the rest of the process.
    first_steps: tuple[str, ...] = ()

    def step(self, step_id: str) -> Step | None:
        return next((s for s in self.steps if s.id == step_id), None)


def _parse_xml(xml: str | bytes) -> etree._Element:
    data = xml.encode() if isinstance(xml, str) else xml
    if len(data) > MAX_BYTES:
        raise ProcessError(f"a process definition may be at most {MAX_BYTES // 1000} kB")
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise ProcessError(f"not well-formed XML: {exc}") from exc
    if root.getroottree().docinfo.doctype:
        raise ProcessError("document type declarations (DTDs, entities) are not allowed")
    if root.tag != f"{{{BPMN_NS}}}definitions":
        raise ProcessError("not a BPMN 2.0 document (the root must be bpmn:definitions)")
    return root


def _spec(root: etree._Element) -> tuple[Any, dict[str, Any], str]:
    processes = root.findall("bpmn:process", _NS)
    executable = [p for p in processes if p.get("isExecutable", "true") != "false"]
    if len(executable) != 1:
        raise ProcessError("a definition holds exactly one executable process")
    process_id = executable[0].get("id") or ""
    parser = BpmnParser()
    try:
        parser.add_bpmn_xml(etree.ElementTree(root), filename="definition.bpmn")
        spec = parser.get_spec(process_id)
        subprocesses = parser.get_subprocess_specs(process_id)
    except (WorkflowException, ValueError, KeyError) as exc:
        raise ProcessError(f"the process cannot be run: {exc}") from exc
    return spec, subprocesses, process_id


def load_definition(xml: str | bytes) -> Definition:
    """Check and describe a process definition (refusing code, unsafe XML and bad conditions)."""
    root = _parse_xml(xml)
    for tag in _FORBIDDEN:
        found = root.findall(f".//bpmn:{tag}", _NS)
        if found:
            raise ProcessError(
                f"{tag} elements run code or call out and are not allowed ({found[0].get('id')})"
            )
    for cond in root.findall(".//bpmn:conditionExpression", _NS):
        check_condition(cond.text or "")
    _, _, process_id = _spec(root)
    lanes: dict[str, str] = {}
    for lane in root.findall(".//bpmn:lane", _NS):
        for ref in lane.findall("bpmn:flowNodeRef", _NS):
            lanes[(ref.text or "").strip()] = lane.get("id") or ""
    steps = []
    for node in root.findall(".//bpmn:userTask", _NS) + root.findall(".//bpmn:manualTask", _NS):
        node_id = node.get("id") or ""
        if node_id not in lanes:
            raise ProcessError(f"user task {node_id!r} is in no lane: the lane names the role that does it")
        steps.append(Step(node_id, node.get("name") or node_id, lanes[node_id], _decisions(root, node_id)))
    if not steps:
        raise ProcessError("the process has no user tasks: nothing for officers to do")
    ends = {
        e.get("id") or "": e.get("name") or e.get("id") or "" for e in root.findall(".//bpmn:endEvent", _NS)
    }
    definition = Definition(
        process_id=process_id,
        name=executable_name(root, process_id),
        steps=tuple(steps),
        ends=ends,
        xml=etree.tostring(root, encoding="unicode"),
    )
    first = state(definition, start(definition))
    if not first.ready:
        raise ProcessError("a new instance waits in no user task: the start event must lead to one")
    return replace(definition, first_steps=tuple(r.step for r in first.ready))


_DECISION_LITERAL = re.compile(r"""decision\s*==\s*["']([a-z][a-z_]{0,29})["']""")
_WORD = re.compile(r"^[a-z][a-z_]{0,29}$")


def _decisions(root: etree._Element, node_id: str) -> tuple[str, ...]:
    """The decisions a user task offers, read from the exclusive gateway its outgoing flow leads to."""
    flows = root.findall(".//bpmn:sequenceFlow", _NS)
    targets = [f.get("targetRef") for f in flows if f.get("sourceRef") == node_id]
    gateways = {g.get("id"): g for g in root.findall(".//bpmn:exclusiveGateway", _NS)}
    if len(targets) != 1 or targets[0] not in gateways:
        return ("done",)
    gateway = gateways[targets[0]]
    words: list[str] = []
    for flow in flows:
        if flow.get("sourceRef") != gateway.get("id"):
            continue
        if flow.get("id") == gateway.get("default"):
            name = (flow.get("name") or "").strip()
            words.insert(0, name if _WORD.match(name) else "proceed")
            continue
        cond = flow.find("bpmn:conditionExpression", _NS)
        words.extend(_DECISION_LITERAL.findall(cond.text or "") if cond is not None else [])
    return tuple(dict.fromkeys(words)) or ("done",)


def executable_name(root: etree._Element, process_id: str) -> str:
    node = root.find(f"bpmn:process[@id='{process_id}']", _NS)
    return (node.get("name") if node is not None else None) or process_id


@lru_cache(maxsize=1)
def standard() -> Definition:
    return load_definition(
        (resources.files("tongban.intake") / "data" / "standard_process.bpmn").read_bytes()
    )


def example(name: str) -> str:
    """The XML of an example definition shipped with the package (``parallel_departments`` ...)."""
    if not re.fullmatch(r"[a-z_]+", name):
        raise ProcessError(f"no example {name!r}")
    path = resources.files("tongban.intake") / "data" / "examples" / f"{name}.bpmn"
    if not path.is_file():
        raise ProcessError(f"no example {name!r}")
    return path.read_text(encoding="utf-8")


@lru_cache(maxsize=64)
def _cached_spec(xml: str) -> tuple[Any, dict[str, Any]]:
    spec, subprocesses, _ = _spec(_parse_xml(xml))
    return spec, subprocesses


# --- instances -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ready:
    """A step waiting for someone: the task's id in the instance, the step and its role."""

    task_id: str
    step: str
    name: str
    role: str


@dataclass(frozen=True)
class State:
    """Where an instance stands: the steps waiting, and the end reached (None while running)."""

    ready: tuple[Ready, ...]
    end: str | None


def _run(workflow: Any) -> None:
    workflow.do_engine_steps()
    workflow.refresh_timers()
    workflow.do_engine_steps()


def start(definition: Definition) -> str:
    """A new instance of ``definition``, run up to its first user task; returned serialised."""
    spec, subprocesses = _cached_spec(definition.xml)
    workflow = BpmnWorkflow(spec, subprocesses, script_engine=_ENGINE)
    _run(workflow)
    return str(_SERIALIZER.serialize_json(workflow))


def _load(serialised: str) -> Any:
    workflow = _SERIALIZER.deserialize_json(serialised)
    workflow.script_engine = _ENGINE
    return workflow


def state(definition: Definition, serialised: str) -> State:
    workflow = _load(serialised)
    ready = []
    for task in workflow.get_tasks(state=TaskState.READY):
        if isinstance(task.task_spec, UserTask) or getattr(task.task_spec, "manual", False):
            step = definition.step(task.task_spec.name)
            ready.append(
                Ready(
                    task_id=str(task.id),
                    step=task.task_spec.name,
                    name=step.name if step else task.task_spec.name,
                    role=step.role if step else "",
                )
            )
    end = None
    if workflow.is_completed():
        reached = [
            t.task_spec.name
            for t in workflow.get_tasks(state=TaskState.COMPLETED)
            if t.task_spec.name in definition.ends
        ]
        end = reached[-1] if reached else None
    return State(ready=tuple(ready), end=end)


def complete(
    definition: Definition, serialised: str, task_id: str, data: Mapping[str, Any]
) -> tuple[str, State]:
    """Complete a ready user task with the officer's data (``decision`` ...) and run on to the next ones."""
    workflow = _load(serialised)
    try:
        task = workflow.get_task_from_id(UUID(task_id))
    except (ValueError, KeyError, WorkflowException) as exc:
        raise ProcessError(f"no step {task_id!r} in this process") from exc
    if task is None or task.state != TaskState.READY:
        raise ProcessError("that step is not waiting (someone else may have completed it)")
    # A decision belongs to the step that made it: an earlier step's decision never routes this one.
    task.data.update({"decision": None, **json.loads(json.dumps(dict(data)))})
    try:
        task.run()
        _run(workflow)
    except WorkflowException as exc:
        raise ProcessError(f"the process could not continue: {exc}") from exc
    out = str(_SERIALIZER.serialize_json(workflow))
    return out, state(definition, out)
