"""The monitoring role's templates and input check, run by ansible-playbook on this machine: no host.

The role's validate entry point (argument spec, then tasks/validate.yml) and its templates run against
localhost with a connection that touches nothing; the files land in a temporary directory. Whether the
daemons accept them (promtool, amtool, blackbox --config.check) is proved by the molecule scenario,
where the binaries are.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from portalops.inventory import REPO_ROOT
from tests.roleplay import role_entry_play, run_play

LAB_SITES: list[dict[str, Any]] = yaml.safe_load((REPO_ROOT / "inventory/lab/group_vars/all/portal.yml").read_text())[
    "portal_sites"
]
TEMPLATES = {
    "prometheus.yml": "etc/prometheus/prometheus.yml.j2",
    "blackbox.yml": "etc/prometheus/blackbox.yml.j2",
    "alertmanager.yml": "etc/prometheus/alertmanager.yml.j2",
    "recording.yml": "etc/prometheus/rules/portalops-recording.yml.j2",
    "default-prometheus": "etc/default/prometheus.j2",
}
INVENTORY = {
    "all": {
        "children": {
            "web": {"hosts": {"web1": {"ansible_host": "10.0.0.11"}}},
            "cms": {"hosts": {"cms1": {"ansible_host": "10.0.0.12"}}},
            "db": {"hosts": {"db1": {"ansible_host": "10.0.0.13"}}},
            "monitoring": {"hosts": {"localhost": {"ansible_connection": "local"}}},
        }
    }
}
RENDER = """\
    - name: Render
      ansible.builtin.template:
        src: "{{ role_dir }}/templates/{{ item.value }}"
        dest: "{{ out }}/{{ item.key }}"
        mode: "0600"
      loop: "{{ templates | dict2items }}"
"""
PLAY = role_entry_play(
    "monitoring", "validate", "monitoring", name="Render the monitoring role's files", public=True, then=RENDER
)
TOKEN = "unit-test-token-value"  # noqa: S105 - test data: the text that must never show


def render(tmp_path: Path, **variables: Any) -> subprocess.CompletedProcess[str]:
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    (tmp_path / "hosts.yml").write_text(json.dumps(INVENTORY))
    given = {
        "portal_sites": LAB_SITES,
        "portal_probe_forbidden": ["portalops-drill-defaced"],
        "role_dir": str(REPO_ROOT / "roles/monitoring"),
        "out": str(out),
        "templates": TEMPLATES,
        **variables,
    }
    return run_play(tmp_path, PLAY, given, tmp_path / "hosts.yml", "-v")


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    tmp_path = tmp_path_factory.mktemp("monitoring")
    result = render(
        tmp_path,
        monitoring_alertmanager_webhook_url="http://10.0.0.1:9797/alerts",
        monitoring_alertmanager_webhook_token=TOKEN,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return tmp_path / "out", result.stdout + result.stderr


def load(rendered: tuple[Path, str], name: str) -> Any:
    return yaml.safe_load((rendered[0] / name).read_text())


def test_prometheus_scrapes_the_inventory_and_probes_every_lab_domain(rendered: tuple[Path, str]) -> None:
    config = load(rendered, "prometheus.yml")
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {
        "prometheus",
        "alertmanager",
        "blackbox",
        "node",
        "mysqld",
        "nginx",
        "http_portal",
        "http_portal_defacement",  # the lab has defacement texts (portal_probe_forbidden)
    }
    instances = {name: [g["labels"].get("instance") for g in job["static_configs"]] for name, job in jobs.items()}
    assert instances["node"] == ["web1", "cms1", "db1", "localhost"]
    assert instances["mysqld"] == ["db1"] and instances["nginx"] == ["web1", "cms1"]
    assert jobs["mysqld"]["static_configs"][0]["targets"] == ["10.0.0.13:9104"]
    probe = jobs["http_portal"]
    assert [g["targets"][0] for g in probe["static_configs"]] == [d for s in LAB_SITES for d in s["domains"]]
    # The default edge: the first web host, as mon1 reaches it.
    assert {"target_label": "__param_target", "replacement": "https://10.0.0.11/"} in probe["relabel_configs"]
    assert (probe["scrape_interval"], probe["scrape_timeout"]) == ("20s", "16s")
    assert config["rule_files"] == ["/etc/prometheus/rules/*.yml"]
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["127.0.0.1:9093"]


def test_blackbox_has_a_module_per_probed_domain(rendered: tuple[Path, str]) -> None:
    modules = load(rendered, "blackbox.yml")["modules"]
    probes = [j for j in load(rendered, "prometheus.yml")["scrape_configs"] if j["job_name"].startswith("http_portal")]
    assert sorted(modules) == sorted(g["labels"]["__param_module"] for j in probes for g in j["static_configs"])
    news = modules["http_portal_news.lab.test"]["http"]
    assert news["headers"]["Host"] == news["tls_config"]["server_name"] == "news.lab.test"
    assert news["fail_if_body_matches_regexp"] == [r"portalops\-drill\-defaced"]


def test_retention_and_recording_rules(rendered: tuple[Path, str]) -> None:
    args = (rendered[0] / "default-prometheus").read_text()
    assert "--storage.tsdb.retention.time=400d" in args
    rules = [r["record"] for g in load(rendered, "recording.yml")["groups"] for r in g["rules"]]
    assert {"portalops:site_availability:ratio_7d", "portalops:site_availability:veto_margin_7d"} <= set(rules)
    assert "portalops:probe_duration_seconds:p95_24h" in rules


def test_alertmanager_names_the_token_file_and_never_shows_the_token(rendered: tuple[Path, str]) -> None:
    config = load(rendered, "alertmanager.yml")
    assert config["route"]["receiver"] == "portalops-responder"
    assert config["route"]["group_wait"] == "5s"
    (webhook,) = config["receivers"][0]["webhook_configs"]
    assert webhook["url"] == "http://10.0.0.1:9797/alerts"
    assert webhook["http_config"]["authorization"]["credentials_file"] == "/etc/prometheus/alertmanager-webhook.token"
    assert TOKEN not in (rendered[0] / "alertmanager.yml").read_text()
    assert TOKEN not in rendered[1]  # nor in the run's output (-v)


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({"monitoring_retention_time": "300d"}, "monitoring_retention_time"),
        ({"monitoring_probe_interval_seconds": 15}, "monitoring_probe_interval_seconds"),
        ({"monitoring_exporters": [{"name": "php", "groups": ["nope"], "port": 9253}]}, "monitoring_exporters"),
        ({"monitoring_alertmanager_webhook_url": "http://10.0.0.1/alerts"}, "monitoring_alertmanager_webhook_token"),
        ({"monitoring_probe_edge_url": "http://10.0.0.11/"}, "monitoring_probe_edge_url"),
    ],
)
def test_bad_input_stops_before_any_file_naming_the_variable(
    tmp_path: Path, variables: dict[str, Any], named: str
) -> None:
    result = render(tmp_path, **variables)
    assert result.returncode != 0
    assert named in result.stdout
    assert not any((tmp_path / "out").iterdir())
