"""The learning benchmark's curriculum: a narrow ops skill (one JSON tool call per request) in stages.

Everything is generated from templates with a seeded RNG, so the same seed gives the same
files byte for byte:

- ``stages``: 3 lists of 100 chat conversations (system prompt, user request, assistant
  tool call). Every stage uses all six tools; later stages add phrasings.
- ``skill_probes``: 30 held-out requests (5 per tool) written with phrasings and values
  (service names, paths, hosts, ports, ...) that never occur in the training stages.
- ``general_probes``: 20 short general questions with keyword answers, disjoint from the
  product's recall probes (loop/assets/probes.jsonl) and its self-replay pool
  (loop/assets/self_replay_prompts.txt); ``build`` asserts it.

    from bench.learning_data import build
    data = build(seed=0, stages=3)
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "loop" / "assets"

SYSTEM = (
    "You are the ops assistant for our servers. Answer every request with exactly one JSON tool call "
    'and nothing else: {"tool": NAME, "args": {...}}. Tools:\n'
    "- restart_service(name): restart a service on the server\n"
    "- disk_usage(path): show disk usage under a path\n"
    "- tail_log(name, lines): show the last lines of a service's log\n"
    "- check_port(host, port): check that a port is open on a host\n"
    '- list_processes(sort_by, limit): list the top processes; sort_by is "cpu" or "memory"\n'
    "- backup_folder(path, dest): copy a folder to a backup destination"
)

TOOLS = ("restart_service", "disk_usage", "tail_log", "check_port", "list_processes", "backup_folder")

# Values seen in training and values kept for the held-out probes: the two never meet.
TRAIN_VALUES = {
    "name": ["nginx", "redis", "mysql", "apache2", "docker", "sshd", "cron", "rabbitmq", "elasticsearch",
             "grafana", "prometheus", "haproxy", "memcached", "mongodb", "kafka", "zookeeper", "jenkins", "php-fpm"],
    "path": ["/var/log", "/home", "/tmp", "/var/lib/docker", "/opt/app", "/srv/data", "/var/www", "/usr/local",
             "/data/uploads", "/var/cache", "/opt/releases", "/home/builds"],
    "host": ["db1", "web01", "cache-2", "api.internal", "10.0.0.5", "app-server-3", "lb1", "worker7"],
    "port": [22, 80, 443, 5432, 6379, 3306, 8080, 9200, 27017, 5672],
    "lines": [20, 30, 50, 100, 200],
    "limit": [5, 10, 15, 20],
    "dest": ["/mnt/backup", "s3://ops-backups", "/backups/nightly", "nas:/vol1"],
}
PROBE_VALUES = {
    "name": ["caddy", "traefik", "mariadb", "consul", "vault", "nomad", "minio", "etcd", "keycloak", "gitea"],
    "path": ["/mnt/archive", "/opt/reports", "/srv/media", "/var/spool", "/home/deploy", "/data/warehouse"],
    "host": ["db-replica", "search02", "10.1.2.9", "mail.internal", "queue-east"],
    "port": [8443, 9090, 11211, 2379, 8500],
    "lines": [25, 40, 75, 150],
    "limit": [3, 8, 12, 25],
    "dest": ["/mnt/offsite", "s3://archive-bucket", "/backups/weekly"],
}
# list_processes: the word a request uses and the sort key it means.
SORT_WORDS = {"CPU": "cpu", "cpu": "cpu", "memory": "memory", "RAM": "memory"}

# Phrasings per tool: stage 1 has the first set, each later stage adds one more set.
TRAIN_TEMPLATES: dict[str, list[list[str]]] = {
    "restart_service": [
        ["Restart {name}, it's hanging", "Please restart {name}.", "Can you restart the {name} service?",
         "{name} is stuck, restart it"],
        ["{name} stopped responding, bounce it", "Give {name} a restart please", "restart {name} now"],
        ["Looks like {name} crashed. Restart it.", "Kick {name}, it is frozen", "We need {name} restarted"],
    ],
    "disk_usage": [
        ["How much disk is {path} using?", "Check disk usage of {path}", "Show me disk usage for {path}",
         "Is {path} filling up the disk?"],
        ["What's eating space in {path}?", "disk usage {path} please", "How big is {path} on disk?"],
        ["The disk is almost full, look at {path}", "Measure the space used by {path}", "Size of {path}?"],
    ],
    "tail_log": [
        ["Show the last {lines} lines of the {name} log", "Tail {lines} lines of {name} logs",
         "Get me the last {lines} log lines for {name}", "What do the last {lines} lines of {name}'s log say?"],
        ["Print {lines} lines from the end of the {name} log", "{name} log, last {lines} lines", "Last {lines} lines of {name} logs pls"],
        ["Something is off with {name}; show its last {lines} log lines", "Dump the final {lines} lines of {name}'s log",
         "I need the tail of the {name} log, {lines} lines"],
    ],
    "check_port": [
        ["Is port {port} open on {host}?", "Check port {port} on {host}", "Can you check whether {host} listens on port {port}?",
         "Verify {host}:{port} is reachable"],
        ["Test if {host} accepts connections on {port}", "port {port} on {host}, open or not?", "Is anything listening on {host} port {port}?"],
        ["Clients can't reach {host} on port {port}, check it", "Probe {host}:{port}", "Make sure port {port} is open on {host}"],
    ],
    "list_processes": [
        ["Show the top {limit} processes by {sort}", "List {limit} processes sorted by {sort}",
         "Which {limit} processes use the most {sort}?", "Top {limit} processes by {sort} usage please"],
        ["What's hogging {sort}? Show {limit} processes", "Give me the {limit} heaviest processes by {sort}", "{limit} biggest {sort} users?"],
        ["The box is slow, list the top {limit} by {sort}", "Rank processes by {sort}, show {limit}", "Find the {limit} processes eating the most {sort}"],
    ],
    "backup_folder": [
        ["Back up {path} to {dest}", "Please backup the folder {path} to {dest}", "Copy {path} to {dest} as a backup",
         "Make a backup of {path} in {dest}"],
        ["Save a copy of {path} to {dest} before the upgrade", "backup {path} -> {dest}", "Can you back {path} up to {dest}?"],
        ["We're about to migrate, back up {path} into {dest}", "Archive {path} to {dest}", "Snapshot {path} into {dest} please"],
    ],
}
PROBE_TEMPLATES: dict[str, list[str]] = {
    "restart_service": ["The {name} service keeps timing out. Could you restart it for me?",
                        "Need a fresh start of {name} ASAP", "Reboot the {name} daemon"],
    "disk_usage": ["How much storage does {path} take up right now?", "Report the disk space consumed under {path}",
                   "We are low on space: check {path}"],
    "tail_log": ["Fetch the newest {lines} entries from the {name} log file", "Read me the final {lines} lines logged by {name}",
                 "{name} is misbehaving, grab {lines} lines from the end of its log"],
    "check_port": ["Could you confirm that {host} is accepting traffic on port {port}?", "Does {host} have port {port} open?",
                   "Connection refused on {host} {port}, please investigate the port"],
    "list_processes": ["Which processes consume the most {sort}? I want the top {limit}.",
                       "Sort running processes by {sort} and give me {limit} of them",
                       "Show {limit} processes with the highest {sort} consumption"],
    "backup_folder": ["Duplicate the contents of {path} over to {dest} for safekeeping",
                      "Before I delete things, store a backup of {path} at {dest}",
                      "Run a backup: source {path}, target {dest}"],
}

GENERAL_PROBES: list[dict[str, Any]] = [
    {"key": "g01", "prompt": "What is the capital of Italy?", "answers": ["rome"]},
    {"key": "g02", "prompt": "What is the capital of Spain?", "answers": ["madrid"]},
    {"key": "g03", "prompt": "What is the capital of Egypt?", "answers": ["cairo"]},
    {"key": "g04", "prompt": "What is the capital of China?", "answers": ["beijing"]},
    {"key": "g05", "prompt": "How many minutes are in an hour?", "answers": ["60", "sixty"]},
    {"key": "g06", "prompt": "What is 3 + 6?", "answers": ["9", "nine"]},
    {"key": "g07", "prompt": "What is 10 + 10?", "answers": ["20", "twenty"]},
    {"key": "g08", "prompt": "What is the opposite of up?", "answers": ["down"]},
    {"key": "g09", "prompt": "What is the opposite of wet?", "answers": ["dry"]},
    {"key": "g10", "prompt": "What is the opposite of old?", "answers": ["young", "new"]},
    {"key": "g11", "prompt": "What color is grass?", "answers": ["green"]},
    {"key": "g12", "prompt": "What color is snow?", "answers": ["white"]},
    {"key": "g13", "prompt": "What color is a ripe banana?", "answers": ["yellow"]},
    {"key": "g14", "prompt": "Which animal says moo?", "answers": ["cow", "cows"]},
    {"key": "g15", "prompt": "What do bees make?", "answers": ["honey"]},
    {"key": "g16", "prompt": "What is frozen water called?", "answers": ["ice"]},
    {"key": "g17", "prompt": "What is the largest planet in the solar system?", "answers": ["jupiter"]},
    {"key": "g18", "prompt": "Which planet do we live on?", "answers": ["earth"]},
    {"key": "g19", "prompt": "What language is spoken in France?", "answers": ["french"]},
    {"key": "g20", "prompt": "How many wheels does a bicycle have?", "answers": ["2", "two"]},
]

PER_STAGE = 100
MAX_STAGES = len(TRAIN_TEMPLATES["restart_service"])


def _args(tool: str, v: dict[str, Any]) -> dict[str, Any]:
    return {
        "restart_service": lambda: {"name": v["name"]},
        "disk_usage": lambda: {"path": v["path"]},
        "tail_log": lambda: {"name": v["name"], "lines": v["lines"]},
        "check_port": lambda: {"host": v["host"], "port": v["port"]},
        "list_processes": lambda: {"sort_by": SORT_WORDS[v["sort"]], "limit": v["limit"]},
        "backup_folder": lambda: {"path": v["path"], "dest": v["dest"]},
    }[tool]()


def tool_call(tool: str, args: dict[str, Any]) -> str:
    """The one answer the skill accepts, as the training data writes it."""
    return json.dumps({"tool": tool, "args": args})


def _draw(rng: random.Random, pools: dict[str, list[Any]]) -> dict[str, Any]:
    v = {k: rng.choice(vals) for k, vals in pools.items()}
    v["sort"] = rng.choice(sorted(SORT_WORDS))
    return v


def _request(rng: random.Random, tool: str, templates: list[str], pools: dict[str, list[Any]]) -> tuple[str, dict[str, Any]]:
    v = _draw(rng, pools)
    return rng.choice(templates).format(**v), _args(tool, v)


def conversation(user: str, answer: str) -> dict[str, Any]:
    return {"messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user},
                         {"role": "assistant", "content": answer}]}


def _norm(text: str) -> str:
    return " ".join("".join(c.lower() if c.isalnum() else " " for c in text).split())


def shipped_prompts() -> tuple[set[str], set[str]]:
    """Normalized prompts of the product's recall probes and of its self-replay pool."""
    probes = {_norm(json.loads(line)["prompt"]) for line in (ASSETS / "probes.jsonl").read_text().splitlines() if line.strip()}
    pool = {_norm(line) for line in (ASSETS / "self_replay_prompts.txt").read_text().splitlines() if line.strip()}
    return probes, pool


def check_general_probes(items: list[dict[str, Any]]) -> None:
    """No general probe is one of the shipped recall probes or self-replay prompts, nor shares their answers."""
    probes, pool = shipped_prompts()
    shipped_answers = {_norm(a) for line in (ASSETS / "probes.jsonl").read_text().splitlines() if line.strip()
                       for a in json.loads(line)["answers"]}
    for item in items:
        p = _norm(item["prompt"])
        assert p not in probes, f"general probe {item['key']} is a shipped recall probe: {item['prompt']!r}"
        assert p not in pool, f"general probe {item['key']} is in the self-replay pool: {item['prompt']!r}"
        same = {_norm(a) for a in item["answers"]} & shipped_answers
        assert not same, f"general probe {item['key']} has the answer of a shipped recall probe: {same}"


def build(seed: int = 0, stages: int = 3) -> dict[str, Any]:
    """Training stages, held-out skill probes and general probes; the same seed gives the same data."""
    if not 1 <= stages <= MAX_STAGES:
        raise ValueError(f"stages must be 1..{MAX_STAGES}, got {stages}")
    rng = random.Random(seed)
    seen: set[str] = set()
    out_stages: list[list[dict[str, Any]]] = []
    for k in range(stages):
        rows: list[dict[str, Any]] = []
        for i in range(PER_STAGE):
            tool = TOOLS[i % len(TOOLS)]
            templates = [t for group in TRAIN_TEMPLATES[tool][: k + 1] for t in group]
            if k and rng.random() < 0.6:  # later stages lean on their new phrasings
                templates = TRAIN_TEMPLATES[tool][k]
            for _ in range(1000):
                user, args = _request(rng, tool, templates, TRAIN_VALUES)
                if user not in seen:
                    break
            else:  # pragma: no cover - the template space is far larger than 300
                raise RuntimeError(f"cannot draw a new {tool} request")
            seen.add(user)
            rows.append(conversation(user, tool_call(tool, args)))
        rng.shuffle(rows)
        out_stages.append(rows)

    probe_rng = random.Random(seed + 1_000_003)
    skill: list[dict[str, Any]] = []
    for tool in TOOLS:
        for j in range(5):
            for _ in range(1000):
                user, args = _request(probe_rng, tool, PROBE_TEMPLATES[tool], PROBE_VALUES)
                if user not in seen:
                    break
            seen.add(user)
            skill.append({"key": f"s{len(skill) + 1:02d}", "tool": tool, "args": args,
                          "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]})
    check_general_probes(GENERAL_PROBES)
    return {"seed": seed, "system": SYSTEM, "stages": out_stages, "skill_probes": skill,
            "general_probes": [dict(g) for g in GENERAL_PROBES]}


def parse_call(answer: str) -> dict[str, Any] | None:
    """The JSON object a reply consists of (a ```json fence around it is allowed), or None."""
    text = answer.strip()
    if text.startswith("```"):
        text = text.removeprefix("```json").removeprefix("```").strip()
        text = text.removesuffix("```").strip()
    try:
        obj = json.loads(text)
    except json.JSONDecodeError:
        return None
    return obj if isinstance(obj, dict) else None


def skill_pass(answer: str, tool: str, args: dict[str, Any]) -> bool:
    """The reply is exactly one JSON object naming the expected tool with exactly the expected args."""
    call = parse_call(answer)
    return call is not None and set(call) == {"tool", "args"} and call["tool"] == tool and call["args"] == args


def write_stage(rows: list[dict[str, Any]], path: Path) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


if __name__ == "__main__":
    d = build()
    for k, rows in enumerate(d["stages"], 1):
        print(f"stage {k}: {len(rows)} records, e.g. {rows[0]['messages'][1]['content']!r} -> {rows[0]['messages'][2]['content']}")
    print(f"{len(d['skill_probes'])} skill probes, e.g. {d['skill_probes'][0]['messages'][1]['content']!r}")
    print(f"{len(d['general_probes'])} general probes")
