"""How a bundle's rollout is shown: `fleet rollout status`, `/status` and `/metrics`.

One place for the words, so the CLI's lines, `fleet serve`'s `/status` (`rollouts`, next
to the unit rows that say why each unit waits) and the `fleet_rollout_wave` metric always
agree with the rollout records (`fleet.rollout.record`):

- `status_lines`: per bundle its revision and outcome, per wave its verdict, per gate
  its verdict, its message and the last values it measured (`fleet rollout status`);
- `rollout_json`: the same as JSON (the lines included), for `/status`;
- `wave_phase`: a wave's phase from the tracker's verdicts: `verifying` (Ready, its bake
  and gates running), `passed`, `failed`, `halted` (a gate could not tell) or
  `rolledBack`; None when the record has no say (not reached yet: the unit rows decide
  between `pending` and `progressing`).

Nothing here holds a secret: gate messages are one line of measured values (the gate
API's rule, `fleet.gates.model.GateResult`), and a gate's `memory` (its own counts) is
left out.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

from fleet.gates.model import GateVerdict
from fleet.rollout import record as rec
from fleet.rollout.record import BundleRollout, Controls, GateRecord, WaveRecord

SHOWN_MEASUREMENTS = 3


def _stamp(at: float | None) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(at)) if at else "-"


def status_lines(records: Iterable[BundleRollout], controls: Mapping[str, Controls]) -> list[str]:
    """What `fleet rollout status` prints: per bundle its revision and outcome, per wave
    its verdict, per gate its verdict and the last values it measured."""
    lines: list[str] = []
    for found in records:
        control = controls.get(found.bundle)
        flags = " (paused)" if control is not None and control.paused else ""
        stopped = stopped_by_hand(control, found.revision)
        flags += f" ({stopped})" if stopped else ""
        message = f": {found.message}" if found.message else ""
        at = found.commit[:12] or "-"
        lines.append(f"{found.bundle}: revision {found.revision} at {at}: "
                     f"{found.outcome}{flags}{message}")  # fmt: skip
        for wave in found.waves.values():
            lines += _wave_lines(wave)
        if found.rejected:
            shown = "; ".join(f"{rev}: {why}" for rev, why in found.rejected.items())
            lines.append(f"  not rolled out again: {shown}")
    return lines


def stopped_by_hand(control: Controls | None, revision: str) -> str | None:
    """`aborted` / `rolled back by hand` when an operator stopped `revision`, else None."""
    if control is None:
        return None
    if revision in control.aborted:
        return "aborted by `fleet rollout abort`"
    if revision in control.rolled_back:
        return f"rolled back by `fleet rollout rollback` ({control.rolled_back[revision]})"
    return None


def _wave_lines(wave: WaveRecord) -> list[str]:
    since = f" since {_stamp(wave.ready_at)}" if wave.ready_at else ""
    shown = f": {wave.message}" if wave.message else ""
    lines = [f"  wave {wave.name}: {wave.verdict}{since}{shown}"]
    for gate in wave.gates.values():
        said = gate.message.removeprefix(f"{gate.name}: ")
        lines.append(f"    gate {gate.name} ({gate.type}): {gate.verdict}: {said}")
        values = _measured(gate)
        if values:
            lines.append(f"      last measurements: {', '.join(values)}")
    if wave.rolled_back:
        lines.append(f"    rolled back on: {', '.join(wave.rolled_back)}")
    return lines


def _measured(gate: GateRecord) -> list[str]:
    return [f"{m.cluster or '*'}={m.value}{'' if m.ok else ' (bad)'}"
            for m in gate.measurements[-SHOWN_MEASUREMENTS:]]  # fmt: skip


def rollout_json(found: BundleRollout, control: Controls | None) -> dict[str, Any]:
    """One bundle's rollout for `/status`: outcome, waves with their phase, verdict and
    gates (message and last measurements), what is not rolled out again, and `lines`
    (`fleet rollout status`'s text)."""
    undecided = "pending" if found.finished else "progressing"
    return {
        "bundle": found.bundle,
        "revision": found.revision,
        "commit": found.commit,
        "outcome": found.outcome,
        "message": found.message,
        "failedWave": found.failed_wave,
        "startedAt": found.started_at,
        "finishedAt": found.finished_at,
        "paused": bool(control and control.paused),
        "pauseReason": control.reason if control is not None and control.paused else "",
        "waves": [_wave_json(wave, undecided) for wave in found.waves.values()],
        "rejected": dict(found.rejected),
        "lines": status_lines([found], {found.bundle: control} if control else {}),
    }


def _wave_json(wave: WaveRecord, undecided: str) -> dict[str, Any]:
    return {
        "name": wave.name,
        "phase": wave_phase(wave) or undecided,
        "verdict": wave.verdict,
        "message": wave.message,
        "readyAt": wave.ready_at,
        "passedAt": wave.passed_at,
        "clusters": wave.clusters,
        "rolledBack": wave.rolled_back,
        "gates": [_gate_json(gate) for gate in wave.gates.values()],
    }


def _gate_json(gate: GateRecord) -> dict[str, Any]:
    return {
        "name": gate.name,
        "type": gate.type,
        "verdict": gate.verdict,
        "message": gate.message,
        "checkedAt": gate.checked_at,
        "nextCheck": gate.next_check,
        "measurements": [m.to_json() for m in gate.measurements[-SHOWN_MEASUREMENTS:]],
    }


def wave_phase(wave: WaveRecord) -> str | None:
    """The phase the tracker's verdict puts a wave in (module doc); None: not decided
    and not being verified."""
    if wave.verdict == GateVerdict.PASSED.value:
        return "passed"
    if wave.verdict == GateVerdict.FAILED.value:
        return rec.ROLLED_BACK if wave.rolled_back else "failed"
    if wave.verdict == GateVerdict.INCONCLUSIVE.value:
        return rec.HALTED
    if wave.ready_at is not None:
        return "verifying"
    return None
