"""The duty board: one read-only page of what the people on duty watch, gathered as the reports gather it.

Nothing here reads a source of its own: the sites, the open incidents with their deadlines and the
firing alerts are :func:`portalops.monitoring.status.collect` (so the board says "up" exactly when
``portalops status`` does); today's availability, the backups and the newest restore drill are the
service report's readers (:mod:`portalops.service.report`). The page is rendered here, every text
escaped; its script only counts the deadlines down in the browser, from the due times the server
gives and the server's clock (so a duty PC's wrong clock does not shift them).
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from portalops.monitoring import status as monitoring_status
from portalops.monitoring.api import Alertmanager, Prometheus, Unreachable
from portalops.monitoring.status import Due, Status
from portalops.runbook.journal import parse_stamp, stamp
from portalops.runbook.workcal import local_text
from portalops.service import report

BACKUP_WINDOW_S = 86400  # the backups' figures cover the last day: a nightly job ran in it
REFRESH_S = 60  # the page reloads its figures; the countdowns tick every second in between
STATE_CLASS = {"up": "ok", "down": "bad", "defaced": "bad", "unknown": "unknown"}


@dataclass(frozen=True)
class Sources:
    """Where the board reads: the monitoring's APIs, the incident journals, the reports."""

    prometheus: Prometheus
    alertmanager: Alertmanager
    incidents: Path
    reports: Path
    sites: tuple[str, ...] = ()  # the inventory's portal_sites, shown even when no probe names them


@dataclass
class Board:
    """One page's figures, as of ``status.now``."""

    status: Status
    today: dict[str, float] = field(default_factory=dict)  # site -> availability since Beijing midnight
    today_error: str = ""
    backups: dict[str, Any] = field(default_factory=dict)  # report.backups_section over the last day
    drill: dict[str, Any] | None = None  # the newest restore drill, as the service report shows a run
    drill_error: str = ""


def gather(sources: Sources, now: datetime) -> Board:
    """Every figure of the page; a source that does not answer leaves its figures unknown, never made up."""
    status = monitoring_status.collect(sources.prometheus, sources.alertmanager, sources.incidents, now, sources.sites)
    board = Board(status)
    if status.prometheus_error:
        board.today_error = status.prometheus_error
        board.backups = report.backups_section([], [], f"Prometheus did not answer ({status.prometheus_error})")
    else:
        try:
            board.today = {
                s.labels.get("site", ""): s.value for s in report.availability_today(sources.prometheus, now)
            }
        except Unreachable as exc:
            board.today_error = str(exc)
        board.backups = report.backups_over(sources.prometheus, now, BACKUP_WINDOW_S)
    directory = sources.reports / report.REPORT_DIRS["restore_drills"]
    latest = report.latest_report(directory)
    if latest is None:
        board.drill_error = f"no restore drill report in {directory}"
    elif isinstance(latest[1], str):
        board.drill_error = f"the newest restore drill report ({stamp(latest[0])}) is unreadable: {latest[1]}"
    else:
        board.drill = report.reports_section("restore_drills", [(latest[0], latest[1])], [])["runs"][0]
    return board


# ---------------------------------------------------------------------- what the page shows, pure


def clock(seconds: float) -> str:
    """``H:MM:SS`` of a span (its sign dropped), as the page's script writes it."""
    whole = int(abs(seconds))
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def countdown(left_s: float) -> str:
    """The time left to a deadline, or how long it is overdue: the same text the script ticks."""
    return f"{clock(left_s)} left" if left_s >= 0 else f"OVERDUE by {clock(left_s)}"


def ticking(due: Due) -> bool:
    """A deadline still counting: not yet met (pending) or past with nothing done (owed)."""
    return due.status == "pending" or due.owed


def line_class(ratio: float | None) -> str:
    """Against the inspection's 95 % line: ok at or above it, bad under it, unknown without a figure."""
    if ratio is None:
        return "unknown"
    return "ok" if ratio >= report.TARGET else "bad"


def percent(ratio: float | None) -> str:
    return "unknown" if ratio is None else f"{ratio * 100:.2f} %"


def epoch_ms(text: str) -> int:
    return int(parse_stamp(text).timestamp() * 1000)


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _table(head: list[str], rows: list[str], empty: str) -> str:
    cells = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = "".join(rows) or f'<tr><td colspan="{len(head)}" class="none">{_e(empty)}</td></tr>'
    return f"<table><thead><tr>{cells}</tr></thead><tbody>{body}</tbody></table>"


def _sites(board: Board) -> str:
    rows = []
    for site in board.status.sites:
        today = board.today.get(site.name)
        domains = ", ".join(f"{d} {s}" for d, s in sorted(site.domains.items())) or "-"
        margin = "unknown" if site.veto_margin_7d is None else f"{site.veto_margin_7d * 100:+.2f} pp"
        rows.append(
            f'<tr class="site" data-site="{_e(site.name)}"><td>{_e(site.name)}</td>'
            f'<td class="state {STATE_CLASS.get(site.state, "unknown")}">{_e(site.state)}</td>'
            f'<td class="today {line_class(today)}">{_e(percent(today))}</td>'
            f'<td class="week {line_class(site.ratio_7d)}">{_e(percent(site.ratio_7d))}</td>'
            f"<td>{_e(margin)}</td><td>{_e(domains)}</td></tr>"
        )
    head = ["站点 site", "现在 now", "今天 today", "7 天 7 days", "否决余量 veto margin", "域名 domains"]
    note = (
        f"<p class='bad'>Prometheus: {_e(board.status.prometheus_error)}</p>" if board.status.prometheus_error else ""
    )
    if board.today_error and not board.status.prometheus_error:
        note += f"<p class='unknown'>today: {_e(board.today_error)}</p>"
    return note + _table(head, rows, "no site known")


def _deadline(due: Due) -> str:
    when = _e(local_text(parse_stamp(due.due)))
    if ticking(due):
        left = countdown(due.left_s)
        cls = "bad" if due.left_s < 0 else "warn"
        flag = f'<span class="countdown {cls}" data-due="{epoch_ms(due.due)}">{_e(left)}</span>'
    else:
        flag = f'<span class="{"ok" if due.status in ("met", "n/a") else "bad"}">{_e(due.status)}</span>'
        flag += f" {_e(due.evidence)}" if due.evidence else ""
    return f'<li data-deadline="{_e(due.name)}">{_e(due.title)} · due {when} · {flag}</li>'


def _incidents(board: Board) -> str:
    rows = []
    for item in board.status.incidents:
        level = f"L{item.level}" if item.level else "L?"
        deadlines = "".join(_deadline(d) for d in item.deadlines) or "<li>no deadline</li>"
        report_clock = f"<li>报告 report · {_e(item.report)}</li>" if item.report else ""
        detected = _e(local_text(parse_stamp(item.detected))) if item.detected else "-"
        rows.append(
            f'<tr class="incident" data-incident="{_e(item.incident)}"><td>{_e(item.incident)}</td>'
            f"<td>{_e(level)}</td><td>{_e(item.state)}</td><td>{_e(item.title_zh)}<br>{_e(item.title_en)}</td>"
            f"<td>{detected}<br>{_e(item.opened_by)}</td><td><ul>{deadlines}{report_clock}</ul></td></tr>"
        )
    head = ["事件 incident", "级别 level", "状态 state", "标题 title", "发现 detected / by", "时限 deadlines"]
    return _table(head, rows, "no open incident")


def _alerts(board: Board) -> str:
    if board.status.alertmanager_error:
        return f"<p class='bad'>Alertmanager: {_e(board.status.alertmanager_error)}: firing alerts unknown</p>"
    rows = [
        f'<tr class="alert"><td>{_e(a.name)}</td><td>{_e(a.level or a.severity)}</td><td>{_e(a.site)}</td>'
        f"<td>{_e(a.instance)}</td><td>{_e(local_text(parse_stamp(a.since)))}</td><td>{_e(a.summary)}</td></tr>"
        for a in board.status.alerts
    ]
    return _table(
        ["告警 alert", "级别 level", "站点 site", "实例 instance", "起始 since", "摘要 summary"], rows, "none"
    )


def _backups(board: Board) -> str:
    if board.backups.get("error"):
        return f"<p class='unknown'>backups unknown: {_e(board.backups['error'])}</p>"
    rows = []
    for job in board.backups.get("jobs", []):
        last = local_text(parse_stamp(job["last_success"])) if job["last_success"] else "never"
        ok = "ok" if job["all_ok"] else "FAILED"
        rows.append(
            f'<tr class="backup"><td>{_e(job["host"])}</td><td>{_e(job["job"])}</td>'
            f'<td class="{"ok" if job["all_ok"] else "bad"}">{ok}</td><td>{_e(last)}</td></tr>'
        )
    return _table(
        ["主机 host", "备份 job", "近 24 h last 24 h", "最近成功 last success"], rows, "no backup job reported"
    )


def _drill(board: Board) -> str:
    drill = board.drill
    if drill is None:
        return f"<p class='unknown'>{_e(board.drill_error)}</p>"
    started = local_text(parse_stamp(str(drill["started"])))
    verdict = "passed" if drill["ok"] else "FAILED"
    return (
        f'<p class="drill">{_e(started)} · <span class="{"ok" if drill["ok"] else "bad"}">{verdict}</span>'
        f" · RTO {_e(drill['rto_s'])} s · RPO {_e(drill['rpo_s'])} s · checks {_e(drill['checks'])}</p>"
    )


STYLE = """
body { font: 14px/1.4 sans-serif; margin: 1em 2em; color: #222; }
table { border-collapse: collapse; margin-bottom: 1em; } td, th { border: 1px solid #ccc; padding: 4px 8px; }
th { background: #eee; text-align: left; } ul { margin: 0; padding-left: 1em; }
.ok { color: #176d2c; } .bad { color: #b00020; font-weight: bold; } .warn { color: #a15c00; font-weight: bold; }
.unknown, .none { color: #777; } .countdown { font-family: monospace; }
"""

# Counts every [data-due] down once a second from the server's clock (data-now minus the browser's at load).
SCRIPT = """
(function () {
  var skew = Number(document.body.dataset.now) - Date.now();
  function clock(ms) {
    var s = Math.floor(Math.abs(ms) / 1000);
    var m = Math.floor(s % 3600 / 60), x = s % 60;
    return Math.floor(s / 3600) + ":" + (m < 10 ? "0" : "") + m + ":" + (x < 10 ? "0" : "") + x;
  }
  function tick() {
    var now = Date.now() + skew;
    document.querySelectorAll("[data-due]").forEach(function (el) {
      var left = Number(el.dataset.due) - now;
      el.textContent = left >= 0 ? clock(left) + " left" : "OVERDUE by " + clock(left);
      el.className = "countdown " + (left >= 0 ? "warn" : "bad");
    });
  }
  tick();
  setInterval(tick, 1000);
})();
"""


def page(title: str, body: str, nonce: str, now: datetime | None = None) -> str:
    """A whole page; its style and script run only with ``nonce`` (the response's Content-Security-Policy)."""
    data = f' data-now="{int(now.timestamp() * 1000)}"' if now is not None else ""
    refresh = f'<meta http-equiv="refresh" content="{REFRESH_S}">' if now is not None else ""
    script = f'<script nonce="{_e(nonce)}">{SCRIPT}</script>' if now is not None else ""
    return (
        f'<!DOCTYPE html><html lang="zh"><head><meta charset="utf-8">{refresh}'
        f'<title>{_e(title)}</title><style nonce="{_e(nonce)}">{STYLE}</style></head>'
        f"<body{data}>{body}{script}</body></html>"
    )


def render(board: Board, nonce: str) -> str:
    status = board.status
    word, _ = monitoring_status.verdict(status)
    broken, unknown = monitoring_status.problems(status)
    problems = "".join(f'<li class="bad">{_e(p)}</li>' for p in broken)
    problems += "".join(f'<li class="unknown">{_e(p)}</li>' for p in unknown)
    verdict_class = {"ok": "ok", "broken": "bad"}.get(word, "unknown")
    body = (
        f"<h1>值班看板 Duty board</h1><p>{_e(local_text(status.now))} · "
        f'<span class="verdict {verdict_class}">{_e(word)}</span></p>'
        '<form method="post" action="/board/signout"><button>退出 sign out</button></form>'
        f"<ul>{problems}</ul>"
        f"<h2>未结事件 Open incidents ({len(status.incidents)})</h2>{_incidents(board)}"
        f"<h2>告警 Firing alerts</h2>{_alerts(board)}"
        f"<h2>站点 Sites (line {report.TARGET * 100:.0f} %)</h2>{_sites(board)}"
        f"<h2>备份 Backups</h2>{_backups(board)}"
        f"<h2>恢复演练 Last restore drill</h2>{_drill(board)}"
    )
    return page("值班看板 Duty board", body, nonce, status.now)


def signin_page(nonce: str, error: str = "") -> str:
    said = f'<p class="bad">{_e(error)}</p>' if error else ""
    body = (
        f"<h1>值班看板 Duty board</h1>{said}"
        '<form method="post" action="/board/signin"><label>看板口令 board token '
        '<input type="password" name="token" autocomplete="current-password" required autofocus></label> '
        '<button type="submit">登录 sign in</button></form>'
    )
    return page("登录 Sign in · 值班看板", body, nonce)
