"""Error injection for the simulator, from its options or from markers in the prompt."""

from __future__ import annotations

import re

import msgspec

from backends.sim.options import SimOptions

_MARKER = re.compile(r"\[\[sim:(fail_before|fail_after=(\d+)|hang)\]\]")
_CRASH = "[[sim:crash]]"


class FaultPlan(msgspec.Struct, frozen=True):
    fail_before: bool = False
    fail_after: int | None = None
    hang: bool = False
    crash: bool = False
    """Kill the whole process (a worker dying mid-job); only with ``allow_crash``."""


def plan_faults(options: SimOptions, prompt: str) -> FaultPlan:
    if options.allow_crash and _CRASH in prompt:
        return FaultPlan(crash=True)
    if options.faults_from_prompt:
        m = _MARKER.search(prompt)
        if m:
            if m.group(1) == "fail_before":
                return FaultPlan(fail_before=True)
            if m.group(1) == "hang":
                return FaultPlan(hang=True)
            return FaultPlan(fail_after=int(m.group(2)))
    if options.fault == "fail_before_first_token":
        return FaultPlan(fail_before=True)
    if options.fault == "fail_after_tokens":
        return FaultPlan(fail_after=options.fault_after_tokens)
    if options.fault == "hang":
        return FaultPlan(hang=True)
    return FaultPlan()
