"""Shell checks the runbooks share: each exits 0 when the state is as wanted and
prints what it saw, so it serves as a diagnosis, as an act's check and as a
verification alike. They run under ``sh`` on Debian 12 hosts, as root.
"""

from __future__ import annotations

from portalops.runbook import tiercheck

# The portal's probe, run on the controller against the inventory's portal_public_url.
PROBE = "{{ python }} -m portalops.cli probe -i {{ inventory }}"
# Debian 12's PHP (the wordpress role's wordpress_php_version names the same unit).
PHP_FPM = "php8.2-fpm"
# The host-side checks (portalops_host.cli), installed with the package by the base role on every host.
HOST_TOOL = "/usr/local/sbin/portalops-host"
# Shell: sets $status_dir from the backup wrapper's configuration (restic_backup_status_dir).
STATUS_DIR = f"status_dir=$({HOST_TOOL} backup status-dir); "


def unit_active(*units: str) -> str:
    """Every unit active; ``systemctl is-active`` prints each unit's state."""
    return f"systemctl is-active {' '.join(units)}"


def unit_restart(unit: str, wait: int = 90, enable: bool = True) -> str:
    """Restart ``unit`` and, when ``enable`` (the roles enable it) and it is disabled, enable it again so
    it starts at boot; a masked unit is never unmasked here (the restart fails, a person decides).

    A unit still 'activating' (a server in a long crash recovery) is waited for up to ``wait`` seconds,
    never restarted: still starting then, it exits 75 (unknown). One left 'deactivating' by a crash
    (systemd waiting up to its stop timeout, 90 s by default, for what remains of it) has that
    remainder killed first."""
    return (
        f"state=$(systemctl is-active {unit}); "
        'if [ "$state" = activating ]; then '
        f'echo "{unit} is starting: waiting up to {wait} s for it, not restarting it"; i=0; '
        f'while [ "$state" = activating ] && [ $i -lt {wait} ]; do sleep 1; i=$((i + 1)); '
        f"state=$(systemctl is-active {unit}); done; "
        f'if [ "$state" = activating ]; then echo "{unit} still starting after {wait} s: not restarted"; exit 75; fi; '
        f'echo "{unit} $state after $i s"; fi; '
        + (
            f'if [ "$(systemctl is-enabled {unit} 2>/dev/null)" = disabled ]; then '
            f'systemctl enable --quiet {unit} && echo "{unit} was disabled: enabled again, it starts at boot"; fi; '
            if enable
            else ""
        )
        + 'if [ "$state" = active ]; then exit 0; fi; '
        'if [ "$state" = deactivating ]; then '
        f'echo "{unit} is stuck stopping: killing what is left of it"; '
        f"systemctl kill --signal=SIGKILL {unit}; sleep 1; fi; "
        f"systemctl restart {unit} && systemctl is-active {unit}"
    )


# MariaDB up and on the network: no restore-database left it closed (portalops_host.closed: a SIGKILLed
# restore's drop-in keeps --skip-networking at every start, so a restarted server comes back closed and the
# site stays down). Exit 1 names a stale drop-in; 75 (busy) a running restore's, which reopens it itself and
# must not be touched. Checked first: a restore stops MariaDB while it moves the data in.
RESTORE_CLOSED = f"{HOST_TOOL} check restore-closed"
MARIADB_UP = f"{RESTORE_CLOSED} && {unit_active('mariadb')}"


def mariadb_restart(wait: int) -> str:
    """:func:`unit_restart` of MariaDB after a stale restore drop-in is removed (and a running server, closed by
    it, restarted on the network); a running restore's drop-in is left alone and nothing is restarted (75)."""
    return f"{HOST_TOOL} mariadb reopen-stale && {unit_restart('mariadb', wait=wait)}"


# The hardening role's tool: compares the loaded ruleset (nft -j) with what /etc/nftables.conf loads
# into a scratch network namespace, names each difference, and restores it (exit 0/1/75: sound,
# broken, unknown; JSON on stdout).
NFTABLES_TOOL = "/usr/local/sbin/portalops-nftables"
_NFTABLES_GUARD = (
    "if ! systemctl is-enabled --quiet nftables; then echo 'nftables not managed here'; exit 0; fi; "
    f"if [ ! -x {NFTABLES_TOOL} ]; then echo '{NFTABLES_TOOL} missing (converge the hardening role): "
    "cannot compare the loaded ruleset'; exit 75; fi; "
)
# Where nftables is managed (the unit enabled): the loaded ruleset is the managed one, fail2ban's table aside.
NFTABLES_MANAGED = _NFTABLES_GUARD + f"{NFTABLES_TOOL} check"
# Unmanaged tables deleted and /etc/nftables.conf loaded in one nft transaction (ours is the only table
# replaced: fail2ban's bans stay), compared again; the unit started if it was not.
NFTABLES_RESTORE = (
    _NFTABLES_GUARD
    + f"{NFTABLES_TOOL} restore && {{ systemctl is-active --quiet nftables || systemctl start nftables; }}"
)


def disk_below(percent: int) -> str:
    """/ and /var each used below ``percent``."""
    return (
        "df -P / /var | awk -v limit=" + str(percent) + ' \'NR > 1 { print $6, $5 " used"; '
        'if ($5 + 0 >= limit) { print $6 " is at or above " limit "%"; bad = 1 } } END { exit bad }\''
    )


def certificates_valid_for(days: int) -> str:
    """Every certificate nginx serves (``nginx -T``) is valid for ``days`` more days (portalops_host.certificates)."""
    return f"{HOST_TOOL} check certificates --days {days}"


def backups_younger_than(hours: int) -> str:
    """Every backup job of the host succeeded in its last run, and within ``hours`` (portalops_host.checks)."""
    return f"{HOST_TOOL} check backup-age --hours {hours}"


# The edge cache (the nginx_portal role's proxy_cache_path): emptied so no defaced page or unpublished post is
# served from it (CACHE_EMPTY exits 0 when it holds nothing).
CACHE_DIRS = "dirs=$(nginx -T 2>/dev/null | awk '$1 == \"proxy_cache_path\" { print $2 }' | sort -u | tr '\\n' ' '); "
CACHE_EMPTY = (
    CACHE_DIRS + "if [ -z \"$dirs\" ]; then echo 'no edge cache configured'; exit 0; fi; "
    'n=$(find $dirs -type f 2>/dev/null | wc -l); echo "$n cached responses in $dirs"; [ "$n" -eq 0 ]'
)
PURGE_CACHE = CACHE_DIRS + 'find $dirs -mindepth 1 -type f -delete && echo "emptied $dirs"'


def recent_logs(*units: str, minutes: int = 30) -> str:
    """Evidence for whoever takes over: the units' last log lines."""
    flags = " ".join(f"-u {unit}" for unit in units)
    return f"journalctl {flags} --since '-{minutes} min' --no-pager -n 60 || true"


# --------------------------------------------------------------------------- added for the L2/L3 runbooks

# Where the lab keeps what the slow-response runbook reads (nginx_portal, wordpress and mariadb roles).
NGINX_ACCESS_LOG = "/var/log/nginx/access.log"  # log_format portal: ... rt= uct= uht= urt= ... cs= ...
PHP_FPM_LOG = "/var/log/php8.2-fpm.log"
PHP_FPM_POOLS = "/etc/php/8.2/fpm/pool.d/wordpress-*.conf"
MARIADB_SLOW_LOG = "/var/log/mysql/mariadb-slow.log"


def unit_reload(unit: str) -> str:
    return f"systemctl reload {unit} && systemctl is-active {unit}"


def probe_within(seconds: float) -> str:
    """The probe (as :data:`PROBE`): every site answers, each within ``seconds`` in total (portalops.probe.within)."""
    return f"{PROBE} --json | {{{{ python }}}} -m portalops.cli probe-check --within {seconds:g}"


def filesystems_below(percent: int, *paths: str) -> str:
    """Every local filesystem (or, given ``paths``, each one holding them) used below ``percent``."""
    where = " ".join(paths) if paths else "-l -x tmpfs -x devtmpfs -x squashfs -x efivarfs"
    return (
        f"df -P {where} 2>/dev/null | awk -v limit={percent} "
        '\'NR > 1 && !seen[$6]++ { print $6, $5 " used"; if ($5 + 0 >= limit) over = over " " $6 " (" $5 ")" } '
        'END { if (over) { print "at or above " limit "%:" over; exit 1 } print "every filesystem below " limit "%" }\''
    )


def fpm_pools_not_saturated(minutes: int = 10) -> str:
    """No php-fpm pool runs its pm.max_children, nor logged reaching it in the last ``minutes``
    (portalops_host.phpfpm)."""
    return f"{HOST_TOOL} check fpm-saturation --minutes {minutes} --pools '{PHP_FPM_POOLS}' --log {PHP_FPM_LOG}"


def no_failed_units() -> str:
    """``systemctl --failed`` lists nothing."""
    return (
        "systemctl --failed --no-legend --plain --no-pager | "
        'awk \'NF { print; units = units " " $1 } END { if (units) { print "failed:" units; exit 1 } '
        'print "no failed units" }\''
    )


def units_not_failed(*units: str) -> str:
    """None of ``units`` is in the failed state (a unit not installed is not failed)."""
    names = " ".join(units)
    return (
        f'bad=""; for u in {names}; do if systemctl is-failed --quiet "$u"; then bad="$bad $u"; fi; done; '
        f'if [ -n "$bad" ]; then echo "failed:$bad"; exit 1; fi; echo "none failed: {names}"'
    )


def restart_failed(*units: str) -> str:
    """Restart each of ``units`` that is failed, checked again just before; the others are left alone."""
    names = " ".join(units)
    return (
        f'rc=0; for u in {names}; do if systemctl is-failed --quiet "$u"; then echo "restarting failed $u"; '
        'systemctl restart "$u" && systemctl is-active "$u" || rc=1; fi; done; exit $rc'
    )


# The backup wrapper on the database tier (restic_backup role). `check-database`: sound (exit 0), lost or
# corrupted (1: a core table missing, unreadable or emptied, published content, users or options gone in bulk,
# against the newest backup's manifest) or unknown (75: the server does not answer right now); read-only,
# runs during a backup.
BACKUP_TOOL = "/usr/local/sbin/portalops-backup"
CHECK_DATABASE = f"{BACKUP_TOOL} check-database"
DATABASE_SOUND = tiercheck.command_line("db", CHECK_DATABASE)
# php-fpm active on every host of the CMS tier (non-zero when one is not, or cannot tell).
FPM_ACTIVE = tiercheck.command_line("cms", f"systemctl is-active {PHP_FPM}")


def writes_into_a_sound_database(start: str, otherwise: str) -> str:
    """``start`` (what resumes writes: php-fpm on the CMS tier), run from the controller only when the
    database tier says sound: a WordPress without its tables offers its installer to anyone. Lost or
    unknown (the server not answering, the wrapper missing): exit 1 naming ``otherwise``, and php-fpm
    stays stopped, whoever stopped it (a person, l1_database_lost's stop_writes, a crash)."""
    return (
        f"if ! {DATABASE_SOUND}; then "
        f"echo '{PHP_FPM} stays stopped: the database tier does not say sound (above); {otherwise}'; exit 1; fi; "
        f"{start}"
    )
