#!/usr/bin/env python3
"""L1 defacement or tampering: find changed files, keep the evidence, restore them, verify, report.

Two sources of truth for what a file should be: Debian's package checksums (debsums) for everything
a package installed, WordPress core included (the wordpress package under /usr/share/wordpress, its
themes, plugins and translations, which each site links to), and the manifest of the newest backup
of the cms-files job for each site's own data (uploads, /etc/wordpress). A file ADDED to the code
directories (WordPress and its themes and plugins, each site's wp-content, the nginx and php-fpm
configuration) is in neither: portalops-code-files (the hardening role's) finds every file there that
no package owns, no role renders and the inventory does not declare (wordpress_declared_code_files),
and quarantines it with a record of what it was. `wp core verify-checksums`
is not used: it needs api.wordpress.org, which the hosts cannot reach, and checks only core anyway.
Nothing is deleted: changed and added files are kept in /var/lib/portalops/evidence/<UTC time>/
(a tar and its sha256 list, root only) before anything is put back. A tampering incident is reported
to the security officer even when the portal recovered (the manual step), and escalated when not.

Run: portalops runbook run l1_defacement [--dry-run] [--yes], or this file directly.
"""

# ruff: noqa: RUF001 - Chinese text keeps its own full-width punctuation on purpose

from __future__ import annotations

import sys
from dataclasses import replace

from portalops.runbook import Alert, Level, Runbook, act, diagnose, escalate, manual, verify
from portalops.runbook.checks import CACHE_EMPTY, HOST_TOOL, PROBE, PURGE_CACHE

# The backup job holding each site's data (inventory/lab/group_vars/cms/backup.yml).
FILES_JOB = "cms-files"
BACKUP = "/usr/local/sbin/portalops-backup"
EVIDENCE = "/var/lib/portalops/evidence"
SITES = "/var/lib/wordpress/sites"  # the wordpress role's wordpress_sites_root
# The packages that serve the portal: WordPress and its theme and translations, nginx, PHP.
PACKAGE_PATTERNS = "'wordpress*' 'nginx*' 'php*'"
PACKAGES = (
    "pkgs=$(dpkg-query -W -f '${db:Status-Abbrev} ${Package}\\n' "
    + PACKAGE_PATTERNS
    + " 2>/dev/null | awk '$1 == \"ii\" { print $2 }' | tr '\\n' ' '); "
)
# debsums compares each installed file with the package's md5sums; -c lists changed files on stdout
# and missing ones on stderr (configuration files are not checked: they are the roles' to change).
PACKAGES_CLEAN = (
    PACKAGES
    + "command -v debsums >/dev/null || { echo 'debsums is not installed (hardening role, package_audit)'; exit 1; }; "
    'bad=""; for p in $pkgs; do out=$(debsums -c "$p" 2>&1) || { bad="$bad $p"; echo "$out" | sed "s|^|$p: |"; }; '
    'done; if [ -n "$bad" ]; then echo "package files changed:$bad"; exit 1; fi; '
    'echo "no changed file in: $pkgs"'
)
# Evidence of the changed package files first, then each package with a changed or missing file
# installed again from the archive (the same version; apt refreshes its lists once if it lost it).
REINSTALL = (
    PACKAGES
    + f'ev={EVIDENCE}/$(date -u +%Y%m%dT%H%M%SZ)-packages; mkdir -p -m 0700 {EVIDENCE} "$ev"; chmod 0700 {EVIDENCE}; '
    ': > "$ev/packages"; : > "$ev/changed-files"; '
    'for p in $pkgs; do debsums -c "$p" >> "$ev/changed-files" 2>> "$ev/debsums.log" || echo "$p" >> "$ev/packages"; '
    'done; cat "$ev/changed-files" "$ev/debsums.log"; '
    'if [ -s "$ev/changed-files" ]; then tar -cpf "$ev/evidence.tar" -T "$ev/changed-files" 2>/dev/null; '
    'xargs -r -d \'\\n\' sha256sum < "$ev/changed-files" > "$ev/SHA256SUMS"; '
    'sha256sum "$ev/evidence.tar" >> "$ev/SHA256SUMS"; fi; chmod 0600 "$ev"/*; '
    "reinstall=$(tr '\\n' ' ' < \"$ev/packages\"); "
    'echo "evidence: $ev; reinstalling: $reinstall"; '
    "apt_reinstall() { DEBIAN_FRONTEND=noninteractive apt-get install -y -q --reinstall "
    "-o Dpkg::Options::=--force-confold $reinstall; }; "
    "apt_reinstall || { apt-get update -q && apt_reinstall; } || exit 1; "
) + PACKAGES_CLEAN
# Files in the code directories no package, role or declaration accounts for: a planted web shell.
CODE_FILES = "/usr/local/sbin/portalops-code-files"
NO_ADDED_CODE = (
    f"command -v {CODE_FILES} >/dev/null || {{ echo '{CODE_FILES} is not installed (hardening role, package_audit)'; "
    f"exit 1; }}; {CODE_FILES} check"
)
QUARANTINE_ADDED_CODE = f"{CODE_FILES} quarantine"
FILES_MATCH = f"{BACKUP} verify-files {FILES_JOB}"
RESTORE_FILES = f"{BACKUP} restore-files {FILES_JOB} --yes"
# No PHP under uploads: WordPress never puts code there, whatever the backup holds.
NO_PHP_IN_UPLOADS = (
    f"found=$(find {SITES}/*/wp-content/uploads -type f \\( -iname '*.php*' -o -iname '*.phtml' -o -iname '*.phar' \\) "
    '2>/dev/null); if [ -n "$found" ]; then echo "$found"; echo "PHP files under uploads"; exit 1; fi; '
    "echo 'no PHP file under uploads'"
)
RECENT_CHANGES = (
    "echo '--- files changed in the last 3 days (time, owner, path)'; "
    f"find /usr/share/wordpress {SITES} /etc/wordpress /etc/nginx /etc/php -xdev -mtime -3 \\( -type f -o -type l \\) "
    "-printf '%TY-%Tm-%Td %TH:%TM %u %p\\n' 2>/dev/null | sort | tail -n 40; "
    "echo '--- SSH logins in the last 3 days'; "
    "journalctl -u ssh --since '-3 days' --no-pager 2>/dev/null | grep -E 'Accepted|session opened' | tail -n 15; true"
)
# Each site's front page through this edge, as visitors get it: a whole WordPress page with a title
# (portalops_host.edge).
EDGE_CONTENT = f"{HOST_TOOL} check edge-content"

# The defacement probe (job http_portal_defacement, the monitoring role) fails only on a text of
# portal_probe_forbidden in a page: a signature no real page holds, so one probe is enough.
ALERTS = (
    Alert(
        name="PortalDefaced",
        expr='probe_failed_due_to_regex{job="http_portal_defacement"} == 1',
        summary_zh="站点页面含篡改特征文本（portal_probe_forbidden）",
        summary_en="A site's page holds a defacement signature (portal_probe_forbidden)",
        duration="0s",
        why="for: 0s: an exact defacement text is never a false alarm, and every probe interval the page "
        "stays up is read by visitors.",
    ),
)

RUNBOOK = Runbook(
    id="l1_defacement",
    title_zh="网页篡改或文件被篡改",
    title_en="Defacement or tampering",
    level=Level.L1,
    triggers=(
        ("网站页面被篡改、出现异常内容或链接", "a site shows altered content, foreign text or links"),
        (
            "debsums、AIDE 或 rkhunter 报告文件被修改",
            "debsums, AIDE or rkhunter report changed files",
        ),
        (
            "上传目录出现 PHP 文件，或 portalops-backup verify-files 报告差异",
            "a PHP file appears under uploads, or portalops-backup verify-files reports differences",
        ),
    ),
    targets=("cms", "web"),
    alerts=ALERTS,
    steps=(
        replace(
            diagnose(
                "package_files",
                "按软件包校验和检查 WordPress、nginx、PHP 文件",
                "Check WordPress, nginx and PHP files against their package checksums",
                on=("cms", "web"),
                run=PACKAGES_CLEAN,
                timeout=300,
            ),
            note_zh="WordPress 核心来自 Debian 软件包，debsums 即其核心校验；"
            "wp core verify-checksums 需访问 api.wordpress.org，主机无法访问，故不使用。",
            note_en="WordPress core comes from Debian's package, so debsums is its core checksum; "
            "wp core verify-checksums needs api.wordpress.org, which the hosts cannot reach, so it is not used.",
        ),
        diagnose(
            "added_code_files",
            "查找代码目录中无软件包、角色或声明对应的新增文件",
            "Look for files in the code directories that no package, role or declaration accounts for",
            on=("cms", "web"),
            run=NO_ADDED_CODE,
            timeout=300,
        ),
        diagnose(
            "site_files",
            "将各站点数据与最近一次备份清单比对",
            "Compare each site's data with the newest backup's manifest",
            on=("cms",),
            run=FILES_MATCH,
            timeout=300,
        ),
        diagnose(
            "php_in_uploads",
            "检查上传目录中的 PHP 文件",
            "Look for PHP files under uploads",
            on=("cms",),
            run=NO_PHP_IN_UPLOADS,
        ),
        diagnose(
            "recent_changes",
            "列出近期修改的文件与登录记录（供溯源）",
            "List recently changed files and logins (for the investigation)",
            on=("cms", "web"),
            run=RECENT_CHANGES,
        ),
        replace(
            act(
                "restore_site_files",
                "保留证据后从备份恢复站点文件",
                "Keep the evidence, then restore the sites' files from the backup",
                on=("cms",),
                check=FILES_MATCH,
                run=RESTORE_FILES,
                destructive=True,  # replaces files; what it replaces or removes is kept as evidence
                timeout=1800,
            ),
            note_zh="被修改和新增的文件先打包留证（/var/lib/portalops/evidence/<UTC 时间>/），"
            "新增文件移入证据目录而非删除；备份之后正常上传的文件也会被移走，核实后放回。"
            "若最近一次备份已含篡改，用 portalops-backup restore-files cms-files --snapshot <更早的快照> --yes。",
            note_en="Changed and added files are kept first (/var/lib/portalops/evidence/<UTC time>/); added "
            "files are moved there, never deleted, so a genuine upload made since the backup is moved too: "
            "check and put it back. If the newest backup already holds the tampering, run "
            "portalops-backup restore-files cms-files --snapshot <an older one> --yes.",
        ),
        replace(
            act(
                "quarantine_added_code_files",
                "将代码目录中的新增文件隔离留证",
                "Quarantine the added files of the code directories, with evidence",
                on=("cms", "web"),
                check=NO_ADDED_CODE,
                run=QUARANTINE_ADDED_CODE,
                destructive=True,  # takes files out of the code tree (moved into the evidence, never deleted)
                timeout=300,
            ),
            note_zh="新增文件连同记录（路径、sha256、大小、属主、修改时间、开头字节）移入 "
            "/var/lib/portalops/evidence/<UTC 时间>-code/quarantine/，从不删除；涉及 nginx 或 php-fpm 配置时重新加载。"
            "站点自有的文件（自建主题或插件）应在清单中声明（wordpress_declared_code_files），误隔离的核实后放回。",
            note_en="Each added file is moved, never deleted, with its record (path, sha256, size, owner, mtime, "
            "first bytes) into /var/lib/portalops/evidence/<UTC time>-code/quarantine/; nginx or php-fpm is "
            "reloaded when its configuration lost a file. Site-owned files (a county's own theme or plugin) belong "
            "in the inventory (wordpress_declared_code_files); one quarantined by mistake is checked and put back.",
        ),
        act(
            "reinstall_changed_packages",
            "保留证据后重新安装文件被修改的软件包",
            "Keep the evidence, then reinstall the packages whose files changed",
            on=("cms", "web"),
            check=PACKAGES_CLEAN,
            run=REINSTALL,
            destructive=True,  # replaces package files (the changed ones are kept as evidence)
            timeout=900,
        ),
        act(
            "purge_edge_cache",
            "清空边缘缓存，避免继续提供被篡改的页面",
            "Empty the edge cache so no defaced page is served from it",
            on=("web",),
            check=CACHE_EMPTY,
            run=PURGE_CACHE,
        ),
        verify(
            "packages_clean",
            "软件包文件与校验和一致",
            "Every package file matches its checksum",
            on=("cms", "web"),
            run=PACKAGES_CLEAN,
            timeout=300,
        ),
        verify(
            "no_added_code_files",
            "代码目录中没有未声明的新增文件",
            "No undeclared added file in the code directories",
            on=("cms", "web"),
            run=NO_ADDED_CODE,
            timeout=300,
        ),
        verify(
            "site_files_match_backup",
            "站点文件与备份清单完全一致",
            "The sites' files are exactly those of the backup's manifest",
            on=("cms",),
            run=FILES_MATCH,
            timeout=300,
        ),
        verify(
            "no_php_in_uploads",
            "上传目录中没有 PHP 文件",
            "No PHP file under uploads",
            on=("cms",),
            run=NO_PHP_IN_UPLOADS,
        ),
        verify(
            "portal_back",
            "从外部确认各站点可访问",
            "Every site answers from outside",
            run=PROBE,
            attempts=5,
            interval=3,
        ),
        verify(
            "edge_serves_wordpress",
            "边缘节点返回完整的 WordPress 页面",
            "The edge serves each site's whole WordPress front page",
            on=("web",),
            run=EDGE_CONTENT,
            attempts=3,
            interval=3,
        ),
        manual(
            "report_to_security_officer",
            "向安全负责人报告篡改事件",
            "Report the tampering to the security officer",
            instructions_zh="即使已恢复也须报告：将证据目录（/var/lib/portalops/evidence/）复制出主机并交给安全负责人；"
            "更换 WordPress 管理员密码与可能泄露的密钥；查明入侵途径；由安全负责人决定是否向主管部门和公安机关报告。",
            instructions_en="Report it even when recovered: copy the evidence directories "
            "(/var/lib/portalops/evidence/) off the host and hand them to the security officer; "
            "change the WordPress administrator passwords and any key that may have leaked; "
            "find how the intruder got in; the security officer decides whether to report "
            "to the supervising authority and the public security bureau.",
        ),
        escalate(
            "security_officer",
            "升级至安全负责人与二线并保留现场",
            "Escalate to the security officer and the second line, keeping the evidence",
            to_zh="安全负责人与二线工程师（未能恢复：可能需要更早的备份或重建主机）",
            to_en="the security officer and the second-line engineer "
            "(not recovered: an older backup or a rebuilt host may be needed)",
            on=("cms", "web"),
            run=f"ls -la {EVIDENCE} 2>/dev/null; " + RECENT_CHANGES,
        ),
    ),
)

if __name__ == "__main__":
    from portalops.cli import main

    sys.exit(main(["runbook", "run", RUNBOOK.id, *sys.argv[1:]]))
