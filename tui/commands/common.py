"""Helpers every command shares: open the workspace (settling dead jobs), format numbers."""

from __future__ import annotations

from argparse import Namespace
from typing import Any

from loop import config
from loop.jobs import recovery
from tui.output import emit


def _open(args: Namespace, recover: bool = True) -> config.Config:
    """Load the workspace; an engine command first settles jobs that died (a read changes nothing)."""
    cfg = config.load(args.config)
    if recover:
        for note in recovery.recover(cfg):
            emit(args, f"note: {note}")
    return cfg


def _f(v: Any) -> str:
    return "  -  " if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))


def _said(args: Namespace, result: dict[str, Any]) -> dict[str, Any]:
    emit(args, f"{result['message']}; active: G{result['active_gen']} {result['active_sha'][:12]}")
    return result
