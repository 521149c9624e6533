"""The overall emergency plan (总体应急预案), ``docs/emergency_plans/overall.md``.

The framework auditors expect above the specific plans (等保 2.0 level 3 asks for
"统一的应急预案框架"), laid out as the national plan is: 总则 to 附则. Nothing in
it is typed by hand: the levels and deadlines come from :mod:`levels` and
:mod:`workcal`, the specific plans from the runbooks, the people, the hosts and
the grading thresholds from the inventory, the alerts from the rule files in
the repository, the drills from ``drills.json``. :mod:`portalops.runbook.plans`
writes it beside the specific plans and checks it for drift with them.
"""

# ruff: noqa: RUF001 - Chinese text keeps its own full-width punctuation on purpose

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from portalops.errors import BadInput
from portalops.inventory import REPO_ROOT
from portalops.resolve import resolve_vars
from portalops.runbook.alerts import WATCHDOG, ordered
from portalops.runbook.levels import LEVELS, Level
from portalops.runbook.model import Runbook
from portalops.runbook.plandoc import MARK, cell, contacts_from, deadline_table, level_table

# National grades (《国家网络安全事件应急预案》, GB/T 20986-2023): key, 中文, roman, English.
GRADES: tuple[tuple[str, str, str, str], ...] = (
    ("particularly_major", "特别重大", "I", "particularly major"),
    ("major", "重大", "II", "major"),
    ("relatively_major", "较大", "III", "relatively major"),
    ("general", "一般", "IV", "general"),
)
RAISING = tuple(g[0] for g in GRADES[:3])  # the grades a criterion can raise an incident to
# Criteria that raise an incident's grade: key -> (中文, English, unit).
CRITERIA: dict[str, tuple[str, str, str]] = {
    "unreachable_hours": ("门户网站因攻击或故障不能访问", "the portal cannot be reached (attack or fault)", "h"),
    "defaced_home_hours": (
        "篡改的违法有害信息在首页持续",
        "defaced (illegal or harmful) content stays on the home page",
        "h",
    ),
    "defaced_other_hours": ("篡改的违法有害信息在其他页面持续", "defaced content stays on other pages", "h"),
    "personal_records_leaked": ("个人信息泄露或被窃取", "personal information leaked or stolen", "records"),
}
# Defaults of `portalops_national_grading`: our reading of the 分级指南 annexed to the 报告管理办法 and of
# its 2023 draft for government portals; the inventory overrides any of them (see docs in group_vars/all).
GRADING_DEFAULTS: dict[str, dict[str, float]] = {
    "unreachable_hours": {"particularly_major": 24, "major": 6, "relatively_major": 2},
    "defaced_home_hours": {"particularly_major": 6, "major": 2, "relatively_major": 0.5},
    "defaced_other_hours": {"particularly_major": 24, "major": 12, "relatively_major": 2},
    "personal_records_leaked": {"particularly_major": 100_000_000, "major": 10_000_000, "relatively_major": 1_000_000},
}
FAULT_DRILL_INTERVAL_DAYS = 90  # default of portalops_fault_drill_interval_days
# Where a service level starts on the national scale before any criterion raises it (a suggestion).
LEVEL_GRADE: dict[Level, tuple[str, str]] = {
    Level.L1: ("一般（IV）起，满足下表条件时上调", "general (IV) at least; raised when a criterion below is met"),
    Level.L2: (
        "由攻击引起时为一般（IV），否则通常不属于网络安全事件",
        "general (IV) when caused by an attack, otherwise usually not a cybersecurity incident",
    ),
    Level.L3: ("通常不分级，仅记录", "usually not graded; recorded only"),
}
# What a report to the regulator holds (《国家网络安全事件报告管理办法》).
REPORT_CONTENT: tuple[tuple[str, str], ...] = (
    ("事发单位名称及发生事件的设施、系统、平台的基本情况", "the unit, and the facilities, systems, platforms affected"),
    (
        "事件发现或发生时间、地点、事件类型、已造成的影响和危害、已采取的措施及效果",
        "when found or started, where, the type, impact and harm so far, measures taken and their effect",
    ),
    ("事态发展趋势及可能进一步造成的影响和危害", "how it develops, and further impact and harm it may cause"),
    ("事件原因初步分析", "a first analysis of the cause"),
    (
        "进一步调查分析所需的线索（可能的攻击者信息、攻击路径、存在的漏洞等）",
        "leads for the investigation (possible attacker, attack path, vulnerabilities)",
    ),
    ("拟进一步采取的应对措施及请求支援事项", "further measures planned, and support requested"),
    ("事件现场保护情况", "how the evidence is preserved"),
    ("其他应当报告的情况", "anything else that should be reported"),
)
# Prometheus alert rule files, wherever a role or a monitoring directory keeps them.
RULE_GLOBS = (
    "roles/*/files/**/*.rules.yml",
    "roles/*/files/**/*.rules.yaml",
    "roles/*/templates/**/*.rules.yml.j2",
    "roles/*/templates/**/*.rules.yaml.j2",
    "monitoring/**/*.rules.yml",
)
INVENTORY_VARS = {
    "contacts": "portalops_contacts | default([])",
    "grading": "portalops_national_grading | default({})",
    "cii_operator": "portalops_cii_operator | default(false)",
    "drill_interval_days": f"portalops_fault_drill_interval_days | default({FAULT_DRILL_INTERVAL_DAYS})",
    "sites": "portal_sites | default([])",
    "groups": "groups",
    "jobs": "restic_backup_jobs | default([]) | map(attribute='name') | list",
}
TIERS = ("web", "cms", "db", "backup", "drill")


@dataclass(frozen=True)
class Inputs:
    """What the overall plan reads from the inventory, defaults filled in."""

    contacts: list[dict[str, Any]] = field(default_factory=list)
    grading: dict[str, dict[str, float]] = field(default_factory=lambda: grading_from({}))
    cii_operator: bool = False
    drill_interval_days: int = FAULT_DRILL_INTERVAL_DAYS
    sites: list[dict[str, Any]] = field(default_factory=list)
    groups: dict[str, list[str]] = field(default_factory=dict)
    jobs: dict[str, list[str]] = field(default_factory=dict)  # backup client -> its backup jobs


@dataclass(frozen=True)
class AlertRule:
    source: str  # the file, relative to the repository
    alert: str
    expr: str = ""
    duration: str = ""
    severity: str = ""
    summary: str = ""


def grading_from(raw: Any) -> dict[str, dict[str, float]]:
    """``portalops_national_grading`` over the defaults, threshold by threshold."""
    if not isinstance(raw, Mapping):
        raise BadInput("portalops_national_grading must be a mapping of criterion -> grade -> threshold")
    grading = {name: dict(values) for name, values in GRADING_DEFAULTS.items()}
    for name, values in raw.items():
        if name not in CRITERIA or not isinstance(values, Mapping):
            raise BadInput(f"portalops_national_grading.{name}: unknown; known: {', '.join(CRITERIA)}")
        for grade, threshold in values.items():
            if grade not in RAISING or isinstance(threshold, bool) or not isinstance(threshold, int | float):
                raise BadInput(f"portalops_national_grading.{name}.{grade}: a number for one of {', '.join(RAISING)}")
            grading[name][grade] = threshold
    return grading


def inputs_from(per_host: Mapping[str, Mapping[str, Any]]) -> Inputs:
    """The rendered variables of every host (``resolve_vars``) as :class:`Inputs`; group_vars/all from any host."""
    if not per_host:
        return Inputs()
    first = per_host[sorted(per_host)[0]]
    groups = first.get("groups") or {}
    clients = groups.get("backup_clients") or sorted(per_host)
    return Inputs(
        contacts=contacts_from(first.get("contacts")),
        grading=grading_from(first.get("grading") or {}),
        cii_operator=bool(first.get("cii_operator", False)),
        drill_interval_days=int(first.get("drill_interval_days", FAULT_DRILL_INTERVAL_DAYS)),
        sites=[dict(s) for s in first.get("sites") or [] if isinstance(s, Mapping)],
        groups={name: list(hosts) for name, hosts in groups.items()},
        jobs={host: list(per_host[host].get("jobs") or []) for host in clients if host in per_host},
    )


def load_inputs(inventory: str | Path) -> Inputs:
    return inputs_from(resolve_vars(inventory, ["all"], INVENTORY_VARS, exact=False))


def alert_rules(root: Path = REPO_ROOT) -> tuple[list[AlertRule], list[str]]:
    """Every alert of the rule files under ``root``, and the files whose alerts cannot be read (templates)."""
    rules: list[AlertRule] = []
    unread: list[str] = []
    paths = sorted({p for pattern in RULE_GLOBS for p in root.glob(pattern)})
    for path in paths:
        source = str(path.relative_to(root))
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError:
            unread.append(source)
            continue
        for group in data.get("groups") or [] if isinstance(data, Mapping) else []:
            for rule in group.get("rules") or []:
                if "alert" not in rule:
                    continue
                rules.append(
                    AlertRule(
                        source=source,
                        alert=str(rule["alert"]),
                        expr=" ".join(str(rule.get("expr", "")).split()),
                        duration=str(rule.get("for", "")),
                        severity=str((rule.get("labels") or {}).get("severity", "")),
                        summary=str((rule.get("annotations") or {}).get("summary", "")),
                    )
                )
    return rules, unread


def _number(value: float) -> str:
    return f"{value:,.0f}" if value >= 1000 else f"{value:g}"


def _general() -> list[str]:
    return [
        "## 1 总则 General",
        "",
        "### 1.1 目的 Purpose",
        "",
        "规范本门户网站群网络安全事件与故障的预防、发现、处置和报告，尽快恢复服务，减少损失，依法报告。",
        "To prevent, detect, handle and report incidents and faults of the portal, restore service quickly, "
        "limit harm and report as the law requires.",
        "",
        "### 1.2 编制依据 Legal basis",
        "",
        "- 《中华人民共和国网络安全法》第二十五条：制定网络安全事件应急预案，发生事件时立即启动、采取补救措施"
        "并按规定报告 / "
        "Cybersecurity Law, Art. 25: incident plans, immediate response, reporting",
        "- GB/T 22239-2019《信息安全技术 网络安全等级保护基本要求》第三级 安全管理 应急预案管理：统一的应急预案框架及"
        "重要事件的专项预案、定期演练与培训、定期评估修订 / MLPS 2.0 level 3, security management: a unified plan "
        "framework with specific plans, regular drills and training, regular review",
        "- 《国家网络安全事件应急预案》：事件分级、组织体系、监测预警、应急处置、调查评估 / the national incident plan",
        "- GB/T 20986-2023《信息安全技术 网络安全事件分类分级指南》 / the national classification and grading guide",
        "- 《国家网络安全事件报告管理办法》（2025-11-01 施行）：较大及以上事件的报告时限与内容 / "
        "incident reporting rules in force since 2025-11-01: deadlines and content for grade III and above",
        "",
    ]


def _scope(inputs: Inputs) -> list[str]:
    lines = ["### 1.3 适用范围 Scope", ""]
    if inputs.sites:
        lines += ["| 站点 site | 名称 title | 域名 domains |", "|---|---|---|"]
        for site in inputs.sites:
            domains = ", ".join(str(d) for d in site.get("domains") or [])
            lines.append(f"| `{site.get('name', '')}` | {cell(str(site.get('title', '')))} | {domains} |")
    else:
        lines.append("清单中未配置站点（`portal_sites`） / No site in the inventory (`portal_sites`).")
    hosts = [f"{tier}: {', '.join(inputs.groups.get(tier) or ['—'])}" for tier in TIERS]
    lines += [
        "",
        "及其主机 and their hosts: " + "; ".join(hosts) + ".",
        "",
        "### 1.4 工作原则 Principles",
        "",
        "- 统一领导、分级负责：按本预案的级别响应，安全负责人研判国家分级 / one command, graded response; "
        "the security officer grades on the national scale",
        "- 快速响应、先保证据后恢复：专项预案先留存证据再从备份恢复 / respond fast; evidence first, then restore",
        "- 依法报告、不迟报漏报瞒报 / report as the law requires, never late, partial or concealed",
        "- 预防为主、常态演练：每个专项预案均可执行并定期演练 / prevention and regular drills of every plan",
        "",
    ]
    return lines


def _organisation(contacts: Sequence[Mapping[str, Any]]) -> list[str]:
    lines = ["## 2 组织机构与职责 Organisation and responsibilities", ""]
    if not contacts:
        return [*lines, "None in the inventory (`portalops_contacts`) / 清单中未配置联系人。", ""]
    lines += [
        "| 角色 role | 人员 who | 电话 phone | 邮件 email | AB 角 deputy | 级别 levels |",
        "|---|---|---|---|---|---|",
    ]
    for c in contacts:
        role = f"{c['role_zh']} / {c['role_en']}"
        deputy = str(c["deputy"]) or "未指定 none set"
        levels = ", ".join(f"L{lv}" for lv in _levels_of(c))
        lines.append(
            f"| {cell(role)} | {cell(str(c['who']))} | {cell(str(c['phone']))} | {cell(str(c['email']))} "
            f"| {cell(deputy)} | {levels} |"
        )
    lines += [
        "",
        "职责：值班工程师按专项预案执行处置并记录；各角色在其级别的事件中到场与决策；安全负责人研判国家分级并组织对外报告；"
        "主管领导批准对外报告与重大决定。未到岗时由 AB 角替代。 / Duties: the on-call engineer runs the specific plan "
        "and keeps the record; each role answers incidents of its levels; the security officer grades on the national "
        "scale and prepares external reports; the head approves them and major decisions. A deputy stands in for an "
        "absent role.",
        "",
    ]
    return lines


def _levels_of(contact: Mapping[str, Any]) -> list[int]:
    raw = contact.get("levels") or [int(lv) for lv in Level]
    return sorted(int(lv) for lv in raw)


def _grading(inputs: Inputs) -> list[str]:
    lines = [
        "## 3 事件分级 Incident levels",
        "",
        "### 3.1 本系统故障级别 Service levels",
        "",
        *level_table(),
        "",
        "### 3.2 与国家分级的对应 Mapping to the national grades",
        "",
        "| 本级别 level | 国家分级起点 national grade |",
        "|---|---|",
        *[f"| L{int(lv)} | {zh} / {en} |" for lv, (zh, en) in LEVEL_GRADE.items()],
        "",
        "满足任一条件即上调至该级别（取最高） / Any criterion met raises the grade to that column (the highest wins):",
        "",
        "| 条件 criterion | " + " | ".join(f"{zh}（{roman}） {en}" for _, zh, roman, en in GRADES[:3]) + " |",
        "|---|---|---|---|",
    ]
    for name, (zh, en, unit) in CRITERIA.items():
        cells = " | ".join(f"≥ {_number(inputs.grading[name][grade])} {unit}" for grade in RAISING)
        lines.append(f"| {zh} / {en} (`{name}`) | {cells} |")
    lines += [
        "",
        "另：国家秘密、重要数据泄露或被窃取，关键信息基础设施受影响，或网信、公安部门认定的，按《分级指南》从高定级 / "
        "State secrets or important data leaked, critical information infrastructure affected, or a grade set by the "
        "cyberspace or public security authorities: graded by the guide itself, upwards.",
        "",
        "阈值来自清单 `portalops_national_grading`（缺省值为我们对《报告管理办法》所附分级指南及其征求意见稿中"
        "门户网站条款的理解；"
        "指南中不能访问的条款按省级、地市级网站定义，此处对本县级门户从严适用）。**此对应仅为建议：由安全负责人对照现行指南确认"
        "每次事件的国家分级。** / Thresholds from `portalops_national_grading` in the inventory (defaults: our reading "
        "of the guide annexed to the reporting rules and of its draft; its outage criteria name provincial and "
        "prefecture portals and are applied here to a county portal on the safe side). **The mapping is a "
        "suggestion: the security officer confirms each incident's national grade against the guide in force.**",
        "",
    ]
    return lines


def _alert_rows(runbooks: Sequence[Runbook]) -> list[str]:
    """One row per alert the runbooks declare, by level and runbook, then the watchdog."""
    rows = [
        "| 告警 alert | 级别 level | 专项预案 runbook | 条件 condition | 持续 for |",
        "|---|---|---|---|---|",
    ]
    for rb in ordered(runbooks):
        for alert in rb.alerts:
            level = rb.alert_level(alert)
            early = " (预警 early warning)" if level != rb.level else ""
            rows.append(
                f"| `{alert.name}` | L{int(level)}{early} | [{rb.id}]({rb.id}.md) "
                f"| {cell(alert.summary_zh)} / {cell(alert.summary_en)} | {alert.duration} |"
            )
    rows.append(
        f"| `{WATCHDOG.name}` | — | — (看门狗 dead-man's switch) "
        f"| {cell(WATCHDOG.summary_zh)} / {cell(WATCHDOG.summary_en)} | {WATCHDOG.duration} |"
    )
    return rows


def _monitoring(runbooks: Sequence[Runbook], rules: Sequence[AlertRule], unread: Sequence[str]) -> list[str]:
    lines = [
        "## 4 监测与预警 Monitoring and early warning",
        "",
        "监控主机（monitoring 角色：Prometheus、Alertmanager、blackbox_exporter）每 20 秒经边缘节点探测每个站点域名"
        "（TLS、站点标题、篡改特征、过期缓存，15 秒超时），每 15 秒采集各主机的 node、mysqld、nginx 与 php-fpm 指标及"
        "备份指标。告警规则由各专项预案声明（`runbooks/*.py` 的 `alerts`），生成为 "
        "`roles/monitoring/files/portalops-alerts.yml`（`python -m portalops.runbook.alerts`），由 monitoring 角色经 "
        "`promtool` 校验后安装；每条告警带有其专项预案、级别与执行命令（`portalops runbook run ID`）。 / "
        "The monitoring host (role monitoring: Prometheus, Alertmanager, blackbox_exporter) probes every site's "
        "domain through the edge every 20 s (TLS, the site's title, defacement signatures, stale cache, 15 s "
        "timeout) and scrapes every host's node, mysqld, nginx and php-fpm metrics and the backup metrics every "
        "15 s. The alert rules are declared by the specific plans (`alerts` in `runbooks/*.py`), generated into "
        "`roles/monitoring/files/portalops-alerts.yml` (`python -m portalops.runbook.alerts`) and installed by the "
        "monitoring role after `promtool` checked them; each alert carries its plan, level and the command that "
        "runs it (`portalops runbook run ID`).",
        "",
        "告警与启动的专项预案 / The alerts and the plans they start:",
        "",
        *_alert_rows(runbooks),
        "",
    ]
    if rules or unread:
        lines += [
            "其他告警规则文件 / Other alert rule files in the repository:",
            "",
            "| 告警 alert | 条件 expr | 持续 for | 严重性 severity | 说明 summary | 文件 file |",
            "|---|---|---|---|---|---|",
            *[
                f"| `{r.alert}` | `{cell(r.expr)}` | {r.duration} | {r.severity} | {cell(r.summary)} | `{r.source}` |"
                for r in rules
            ],
            *[f"| — | (template, not parsed 模板未解析) | | | | `{source}` |" for source in unread],
            "",
        ]
    lines += [
        "其他检查 / Other checks:",
        "",
        "- `portalops probe`：从外部访问每个站点（要求渲染后的页面含站点标题、不含篡改特征），"
        "每个专项预案的验证步骤使用 / "
        "every site from outside, rendered by the CMS, with its title and no defacement signature; every "
        "specific plan's verify step uses it",
        "- 专项预案的诊断与验证步骤（`portalops runbook run ID --dry-run` 列出全部命令） / the specific plans' "
        "diagnose and verify checks",
        "- 每晚备份与恢复演练（`scripts/nightly`）：在演练主机上恢复最新快照并按清单核对，报告 RTO、RPO / the "
        "nightly backup and restore drill on the drill host, checked against the manifests, with RTO and RPO",
        "- `make audit`（Lynis、ssh-audit、testssl.sh）与补丁前检查 / `make audit` and the patch pre-checks",
        "",
        "外部预警（上级网信、公安、CNCERT 通报）由安全负责人接收并研判 / Warnings from the authorities (cyberspace "
        "office, public security, CNCERT) go to the security officer, who assesses them.",
        "",
    ]
    return lines


def _response(runbooks: Sequence[Runbook]) -> list[str]:
    lines = [
        "## 5 应急响应 Response",
        "",
        "发现专项预案的启动条件（或告警）时，值班工程师定级并执行对应专项预案；专项预案的每一步、时限是否满足均记入 "
        "`incidents/<事件>/`。 / On a specific plan's start condition (or an alert) the on-call engineer sets the "
        "level and runs that plan; every step and whether each deadline was met is journaled in `incidents/<id>/`.",
        "",
    ]
    for level, spec in LEVELS.items():
        lines += [f"### 5.{int(level)} L{int(level)} {spec.name_zh}: {spec.meaning_zh} / {spec.meaning_en}", ""]
        lines += [*deadline_table(level), ""]
        plans = sorted((rb for rb in runbooks if rb.level is level), key=lambda r: r.id)
        lines += ["专项预案 Specific plans:", ""]
        lines += [f"- [{rb.title_zh} / {rb.title_en}]({rb.id}.md) (`{rb.id}`)" for rb in plans] or ["- —"]
        lines.append("")
    return lines


def _reporting(inputs: Inputs) -> list[str]:
    lines = ["## 6 信息报告 Reporting", "", "### 6.1 内部报告 Internal escalation", ""]
    lines += ["| 级别 level | 通知 notify |", "|---|---|"]
    for level in Level:
        who = [f"{c['role_zh']} {c['phone']}" for c in inputs.contacts if int(level) in _levels_of(c)]
        lines.append(f"| L{int(level)} | {cell('; '.join(who) or '—')} |")
    if inputs.cii_operator:
        duty = (
            "关键信息基础设施运营者：第一时间、最迟 1 小时内向保护工作部门和公安机关报告",
            "critical information infrastructure operator: at once, within 1 h at the latest, to the protection "
            "authority and the public security bureau",
        )
    else:
        duty = (
            "最迟 4 小时内向属地省级网信部门报告",
            "to the provincial cyberspace office within 4 h at the latest",
        )
    cii = "是 yes" if inputs.cii_operator else "否 no"
    lines += [
        "",
        "各角色的级别来自清单联系人的 `levels`（缺省为全部级别）；通知渠道见 `portalops_notify`。 / Each role's levels "
        "come from its `levels` in the inventory (default all); notification channels from `portalops_notify`.",
        "",
        "### 6.2 对外报告 Regulatory reporting",
        "",
        f"关键信息基础设施运营者 CII operator (`portalops_cii_operator`): {cii}.",
        "",
        f"- 较大（III）及以上事件：{duty[0]}；重大、特别重大事件由接收部门逐级上报 / grade III and above: {duty[1]}; "
        "major and particularly major events are passed upwards by the receiving office",
        "- 时限自发现事件时起算，而非自定级时起算：尽早研判定级；定级较晚时时限已部分或全部用去，超时即显示为超时 / "
        "the deadline counts from when the incident was found, not from its grading: grade as soon as the facts "
        "allow; a late grading finds the clock partly or wholly used, and an overdue report shows as overdue",
        "- 报告时限内无法查明原因的，可先报告下列第 1、2 项，其余及时补报 / when the cause is not known in time, "
        "report items 1 and 2 first and the rest as soon as known",
        "- 涉嫌违法犯罪的，同时向公安机关报案 / a suspected crime is also reported to the public security bureau",
        "- 事件处置结束后，按《报告管理办法》提交总结报告（见第 7 章） / after the incident, the summary report the "
        "rules require (section 7)",
        "",
        "报告内容 Prescribed content:",
        "",
        *[f"{n}. {zh} / {en}" for n, (zh, en) in enumerate(REPORT_CONTENT, 1)],
        "",
        "对外报告由安全负责人起草、主管领导批准后报送 / "
        "The security officer drafts, the head approves, then it is sent.",
        "",
    ]
    return lines


def _aftermath() -> list[str]:
    return [
        "## 7 后期处置 After the incident",
        "",
        "- 恢复：以专项预案的验证步骤为恢复标准，全部通过才算恢复；未恢复即按升级步骤移交 / recovery means every "
        "verify step of the specific plan passed; otherwise its escalate step hands over",
        "- 事件记录：`incidents/<事件>/incident.md`（时间线、时限是否满足、发现、处置、结果、后续事项），"
        "`journal.jsonl` 为逐步原始记录 / the incident record and its step-by-step journal",
        "- 总结报告：分析事件原因、处置过程、危害、责任、整改情况与教训，较大及以上事件按规定报送 / the summary "
        "report: cause, handling, harm, responsibility, corrective actions and lessons; "
        "sent on for grade III and above",
        "- 整改：记录中的后续事项逐项跟踪关闭；需要修改的处置步骤改在 `runbooks/` 中，预案随之重新生成 / "
        "corrective actions: each follow-up tracked to closure; a changed response is changed in `runbooks/`, "
        "and the plans are regenerated from it",
        "",
    ]


def _resources(inputs: Inputs) -> list[str]:
    lines = [
        "## 8 保障措施 Resources",
        "",
        "| 层 tier | 主机 hosts |",
        "|---|---|",
        *[f"| {tier} | {', '.join(inputs.groups.get(tier) or ['—'])} |" for tier in TIERS],
        "",
        "备份 Backups (`restic_backup_jobs`, one repository per client on the backup host, plus a second copy "
        "no client can reach):",
        "",
        "| 客户端 client | 备份作业 jobs |",
        "|---|---|",
        *[f"| {host} | {', '.join(jobs) or '—'} |" for host, jobs in sorted(inputs.jobs.items())],
        "",
        f"- 备份主机 backup host: {', '.join(inputs.groups.get('backup') or ['—'])}",
        f"- 演练主机 drill host: {', '.join(inputs.groups.get('drill') or ['—'])}（可由恢复的数据临时提供站点 / "
        "can serve the sites from restored data）",
        "- 备用容量：除演练主机外清单中无备用主机 / "
        "spare capacity: no spare host in the inventory besides the drill host",
        "- 工具：本仓库（Ansible 角色可在新主机上重建各层）与 `portalops` 命令 / tooling: this repository rebuilds "
        "any tier on a new host",
        "",
    ]
    return lines


def _drills(runbooks: Sequence[Runbook], drills: Mapping[str, Any], interval_days: int) -> list[str]:
    lines = [
        "## 9 培训与演练 Training and drills",
        "",
        "- 恢复演练：每晚（`scripts/nightly`）/ restore drill: nightly",
        f"- 故障演练：每个专项预案至少每 {interval_days} 天一次，且在其 runbook 修改后 "
        f"(`portalops_fault_drill_interval_days`) / fault drill: every specific plan at least every {interval_days} "
        "days and after its runbook changes (`portalops drill run ID --record`)",
        "- 培训：值班人员上岗前以 `--dry-run` 通读每个专项预案，并在实验环境完成一次故障演练 / training: before "
        "joining the rota, read every plan with `--dry-run` and run one fault drill in the lab",
        "",
        "| 专项预案 plan | 最近演练 latest drill | 结果 result | MTTR |",
        "|---|---|---|---|",
    ]
    for rb in sorted(runbooks, key=lambda r: (int(r.level), r.id)):
        drill = drills.get(rb.id)
        if not drill:
            lines.append(f"| [{rb.id}]({rb.id}.md) | 尚无记录 none recorded | — | — |")
            continue
        verdict = "PASS 通过" if drill["ok"] else "FAIL 未通过"
        lines.append(
            f"| [{rb.id}]({rb.id}.md) | {drill['started']} | {verdict}: {drill['outcome']} | {drill['mttr_s']:g} s |"
        )
    return [*lines, ""]


def _annex(version: str, release: str, history: str) -> list[str]:
    lines = [
        "## 10 附则 Supplementary provisions",
        "",
        f"- 版本 version: `{version}`（与索引相同，由全部预案内容计算 / the index's, a hash of all plans）"
        + (f"; release 发布: `{release}`" if release else ""),
        "- 本预案由 `python -m portalops.runbook.plans` 从 runbook、清单、告警规则和演练记录生成，不手工编辑；"
        "上述来源变化后单元测试即报告过期 / generated from the runbooks, the inventory, the alert rules and the "
        "drill records, never edited by hand; the unit tests fail when it is stale",
        "- 至少每年评估修订一次 / reviewed at least once a year",
        "",
        "### 修订记录 Revision history",
        "",
    ]
    if history:
        return [*lines, "```", history.rstrip("\n"), "```", ""]
    return [
        *lines,
        "见发布版（`--release DIR`，由 git 历史生成） / in the release copy (`--release DIR`, from git).",
        "",
    ]


def render(
    runbooks: Sequence[Runbook],
    inputs: Inputs,
    drills: Mapping[str, Any],
    rules: tuple[Sequence[AlertRule], Sequence[str]] = ((), ()),
    version: str = "",
    release: str = "",
    history: str = "",
) -> str:
    lines = [
        "# 总体应急预案 Overall emergency plan",
        "",
        MARK.format(source="runbooks/, the inventory and the alert rules"),
        "",
        "本预案为总体框架，具体处置见各专项预案（第 5 章）。 / The framework; the specific plans (section 5) hold "
        "the response steps.",
        "",
        *_general(),
        *_scope(inputs),
        *_organisation(inputs.contacts),
        *_grading(inputs),
        *_monitoring(runbooks, *rules),
        *_response(runbooks),
        *_reporting(inputs),
        *_aftermath(),
        *_resources(inputs),
        *_drills(runbooks, drills, inputs.drill_interval_days),
        *_annex(version, release, history),
    ]
    return "\n".join(lines)
