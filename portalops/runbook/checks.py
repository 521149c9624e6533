"""Shell checks the runbooks share: each exits 0 when the state is as wanted and
prints what it saw, so it serves as a diagnosis, as an act's check and as a
verification alike. They run under ``sh`` on Debian 12 hosts, as root.
"""

from __future__ import annotations

# The portal's probe, run on the controller against the inventory's portal_public_url.
PROBE = "{{ python }} -m portalops.cli probe -i {{ inventory }}"
# Debian 12's PHP (the wordpress role's wordpress_php_version names the same unit).
PHP_FPM = "php8.2-fpm"
BACKUP_STATUS = "/var/lib/portalops/backup/run.json"


def unit_active(*units: str) -> str:
    """Every unit active; ``systemctl is-active`` prints each unit's state."""
    return f"systemctl is-active {' '.join(units)}"


def unit_restart(unit: str) -> str:
    return f"systemctl restart {unit} && systemctl is-active {unit}"


# Loaded, when nftables is managed at all (the unit enabled): a default-deny input hook exists.
NFTABLES_LOADED = (
    "if ! systemctl is-enabled --quiet nftables; then echo 'nftables not managed here'; exit 0; fi; "
    "if nft list ruleset | grep -q 'hook input'; then echo 'input hook loaded'; "
    "else echo 'no nftables ruleset loaded'; exit 1; fi"
)


def disk_below(percent: int) -> str:
    """/ and /var each used below ``percent``."""
    return (
        "df -P / /var | awk -v limit=" + str(percent) + ' \'NR > 1 { print $6, $5 " used"; '
        'if ($5 + 0 >= limit) { print $6 " is at or above " limit "%"; bad = 1 } } END { exit bad }\''
    )


def certificates_valid_for(days: int) -> str:
    """Every certificate nginx serves (``nginx -T``) is valid for ``days`` more days."""
    script = (
        "import datetime, sys\n"
        "from cryptography import x509\n"
        "paths = sys.stdin.read().split()\n"
        "if not paths:\n"
        "    sys.exit('nginx -T names no ssl_certificate')\n"
        "bad = False\n"
        "now = datetime.datetime.utcnow()\n"
        "for path in paths:\n"
        "    with open(path, 'rb') as handle:\n"
        "        cert = x509.load_pem_x509_certificate(handle.read())\n"
        "    left = cert.not_valid_after - now\n"
        f"    short = left < datetime.timedelta(days={days})\n"
        "    when = cert.not_valid_after.isoformat()\n"
        f"    print(path, 'expires', when, '(%d days)' % left.days, 'UNDER {days}' * short)\n"
        "    bad = bad or short\n"
        "sys.exit(1 if bad else 0)\n"
    )
    return (
        'nginx -T 2>/dev/null | awk \'$1 == "ssl_certificate" { sub(/;$/, "", $2); print $2 }\' | sort -u'
        f' | python3 -c "{script}"'
    )


def backups_younger_than(hours: int) -> str:
    """Every backup job of the host succeeded in its last run, and within ``hours``."""
    script = (
        "import json, sys, time\n"
        "try:\n"
        f"    status = json.load(open('{BACKUP_STATUS}'))\n"
        "except (OSError, ValueError) as exc:\n"
        "    sys.exit('no backup status: %s' % exc)\n"
        "jobs = status.get('jobs') or []\n"
        "bad = not jobs\n"
        "for job in jobs:\n"
        "    ts = job.get('last_success_ts')\n"
        "    age = (time.time() - float(ts)) / 3600 if ts else None\n"
        f"    fresh = bool(job.get('ok')) and age is not None and age <= {hours}\n"
        "    seen = 'never succeeded' if age is None else 'last success %.1f h ago' % age\n"
        "    print(job.get('name'), 'ok' if job.get('ok') else 'FAILED', seen, '' if fresh else 'STALE')\n"
        "    bad = bad or not fresh\n"
        "sys.exit(1 if bad else 0)\n"
    )
    return f'python3 -c "{script}"'


def recent_logs(*units: str, minutes: int = 30) -> str:
    """Evidence for whoever takes over: the units' last log lines."""
    flags = " ".join(f"-u {unit}" for unit in units)
    return f"journalctl {flags} --since '-{minutes} min' --no-pager -n 60 || true"
