"""What each `ladder` subcommand does: call the engine, print for people, return a dict for --json."""

from tui.commands.data import chat, dataset, ingest, init
from tui.commands.demo import demo
from tui.commands.evals import compare, readiness
from tui.commands.jobs import cancel, eval, run, train  # noqa: A004 - eval is the subcommand's name
from tui.commands.lineage import approve, ledger, reject, rollback, status
from tui.commands.teach import practice, synth

__all__ = ["approve", "cancel", "chat", "compare", "dataset", "demo", "eval", "ingest", "init", "ledger", "practice", "readiness",
           "reject", "rollback", "run", "status", "synth", "train"]
