"""BPMN processes on SpiffWorkflow: the standard path, loops, refusals, parallel branches, and the safe
subset that definitions are held to."""

from __future__ import annotations

import pytest

from tongban.intake import process
from tongban.intake.process import ProcessError

HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" id="d" targetNamespace="t">'
)

PARALLEL = (
    HEAD
    + """
  <bpmn:process id="joint" name="联合审查" isExecutable="true">
    <bpmn:laneSet id="ls">
      <bpmn:lane id="window"><bpmn:flowNodeRef>accept</bpmn:flowNodeRef></bpmn:lane>
      <bpmn:lane id="fire"><bpmn:flowNodeRef>fire_review</bpmn:flowNodeRef></bpmn:lane>
      <bpmn:lane id="health"><bpmn:flowNodeRef>health_review</bpmn:flowNodeRef></bpmn:lane>
      <bpmn:lane id="decider"><bpmn:flowNodeRef>decide</bpmn:flowNodeRef></bpmn:lane>
    </bpmn:laneSet>
    <bpmn:startEvent id="s"/>
    <bpmn:sequenceFlow id="a" sourceRef="s" targetRef="accept"/>
    <bpmn:userTask id="accept" name="受理"/>
    <bpmn:sequenceFlow id="b" sourceRef="accept" targetRef="split"/>
    <bpmn:parallelGateway id="split"/>
    <bpmn:sequenceFlow id="c1" sourceRef="split" targetRef="fire_review"/>
    <bpmn:sequenceFlow id="c2" sourceRef="split" targetRef="health_review"/>
    <bpmn:userTask id="fire_review" name="消防审查"/>
    <bpmn:userTask id="health_review" name="卫生审查"/>
    <bpmn:sequenceFlow id="d1" sourceRef="fire_review" targetRef="join"/>
    <bpmn:sequenceFlow id="d2" sourceRef="health_review" targetRef="join"/>
    <bpmn:parallelGateway id="join"/>
    <bpmn:sequenceFlow id="e" sourceRef="join" targetRef="decide"/>
    <bpmn:userTask id="decide" name="决定"/>
    <bpmn:sequenceFlow id="f" sourceRef="decide" targetRef="done"/>
    <bpmn:endEvent id="done" name="办结"/>
  </bpmn:process>
</bpmn:definitions>"""
)


def _walk(definition: process.Definition, decisions: list[tuple[str, dict[str, object]]]) -> process.State:
    """Complete the ready step named first in each pair with its data; returns the final state."""
    instance = process.start(definition)
    now = process.state(definition, instance)
    for step, data in decisions:
        task = next(r for r in now.ready if r.step == step)
        instance, now = process.complete(definition, instance, task.task_id, data)
    return now


def test_the_standard_process_runs_accept_review_decide_deliver() -> None:
    d = process.standard()
    assert [(s.id, s.role) for s in d.steps if not s.id.startswith("supplement")] == [
        ("accept", "window"),
        ("review", "reviewer"),
        ("decide", "decider"),
        ("deliver", "window"),
    ]
    first = process.state(d, process.start(d))
    assert [(r.step, r.name, r.role) for r in first.ready] == [("accept", "受理", "window")]
    final = _walk(
        d,
        [
            ("accept", {"decision": "accept"}),
            ("review", {}),
            ("decide", {"decision": "approve"}),
            ("deliver", {}),
        ],
    )
    assert final.ready == ()
    assert final.end == "approved"


def test_supplement_loops_back_to_the_step_that_asked_and_its_decision_does_not_stick() -> None:
    d = process.standard()
    now = _walk(d, [("accept", {"decision": "accept"}), ("review", {"decision": "supplement"})])
    assert [(r.step, r.role) for r in now.ready] == [("supplement_review", "applicant")]
    # the applicant resubmits without a decision; the review is waiting again, not looping on "supplement"
    now = _walk(
        d,
        [
            ("accept", {"decision": "accept"}),
            ("review", {"decision": "supplement"}),
            ("supplement_review", {}),
        ],
    )
    assert [r.step for r in now.ready] == ["review"]


@pytest.mark.parametrize(
    ("path", "end"),
    [
        ([("accept", {"decision": "reject", "reason": "不属于本机关职权范围"})], "not_accepted"),
        ([("accept", {"decision": "accept"}), ("review", {}), ("decide", {"decision": "reject"})], "refused"),
    ],
)
def test_refusals_end_the_process(path: list[tuple[str, dict[str, object]]], end: str) -> None:
    assert _walk(process.standard(), path).end == end


def test_parallel_branches_for_several_departments_join_before_the_decision() -> None:
    d = process.load_definition(PARALLEL)
    instance = process.start(d)
    ready = process.state(d, instance).ready
    instance, now = process.complete(d, instance, ready[0].task_id, {})
    assert sorted((r.step, r.role) for r in now.ready) == [
        ("fire_review", "fire"),
        ("health_review", "health"),
    ]
    fire = next(r for r in now.ready if r.step == "fire_review")
    instance, now = process.complete(d, instance, fire.task_id, {})
    assert [r.step for r in now.ready] == ["health_review"]  # the join waits for both
    instance, now = process.complete(d, instance, now.ready[0].task_id, {})
    assert [r.step for r in now.ready] == ["decide"]
    _, now = process.complete(d, instance, now.ready[0].task_id, {})
    assert now.end == "done"


def test_a_step_completes_once() -> None:
    d = process.standard()
    instance = process.start(d)
    task = process.state(d, instance).ready[0]
    after, _ = process.complete(d, instance, task.task_id, {"decision": "accept"})
    with pytest.raises(ProcessError, match="not waiting"):
        process.complete(d, after, task.task_id, {"decision": "accept"})
    with pytest.raises(ProcessError, match="no step"):
        process.complete(d, after, "not-a-uuid", {})


@pytest.mark.parametrize(
    ("condition", "fragment"),
    [
        ('__import__("os").system("id")', "Call"),
        ("decision.__class__", "Attribute"),
        ("[x for x in decision]", "ListComp"),
        ("decision ==", "not an expression"),
    ],
)
def test_conditions_outside_the_grammar_are_refused(condition: str, fragment: str) -> None:
    xml = process.standard().xml.replace('decision == "reject"', condition.replace('"', "&quot;"), 1)
    with pytest.raises(ProcessError, match=fragment):
        process.load_definition(xml)


def test_conditions_evaluate_comparisons_membership_and_logic() -> None:
    tree = process.check_condition('decision in ("reject", "withdraw") and not urgent or amount >= 100')
    assert process._value(tree, {"decision": "reject", "urgent": False})
    assert not process._value(tree, {"decision": "approve", "amount": 10})
    assert process._value(tree, {"decision": "approve", "amount": 100})
    assert not process._value(process.check_condition("amount > 5"), {})  # missing is never greater


@pytest.mark.parametrize(
    ("xml", "fragment"),
    [
        (
            PARALLEL.replace(
                '<bpmn:userTask id="decide" name="决定"/>',
                '<bpmn:scriptTask id="decide"><bpmn:script>x=1</bpmn:script></bpmn:scriptTask>',
            ),
            "scriptTask",
        ),
        (
            PARALLEL.replace('<bpmn:userTask id="decide" name="决定"/>', '<bpmn:serviceTask id="decide"/>'),
            "serviceTask",
        ),
        (PARALLEL.replace("<bpmn:flowNodeRef>decide</bpmn:flowNodeRef>", ""), "in no lane"),
        ("<definitions/>", "not a BPMN 2.0 document"),
        ("<bpmn:definitions", "not well-formed"),
        (PARALLEL.replace('isExecutable="true"', 'isExecutable="false"'), "exactly one executable"),
    ],
)
def test_unsafe_or_unusable_definitions_are_refused(xml: str, fragment: str) -> None:
    with pytest.raises(ProcessError, match=fragment):
        process.load_definition(xml)


def test_entities_in_a_definition_are_refused() -> None:
    xml = '<?xml version="1.0"?><!DOCTYPE d [<!ENTITY secret SYSTEM "file:///etc/passwd">]>' + PARALLEL.split(
        "?>", 1
    )[1].replace('name="联合审查"', 'name="&secret;"')
    with pytest.raises(ProcessError, match="external entity"):
        process.load_definition(xml)
