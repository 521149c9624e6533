from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from portalops.errors import BadInput, CommandFailed
from portalops.inventory import parse_inventory
from portalops.lab.config import container_args, lab_config, spec_hash_of
from portalops.lab.lab import Lab
from portalops.lab.podman import Container


def config_of(data: dict[str, Any]) -> Any:
    return lab_config(parse_inventory(data, "test"), state_dir=Path("/tmp/lab-state"))


def test_lab_config_from_inventory(inventory_json: dict[str, Any]) -> None:
    config = config_of(inventory_json)
    assert [h.name for h in config.hosts] == ["cms1", "db1", "web1"]
    assert config.network == "portalops-lab"
    assert config.deploy_user == "deploy"
    web1 = config.host("web1")
    assert web1.publish == ("127.0.0.1:8443:443",)
    assert web1.groups == ("portal", "web")
    assert web1.command == ("/sbin/init",)
    assert config.container(web1) == "portalops-web1"
    assert config.ssh_key == Path("/tmp/lab-state/ssh/id_ed25519")


def test_unknown_host_lists_the_lab(inventory_json: dict[str, Any]) -> None:
    with pytest.raises(BadInput, match="no lab host named 'nosuchhost'; the lab has: cms1, db1, web1"):
        config_of(inventory_json).host("nosuchhost")


@pytest.mark.parametrize(
    ("host", "var", "value", "message"),
    [
        ("db1", "ansible_host", "10.1.2.3", "db1: ansible_host 10.1.2.3 is not a host address in 10.89.60.0/24"),
        ("db1", "ansible_host", "10.89.60.1", "is not a host address"),
        ("db1", "ansible_host", "db1.example", "db1: ansible_host 'db1.example' is not an address"),
        ("db1", "ansible_host", "10.89.60.11", "already used by"),
        ("web1", "lab_publish", ["8443:443"], "web1: lab_publish '8443:443' must look like"),
        ("web1", "lab_publish", 8443, "web1: lab_publish must be a string or a list"),
        ("db1", "lab_subnet", "10.0.0.0/8", "lab_subnet must be set once"),
        ("web1", "ansible_user", "Deploy User", "is not a valid user name"),
    ],
)
def test_bad_lab_variables_are_named(
    inventory_json: dict[str, Any], host: str, var: str, value: Any, message: str
) -> None:
    data = copy.deepcopy(inventory_json)
    data["_meta"]["hostvars"][host][var] = value
    with pytest.raises(BadInput, match=message):
        config_of(data)


def test_bad_subnet(inventory_json: dict[str, Any]) -> None:
    data = copy.deepcopy(inventory_json)
    for hv in data["_meta"]["hostvars"].values():
        hv["lab_subnet"] = "not-a-net"
    with pytest.raises(BadInput, match="lab_subnet 'not-a-net' is not a network"):
        config_of(data)


def test_container_args_define_the_host(inventory_json: dict[str, Any]) -> None:
    config = config_of(inventory_json)
    args = container_args(config, config.host("web1"), "localhost/img:1", "ssh-ed25519 AAA")
    joined = " ".join(args)
    assert "--name portalops-web1" in joined
    assert "--hostname web1" in joined
    assert "--ip 10.89.60.11" in joined
    assert "--publish 127.0.0.1:8443:443" in joined
    assert "--label portalops.lab=portalops" in joined
    assert "--cpu-shares 8192" in joined  # ahead of molecule's containers (1024) on the CPU
    assert args[-2:] == ["localhost/img:1", "/sbin/init"]


def test_spec_hash_changes_with_what_defines_the_host(inventory_json: dict[str, Any]) -> None:
    config = config_of(inventory_json)
    web1 = config.host("web1")
    base = spec_hash_of(container_args(config, web1, "img:1", "key-a"))
    assert base == spec_hash_of(container_args(config, web1, "img:1", "key-a"))
    assert base != spec_hash_of(container_args(config, web1, "img:2", "key-a"))
    assert base != spec_hash_of(container_args(config, web1, "img:1", "key-b"))
    assert base != spec_hash_of(container_args(config, config.host("db1"), "img:1", "key-a"))


class RacingPodman:
    """podman whose first `rm` fails as podman 4.3 does on a container that stopped meanwhile."""

    def __init__(self, names: list[str]) -> None:
        self.left = list(names)
        self.calls: list[tuple[str, ...]] = []

    def preflight(self) -> None:
        pass

    def containers(self, label: str) -> list[Container]:
        return [Container(name=n, id=n, state="exited", labels={"portalops.lab": "portalops"}) for n in self.left]

    def network_inspect(self, name: str) -> None:
        return None

    def run(self, *args: str, **_: Any) -> None:
        self.calls.append(args)
        if args[0] == "rm":
            if len(self.calls) == 1:
                self.left = self.left[1:]  # podman removed the others before it failed
                raise CommandFailed("podman rm: exit 2: container state improper: stopped")
            self.left = [n for n in self.left if n not in args]


def test_lab_down_removes_a_container_that_stopped_while_podman_stopped_it(inventory_json: dict[str, Any]) -> None:
    podman = RacingPodman(["portalops-web1", "portalops-db1"])
    said: list[str] = []
    Lab(config_of(inventory_json), said.append, podman=podman).down()  # type: ignore[arg-type]
    assert podman.left == [], podman.calls
    assert podman.calls[-1] == ("rm", "--force", "--time", "3", "portalops-db1"), podman.calls
    assert said == ["removed: portalops-web1, portalops-db1"], said


class FreezingPodman:
    """podman whose `commit --pause` fails as runc's freezer does on a busy machine, a given number of times."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.commits: list[str] = []

    def preflight(self) -> None:
        pass

    def container(self, name: str) -> Container:
        return Container(name=name, id=name, state="running", labels={"portalops.lab": "portalops"})

    def run(self, *args: str, **_: Any) -> None:
        assert args[:3] == ("commit", "--quiet", "--pause"), args  # never unpaused: one moment of the host
        self.commits.append(args[3])
        if args[3] == "portalops-db1" and self.failures:
            self.failures -= 1
            raise CommandFailed(
                f"commit {args[3]}: exit 125: Error: pausing container to commit: `/usr/bin/runc pause` failed: exit 1"
            )


def test_a_snapshot_tries_a_pause_that_runc_could_not_freeze_again(
    inventory_json: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("portalops.lab.lab.SNAPSHOT_RETRY_S", 0.0)
    podman = FreezingPodman(failures=2)
    said: list[str] = []
    tags = Lab(config_of(inventory_json), said.append, podman=podman).snapshot()  # type: ignore[arg-type]
    assert tags == [f"localhost/portalops-snapshot:{name}" for name in ("cms1", "db1", "web1")]
    assert sorted(podman.commits) == ["portalops-cms1", *["portalops-db1"] * 3, "portalops-web1"]
    assert [line for line in said if "trying again" in line] == [
        "portalops-db1: commit portalops-db1: exit 125: Error: pausing container to commit: `/usr/bin/runc pause` "
        f"failed: exit 1; trying again ({n} of 5)"
        for n in (2, 3)
    ]


def test_a_snapshot_fails_with_the_host_named_when_the_pause_never_succeeds(
    inventory_json: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("portalops.lab.lab.SNAPSHOT_RETRY_S", 0.0)
    podman = FreezingPodman(failures=99)
    with pytest.raises(CommandFailed, match=r"^db1: commit portalops-db1: exit 125: .*runc pause"):
        Lab(config_of(inventory_json), lambda _: None, podman=podman).snapshot()  # type: ignore[arg-type]
    assert podman.commits.count("portalops-db1") == 5
