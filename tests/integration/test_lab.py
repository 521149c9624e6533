"""The lab behaves as DESIGN.md promises: six real hosts, reachable like production."""

from __future__ import annotations

import json
import time
import urllib.request
import uuid

import yaml

from portalops.inventory import REPO_ROOT
from portalops.lab.config import LabConfig
from portalops.lab.image import hosts_image_tag, image_tag
from tests.integration.helpers import ansible, on, podman, portalops

HOSTS = ["backup1", "cms1", "db1", "drill1", "mon1", "web1"]


def container_ids(lab: LabConfig) -> dict[str, str]:
    out = podman("ps", "--all", "--filter", f"label={lab.label}", "--format", "json").stdout
    return {row["Labels"]["portalops.host"]: row["Id"] for row in json.loads(out)}


def test_every_host_answers_ansible_over_ssh(lab: LabConfig) -> None:
    results = ansible("all", "ansible.builtin.ping")
    assert sorted(results) == HOSTS
    assert {host: r.get("ping") for host, r in results.items()} == dict.fromkeys(HOSTS, "pong")


def test_ansible_connects_as_the_deploy_user_and_becomes_root(lab: LabConfig) -> None:
    plain = ansible("all", "ansible.builtin.command", "id -un", "-e", "ansible_become=false")
    assert {h: r["stdout"] for h, r in plain.items()} == dict.fromkeys(HOSTS, "deploy")
    become = ansible("all", "ansible.builtin.command", "id -un")
    assert {h: r["stdout"] for h, r in become.items()} == dict.fromkeys(HOSTS, "root")
    known = lab.known_hosts.read_text().splitlines()
    assert sorted(line.split(",")[0] for line in known) == HOSTS


def test_systemd_is_running_on_every_host(lab: LabConfig) -> None:
    results = ansible("all", "ansible.builtin.command", "systemctl is-system-running")
    states = {h: r["stdout"] for h, r in results.items()}
    assert set(states.values()) <= {"running", "degraded"}, states
    status = portalops("lab", "status")
    assert status.returncode == 0, status.stdout + status.stderr
    for host, state in states.items():
        line = next(line for line in status.stdout.splitlines() if line.startswith(host + " "))
        assert state in line
        if state == "degraded":
            assert "failed:" in line  # the failed units are named


def test_hosts_resolve_each_other_by_name(lab: LabConfig) -> None:
    addresses = {h.name: h.address for h in lab.hosts}
    script = "; ".join(f"getent hosts {name} | cut -d' ' -f1" for name in HOSTS)
    results = ansible("all", "ansible.builtin.shell", script, "-e", "ansible_become=false")
    expected = [addresses[name] for name in HOSTS]
    for host, result in results.items():
        assert result["stdout"].split() == expected, host


def test_web1_port_443_is_published_on_loopback_8443(lab: LabConfig) -> None:
    unit = f"lab-test-http-{uuid.uuid4().hex[:6]}"
    # On a converged lab nginx holds 443: lend the port to the test server and give it back after.
    held = ansible(
        "web1", "ansible.builtin.shell", "if systemctl is-active -q nginx; then systemctl stop nginx; echo held; fi"
    )
    ansible(
        "web1",
        "ansible.builtin.command",
        f"systemd-run --unit {unit} --working-directory /etc python3 -m http.server 443",
    )
    try:
        body = b""
        for _ in range(50):
            try:
                with urllib.request.urlopen("http://127.0.0.1:8443/hostname", timeout=2) as response:
                    body = response.read()
                break
            except OSError:
                time.sleep(0.2)
        assert body.strip() == b"web1"
    finally:
        ansible("web1", "ansible.builtin.command", f"systemctl stop {unit}")
        if held["web1"]["stdout"] == "held":
            ansible("web1", "ansible.builtin.command", "systemctl start nginx")
    assert podman("port", "portalops-cms1").stdout.strip() == ""


def test_warm_up_reuses_every_healthy_host(lab: LabConfig) -> None:
    before = container_ids(lab)
    up = portalops("lab", "up")
    assert up.returncode == 0, up.stderr
    assert container_ids(lab) == before
    assert up.stderr.count("reused") == len(HOSTS)


# What a command sees of its host and is given: name, init, address, environment, account, directory, limits.
PROBE = (
    "hostname; echo \"$(cat /etc/hostname)\"; readlink /proc/1/exe; ip -4 -o addr show eth0 | cut -d' ' -f7;"
    " env | sort; id; pwd; umask; ulimit -n; exit 3"
)


def test_the_tests_commands_on_a_host_see_and_get_what_podman_exec_gives(lab: LabConfig) -> None:
    """helpers.on() enters a running container's namespaces instead of `podman exec`: the same host for a command."""
    for host in HOSTS:
        entered = on(host, PROBE, check=False)
        executed = podman("exec", f"portalops-{host}", "/bin/sh", "-c", PROBE, check=False)
        assert (entered.returncode, entered.stdout, entered.stderr) == (3, executed.stdout, executed.stderr), host
        assert entered.stdout.splitlines()[:2] == [host, host]


def test_a_broken_host_is_replaced_and_the_others_kept(lab: LabConfig) -> None:
    before = container_ids(lab)
    ansible("drill1", "ansible.builtin.setup", "gather_subset=min")  # fills the fact cache

    def cached() -> list[str]:
        return [p.name for p in (REPO_ROOT / ".lab" / "facts").glob("*drill1")]

    assert cached()
    podman("kill", "portalops-drill1")
    up = portalops("lab", "up")
    assert up.returncode == 0, up.stderr
    after = container_ids(lab)
    assert after["drill1"] != before["drill1"]
    assert {h: i for h, i in after.items() if h != "drill1"} == {h: i for h, i in before.items() if h != "drill1"}
    assert "replaced (container exited)" in next(line for line in up.stderr.splitlines() if line.startswith("drill1"))
    assert ansible("drill1", "ansible.builtin.ping")["drill1"]["ping"] == "pong"
    assert not cached(), "facts cached about the old drill1 survived its replacement"
    # helpers.on() knew the old container's init (the test above), which died with it: it must enter the new one.
    assert on("drill1", "hostname").stdout.strip() == "drill1"


def test_lab_ssh_runs_a_command_and_rejects_unknown_hosts(lab: LabConfig) -> None:
    ok = portalops("lab", "ssh", "db1", "--", "hostname")
    assert (ok.returncode, ok.stdout.strip()) == (0, "db1")
    bad = portalops("lab", "ssh", "nosuchhost")
    assert bad.returncode == 2
    assert bad.stderr.strip() == "portalops: no lab host named 'nosuchhost'; the lab has: " + ", ".join(HOSTS)


def test_down_removes_the_lab_and_nothing_else_then_up_restores_it(lab: LabConfig) -> None:
    bystander = f"bystander-{uuid.uuid4().hex[:6]}"
    podman("network", "create", bystander)
    podman("create", "--name", bystander, "--network", bystander, "localhost/portalops-lab:bookworm", "/sbin/init")
    try:
        down = portalops("lab", "down")
        assert down.returncode == 0, down.stderr
        assert container_ids(lab) == {}
        assert podman("network", "exists", lab.network, check=False).returncode == 1
        assert podman("container", "exists", bystander, check=False).returncode == 0
        assert podman("network", "exists", bystander, check=False).returncode == 0
        assert podman("image", "exists", "localhost/portalops-lab:bookworm", check=False).returncode == 0
        assert lab.ssh_key.exists()
        status = portalops("lab", "status")
        assert status.returncode == 1
        assert status.stdout.count("absent") == len(HOSTS)
    finally:
        podman("rm", "--force", bystander, check=False)
        podman("network", "rm", bystander, check=False)
        up = portalops("lab", "up")
    assert up.returncode == 0, up.stderr
    assert up.stderr.count("created") == len(HOSTS)
    assert sorted(ansible("all", "ansible.builtin.ping")) == HOSTS


def test_a_host_from_the_hosts_image_starts_nothing_the_roles_configure_first(lab: LabConfig) -> None:
    """The hosts' image (lab/image/bake.yml) has the hardening controls' packages, but a host booted from it
    must not start their daemons with the packages' defaults before the hardening role has configured them
    (fail2ban's stock jails, auditd in a container), nor have node_exporter, which would listen on every
    address until the exporters role wrote its arguments. Without the bake's step that disables them, fail2ban,
    sysstat and acct are enabled here (their Debian packages enable them)."""
    services = yaml.safe_load((REPO_ROOT / "roles/hardening/vars/main.yml").read_text())["__hardening_services"]
    units = [service["name"] for service in services]
    script = (
        'for unit in "$@"; do echo "$unit $(systemctl is-enabled "$unit" 2>/dev/null)"; done; '
        "dpkg-query -W --showformat='${db:Status-Abbrev}${Package}\\n' fail2ban aide rkhunter prometheus-node-exporter "
        "2>/dev/null; true"
    )
    out = podman("run", "--rm", hosts_image_tag(image_tag()), "/bin/sh", "-c", script, "check", *units).stdout
    lines = [line.split() for line in out.splitlines()]
    states = {words[0]: words[1] if len(words) > 1 else "" for words in lines if words[0] in units}
    assert states["fail2ban"] == "disabled", states  # installed, and left for the role
    enabled = {unit: state for unit, state in states.items() if state not in ("disabled", "")}
    assert enabled == {}, f"enabled in the hosts' image before any role ran: {enabled}"
    installed = {words[1] for words in lines if len(words) == 2 and words[0] == "ii"}
    assert installed == {"fail2ban", "aide", "rkhunter"}, out
