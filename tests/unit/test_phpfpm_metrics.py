"""portalops-phpfpm-metrics (the exporters role's host script): php-fpm pool status to textfile metrics.

The data are php-fpm 8.2 status pages (`/status?json`) recorded through a pool's status socket
(data/phpfpm/README.md): idle, saturated (every worker busy), drained.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.unit.hostscripts import load

DATA = Path(__file__).parent / "data" / "phpfpm"

metrics = load("portalops_phpfpm_metrics", "roles/exporters/files/portalops_phpfpm_metrics.py")


def status(name: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads((DATA / name).read_text())
    return found


def series(text: str) -> dict[str, float]:
    """The samples of a .prom text, by metric and labels."""
    found = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            found[key] = float(value)
    return found


def test_saturated_pool_shows_busy_workers_and_max_children() -> None:
    samples = series(metrics.render({"portal": status("portal-saturated.json")}, now=1796284312.4))
    assert samples['phpfpm_up{pool="portal"}'] == 1
    assert samples['phpfpm_active_processes{pool="portal"}'] == 2
    assert samples['phpfpm_idle_processes{pool="portal"}'] == 0
    assert samples['phpfpm_total_processes{pool="portal"}'] == 2
    assert samples['phpfpm_listen_queue{pool="portal"}'] == 0
    assert samples['phpfpm_max_children_reached{pool="portal"}'] == 1
    assert samples['phpfpm_slow_requests{pool="portal"}'] == 2
    assert samples['phpfpm_accepted_connections{pool="portal"}'] == 2
    assert samples['phpfpm_start_since{pool="portal"}'] == 4
    assert samples["phpfpm_metrics_timestamp_seconds"] == 1796284312


def test_drained_pool_keeps_its_counters() -> None:
    samples = series(metrics.render({"portal": status("portal-drained.json")}, now=0))
    assert samples['phpfpm_active_processes{pool="portal"}'] == 0
    assert samples['phpfpm_idle_processes{pool="portal"}'] == 2
    assert samples['phpfpm_accepted_connections{pool="portal"}'] == 4
    assert samples['phpfpm_max_children_reached{pool="portal"}'] == 1


def test_every_metric_has_help_and_type_once() -> None:
    text = metrics.render({"portal": status("portal-saturated.json"), "news": status("portal-idle.json")}, now=0)
    names = {key.split("{")[0] for key in series(text)}
    for name in names:
        assert text.count(f"# HELP {name} ") == 1, name
        assert text.count(f"# TYPE {name} ") == 1, name
    # Each family's samples follow its TYPE line, both pools in one block.
    lines = text.splitlines()
    start = lines.index("# TYPE phpfpm_active_processes gauge")
    assert lines[start + 1 : start + 3] == [
        'phpfpm_active_processes{pool="portal"} 2',
        'phpfpm_active_processes{pool="news"} 0',
    ]


def test_dead_pool_is_up_zero_and_nothing_else() -> None:
    samples = series(metrics.render({"portal": None, "news": status("portal-idle.json")}, now=0))
    assert samples['phpfpm_up{pool="portal"}'] == 0
    assert not [key for key in samples if 'pool="portal"' in key and not key.startswith("phpfpm_up")]
    assert samples['phpfpm_up{pool="news"}'] == 1


def test_non_numeric_fields_are_skipped() -> None:
    broken = status("portal-drained.json") | {"active processes": "many", "idle processes": True}
    samples = series(metrics.render({"news": broken}, now=0))
    assert 'phpfpm_active_processes{pool="news"}' not in samples
    assert 'phpfpm_idle_processes{pool="news"}' not in samples
    assert samples['phpfpm_total_processes{pool="news"}'] == 2


def test_label_values_are_escaped() -> None:
    assert metrics.label('a"b\\c\nd') == 'a\\"b\\\\c\\nd'


def test_a_pool_that_is_down_is_a_metric_not_a_failure(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    answers = {"http://127.0.0.1:8081/php-fpm/news": status("portal-idle.json")}

    def fetch(url: str, timeout: float) -> Mapping[str, Any]:
        if url not in answers:
            raise metrics.StatusError(f"{url}: connection refused")
        return answers[url]

    out = tmp_path / "portalops_phpfpm.prom"
    argv = ["--output", str(out), "--pool", "news=http://127.0.0.1:8081/php-fpm/news"]
    assert (
        metrics.main([*argv, "--pool", "portal=http://127.0.0.1:8081/php-fpm/portal"], fetch=fetch, clock=lambda: 5.0)
        == 0
    )
    samples = series(out.read_text())
    assert samples['phpfpm_up{pool="portal"}'] == 0
    assert samples['phpfpm_up{pool="news"}'] == 1
    assert "pool portal" in capsys.readouterr().err
    assert oct(out.stat().st_mode & 0o777) == "0o644"
    assert [p.name for p in tmp_path.iterdir()] == ["portalops_phpfpm.prom"]

    assert metrics.main(argv, fetch=fetch, clock=lambda: 6.0) == 0
    assert series(out.read_text())["phpfpm_metrics_timestamp_seconds"] == 6


def test_an_unwritable_output_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "missing" / "portalops_phpfpm.prom"
    argv = ["--output", str(out), "--pool", "news=http://127.0.0.1:8081/php-fpm/news"]
    assert metrics.main(argv, fetch=lambda url, timeout: {}, clock=lambda: 1.0) == 1
    assert "cannot write" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["--output", "x.txt", "--pool", "a=http://127.0.0.1/"],
        ["--output", "x.prom", "--pool", "a"],
        ["--output", "x.prom", "--pool", "a=ftp://127.0.0.1/"],
        ["--output", "x.prom"],
    ],
)
def test_bad_arguments_exit_2(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        metrics.main(argv, fetch=lambda url, timeout: {}, clock=lambda: 0.0)
    assert stop.value.code == 2


def test_fetch_reports_an_unreachable_pool_as_status_error() -> None:
    with pytest.raises(metrics.StatusError):
        # Port 9 (discard) on loopback: nothing listens there in the test environment.
        metrics.fetch_status("http://127.0.0.1:9/php-fpm/portal", timeout=1.0)
