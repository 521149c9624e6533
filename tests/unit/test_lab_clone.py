"""`portalops lab snapshot` and `lab clone`: what the clone is made of, without a lab (the lab tests run on one)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from portalops.errors import BadInput, EnvironmentProblem
from portalops.inventory import REPO_ROOT, parse_inventory
from portalops.lab import clone
from portalops.lab.config import container_args, lab_config, spec_hash_of
from portalops.lab.lab import Lab
from portalops.lab.podman import CONTAINERS_CONF, Container, Podman


def config_of(data: dict[str, Any]) -> Any:
    return lab_config(parse_inventory(data, "test"), state_dir=Path("/tmp/lab-state"))


def test_a_host_started_from_its_snapshot_keeps_its_definition(inventory_json: dict[str, Any]) -> None:
    config = config_of(inventory_json)
    web1 = config.host("web1")
    plain = container_args(config, web1, "localhost/portalops-lab:1", "key")
    cloned = container_args(config, web1, "localhost/portalops-lab:1", "key", "localhost/portalops-snapshot:web1")
    # the clone's own `lab up` (the lab tests' fixture) reuses it instead of replacing it with a bare host
    assert spec_hash_of(cloned) == spec_hash_of(plain)
    assert cloned[-2:] == ["localhost/portalops-snapshot:web1", "/sbin/init"]
    assert plain[-2:] == ["localhost/portalops-lab:1", "/sbin/init"]


class SnapshotPodman:
    """podman with the lab's containers in the given states; records commits."""

    def __init__(self, states: dict[str, str]) -> None:
        self.states = states
        self.commits: list[tuple[str, ...]] = []

    def preflight(self) -> None:
        pass

    def container(self, name: str) -> Container | None:
        state = self.states.get(name)
        return None if state is None else Container(name=name, id=name, state=state, labels={})

    def run(self, *args: str, **_: Any) -> None:
        self.commits.append(args)

    def image_exists(self, tag: str) -> bool:
        return tag.endswith(":web1")


def test_a_snapshot_commits_every_host_paused_and_refuses_a_host_that_is_not_running(
    inventory_json: dict[str, Any],
) -> None:
    config = config_of(inventory_json)
    names = {config.container(h): "running" for h in config.hosts}
    podman = SnapshotPodman(names)
    tags = Lab(config, lambda _: None, podman=podman).snapshot()  # type: ignore[arg-type]
    assert tags == [f"localhost/portalops-snapshot:{h.name}" for h in config.hosts]
    assert sorted(c[-2] for c in podman.commits) == sorted(names)
    assert all(c[:3] == ("commit", "--quiet", "--pause") for c in podman.commits)
    names["portalops-db1"] = "exited"
    with pytest.raises(Exception, match="portalops-db1 is exited"):
        Lab(config, lambda _: None, podman=SnapshotPodman(names)).snapshot()  # type: ignore[arg-type]


def test_up_from_a_snapshot_that_is_missing_names_what_to_run(
    inventory_json: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = config_of(inventory_json)
    monkeypatch.setattr("portalops.lab.lab.require_tools", lambda *_: None)
    monkeypatch.setattr("portalops.lab.lab.build_image", lambda *_, **__: "localhost/portalops-lab:1")
    monkeypatch.setattr("portalops.lab.lab.bake_hosts_image", lambda *_, **__: "localhost/portalops-lab-hosts:1")
    lab = Lab(config, lambda _: None, podman=SnapshotPodman({}))  # type: ignore[arg-type]
    with pytest.raises(EnvironmentProblem, match=r"portalops-snapshot:db1.*run `portalops lab snapshot` first") as err:
        lab.up(from_snapshot=True)
    assert "snapshot:web1" not in str(err.value)  # the one that exists is not named


def test_the_clones_podman_configuration_has_its_own_tmp_and_network_directories() -> None:
    text = clone.containers_conf(CONTAINERS_CONF.read_text(), Path("/run/c/libpod"), Path("/var/tmp/c/.lab/networks"))
    assert '[engine]\ntmp_dir = "/run/c/libpod"\n' in text
    assert '[network]\nnetwork_config_dir = "/var/tmp/c/.lab/networks"\n' in text
    # everything else as the lab has it
    assert (
        text.replace('tmp_dir = "/run/c/libpod"\n', "").replace('network_config_dir = "/var/tmp/c/.lab/networks"\n', "")
        == CONTAINERS_CONF.read_text()
    )
    with pytest.raises(EnvironmentProblem, match=r"no \[network\] section"):
        clone.containers_conf("[engine]\nruntime = 'runc'\n", Path("/a"), Path("/b"))


def test_the_clones_store_reads_the_labs_images() -> None:
    text = clone.storage_conf("overlay", Path("/var/tmp/c/.lab/storage"), Path("/run/c/storage"), "/var/lib/x")
    assert 'driver = "overlay"' in text
    assert 'graphroot = "/var/tmp/c/.lab/storage"' in text
    assert 'runroot = "/run/c/storage"' in text
    assert 'additionalimagestores = ["/var/lib/x"]' in text


def test_every_command_of_the_clone_runs_in_its_namespaces_and_directory(tmp_path: Path) -> None:
    made = clone.Clone(root=tmp_path, netns=clone.netns_name(tmp_path))
    argv = made.argv("pytest", "-q")
    assert argv[0] == "nsenter" and argv[-3:] == ["--", "pytest", "-q"]
    assert f"--net=/run/netns/{made.netns}" in argv
    assert f"--mount=/run/portalops-clones/{made.netns}/mnt" in argv
    assert f"--wd={tmp_path}" in argv
    # its own podman configuration, store, Ansible control sockets, lab state and portalops code
    assert made.env["CONTAINERS_CONF"] == str(tmp_path / "lab" / "containers.conf")
    assert made.env["CONTAINERS_STORAGE_CONF"] == str(tmp_path / ".lab" / "storage.conf")
    assert made.env["ANSIBLE_CONFIG"] == str(tmp_path / "ansible.cfg")
    assert made.env["ANSIBLE_SSH_CONTROL_PATH_DIR"].startswith(f"/run/portalops-clones/{made.netns}/")
    assert made.env["PORTALOPS_LAB_DIR"] == str(tmp_path / ".lab")
    assert made.env["PYTHONPATH"] == str(tmp_path)
    assert clone.netns_name(tmp_path) == made.netns != clone.netns_name(tmp_path / "other")


def test_a_clone_is_found_by_its_record_and_only_then(tmp_path: Path) -> None:
    assert clone.load(tmp_path) is None
    (tmp_path / ".lab").mkdir()
    (tmp_path / ".lab" / "clone.json").write_text(json.dumps({"netns": "portalops-abc"}))
    assert clone.load(tmp_path) == clone.Clone(root=tmp_path.resolve(), netns="portalops-abc")
    (tmp_path / ".lab" / "clone.json").write_text("{")
    assert clone.load(tmp_path) is None
    with pytest.raises(BadInput, match="not a lab clone"):
        clone.remove(tmp_path, lambda _: None)


def test_a_clone_goes_only_where_it_harms_nothing(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(BadInput, match="exists and is not a lab clone"):
        clone.create(tmp_path, lambda _: None)
    assert (tmp_path / "notes.txt").read_text() == "mine"
    with pytest.raises(BadInput, match="inside the repository"):
        clone.create(REPO_ROOT / "build" / "clone", lambda _: None)


def test_the_clone_copies_what_git_tracks_and_new_files_it_does_not_ignore(tmp_path: Path) -> None:
    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / ".gitignore").write_text("/.lab/\n")
    (tmp_path / "tracked.py").write_text("x = 1\n")
    git("add", ".gitignore", "tracked.py")
    (tmp_path / "new.py").write_text("y = 2\n")  # a change under test, not committed yet
    (tmp_path / ".lab").mkdir()
    (tmp_path / ".lab" / "storage.conf").write_text("")  # state: not copied
    assert clone.tracked_files(tmp_path) == [Path(".gitignore"), Path("new.py"), Path("tracked.py")]


def test_the_snapshot_stays_while_a_clone_runs_from_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from portalops import cli

    monkeypatch.setattr(clone, "RUN_DIR", tmp_path)
    monkeypatch.setattr(Podman, "preflight", staticmethod(lambda: None))
    removed: list[str] = []
    monkeypatch.setattr(Lab, "forget_snapshot", lambda self: removed.append("snapshot"))
    (tmp_path / "portalops-abc").mkdir()
    (tmp_path / "portalops-abc" / "mnt").touch()
    assert clone.running() == ["portalops-abc"]
    code = cli.main(["lab", "snapshot", "--remove"])
    assert code != 0 and removed == []
    (tmp_path / "portalops-abc" / "mnt").unlink()
    assert cli.main(["lab", "snapshot", "--remove"]) == 0 and removed == ["snapshot"]


def test_removing_a_clone_ends_its_relay_and_only_its_relay(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pid file may outlive its relay and the pid be reused: only the process it names (pid and start time)
    is ended, right after its start too."""
    monkeypatch.setattr(clone, "RUN_DIR", tmp_path)
    the_clone = clone.Clone(root=tmp_path / "c", netns="portalops-test")
    the_clone.run_dir.mkdir()
    pid_file = the_clone.run_dir / clone.RELAY_PID
    # a child of ours, as the relay is of the command that made the clone: stop_relay ends and reaps it
    relay = os.posix_spawnp("sleep", ["sleep", "30"], os.environ)
    pid_file.write_text(f"{relay} {clone.start_time(relay)}\n")
    clone.stop_relay(the_clone)
    assert not Path(f"/proc/{relay}").exists()
    other = subprocess.Popen(["sleep", "30"])  # the same pid would be another process: it stays
    try:
        pid_file.write_text(f"{other.pid} 1\n")
        clone.stop_relay(the_clone)
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()
    for text in ("not a pid\n", f"{other.pid} 1\n", ""):  # gone, garbled, empty: nothing to end, no error
        pid_file.write_text(text)
        clone.stop_relay(the_clone)
