"""Claude as teacher: one request at a time through the real `anthropic` client, with a budget, retries and a cache.

The key comes only from ANTHROPIC_API_KEY and the endpoint from the client's own
ANTHROPIC_BASE_URL (a proxy or a test server). Neither is passed on, logged or stored: the
cache holds the request (model, system, messages) and the reply, never a header. A reply is
cached under the SHA-256 of its request before it is used, so a run killed and started again
gets the same replies without paying for them twice.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loop.errors import OperationFailed, UserError
from loop.hashing import sha256_records

KEY_ENV = "ANTHROPIC_API_KEY"
RETRY_STATUS = {408, 409, 429}  # and every 5xx, 529 (overloaded) included
MAX_WAIT = 120.0  # a retry-after beyond this is not waited for: the run stops and says so


class NoKey(UserError):
    pass


class BudgetSpent(OperationFailed):
    """The next request would pass the budget: nothing more is sent."""


@dataclass(frozen=True)
class Reply:
    text: str
    cost: float  # dollars paid for this reply now (0.0 when it came from the cache)
    cached: bool
    input_tokens: int
    output_tokens: int


def most(system: str, messages: list[dict[str, str]], max_tokens: int, price_in: float, price_out: float) -> float:
    """Dollars at most for one request: its text at ~4 characters a token, and every output token it may write."""
    chars = len(system) + sum(len(m["content"]) for m in messages)
    return (chars / 4 + 16) * price_in + max_tokens * price_out


def price(cfg) -> tuple[float, float] | None:
    """(input, output) dollars per token of the configured model, or None when the table lacks it."""
    found = cfg.data["teacher"]["prices"].get(cfg.teacher.model)
    return (found[0] / 1e6, found[1] / 1e6) if found else None


def has_key() -> bool:
    return bool(os.environ.get(KEY_ENV, "").strip())


def no_key_message() -> str:
    return (f"no {KEY_ENV} set: export {KEY_ENV}=<your key> to use Claude (set ANTHROPIC_BASE_URL for a proxy); "
            "practice still runs with the suites' reference answers")


class Teacher:
    def __init__(self, cfg, budget_usd: float | None = None, say: Callable[[str], None] = lambda _: None,
                 sleep: Callable[[float], None] = time.sleep):
        if not has_key():
            raise NoKey(no_key_message())
        t = cfg.teacher
        prices = dict(cfg.data["teacher"]["prices"])
        if t.model not in prices:
            raise UserError(f"no price for teacher.model {t.model!r}: add it to [teacher.prices] as "
                            f"\"{t.model}\" = [input, output] dollars per million tokens")
        import anthropic  # noqa: PLC0415 - only a command that asks the teacher pays for the import

        self._anthropic = anthropic
        # max_retries=0: the retries are ours, so 529 and retry-after are handled the same way on every version.
        self.client = anthropic.Anthropic(api_key=os.environ[KEY_ENV].strip(), max_retries=0,
                                          timeout=float(t.timeout_seconds))
        self.model, self.max_tokens = t.model, int(t.max_tokens)
        self.price_in, self.price_out = (float(x) / 1e6 for x in prices[t.model])
        self.budget = float(t.budget_usd if budget_usd is None else budget_usd)
        self.retries, self.backoff = int(t.max_retries), float(t.backoff_seconds)
        self.cache = Path(cfg.root) / "teacher" / "cache"
        self.spent, self.sent, self.from_cache = 0.0, 0, 0
        self.say, self.sleep = say, sleep

    def estimate(self, system: str, messages: list[dict[str, str]], max_tokens: int | None = None) -> float:
        return most(system, messages, max_tokens or self.max_tokens, self.price_in, self.price_out)

    def request(self, system: str, messages: list[dict[str, str]], max_tokens: int | None = None) -> dict[str, Any]:
        return {"model": self.model, "system": system, "messages": messages, "max_tokens": max_tokens or self.max_tokens}

    def ask(self, system: str, messages: list[dict[str, str]], max_tokens: int | None = None,
            attempt: int = 0) -> Reply:
        """One reply: from the cache when this very request was answered before, else from the API within the budget.
        `attempt` > 0 asks again after an invalid reply (a different cache entry)."""
        req = self.request(system, messages, max_tokens)
        key = sha256_records([req, {"attempt": attempt}])
        hit = self._cached(key)
        if hit is not None:
            self.from_cache += 1
            return Reply(hit["text"], 0.0, True, hit["input_tokens"], hit["output_tokens"])
        est = self.estimate(system, messages, max_tokens)
        if self.spent + est > self.budget:
            raise BudgetSpent(f"the teacher budget of ${self.budget:.2f} is spent (${self.spent:.4f} used, the next "
                              f"request may cost ${est:.4f}); raise teacher.budget_usd or pass --budget to go on")
        msg = self._send(req)
        text = "".join(getattr(b, "text", "") for b in msg.content if getattr(b, "type", "") == "text")
        tin, tout = int(msg.usage.input_tokens or 0), int(msg.usage.output_tokens or 0)
        cost = tin * self.price_in + tout * self.price_out
        self.spent += cost
        self.sent += 1
        self._store(key, {"request_sha": key, "model": self.model, "text": text, "input_tokens": tin,
                          "output_tokens": tout, "cost": cost, "stop_reason": msg.stop_reason})
        return Reply(text, cost, False, tin, tout)

    def _send(self, req: dict[str, Any]):
        a = self._anthropic
        for attempt in range(self.retries + 1):
            try:
                return self.client.messages.create(**req)
            except a.APIStatusError as e:
                status = e.status_code
                if status in (401, 403):
                    raise UserError(f"the Anthropic API refused the key ({status}): check {KEY_ENV}") from None
                if status not in RETRY_STATUS and status < 500:
                    raise OperationFailed(f"the Anthropic API refused the request ({status}): {_said(e)}") from None
                wait, why = _retry_after(e.response.headers), f"{status} {_said(e)}"
            except (a.APIConnectionError, a.APITimeoutError) as e:
                wait, why = None, f"no answer ({type(e).__name__})"
            if attempt == self.retries:
                raise OperationFailed(f"the Anthropic API failed {attempt + 1} time(s), last: {why}; try again later "
                                      "(replies so far are cached)")
            if wait is None:
                wait = min(self.backoff * 2 ** attempt, 60.0) * (0.5 + random.random() / 2)
            if wait > MAX_WAIT:
                raise OperationFailed(f"the Anthropic API asks to wait {wait:.0f} s ({why}); try again later")
            self.say(f"teacher: {why}; retrying in {wait:.1f} s ({attempt + 1}/{self.retries})")
            self.sleep(wait)
        raise AssertionError("unreachable")

    def _cached(self, key: str) -> dict[str, Any] | None:
        path = self.cache / f"{key}.json"
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def _store(self, key: str, entry: dict[str, Any]) -> None:
        self.cache.mkdir(parents=True, exist_ok=True)
        final = self.cache / f"{key}.json"
        tmp = self.cache / f".{key}.{secrets.token_hex(3)}.tmp"
        with tmp.open("w", encoding="utf-8") as f:
            json.dump(entry, f, ensure_ascii=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)


def _retry_after(headers) -> float | None:
    """Seconds the server asks to wait: retry-after-ms, or retry-after in seconds (an HTTP date is not waited on)."""
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name) if headers is not None else None
        if value:
            try:
                return max(0.0, float(value) / scale)
            except ValueError:
                continue
    return None


def _said(e) -> str:
    """The API's own error message, one line, cut short."""
    body = getattr(e, "body", None)
    msg = body.get("error", {}).get("message") if isinstance(body, dict) and isinstance(body.get("error"), dict) else None
    return " ".join(str(msg or e.message or type(e).__name__).split())[:200]
