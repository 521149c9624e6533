"""The annual 政府网站工作年度报表 (国办函〔2018〕12号) of each site: what the system knows, filled; the rest blank.

Filled from its sources, never typed: items published per configured section class (the site's REST API
through the edge, classes as ``portalops inspect`` gives them: portal_sites[].sections, else keywords),
visits and unique visitors from the edge's access logs (``portalops-host visits``, portalops_host.visits, run
on each web host; the logs are kept 180 days, so the figure covers the days the logs still hold, and the form says
which), security checks (the audit, inspection and restore-drill reports under ``reports/``), problems
found and corrected (the problem records), monitoring (Prometheus' probes of the site), emergency drills
(fault and restore drills) and the security owner (the security officer of ``portalops_contacts``). Every
other field is a marked blank for staff: :data:`BLANK`.
The sections follow the form: 信息发布, 专栏专题, 解读回应, 办事服务, 互动交流, 安全防护, 移动新媒体, 创新发展.
"""

# ruff: noqa: RUF001, RUF002, RUF003 - Chinese text keeps its own full-width punctuation on purpose
from __future__ import annotations

import json
import shlex
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from portalops.errors import BadInput
from portalops.inspect import veto
from portalops.inspect.edge import Edge
from portalops.inspect.report import INSPECT_VARS, prometheus_from_vars, settings_from_vars
from portalops.inspect.site import Unreadable, parse_gmt, rest
from portalops.monitoring.api import Prometheus, Unreachable
from portalops.resolve import CONNECTION_VARS, resolve_vars
from portalops.runbook.checks import HOST_TOOL
from portalops.runbook.checks import NGINX_ACCESS_LOG as LOG
from portalops.runbook.hosts import Host, SshHost
from portalops.runbook.journal import parse_stamp, stamp
from portalops.runbook.live import connections_for
from portalops.runbook.plandoc import contacts_from, security_officer
from portalops.runbook.workcal import TZ
from portalops.service import problems
from portalops.service.period import Period
from portalops.service.report import REPORT_DIRS, load_reports

FORM = "gov-website"
BLANK = "由人工填写 / to be filled by staff"
LOG_DAYS = 180  # logrotate_retention_days: what the edge keeps
VISIT_TIMEOUT_S = 600.0  # reading 180 days of a busy portal's logs
# Section classes (portalops inspect's) -> the form's three kinds of published information.
KINDS = {veto.STATIC: "posts_static", veto.DYNAMIC: "posts_dynamic", veto.NOTICE: "posts_notice"}
# The security checks of the year: reports/<dir> of the service report (audit, inspection, restore drill).
CHECKS = ("audit", "inspections", "restore_drills")
DRILLS = ("fault_drills", "restore_drills")


@dataclass(frozen=True)
class Field:
    id: str
    zh: str
    en: str
    unit: str = ""


# The form, section by section (国办函〔2018〕12号 附件); a field no source fills stays BLANK.
SECTIONS: tuple[tuple[str, str, str, tuple[Field, ...]], ...] = (
    ("basic", "基本信息", "Basic information", (
        Field("site_name", "网站名称", "Site name"),
        Field("home_url", "首页网址", "Home page URL"),
        Field("sponsor", "主办单位", "Sponsoring unit"),
        Field("site_type", "网站类型（政府门户网站/部门网站/专项网站）", "Site type (portal/department/special)"),
        Field("site_code", "政府网站标识码", "Government website code"),
        Field("icp", "ICP备案编号", "ICP filing number"),
        Field("police", "公安机关备案号", "Public security filing number"),
        Field("visitors", "独立用户访问总量", "Unique visitors", "个 / visitors"),
        Field("views", "网站总访问量", "Total visits", "次 / visits"),
    )),
    ("publishing", "信息发布", "Information published", (
        Field("posts_total", "总数", "Total", "条 / items"),
        Field("posts_static", "概况类信息更新量", "Overview information (static sections)", "条 / items"),
        Field("posts_dynamic", "政务动态信息更新量", "Government news (dynamic sections)", "条 / items"),
        Field("posts_notice", "信息公开目录信息更新量", "Disclosure catalogue (notice sections)", "条 / items"),
    )),
    ("columns", "专栏专题", "Special columns and topics", (
        Field("columns_kept", "维护数量", "Maintained", "个 / columns"),
        Field("columns_new", "新开设数量", "Newly opened", "个 / columns"),
    )),
    ("interpretation", "解读回应", "Interpretation and response", (
        Field("interpretations", "解读信息发布总数", "Interpretations published", "条 / items"),
        Field("interpretation_materials", "其中：解读材料数量", "of which: interpretation materials", "条 / items"),
        Field("interpretation_products", "其中：解读产品数量", "of which: interpretation products", "条 / items"),
        Field("media_articles", "其中：媒体评论文章数量", "of which: media commentaries", "条 / items"),
        Field("responses", "回应公众关注热点或重大舆情数量", "Responses to public concerns", "次 / times"),
    )),
    ("services", "办事服务", "Online services", (
        Field("service_catalogue", "是否发布服务事项目录", "Service catalogue published"),
        Field("registered_users", "注册用户数", "Registered users", "个 / users"),
        Field("services", "政务服务事项数量", "Government services", "项 / services"),
        Field("online_services", "可全程在线办理政务服务事项数量", "Services fully online", "项 / services"),
        Field("cases", "办件量：总数", "Cases handled: total", "件 / cases"),
        Field("cases_people", "办件量：自然人办件量", "Cases handled: natural persons", "件 / cases"),
        Field("cases_entities", "办件量：法人办件量", "Cases handled: legal persons", "件 / cases"),
    )),
    ("interaction", "互动交流", "Interaction", (
        Field("unified_platform", "是否使用统一平台", "Unified platform used"),
        Field("messages", "留言办理：收到留言数量", "Messages received", "条 / messages"),
        Field("messages_done", "留言办理：办结留言数量", "Messages answered", "条 / messages"),
        Field("messages_days", "留言办理：平均办理时间", "Average handling time", "天 / days"),
        Field("messages_public", "留言办理：公开答复数量", "Answers published", "条 / answers"),
        Field("surveys", "征集调查：征集调查期数", "Consultations held", "期 / rounds"),
        Field("survey_opinions", "征集调查：收到意见数量", "Opinions received", "条 / opinions"),
        Field("survey_results", "征集调查：公布调查结果期数", "Results published", "期 / rounds"),
        Field("interviews", "在线访谈：访谈期数", "Online interviews", "期 / rounds"),
        Field("interview_questions", "在线访谈：网民留言数量", "Questions from the public", "条 / questions"),
        Field("interview_answers", "在线访谈：答复网民提问数量", "Questions answered", "条 / answers"),
        Field("smart_qa", "是否提供智能问答功能", "Intelligent Q&A offered"),
    )),
    ("security", "安全防护", "Security", (
        Field("checks", "安全检测评估次数", "Security checks and assessments", "次 / times"),
        Field("problems_found", "发现问题数量", "Problems found", "个 / problems"),
        Field("problems_fixed", "问题整改数量", "Problems corrected", "个 / problems"),
        Field("monitoring", "是否建立安全监测预警机制", "Security monitoring and early warning in place"),
        Field("drills", "是否开展应急演练", "Emergency drills held"),
        Field("owner", "是否明确网站安全责任人", "Person responsible for the site's security named"),
    )),
    ("mobile", "移动新媒体", "Mobile and new media", (
        Field("has_mobile", "是否有移动新媒体", "Has mobile or new media"),
        Field("weibo", "微博：名称 / 信息发布量 / 关注量", "Weibo: name / posts / followers"),
        Field("wechat", "微信：名称 / 信息发布量 / 订阅数", "WeChat: name / posts / subscribers"),
        Field("mobile_other", "其他", "Other"),
    )),
    ("innovation", "创新发展", "Innovation", (
        Field("search_service", "搜索即服务", "Search as a service"),
        Field("multilingual", "多语言版本", "Multilingual versions"),
        Field("accessibility", "无障碍浏览", "Accessible browsing"),
        Field("personalised", "千人千网", "Personalised pages"),
        Field("innovation_other", "其他", "Other"),
    )),
    ("signature", "填报信息", "Filled in by", (
        Field("head", "单位负责人", "Head of the unit"),
        Field("reviewer", "审核人", "Reviewer"),
        Field("filler", "填报人", "Filled in by"),
        Field("phone", "联系电话", "Telephone"),
        Field("filled_on", "填报日期", "Date"),
    )),
)  # fmt: skip
FIELDS = {f.id: f for _key, _zh, _en, fields in SECTIONS for f in fields}


def value(shown: str, source: str) -> dict[str, str]:
    """A filled field: what the form shows and where it comes from."""
    return {"value": shown, "source": source}


def marked(why: str) -> dict[str, str]:
    """A field left blank for staff, with why no source could fill it."""
    return {"value": BLANK, "source": "", "why": why}


# --------------------------------------------------------------------------- published items (REST API)


def publishing(
    categories: Sequence[Mapping[str, Any]],
    posts: Sequence[Mapping[str, Any]],
    period: Period,
    configured: Sequence[Mapping[str, str]] = (),
) -> dict[str, Any]:
    """Posts published in the period per category (its own posts, as the database links them) and per
    class (each post once, in every class one of its categories has), with the class of each category."""
    dated = [p for p in posts if period.contains(parse_gmt(str(p["date_gmt"])))]
    rows = []
    for c in categories:
        slug = urllib.parse.unquote(str(c.get("slug", "")))  # WordPress keeps a Chinese slug %-encoded
        rows.append(
            {
                "id": int(c["id"]),
                "name": str(c.get("name", "")),
                "slug": slug,
                "class": veto.classify(slug, str(c.get("name", "")), configured),
                "posts": sum(1 for p in dated if int(c["id"]) in (p.get("categories") or [])),
            }
        )
    classes = {int(c["id"]): str(r["class"]) for c, r in zip(categories, rows, strict=True)}
    by_class = {
        klass: sum(1 for p in dated if klass in {classes.get(int(c)) for c in p.get("categories") or []})
        for klass in veto.CLASSES
    }
    return {"error": "", "total": len(dated), "by_class": by_class, "categories": rows}


def gather_publishing(edge: Edge, period: Period, configured: Sequence[Mapping[str, str]]) -> dict[str, Any]:
    """The site's categories and the posts dated near the period (the REST API's ``after``/``before`` read
    the site's local time: a day's margin, then the exact UTC bounds here)."""
    after = (period.start - timedelta(days=1)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    before = (period.end + timedelta(days=1)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    try:
        categories = rest(edge, "/wp/v2/categories", "_fields=id,name,slug,parent")
        posts = rest(edge, "/wp/v2/posts", f"_fields=id,date_gmt,categories&after={after}&before={before}")
    except Unreadable as exc:
        return {"error": f"the REST API did not answer: {exc}", "categories": []}
    finally:
        edge.close()
    return publishing(categories, posts, period, configured)


# --------------------------------------------------------------------------- visits (the edge's logs)


def visits_command(log: str, period: Period, domains: Mapping[str, str]) -> str:
    """The shell line that counts the visits of ``period`` in a web host's access log ``log`` and its
    rotations (``domains``: domain -> site); it prints portalops_host.visits.aggregate's JSON and ``files``."""
    words = [HOST_TOOL, "visits", "--log", log, "--start", period.start.isoformat(), "--end", period.end.isoformat()]
    return shlex.join([*words, "--domains", json.dumps(dict(domains))])


def merge_visits(found: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Each web host's ``portalops-host visits`` answer, summed: lines per day, and per site and day."""
    days: dict[str, int] = {}
    sites: dict[str, dict[str, dict[str, int]]] = {}
    for answer in found.values():
        for day, count in answer["days"].items():
            days[day] = days.get(day, 0) + int(count)
        for site, per in answer["sites"].items():
            for day, figures in per.items():
                kept = sites.setdefault(site, {}).setdefault(day, {"views": 0, "visitors": 0})
                kept["views"] += int(figures["views"])
                kept["visitors"] += int(figures["visitors"])  # a client stays on one edge host (per day)
    return {"days": dict(sorted(days.items())), "sites": sites}


def _runs(days: Sequence[date]) -> list[str]:
    """Consecutive days as ranges: 2026-01-01 – 2026-06-07, 2026-06-09."""
    out: list[str] = []
    start = prev = None
    for day in [*days, None]:
        if day is not None and prev is not None and day == prev + timedelta(days=1):
            prev = day
            continue
        if start is not None and prev is not None:
            out.append(start.isoformat() if start == prev else f"{start.isoformat()} – {prev.isoformat()}")
        start = prev = day
    return out


def coverage(period: Period, now: datetime, days: Mapping[str, int]) -> dict[str, Any]:
    """Which days of the period the logs hold: the count, the ranges, and the days past so far they miss."""
    past = [d for d in period.days() if datetime(d.year, d.month, d.day, tzinfo=TZ) < now]
    held = [d for d in past if days.get(d.isoformat())]
    missing = [d for d in past if not days.get(d.isoformat())]
    return {
        "days_in_period": len(period.days()),
        "days_so_far": len(past),
        "days_covered": len(held),
        "first_day": held[0].isoformat() if held else None,
        "last_day": held[-1].isoformat() if held else None,
        "covered": _runs(held),
        "missing": _runs(missing),
        "retention_days": LOG_DAYS,
    }


def site_visits(merged: Mapping[str, Any], site: str) -> dict[str, Any]:
    per = merged["sites"].get(site, {})
    return {
        "views": sum(int(f["views"]) for f in per.values()),
        "visitors": sum(int(f["visitors"]) for f in per.values()),
        "days": {day: dict(f) for day, f in sorted(per.items())},
    }


def gather_visits(
    hosts: Mapping[str, Host], logs: Mapping[str, str], period: Period, domains: Mapping[str, str]
) -> tuple[dict[str, Any], list[str]]:
    """``portalops-host visits`` run on each web host over its access log (``logs``: host -> path); the answers
    merged, and what went wrong on which host."""
    answers, errors = {}, []
    for name, host in sorted(hosts.items()):
        log = logs.get(name, LOG)
        try:
            result = host.run(visits_command(log, period, domains), VISIT_TIMEOUT_S)
            if not result.ok:
                errors.append(f"{name}: reading {log}: {result.why_unknown()}")
                continue
            answers[name] = json.loads(result.stdout)
        except json.JSONDecodeError as exc:
            errors.append(f"{name}: reading {log}: not JSON ({exc})")
        finally:
            host.close()
    merged = merge_visits(answers)
    merged["hosts"] = {
        name: {k: a[k] for k in ("files", "first", "last", "unparsed", "unattributed")} for name, a in answers.items()
    }
    return merged, errors


# --------------------------------------------------------------------------- security (records and reports)


def security(period: Period, reports_dir: Path, incidents_dir: Path) -> dict[str, Any]:
    """Checks run (audit, inspection, restore drill reports), problems opened and corrected in the period,
    and the emergency drills (fault and restore drills) with their dates."""
    runs: dict[str, list[str]] = {}
    unreadable: list[str] = []
    for name in {*CHECKS, *DRILLS}:
        found, bad = load_reports(reports_dir / REPORT_DIRS[name], period)
        runs[name] = [stamp(when) for when, _body in found]
        unreadable += [f"reports/{REPORT_DIRS[name]}/{b}" for b in bad]
    found_problems, malformed = problems.load(incidents_dir)
    opened, fixed = [], []
    for problem in found_problems:
        if period.contains(parse_stamp(str(problem.meta["opened"]))):
            opened.append(problem.id)
        moves = [
            parse_stamp(str(e["ts"]))
            for e in problem.meta.get("history") or []
            if e.get("to") in (problems.Status.RESOLVED, problems.Status.CLOSED)
        ]
        if moves and period.contains(min(moves)):
            fixed.append(problem.id)
    return {
        "checks": sum(len(runs[name]) for name in CHECKS),
        "runs": {name: sorted(runs[name]) for name in sorted(runs)},
        "drills": sorted(t for name in DRILLS for t in runs[name]),
        "problems_found": sorted(opened),
        "problems_fixed": sorted(fixed),
        "unreadable": sorted([*unreadable, *malformed]),
    }


PROBED = 'probe_success{job="http_portal"}'  # blackbox_exporter's probe of each site (monitoring role)


def gather_monitoring(prometheus: Prometheus | None, period: Period, now: datetime) -> dict[str, Any]:
    """Did Prometheus probe each site in the period: on how many days, and its first and last probe (to the
    minute); why it is not known otherwise. Days first (one point a day, each counting the day before it),
    then the minute inside the first and the last day that had probes."""
    if prometheus is None:
        return {"error": "no Prometheus known (no monitoring host in the inventory, no --prometheus)", "sites": {}}
    until = min(period.end, now)
    seconds = int((until - period.start).total_seconds())
    if seconds <= 0:
        return {"error": "the period has not begun", "sites": {}}
    day = timedelta(days=1)
    first_point = until - day * ((seconds - 1) // 86400)
    sites: dict[str, dict[str, Any]] = {}
    try:
        series = prometheus.query_range(
            f"sum by (site) (count_over_time({PROBED}[1d]))", first_point, until, day.total_seconds()
        )
        for item in series:
            site = item.labels.get("site", "")
            probed = [at for at, count in item.values if count > 0]
            if not site or not probed:
                continue
            inner = f'timestamp({PROBED[:-1]},site="{site}"}})[1d:1m]'
            first = prometheus.query(f"min(min_over_time({inner}))", datetime.fromtimestamp(probed[0], UTC))
            last = prometheus.query(f"max(max_over_time({inner}))", datetime.fromtimestamp(probed[-1], UTC))
            if first and last:
                sites[site] = {
                    "days": len(probed),
                    "first": stamp(max(datetime.fromtimestamp(first[0].value, UTC), period.start)),
                    "last": stamp(datetime.fromtimestamp(last[0].value, UTC)),
                }
    except Unreachable as exc:
        return {"error": f"Prometheus did not answer ({exc})", "sites": {}}
    return {"error": "", "prometheus": prometheus.url, "sites": sites}


# --------------------------------------------------------------------------- the form


def _day(text: str) -> str:
    return parse_stamp(text).astimezone(TZ).date().isoformat()


def fill(
    site: Mapping[str, str],
    posts: Mapping[str, Any],
    seen: Mapping[str, Any] | None,
    cover: Mapping[str, Any],
    secure: Mapping[str, Any],
    watch: Mapping[str, Any],
    contacts: Sequence[Mapping[str, Any]] = (),
) -> dict[str, dict[str, str]]:
    """The fields the sources fill, id -> {value, source} (or a blank marked with why); ``seen`` None when the
    logs could not be read; ``contacts`` the inventory's ``portalops_contacts``."""
    filled = {
        "site_name": value(site["title"], "inventory portal_sites[].title"),
        "home_url": value(site["url"], "inventory portal_sites[].domains[0]"),
    }
    if seen is not None and cover["days_covered"]:
        span = f"{cover['days_covered']}/{cover['days_so_far']} 天 days: {', '.join(cover['covered'])}"
        source = f"web access logs ({span}; logs kept {cover['retention_days']} days)"
        filled["visitors"] = value(str(seen["visitors"]), source + "; one address + user agent per day, summed")
        filled["views"] = value(str(seen["views"]), source + "; page views by browsers")
    if not posts.get("error"):
        source = "WordPress REST API: posts dated in the year, per section class (portal_sites[].sections)"
        filled["posts_total"] = value(str(posts["total"]), source)
        for klass, field_id in KINDS.items():
            filled[field_id] = value(str(posts["by_class"][klass]), source)
    runs = secure["runs"]
    counted = ", ".join(f"{name} {len(runs[name])}" for name in CHECKS)
    filled["checks"] = value(str(secure["checks"]), f"reports/ ({counted})")
    filled["problems_found"] = value(str(len(secure["problems_found"])), "problem records opened in the year")
    filled["problems_fixed"] = value(str(len(secure["problems_fixed"])), "problem records resolved in the year")
    if not watch.get("error"):
        probed = watch["sites"].get(site["name"])
        filled["monitoring"] = value(
            f"是 yes（{_day(probed['first'])} – {_day(probed['last'])}, {probed['days']} 天 days）"
            if probed
            else "否 no",
            f"Prometheus {watch['prometheus']}: blackbox probes of the site in the year, first, last, days",
        )
    drills = secure["drills"]
    shown = f"是 yes（{len(drills)} 次 times: {', '.join(sorted({_day(d) for d in drills}))}）" if drills else "否 no"
    filled["drills"] = value(shown, "reports/fault-drills and reports/drills")
    officer = security_officer(contacts)
    if officer is None:
        filled["owner"] = marked("清单 portalops_contacts 中无安全负责人 / no security officer in portalops_contacts")
    else:
        shown = f"是 yes（{officer['role_zh']} / {officer['role_en']}: {officer['who']}, {officer['phone']}）"
        filled["owner"] = value(shown, "inventory portalops_contacts: the security officer (安全负责人)")
    return filled


def form_sections(filled: Mapping[str, Mapping[str, str]]) -> list[dict[str, Any]]:
    """Every section and field of the form; a field nothing filled is BLANK, for staff (``why``, if known)."""
    blank = marked("")
    return [
        {
            "id": key,
            "zh": zh,
            "en": en,
            "fields": [
                {
                    "id": f.id,
                    "zh": f.zh,
                    "en": f.en,
                    "unit": f.unit,
                    "filled": filled.get(f.id, blank)["value"] != BLANK,
                    "value": filled.get(f.id, blank)["value"],
                    "source": filled.get(f.id, blank)["source"],
                    "why": filled.get(f.id, blank).get("why", ""),
                }
                for f in fields
            ],
        }
        for key, zh, en, fields in SECTIONS
    ]


@dataclass(frozen=True)
class Sources:
    """Where each figure is read: injected, so the form is testable without hosts."""

    publishing: Callable[[Mapping[str, Any]], dict[str, Any]]  # site -> :func:`publishing`'s document
    visits: Callable[[], tuple[dict[str, Any], list[str]]]  # :func:`gather_visits`
    prometheus: Prometheus | None
    reports_dir: Path
    incidents_dir: Path
    contacts: Sequence[Mapping[str, Any]] = ()  # portalops_contacts: the security officer


def build(period: Period, now: datetime, sites: Sequence[Mapping[str, Any]], sources: Sources) -> dict[str, Any]:
    """The form of every site (``sites``: name, title, url, sections) as one JSON-ready document."""
    merged, visit_errors = sources.visits()
    cover = coverage(period, now, merged["days"])
    secure = security(period, sources.reports_dir, sources.incidents_dir)
    watch = gather_monitoring(sources.prometheus, period, now)
    forms = []
    for site in sites:
        posts = sources.publishing(site)
        seen = site_visits(merged, str(site["name"])) if not visit_errors else None
        filled = fill(site, posts, seen, cover, secure, watch, sources.contacts)
        forms.append(
            {
                "site": site["name"],
                "title": site["title"],
                "url": site["url"],
                "publishing": posts,
                "visits": seen,
                "sections": form_sections(filled),
            }
        )
    return {
        "form": FORM,
        "year": period.first.year,
        "period": {"first_day": period.first.isoformat(), "last_day": period.last.isoformat()},
        "generated": stamp(now),
        "complete": now >= period.end,
        "blank": BLANK,
        "logs": {
            "coverage": cover,
            "lines_per_day": merged["days"],
            "hosts": merged.get("hosts", {}),
            "errors": visit_errors,
        },
        "security": secure,
        "monitoring": watch,
        "sites": forms,
    }


def from_inventory(
    source: str,
    period: Period,
    now: datetime,
    reports_dir: Path,
    incidents_dir: Path,
    prometheus_url: str = "",
    timeout: float = 10.0,
    only: str = "",
) -> dict[str, Any]:
    """The form of the inventory's sites (``only`` one of them): the sites, the edge and the web hosts as
    ``portalops inspect`` and the runbooks find them, Prometheus as ``portalops status`` does."""
    expressions = {
        **INSPECT_VARS,
        **CONNECTION_VARS,
        "access_log": f"nginx_portal_access_log | default({LOG!r})",
        "contacts": "portalops_contacts | default([])",
    }
    hostvars = resolve_vars(source, ["all"], expressions, exact=False)
    settings, sites = settings_from_vars(hostvars, 0, 0, 0.0)
    titles = {str(s["name"]): str(s.get("title") or s["name"]) for s in next(iter(hostvars.values()))["sites"]}
    if only:
        sites = [s for s in sites if s["name"] == only]
        if not sites:
            raise BadInput(f"no site {only!r} in portal_sites")
    web = sorted(h for h, v in hostvars.items() if "web" in (v.get("groups") or []))
    domains = {d.lower(): s["name"] for s in sites for d in s["domains"]}

    def read_visits() -> tuple[dict[str, Any], list[str]]:
        if not web:
            return merge_visits({}), ["the inventory has no host in group web: no access log to read"]
        hosts: dict[str, Host] = {h: SshHost(c) for h, c in connections_for(hostvars, web).items()}
        return gather_visits(hosts, {h: str(hostvars[h]["access_log"]) for h in web}, period, domains)

    def read_posts(site: Mapping[str, Any]) -> dict[str, Any]:
        edge = Edge(settings.public_url, site["domains"][0], settings.cafiles, settings.timeout)
        return gather_publishing(edge, period, site["sections"])

    listed = [{**s, "title": titles.get(s["name"], s["name"]), "url": f"https://{s['domains'][0]}/"} for s in sites]
    sources = Sources(
        read_posts, read_visits, prometheus_from_vars(hostvars, source, prometheus_url, timeout), reports_dir,
        incidents_dir, contacts_from(next(iter(hostvars.values()))["contacts"]),
    )  # fmt: skip
    return build(period, now, listed, sources)
