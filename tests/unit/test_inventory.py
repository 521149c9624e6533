from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from portalops.errors import BadInput, CommandFailed
from portalops.inventory import RESOLVED, SHARED_ENV, load_inventory, parse_inventory
from portalops.resolve import resolve_together, resolve_vars, shared_answers


def test_groups_are_flattened_through_children(inventory_json: dict[str, Any]) -> None:
    inv = parse_inventory(inventory_json, "x")
    assert sorted(inv.hosts_in("portal")) == ["cms1", "web1"]
    assert sorted(inv.hosts_in("all")) == ["cms1", "db1", "web1"]
    assert inv.groups_of("web1") == ["portal", "web"]
    assert inv.hosts_in("nosuchgroup") == []


def test_hostvars_are_kept(inventory_json: dict[str, Any]) -> None:
    inv = parse_inventory(inventory_json, "x")
    assert inv.hostvars["db1"]["ansible_host"] == "10.89.60.13"


def test_cyclic_children_do_not_loop() -> None:
    data = {"a": {"children": ["b"], "hosts": ["h1"]}, "b": {"children": ["a"], "hosts": ["h2"]}}
    inv = parse_inventory(data, "x")
    assert sorted(inv.hosts_in("a")) == ["h1", "h2"]


def test_missing_inventory_is_bad_input(tmp_path: Any) -> None:
    with pytest.raises(BadInput, match="inventory not found"):
        load_inventory(tmp_path / "nope")


def test_the_lab_inventory_has_the_five_hosts_in_their_tiers() -> None:
    inv = load_inventory()
    tiers = {group: inv.hosts_in(group) for group in ("web", "cms", "db", "backup", "drill")}
    assert tiers == {"web": ["web1"], "cms": ["cms1"], "db": ["db1"], "backup": ["backup1"], "drill": ["drill1"]}


def test_one_process_asks_ansible_once_until_the_inventory_or_its_environment_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A drill read the same inventory 5 times and rendered its variables 10 times (1-2 s each)."""
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("all:\n  hosts:\n    web1:\n      ansible_host: 10.0.0.1\n")
    asked: list[str] = []

    def ansible_inventory(argv: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        asked.append(argv[0])
        address = "10.0.0.2" if "10.0.0.2" in inventory.read_text() else "10.0.0.1"
        listed = {"_meta": {"hostvars": {"web1": {"ansible_host": address}}}, "all": {"hosts": ["web1"]}}
        return subprocess.CompletedProcess(argv, 0, json.dumps(listed), "")

    monkeypatch.setattr("portalops.inventory.run", ansible_inventory)
    first = load_inventory(inventory)
    first.hostvars["web1"]["ansible_host"] = "changed by a caller"
    assert load_inventory(inventory).hostvars["web1"]["ansible_host"] == "10.0.0.1"  # its own copy
    assert asked == ["ansible-inventory"]
    inventory.write_text(inventory.read_text().replace("10.0.0.1", "10.0.0.2") + "# edited\n")
    assert load_inventory(inventory).hostvars["web1"]["ansible_host"] == "10.0.0.2"
    monkeypatch.setenv("ANSIBLE_VAULT_IDENTITY_LIST", "prod@/nowhere")
    load_inventory(inventory)
    assert len(asked) == 3


def test_named_hosts_are_answered_from_one_render_of_every_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A drill connects to db1, then to web1, then to the runbook's targets: one Ansible process, not three."""
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("all:\n  hosts:\n    web1:\n    db1:\n")
    asked: list[str] = []

    def ansible(argv: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        asked.append(argv[3])  # the host pattern
        plays = [{"tasks": [{"hosts": {h: {"msg": {"address": h}} for h in ("web1", "db1")}}]}]
        return subprocess.CompletedProcess(argv, 0, json.dumps({"plays": plays}), "")

    monkeypatch.setattr("portalops.resolve.run", ansible)
    assert resolve_vars(inventory, ["db1"], {"address": "ansible_host"}) == {"db1": {"address": "db1"}}
    assert list(resolve_vars(inventory, ["web1", "db1"], {"address": "ansible_host"})) == ["web1", "db1"]
    assert asked == ["all"]
    with pytest.raises(BadInput, match="no host cms1"):
        resolve_vars(inventory, ["cms1", "web1"], {"address": "ansible_host"})
    assert resolve_vars(inventory, ["web"], {"address": "ansible_host"}, exact=False)  # a pattern is its own question
    assert asked == ["all", "web"]


def fake_ansible(asked: list[dict[str, str]], fail_on: str = "") -> Any:
    """`ansible … -m debug` as the JSON callback prints it: each expression rendered as '<host>:<expression>'."""

    def ansible(argv: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        body = argv[-1].removeprefix("msg={{ {").removesuffix("} }}")
        pairs = (pair.split(": ", 1) for pair in body.split(", "))
        expressions = {json.loads(name): expr.removeprefix("(").removesuffix(")") for name, expr in pairs}
        asked.append(expressions)
        if fail_on in expressions.values():
            raise CommandFailed(f"render variables: exit 2: {fail_on} is undefined")
        hosts = {h: {"msg": {name: f"{h}:{expr}" for name, expr in expressions.items()}} for h in ("web1", "db1")}
        return subprocess.CompletedProcess(argv, 0, json.dumps({"plays": [{"tasks": [{"hosts": hosts}]}]}), "")

    return ansible


@pytest.fixture
def two_hosts(tmp_path: Path) -> Path:
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("all:\n  hosts:\n    web1:\n    db1:\n")
    return inventory


def test_sets_asked_together_are_one_process_and_each_answer_as_if_asked_alone(
    two_hosts: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A drill asks for the probe's, the first site's and the run's variables: one Ansible process."""
    inventory = two_hosts
    asked: list[dict[str, str]] = []
    monkeypatch.setattr("portalops.resolve.run", fake_ansible(asked))
    probe, site = {"url": "portal_public_url"}, {"site": "portal_sites", "url": "other_url"}
    resolve_together(inventory, probe, site, probe)
    assert len(asked) == 1 and set(asked[0].values()) == {"portal_public_url", "portal_sites", "other_url"}
    assert resolve_vars(inventory, ["all"], probe, exact=False) == {
        "web1": {"url": "web1:portal_public_url"},
        "db1": {"url": "db1:portal_public_url"},
    }
    assert resolve_vars(inventory, ["db1"], site) == {"db1": {"site": "db1:portal_sites", "url": "db1:other_url"}}
    resolve_together(inventory, probe, site)  # both held: not asked again
    assert len(asked) == 1


def test_a_joint_render_that_fails_keeps_nothing_and_each_set_gets_its_own_error(
    two_hosts: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inventory = two_hosts
    asked: list[dict[str, str]] = []
    monkeypatch.setattr("portalops.resolve.run", fake_ansible(asked, fail_on="portal_sites"))
    good, bad = {"url": "portal_public_url"}, {"site": "portal_sites"}
    resolve_together(inventory, good, bad)
    assert resolve_vars(inventory, ["web1"], good) == {"web1": {"url": "web1:portal_public_url"}}
    with pytest.raises(CommandFailed, match="portal_sites is undefined"):
        resolve_vars(inventory, ["web1"], bad)
    assert len(asked) == 3  # together, then each alone


def test_a_command_a_run_starts_takes_the_runs_answer_only_for_the_same_inventory(
    two_hosts: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`portalops probe` started by a runbook step reads the probe's variables the run rendered
    ($PORTALOPS_RESOLVED); an inventory changed since, or no answer handed down, asks Ansible."""
    inventory = two_hosts
    asked: list[dict[str, str]] = []
    monkeypatch.setattr("portalops.resolve.run", fake_ansible(asked))
    probe, secret = {"url": "portal_public_url"}, {"notify": "portalops_notify"}
    resolve_together(inventory, probe, secret)
    handed = shared_answers(inventory, probe)
    assert "portalops_notify" not in handed[SHARED_ENV]  # only the sets named are handed down
    parent = resolve_vars(inventory, ["all"], probe, exact=False)
    RESOLVED.clear()  # the child: a new process, with the parent's environment
    monkeypatch.setenv(SHARED_ENV, handed[SHARED_ENV])
    assert resolve_vars(inventory, ["all"], probe, exact=False) == parent
    assert len(asked) == 1
    resolve_vars(inventory, ["all"], secret, exact=False)  # not handed down: asked
    assert len(asked) == 2
    RESOLVED.clear()
    inventory.write_text(inventory.read_text() + "# edited after the run rendered it\n")
    resolve_vars(inventory, ["all"], probe, exact=False)
    assert len(asked) == 3
    RESOLVED.clear()
    monkeypatch.setenv(SHARED_ENV, "{not json")
    resolve_vars(inventory, ["all"], probe, exact=False)
    assert len(asked) == 4


def test_answers_too_large_for_the_environment_are_not_handed_down(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("all:\n  hosts:\n    web1:\n")
    monkeypatch.setattr("portalops.resolve.run", fake_ansible([]))
    probe = {"url": "portal_public_url"}
    resolve_vars(inventory, ["all"], probe, exact=False)
    assert shared_answers(inventory, probe)
    monkeypatch.setattr("portalops.inventory.SHARED_LIMIT", 10)
    assert shared_answers(inventory, probe) == {}
