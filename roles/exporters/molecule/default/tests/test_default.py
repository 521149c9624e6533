"""What exporters leaves on a host that is db and cms at once, observed from inside it."""

import re
import time

import pytest
from testinfra.host import Host

# Talk to the container directly: one podman exec per check, not one Ansible run.
testinfra_hosts = ["podman://exporters"]

TEXTFILE_DIR = "/var/lib/prometheus/node-exporter"


def scrape(host: Host, port: int, path: str = "/metrics") -> str:
    out: str = host.check_output(f"curl -sSf --max-time 10 http://127.0.0.1:{port}{path}")
    return out


def sample(text: str, name: str) -> float:
    """The value of the first sample whose name and labels start with ``name``."""
    for line in text.splitlines():
        if line.startswith(name):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {name} in the scrape")


@pytest.mark.parametrize(
    "service,port",
    [
        ("prometheus-node-exporter", 9100),
        ("prometheus-mysqld-exporter", 9104),
        ("prometheus-nginx-exporter", 9113),
    ],
)
def test_exporter_runs_on_the_private_address_only(host: Host, service: str, port: int) -> None:
    assert host.service(service).is_running
    assert host.service(service).is_enabled
    assert host.socket(f"tcp://127.0.0.1:{port}").is_listening
    assert not host.socket(f"tcp://0.0.0.0:{port}").is_listening
    assert not host.socket(f"tcp://:::{port}").is_listening


def test_node_textfile_collector_reads_the_backup_metrics(host: Host) -> None:
    metrics = scrape(host, 9100)
    assert sample(metrics, "node_textfile_scrape_error") == 0
    assert sample(metrics, 'portalops_backup_last_run_success{command="run",host="exporters"}') == 1
    assert sample(metrics, 'portalops_backup_job_success{host="exporters",job="mariadb"}') == 1


def test_node_collectors(host: Host) -> None:
    metrics = scrape(host, 9100)
    assert sample(metrics, 'node_scrape_collector_success{collector="systemd"}') == 1
    assert 'node_systemd_unit_state{name="mariadb.service",state="active"' in metrics
    assert 'collector="rapl"' not in metrics
    assert 'collector="thermal_zone"' not in metrics


def test_mysqld_exporter_sees_the_server(host: Host) -> None:
    metrics = scrape(host, 9104)
    assert sample(metrics, "mysql_up") == 1
    assert sample(metrics, "mysql_exporter_last_scrape_error") == 0
    assert sample(metrics, "mysql_global_status_uptime") > 0
    assert "mysql_binlog_files" in metrics


def test_mysqld_exporter_user_has_least_privilege(host: Host) -> None:
    grants = host.check_output("mariadb -N -B -e \"SHOW GRANTS FOR 'prometheus_exporter'@'localhost'\"")
    lines = sorted(grants.splitlines())
    assert len(lines) == 4, lines
    assert lines[0].startswith("GRANT PROCESS, BINLOG MONITOR ON *.* TO `prometheus_exporter`@`localhost`")
    assert "WITH MAX_USER_CONNECTIONS 3" in lines[0]
    assert lines[1] == "GRANT SELECT ON `performance_schema`.* TO `prometheus_exporter`@`localhost`"
    # On each site database only what lists its tables (DatabaseTableLost), no row.
    shown = [line.replace("\\", "") for line in lines[2:]]
    assert shown == [
        f"GRANT SHOW VIEW ON `{db}`.* TO `prometheus_exporter`@`localhost`" for db in ("wp_news", "wp_portal")
    ], lines
    hosts = host.check_output("mariadb -N -B -e \"SELECT Host FROM mysql.user WHERE User = 'prometheus_exporter'\"")
    assert hosts.split() == ["localhost"]


def test_mysqld_exporter_config_is_for_the_exporter_only(host: Host) -> None:
    cnf = host.file("/etc/prometheus/mysqld-exporter.cnf")
    assert cnf.user == "prometheus"
    assert cnf.group == "prometheus"
    assert cnf.mode == 0o600
    assert "molecule-exporter-password" in cnf.content_string


def test_nginx_status_on_loopback_and_exporter(host: Host) -> None:
    assert "Active connections" in scrape(host, 8081, "/stub_status")
    assert not host.socket("tcp://0.0.0.0:8081").is_listening
    metrics = scrape(host, 9113)
    assert sample(metrics, "nginx_up") == 1
    assert sample(metrics, "nginx_connections_accepted") >= 1


@pytest.mark.parametrize("pool", ["portal", "news"])
def test_phpfpm_status_through_nginx(host: Host, pool: str) -> None:
    status = host.check_output(f"curl -sSf http://127.0.0.1:8081/php-fpm/{pool}?json")
    assert f'"pool":"wordpress-{pool}"' in status
    assert host.socket(f"unix:///run/php/wordpress-{pool}-status.sock").is_listening


def test_phpfpm_metrics_reach_node_exporter(host: Host) -> None:
    # The timer writes every 15 s; start it once more so this test does not wait for it.
    host.check_output("systemctl start portalops-phpfpm-metrics.service")
    prom = host.file(f"{TEXTFILE_DIR}/portalops_phpfpm.prom")
    assert prom.mode == 0o644
    assert abs(sample(prom.content_string, "phpfpm_metrics_timestamp_seconds") - time.time()) < 120
    metrics = scrape(host, 9100)
    assert sample(metrics, "node_textfile_scrape_error") == 0
    for pool in ("portal", "news"):
        assert sample(metrics, f'phpfpm_up{{pool="{pool}"}}') == 1
        assert re.search(rf'^phpfpm_total_processes{{pool="{pool}"}} \d', metrics, re.M)
    assert host.service("portalops-phpfpm-metrics.timer").is_enabled


def test_broken_status_configs_are_refused_by_their_checks(host: Host) -> None:
    """The checks the role's templates use as validate: a broken candidate never replaces a working file."""
    host.check_output(
        "printf 'server { listen 127.0.0.1:8081; location = /x { stub_statusx; } }' > /tmp/bad-status.conf"
    )
    assert host.run("/usr/local/lib/portalops/exporters-nginx-check /tmp/bad-status.conf").rc != 0
    assert host.run("/usr/local/lib/portalops/exporters-nginx-check /etc/nginx/conf.d/portalops-status.conf").rc == 0
    # A site without a wordpress pool: the drop-in would define a pool with no user or socket.
    host.check_output("printf '[wordpress-ghost]\\npm.status_path = /status\\n' > /tmp/bad-pool.conf")
    check = "/usr/local/lib/portalops/exporters-php-fpm-check /usr/sbin/php-fpm8.2 /etc/php/8.2/fpm/pool.d"
    assert host.run(f"{check} /tmp/bad-pool.conf").rc != 0
    assert host.run(f"{check} /etc/php/8.2/fpm/pool.d/zz-portalops-status.conf").rc == 0


def test_role_files_are_recorded_for_the_tampering_check(host: Host) -> None:
    recorded = host.file("/etc/portalops/code-files.d/exporters.json").content_string
    assert "/etc/nginx/conf.d/portalops-status.conf" in recorded
    assert "/etc/php/8.2/fpm/pool.d/zz-portalops-status.conf" in recorded
