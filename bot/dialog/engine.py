"""Stepping through dialog graphs at run time: forgiving, and it never changes the dialog state itself."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from bot.core.annotations import Annotations
from bot.core.state import DialogState
from bot.dialog.conditions import ConditionContext, matches
from bot.dialog.flows import Flow, FlowRegistry
from bot.dialog.schema import Transition

log = logging.getLogger(__name__)

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class GraphStep:
    """The node a turn arrives at, rendered for the user's language; the dispatcher applies it."""

    flow: str
    node: str
    response: str | None
    suggestions: tuple[str, ...] = ()
    set_slots: dict[str, Any] = field(default_factory=dict)
    skill: str | None = None  # hand over to this skill after the response
    end: bool = False  # the flow ends after this node
    # Arrived at through the flow's fallback (no transition matched): a skill that claims the
    # message with confidence takes it instead (the dispatcher's routing policy).
    fallback: bool = False


class GraphEngine:
    """Finds the next node: the current node's transitions and its flow's global transitions,
    then the flow's fallback; with no flow active, the triggers of all flows."""

    def __init__(self, registry: FlowRegistry) -> None:
        self.registry = registry
        # Triggers in the order they are tried: priority (highest first), then flow id, then as written.
        entries = [(flow, trigger) for _, flow in sorted(registry.flows.items()) for trigger in flow.triggers]
        self._triggers = sorted(entries, key=lambda entry: -entry[1].priority)

    def step(self, state: DialogState, text: str, annotations: Annotations, language: str) -> GraphStep | None:
        """The step for this message, or None when no graph claims it (the dispatcher routes elsewhere)."""
        flow = self.registry.flows.get(state.flow) if state.flow else None
        node = flow.nodes.get(state.node) if flow is not None and state.node else None
        if flow is None or node is None:
            if state.flow is not None:
                # Forgiving: a graph edited since this conversation was saved; start afresh.
                log.info("dialog position %s.%s no longer exists; treating as no flow", state.flow, state.node)
            return self._enter(state, text, annotations, language)

        context = ConditionContext(text, annotations, state.slots, node.suggestion_variants())
        for transition in _in_order(node.transitions, flow.global_transitions):
            if matches(transition.when, context):
                return self._arrive(flow, transition.to, state.slots, language)
        if flow.fallback is not None:
            return replace(self._arrive(flow, flow.fallback, state.slots, language), fallback=True)
        return None

    def _enter(self, state: DialogState, text: str, annotations: Annotations, language: str) -> GraphStep | None:
        context = ConditionContext(text, annotations, state.slots)
        for flow, trigger in self._triggers:
            if matches(trigger.when, context):
                return self._arrive(flow, trigger.to or flow.start, state.slots, language)
        return None

    def _arrive(self, from_flow: Flow, target: str, slots: Mapping[str, Any], language: str) -> GraphStep:
        flow_id, name = from_flow.resolve(target)
        node = self.registry.flows[flow_id].nodes[name]  # targets were checked at load time
        set_slots = dict(node.actions.set_slots)
        text = node.text(language)
        return GraphStep(
            flow=flow_id,
            node=name,
            # The node's own slots count already: "set: {genre: fantasy}" then "a {genre} story".
            response=fill_slots(text, {**slots, **set_slots}) if text is not None else None,
            suggestions=node.quick_replies(language),
            set_slots=set_slots,
            skill=node.actions.skill,
            end=node.actions.end,
        )


def fill_slots(template: str, slots: Mapping[str, Any]) -> str:
    """Replace {name} by the slot's value; an unknown or empty slot stays as written, never raises."""

    def value(match: re.Match[str]) -> str:
        found = slots.get(match[1])
        return match[0] if found is None else str(found)

    return _PLACEHOLDER.sub(value, template)


def _in_order(own: tuple[Transition, ...], shared: tuple[Transition, ...]) -> list[Transition]:
    # sorted() is stable: equal priorities keep declaration order, the node's own before the global ones.
    return sorted(own + shared, key=lambda t: -t.priority)
