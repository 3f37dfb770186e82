"""The `ladder` command: every engine action from the shell, with --json for scripts."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import NoReturn

from loop.errors import OperationFailed, UserError
from store.db import StoreError
from tui.output import clean


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        sys.stderr.write(clean(f"error: {message}; run 'ladder --help' for usage") + "\n")
        raise SystemExit(2)


def build_parser() -> Parser:
    common = Parser(add_help=False)
    common.add_argument("--config", default=argparse.SUPPRESS, help="workspace config (default ./config.toml)")
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print one JSON object")
    p = Parser(prog="ladder", description="Train a local model generation by generation from its own conversations.",
               parents=[common])
    sub = p.add_subparsers(dest="command", parser_class=Parser, metavar="COMMAND")

    def cmd(name: str, text: str) -> Parser:
        return sub.add_parser(name, help=text, description=text, parents=[common])

    c = cmd("init", "create a workspace and its generation 0 (idempotent)")
    c.add_argument("dir", nargs="?", help="workspace folder (default: the config's folder)")
    c = cmd("ingest", "ingest files (default: everything new in the inbox)")
    c.add_argument("paths", nargs="*", type=Path)
    cmd("status", "the active generation, karma and the running job")
    c = cmd("train", "train one generation now, whatever the karma")
    c.add_argument("--steps", type=int, help="optimizer steps (overrides train.steps)")
    c.add_argument("--detach", action="store_true", help="start the job and return at once")
    c = cmd("eval", "run a finished generation's evals again (its status is kept), or one suite with --suite")
    c.add_argument("gen", type=int)
    c.add_argument("--suite", help="run only this agent suite (a file in evals/ without .jsonl, or 'default')")
    c.add_argument("--split", choices=("heldout", "practice", "all"), default="heldout",
                   help="which of the suite's items (default: heldout)")
    c = cmd("readiness", "whether a generation is ready: per category of the agent suites, with its blockers")
    c.add_argument("gen", type=int, nargs="?", help="default: the active generation")
    c = cmd("compare", "two generations on the same suite items: both answers, and the paired difference")
    c.add_argument("a", type=int)
    c.add_argument("b", type=int)
    c.add_argument("--suite", default="default", help="the suite (default: default)")
    c.add_argument("--split", choices=("heldout", "practice", "all"), default="heldout")
    cmd("run", "watch the inbox, ingest, and train when karma reaches the threshold (Ctrl-C stops)")
    c = cmd("dataset", "show the data mix the next generation would get, per source, domain and stage")
    c.add_argument("--dry-run", action="store_true", help="only show the mix (the default); nothing is taken")
    c.add_argument("--out", type=Path, help="also write the dataset files to this folder for inspection")
    cmd("cancel", "stop the running generation job")
    for name, text in (("approve", "make a generation active (an override if the gates rejected it)"),
                       ("reject", "reject a generation")):
        cmd(name, text).add_argument("gen", type=int)
    cmd("rollback", "make the active generation's parent (or GEN) active again").add_argument("gen", type=int, nargs="?")
    cmd("ledger", "print the lineage ledger").add_argument("--csv", type=Path, help="write the ledger CSV here")
    c = cmd("chat", "one answer from the active generation through llama.cpp")
    c.add_argument("prompt")
    c.add_argument("--gen", type=int, help="ask this generation instead of the active one")
    c.add_argument("--raw", action="store_true", help="send the prompt as is, without the chat template")
    c.add_argument("--max-tokens", type=int, default=256)
    c = cmd("demo", "create a workspace, train G1 on the demo inbox, then show the gates rejecting a bad batch")
    c.add_argument("dir", nargs="?", default="demo", type=Path)
    c.add_argument("--steps", type=int, help="optimizer steps (default: the config's)")
    c = cmd("practice", "the active generation attempts the suites' practice items; its failures, with better "
                        "answers, go to the inbox")
    c.add_argument("--items", type=int, help="at most this many items (default: practice.items)")
    c.add_argument("--until-ready", action="store_true", help="practise, train and evaluate until the readiness "
                                                              "gate passes")
    c.add_argument("--max-rounds", type=int, help="with --until-ready: at most this many rounds (default 3)")
    c.add_argument("--steps", type=int, help="with --until-ready: optimizer steps per generation")
    c.add_argument("--no-teacher", action="store_true", help="use the reference answers even when a key is set")
    c.add_argument("--budget", type=float, help="dollars the teacher may spend (default: teacher.budget_usd)")
    c = cmd("synth", "write training data or eval tasks with Claude (costs money: see the plan first)")
    c.add_argument("kind", choices=("chaos", "agentic", "corrections", "tasks"))
    c.add_argument("--count", type=int, default=10, help="requests to make (corrections: how many to vary)")
    c.add_argument("--multi-turn", type=float, default=0.3, help="agentic: the share of multi-turn conversations")
    c.add_argument("--variations", type=int, default=5, help="corrections: variations of each")
    c.add_argument("--target-failures", action="store_true",
                   help="tasks: each probes a failure pattern of the last practice round that had failures")
    c.add_argument("--budget", type=float, help="dollars this run may spend (default: teacher.budget_usd)")
    c.add_argument("--dry-run", action="store_true", help="show the plan and the estimate, spend nothing")
    c.add_argument("--yes", action="store_true", help="do not ask before spending")
    cmd("tui", "open the terminal app")
    return p


QUIET = {"TRANSFORMERS_VERBOSITY": "error", "HF_HUB_DISABLE_PROGRESS_BARS": "1", "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
         "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def main(argv: list[str] | None = None) -> int:
    for key, value in QUIET.items():  # no hub, no progress-bar noise from the ML libraries
        os.environ.setdefault(key, value)
    args = build_parser().parse_args(argv)
    args.config = Path(getattr(args, "config", "config.toml"))
    args.json = getattr(args, "json", False)
    try:
        if args.command in (None, "tui"):
            return open_app(args)
        from tui import commands  # noqa: PLC0415

        result = getattr(commands, args.command)(args)
    except (UserError, OperationFailed, StoreError) as e:
        sys.stderr.write(clean(f"error: {e}") + "\n")
        return e.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        return 130
    except Exception as e:  # noqa: BLE001 - a bug must still end in one line, with the details on request
        if os.environ.get("LADDER_DEBUG"):
            raise
        sys.stderr.write(clean(f"error: unexpected failure: {type(e).__name__}: {e}; rerun with LADDER_DEBUG=1 for details") + "\n")
        return 1
    if args.json:
        print(json.dumps(result, default=str))
    return 0 if not (isinstance(result, dict) and result.get("_failed")) else 1


def open_app(args: argparse.Namespace) -> int:
    try:
        from tui.app import run_app  # noqa: PLC0415
    except ImportError:
        build_parser().print_help()
        return 0
    return run_app(args.config)


if __name__ == "__main__":
    sys.exit(main())
