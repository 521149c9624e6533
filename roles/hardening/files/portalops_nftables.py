#!/usr/bin/python3
"""portalops-nftables: is the loaded nftables ruleset the one /etc/nftables.conf loads? Put it back.

Installed by the hardening role; the runbooks run it on the host, as root.

  portalops-nftables check     exit 0: every table the managed file defines is loaded exactly as it
                               defines it, and no other table is loaded (fail2ban's own is allowed);
                               1: not so, each difference named; 75: cannot tell (nft or the scratch
                               namespace failed, or the managed file does not load)
  portalops-nftables restore   delete the tables nobody manages and load the managed file, in one
                               nft transaction; then check again (exit as check)

What the file loads is learnt by loading it into a scratch network namespace (``unshare --net``,
or inside a user namespace where the host is itself a container without CAP_SYS_ADMIN) and
listing it there with ``nft -j``: nft itself parses the file, no text is parsed here. Both sides
are compared as ``nft -j list ruleset`` with handles, counters and set elements that change at
run time (dynamic or timeout sets) left out. Any other table counts as a difference because a
base chain in any table can drop what ours accepts.

Prints one JSON document on stdout: verdict (sound, broken, unknown), differences, actions.
Standard library only.
"""

from __future__ import annotations

import argparse
import difflib
import json
import subprocess
import sys
from typing import Any

EX_BROKEN = 1
EX_UNKNOWN = 75  # EX_TEMPFAIL: cannot tell right now
CONFIG = "/etc/nftables.conf"
# Tables other tools keep and this project does not manage: fail2ban's nftables actions.
IGNORED = ("inet/f2b-table",)
TIMEOUT = 30
# Values that change while the ruleset works as loaded.
VOLATILE_KEYS = {"handle", "expires", "packets", "bytes", "used"}
NAMESPACES = (["unshare", "--net"], ["unshare", "--user", "--map-root-user", "--net"])

Table = tuple[str, str]
Ruleset = dict[Table, dict[str, Any]]


class Unknown(Exception):
    """The comparison cannot be made."""


def normalise_value(value: Any) -> Any:
    """``value`` without handles, counter values, expiry times."""
    if isinstance(value, dict):
        return {key: normalise_value(item) for key, item in value.items() if key not in VOLATILE_KEYS}
    if isinstance(value, list):
        return [normalise_value(item) for item in value]
    return value


def _dynamic(item: dict[str, Any]) -> bool:
    flags = item.get("flags") or []
    flags = [flags] if isinstance(flags, str) else flags
    return "dynamic" in flags or "timeout" in flags or "timeout" in item


def parse_ruleset(document: dict[str, Any]) -> Ruleset:
    """``nft -j list ruleset`` grouped by table: its attributes, chains, rules per chain, other objects."""
    tables: Ruleset = {}

    def table(family: str, name: str) -> dict[str, Any]:
        return tables.setdefault((family, name), {"table": {}, "chains": {}, "rules": {}, "objects": {}})

    for entry in document.get("nftables") or []:
        if not isinstance(entry, dict) or len(entry) != 1:
            raise Unknown(f"unexpected nft -j entry: {json.dumps(entry)[:200]}")
        ((kind, body),) = entry.items()
        if kind == "metainfo":
            continue
        if kind == "table":
            table(body["family"], body["name"])["table"] = normalise_value(body)
            continue
        found = table(body["family"], body["table"])
        body = dict(body)
        if kind in ("set", "map") and _dynamic(body):
            body.pop("elem", None)  # filled at run time (meters, fail2ban-like bans)
        if kind in ("set", "map") and "elem" in body:
            body["elem"] = sorted(body["elem"], key=lambda item: json.dumps(item, sort_keys=True))
        body = normalise_value(body)
        if kind == "chain":
            found["chains"][body["name"]] = body
            found["rules"].setdefault(body["name"], [])
        elif kind == "rule":
            found["rules"].setdefault(body["chain"], []).append(body)
        else:
            found["objects"][f"{kind} {body.get('name', '')}".strip()] = body
    return tables


def value_text(value: Any) -> str:
    """A short human reading of an nft JSON expression operand."""
    if isinstance(value, dict):
        if "payload" in value:
            return f"{value['payload'].get('protocol', '')} {value['payload'].get('field', '')}".strip()
        for key in ("meta", "ct"):
            if key in value and isinstance(value[key], dict):
                return f"{key} {value[key].get('key', '')}"
        if "prefix" in value:
            return f"{value['prefix']['addr']}/{value['prefix']['len']}"
        if "range" in value:
            return "-".join(value_text(item) for item in value["range"])
        if "set" in value:
            return "{ " + ", ".join(value_text(item) for item in value["set"]) + " }"
        return json.dumps(value, sort_keys=True)
    if isinstance(value, list):
        return ",".join(value_text(item) for item in value)
    return str(value)


def rule_text(rule: dict[str, Any]) -> str:
    parts = []
    for statement in rule.get("expr") or []:
        if "match" in statement:
            match = statement["match"]
            op = match.get("op", "==")
            parts.append(
                f"{value_text(match['left'])} {'' if op in ('==', 'in') else op + ' '}{value_text(match['right'])}"
            )
        elif len(statement) == 1:
            parts.append(next(iter(statement)))  # accept, drop, counter, log, limit, ...
        else:
            parts.append(json.dumps(statement, sort_keys=True))
    text = " ".join(parts)
    if rule.get("comment"):
        text += f' comment "{rule["comment"]}"'
    return text


def chain_text(chain: dict[str, Any]) -> str:
    if "hook" not in chain:
        return f"chain {chain['name']}"
    return f"chain {chain['name']} (hook {chain['hook']}, priority {chain.get('prio')}, policy {chain.get('policy')})"


def _attributes(item: dict[str, Any]) -> str:
    return ", ".join(f"{key} {json.dumps(value)}" for key, value in sorted(item.items()))


def compare(managed: Ruleset, live: Ruleset, ignored: set[Table]) -> list[str]:
    """Each difference between the loaded ruleset and the managed one, in words; none when they match."""
    differences = []
    for key in sorted(managed):
        family, name = key
        where = f"table {family} {name}"
        if key not in live:
            differences.append(f"{where}: not loaded")
            continue
        want, have = managed[key], live[key]
        if want["table"] != have["table"]:
            differences.append(
                f"{where}: attributes {_attributes(have['table'])}, managed {_attributes(want['table'])}"
            )
        for chain in sorted(set(want["chains"]) | set(have["chains"])):
            if chain not in have["chains"]:
                differences.append(f"{where}: {chain_text(want['chains'][chain])} missing")
                continue
            if chain not in want["chains"]:
                differences.append(f"{where}: unmanaged {chain_text(have['chains'][chain])}")
                continue
            if want["chains"][chain] != have["chains"][chain]:
                differences.append(
                    f"{where}: {chain_text(have['chains'][chain])}, managed {chain_text(want['chains'][chain])}"
                )
        for chain in sorted(set(want["rules"]) & set(have["rules"])):
            differences += rule_differences(f"{where} chain {chain}", want["rules"][chain], have["rules"][chain])
        for obj in sorted(set(want["objects"]) | set(have["objects"])):
            if obj not in have["objects"]:
                differences.append(f"{where}: {obj} missing")
            elif obj not in want["objects"]:
                differences.append(f"{where}: unmanaged {obj}")
            elif want["objects"][obj] != have["objects"][obj]:
                differences.append(f"{where}: {obj} differs from the managed one")
    for key in sorted(set(live) - set(managed) - ignored):
        family, name = key
        hooks = [chain_text(chain) for chain in live[key]["chains"].values() if "hook" in chain]
        detail = f" with base {'; '.join(hooks)}" if hooks else ""
        differences.append(f"table {family} {name}: unmanaged{detail}")
    return differences


def rule_differences(where: str, want: list[dict[str, Any]], have: list[dict[str, Any]]) -> list[str]:
    def key(rule: dict[str, Any]) -> str:
        return json.dumps({k: v for k, v in rule.items() if k != "chain"}, sort_keys=True)

    wanted, had = [key(rule) for rule in want], [key(rule) for rule in have]
    if wanted == had:
        return []
    if sorted(wanted) == sorted(had):
        return [f"{where}: the managed rules in another order"]
    found = []
    matcher = difflib.SequenceMatcher(a=wanted, b=had, autojunk=False)
    for tag, first, last, first_have, last_have in matcher.get_opcodes():
        if tag in ("delete", "replace"):
            found += [f"{where}: missing rule: {rule_text(rule)}" for rule in want[first:last]]
        if tag in ("insert", "replace"):
            found += [f"{where}: unmanaged rule: {rule_text(rule)}" for rule in have[first_have:last_have]]
    return found


def _run(argv: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise Unknown(f"{argv[0]}: {exc}") from exc


def _ruleset(output: str, what: str) -> Ruleset:
    try:
        return parse_ruleset(json.loads(output))
    except (ValueError, KeyError, TypeError) as exc:
        raise Unknown(f"cannot read {what} (nft -j): {exc}") from exc


def live_ruleset() -> Ruleset:
    result = _run(["nft", "-j", "list", "ruleset"])
    if result.returncode != 0:
        raise Unknown(f"nft -j list ruleset failed: {result.stderr.strip()[-300:]}")
    return _ruleset(result.stdout, "the loaded ruleset")


def managed_ruleset(config: str) -> Ruleset:
    """What ``config`` loads, loaded into a scratch network namespace that is gone afterwards."""
    errors = []
    for namespace in NAMESPACES:
        result = _run([*namespace, "sh", "-c", 'nft -f "$1" && nft -j list ruleset', "sh", config])
        if result.returncode == 0:
            return _ruleset(result.stdout, f"what {config} loads")
        errors.append(f"{' '.join(namespace)}: {result.stderr.strip()[-300:]}")
    raise Unknown(f"cannot load {config} into a scratch network namespace: {' | '.join(errors)}")


def restore_script(config: str, live: Ruleset, managed: Ruleset, ignored: set[Table]) -> tuple[str, list[str]]:
    """One nft transaction: the unmanaged tables deleted (by handle), then the managed file loaded."""
    lines, actions = [], []
    for family, name in sorted(set(live) - set(managed) - ignored):
        handle = live[(family, name)]["handle"]
        lines.append(f"delete table {family} handle {int(handle)}")
        actions.append(f"deleted the unmanaged table {family} {name}")
    lines.append(f'include "{config}"')
    actions.append(f"loaded {config}")
    return "\n".join(lines) + "\n", actions


def table_handles() -> dict[Table, int]:
    result = _run(["nft", "-j", "list", "tables"])
    if result.returncode != 0:
        raise Unknown(f"nft -j list tables failed: {result.stderr.strip()[-300:]}")
    try:
        entries = json.loads(result.stdout)["nftables"]
        return {(e["table"]["family"], e["table"]["name"]): int(e["table"]["handle"]) for e in entries if "table" in e}
    except (ValueError, KeyError, TypeError) as exc:
        raise Unknown(f"cannot read nft -j list tables: {exc}") from exc


def check(config: str, ignored: set[Table]) -> dict[str, Any]:
    managed = managed_ruleset(config)
    differences = compare(managed, live_ruleset(), ignored)
    return {
        "verdict": "broken" if differences else "sound",
        "config": config,
        "managed_tables": [" ".join(key) for key in sorted(managed)],
        "differences": differences,
    }


def restore(config: str, ignored: set[Table]) -> dict[str, Any]:
    managed = managed_ruleset(config)
    handles = table_handles()
    live = {key: {"handle": handle} for key, handle in handles.items()}
    script, actions = restore_script(config, live, managed, ignored)
    result = _run(["nft", "-f", "-"], stdin=script)
    if result.returncode != 0:
        return {
            "verdict": "broken",
            "config": config,
            "differences": [f"nft refused the restore, nothing changed: {result.stderr.strip()[-400:]}"],
            "actions": [],
        }
    after = check(config, ignored)
    return {**after, "actions": actions}


def parse_table(text: str) -> Table:
    family, _, name = text.partition("/")
    if not family or not name:
        raise argparse.ArgumentTypeError(f"{text!r}: want FAMILY/NAME, e.g. inet/f2b-table")
    return family, name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="portalops-nftables", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("check", "restore"))
    parser.add_argument("--config", default=CONFIG, help="the managed ruleset file (default %(default)s)")
    parser.add_argument(
        "--ignore",
        action="append",
        type=parse_table,
        default=[parse_table(item) for item in IGNORED],
        metavar="FAMILY/NAME",
        help=f"a table another tool keeps, left alone (default: {', '.join(IGNORED)})",
    )
    args = parser.parse_args(argv)
    ignored = set(args.ignore)
    try:
        report = check(args.config, ignored) if args.action == "check" else restore(args.config, ignored)
    except Unknown as exc:
        report = {"verdict": "unknown", "config": args.config, "differences": [], "error": str(exc)}
    print(json.dumps(report, indent=2, ensure_ascii=False))
    return {"sound": 0, "broken": EX_BROKEN}.get(report["verdict"], EX_UNKNOWN)


if __name__ == "__main__":
    sys.exit(main())
