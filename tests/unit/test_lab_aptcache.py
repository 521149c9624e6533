from __future__ import annotations

import socket
from pathlib import Path

import pytest

from portalops.lab.aptcache import Traffic, answers, log_size, parse_log, service_argv, traffic_since

LOG = """\
1796279494|E|628|10.89.60.11|debrep/dists/bookworm/Release [HTTP error, code: 503]
1796279503|I|149506|10.89.60.11|debrep/dists/bookworm/Release
1796279503|O|149482|10.89.60.11|debrep/dists/bookworm/Release
1796279510|O|149482|10.89.60.12|debrep/dists/bookworm/Release
1796279511|O|1000000|10.89.60.12|debrep/pool/main/s/sudo/sudo_1.9.13p3-1+deb12u1_amd64.deb
not a log line
1796279512|X|12|10.89.60.12|something new
"""


def test_parse_log_sums_fetched_served_and_errors() -> None:
    traffic = parse_log(LOG.splitlines())
    assert traffic == Traffic(
        fetched=149506, served=149482 * 2 + 1000000, errors=1, clients=frozenset({"10.89.60.11", "10.89.60.12"})
    )
    assert traffic.hit_ratio == pytest.approx(1 - 149506 / (149482 * 2 + 1000000))
    assert "from the cache" in traffic.describe()


@pytest.mark.parametrize(
    ("traffic", "ratio"),
    [
        (Traffic(), 0.0),
        (Traffic(fetched=10, served=10), 0.0),
        (Traffic(fetched=11, served=10), 0.0),
        (Traffic(fetched=0, served=10), 1.0),
    ],
)
def test_hit_ratio_stays_between_zero_and_one(traffic: Traffic, ratio: float) -> None:
    assert traffic.hit_ratio == ratio


def test_traffic_since_reads_only_what_was_logged_after(tmp_path: Path) -> None:
    log = tmp_path / "apt-cacher.log"
    assert log_size(log) == 0 and traffic_since(0, log) == Traffic()
    log.write_text("1|I|100|c|a\n1|O|100|c|a\n")
    offset = log_size(log)
    with log.open("a") as handle:
        handle.write("2|O|100|c|a\n")
    assert traffic_since(offset, log) == Traffic(served=100, clients=frozenset({"c"}))
    log.write_text("3|O|7|d|a\n")  # rotated: shorter than the offset
    assert traffic_since(offset, log) == Traffic(served=7, clients=frozenset({"d"}))


def test_answers_only_while_something_listens() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert answers("127.0.0.1", port)
    assert not answers("127.0.0.1", port, timeout=0.5)


def test_service_uses_systemd_only_where_it_runs() -> None:
    assert service_argv("start", systemd=True) == ["systemctl", "start", "apt-cacher-ng"]
    assert service_argv("stop", systemd=False) == ["/etc/init.d/apt-cacher-ng", "stop"]
