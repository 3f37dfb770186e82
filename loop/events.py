"""One small event-log interface with a store-backed and a null implementation."""

from __future__ import annotations

import json
from typing import Any, Protocol

from store.db import session
from store.tables import Event


class EventLog(Protocol):
    def emit(self, kind: str, message: str = "", **data: Any) -> None: ...


class StoreEvents:
    """Writes each event as a row, so the CLI and any number of UIs can follow a job."""

    def __init__(self, db_url: str, gen_id: int | None = None, echo: bool = False):
        self.db_url, self.gen_id, self.echo = db_url, gen_id, echo

    def emit(self, kind: str, message: str = "", **data: Any) -> None:
        with session(self.db_url) as s:
            s.add(Event(gen_id=self.gen_id, kind=kind, message=message, data=json.dumps(data, default=str)))
        if self.echo and message:
            print(message, flush=True)


class NullEvents:
    def emit(self, kind: str, message: str = "", **data: Any) -> None:
        pass
