"""The decision keys of the main screen: approve (with the override dialog), reject, roll back, undo, train,
re-run evals and cancel. Mixed into MainScreen, which supplies the ladder, the selection, the job and notify."""

from __future__ import annotations

import time

from loop.jobs import promotion
from tui.messages import EngineRequest
from tui.screens.model import DECIDED

UNDO_SECONDS = 10.0
CANCEL_CONFIRM_SECONDS = 3.0


class DecisionKeys:
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "undo":
            return self.undo is not None
        if action == "cancel_training":
            return bool(self.job and self.job.alive)
        return True

    def _need_selection(self) -> int | None:
        row = self._selected_row()
        if row is None:
            self.notify("Select a generation on the ladder first.", severity="warning")
            return None
        if row.status not in DECIDED:
            self.notify(f"G{row.id} is {row.status}: only evaluated generations can be approved or rejected.",
                        severity="warning", markup=False)
            return None
        return row.id

    def action_approve(self) -> None:
        if (gen := self._need_selection()) is None:
            return
        row = self._selected_row()
        gates = self.detail.gates if self.detail is not None and self.detail.gen.id == gen else ()
        if asks_first(row, gates):
            from tui.screens.override import OverrideScreen  # noqa: PLC0415

            def answered(go: bool | None) -> None:
                if go:
                    self.post_message(EngineRequest("approve", (gen,)))

            self.app.push_screen(OverrideScreen(row, gates, UNDO_SECONDS), answered)
            return
        self.post_message(EngineRequest("approve", (gen,)))

    def action_reject(self) -> None:
        if (gen := self._need_selection()) is not None:
            self.post_message(EngineRequest("reject", (gen,)))

    def action_rollback(self) -> None:
        self.post_message(EngineRequest("rollback"))

    def offer_undo(self, from_gen: int, to_gen: int, key: str, kind: str = "rollback") -> None:
        """For a few seconds, the undo key puts back a rollback (from_gen -> to_gen) or an override (to_gen approved
        over its gates while from_gen was active)."""
        self.undo, self.undo_kind = (from_gen, to_gen), kind
        if self._undo_timer is not None:
            self._undo_timer.stop()
        self._undo_timer = self.set_timer(UNDO_SECONDS, self.clear_undo)
        self.refresh_bindings()
        did = (f"Rolled back from G{from_gen} to G{to_gen}" if kind == "rollback" else
               f"G{to_gen} approved over its gates (G{from_gen} was active)")
        self.notify(f"{did}. Press {key} within {UNDO_SECONDS:.0f} s to undo.",
                    title="Rollback" if kind == "rollback" else "Override", timeout=UNDO_SECONDS, markup=False)

    def clear_undo(self) -> None:
        self.undo = None
        self.refresh_bindings()

    def action_undo(self) -> None:
        if self.undo is None:
            return
        from_gen, to_gen = self.undo
        self.clear_undo()
        self.post_message(EngineRequest("undo_rollback" if self.undo_kind == "rollback" else "undo_approve",
                                        (from_gen, to_gen)))

    def action_train(self) -> None:
        self.post_message(EngineRequest("train"))

    def action_evaluate(self) -> None:
        if (gen := self._need_selection()) is not None:
            self.post_message(EngineRequest("evaluate", (gen,)))

    def action_cancel_training(self) -> None:
        now = time.monotonic()
        if self._cancel_armed_at is None or now - self._cancel_armed_at > CANCEL_CONFIRM_SECONDS:
            self._cancel_armed_at = now
            gen = f"G{self.job.gen_id}" if self.job else "the running generation"
            self.notify(f"Press the key again within {CANCEL_CONFIRM_SECONDS:.0f} s to cancel {gen}.",
                        severity="warning", timeout=CANCEL_CONFIRM_SECONDS, markup=False)
            return
        self._cancel_armed_at = None
        self.post_message(EngineRequest("cancel"))


def asks_first(row, gates) -> bool:
    """Approving this generation overrides the gates, so the dialog asks first.

    The gates' own verdict, kept in the reason through a later reject by the user, decides when the
    detail (with its gate checks) is not loaded yet; one only the user rejected is approved at once.
    """
    return row.status == "rejected" and (any(not c.passed for c in gates) or promotion.gates_reason(row) is not None)
