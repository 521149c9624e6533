"""portalops-nftables (the hardening role's host tool): the loaded ruleset against the managed one.

The data are `nft -j list ruleset` from the lab's web1: as loaded, and as /etc/nftables.conf loads into
a scratch network namespace.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from tests.unit.hostscripts import load

DATA = Path(__file__).parent / "data" / "nftables"


nft = load("portalops_nftables", "roles/hardening/files/portalops_nftables.py")
IGNORED = {("inet", "f2b-table")}


def document(name: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads((DATA / name).read_text())
    return found


def managed() -> Any:
    return nft.parse_ruleset(document("web1-managed.json"))


def live(change: Any = None) -> Any:
    found = document("web1-live.json")
    if change:
        change(found["nftables"])
    return nft.parse_ruleset(found)


def rule_443(entries: list[dict[str, Any]]) -> dict[str, Any]:
    (found,) = [e for e in entries if "rule" in e and '"right": 443' in json.dumps(e)]
    return found


def test_the_converged_ruleset_matches_though_the_handles_differ() -> None:
    def renumber(entries: list[dict[str, Any]]) -> None:
        for entry in entries:
            for body in entry.values():
                if isinstance(body, dict) and "handle" in body:
                    body["handle"] += 100

    assert nft.compare(managed(), live(renumber), IGNORED) == []


def test_a_replaced_ruleset_names_the_missing_table_and_the_foreign_one() -> None:
    replaced = {
        "nftables": [
            {"metainfo": {"version": "1.0.6", "json_schema_version": 1}},
            {"table": {"family": "inet", "name": "filter", "handle": 9}},
            {
                "chain": {
                    "family": "inet",
                    "table": "filter",
                    "name": "input",
                    "handle": 1,
                    "type": "filter",
                    "hook": "input",
                    "prio": 0,
                    "policy": "accept",
                }
            },
            {
                "rule": {
                    "family": "inet",
                    "table": "filter",
                    "chain": "input",
                    "handle": 2,
                    "expr": [
                        {
                            "match": {
                                "op": "==",
                                "left": {"payload": {"protocol": "tcp", "field": "dport"}},
                                "right": 443,
                            }
                        },
                        {"drop": None},
                    ],
                }
            },
        ]
    }
    assert nft.compare(managed(), nft.parse_ruleset(replaced), IGNORED) == [
        "table inet portalops: not loaded",
        "table inet filter: unmanaged with base chain input (hook input, priority 0, policy accept)",
    ]


def test_a_removed_rule_and_a_changed_policy_are_named() -> None:
    def tamper(entries: list[dict[str, Any]]) -> None:
        entries.remove(rule_443(entries))
        for entry in entries:
            if entry.get("chain", {}).get("name") == "forward":
                entry["chain"]["policy"] = "accept"

    assert nft.compare(managed(), live(tamper), IGNORED) == [
        "table inet portalops: chain forward (hook forward, priority 0, policy accept), "
        "managed chain forward (hook forward, priority 0, policy drop)",
        "table inet portalops chain input: missing rule: tcp dport 443 accept",
    ]


def test_an_added_rule_is_named_unmanaged() -> None:
    def add(entries: list[dict[str, Any]]) -> None:
        extra = copy.deepcopy(rule_443(entries))
        extra["rule"]["expr"][0]["match"]["right"] = 8080
        entries.insert(entries.index(rule_443(entries)) + 1, extra)

    assert nft.compare(managed(), live(add), IGNORED) == [
        "table inet portalops chain input: unmanaged rule: tcp dport 8080 accept"
    ]


def test_fail2ban_table_counters_and_dynamic_set_elements_are_not_differences() -> None:
    def fail2ban(entries: list[dict[str, Any]]) -> None:
        entries.append({"table": {"family": "inet", "name": "f2b-table", "handle": 20}})
        entries.append(
            {
                "set": {
                    "family": "inet",
                    "table": "f2b-table",
                    "name": "addr-set-sshd",
                    "handle": 2,
                    "type": "ipv4_addr",
                    "elem": ["203.0.113.9"],
                }
            }
        )

    assert nft.compare(managed(), live(fail2ban), IGNORED) == []
    banned = live(fail2ban)
    assert nft.compare(managed(), banned, set())[-1] == "table inet f2b-table: unmanaged"

    meter = {"family": "inet", "table": "portalops", "name": "m", "type": "ipv4_addr", "flags": ["dynamic"]}
    counted = {
        "nftables": [{"table": {"family": "inet", "name": "portalops"}}, {"set": {**meter, "elem": ["192.0.2.1"]}}]
    }
    empty = {"nftables": [{"table": {"family": "inet", "name": "portalops"}}, {"set": {**meter, "handle": 3}}]}
    assert nft.compare(nft.parse_ruleset(empty), nft.parse_ruleset(counted), set()) == []
    rule = {"family": "inet", "table": "t", "chain": "c", "expr": [{"counter": {"packets": 5, "bytes": 300}}]}
    zero = {**rule, "expr": [{"counter": {"packets": 0, "bytes": 0}}]}
    assert nft.normalise_value(rule) == nft.normalise_value(zero)


def test_the_restore_deletes_only_unmanaged_tables_by_handle_then_loads_the_file() -> None:
    tables = {("inet", "filter"): {"handle": 9}, ("inet", "f2b-table"): {"handle": 4}, ("inet", "portalops"): {}}
    script, actions = nft.restore_script("/etc/nftables.conf", tables, managed(), IGNORED)
    assert script == 'delete table inet handle 9\ninclude "/etc/nftables.conf"\n'
    assert actions == ["deleted the unmanaged table inet filter", "loaded /etc/nftables.conf"]


def test_the_check_is_unknown_when_the_comparison_cannot_be_made(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def cannot_run(argv: list[str], stdin: str | None = None) -> Any:
        raise nft.Unknown(f"{argv[0]}: No such file or directory")

    monkeypatch.setattr(nft, "_run", cannot_run)
    code = nft.main(["check", "--config", str(tmp_path / "nftables.conf")])
    report = json.loads(capsys.readouterr().out)
    assert code == 75 and report["verdict"] == "unknown" and "No such file" in report["error"]
