"""`portalops-host check certificates`: every certificate nginx serves is valid long enough (the
l1_portal_unreachable and l3_certificate_expiry runbooks)."""

from __future__ import annotations

import ssl
import subprocess
import sys
from datetime import UTC, datetime, timedelta


def served_certificates(nginx_config: str) -> list[str]:
    """The ``ssl_certificate`` files of ``nginx -T``'s output, each once, sorted (not ``ssl_certificate_key``)."""
    paths = set()
    for line in nginx_config.splitlines():
        words = line.split()
        if len(words) > 1 and words[0] == "ssl_certificate":
            paths.add(words[1].removesuffix(";"))
    return sorted(paths)


def not_after(openssl_enddate: str) -> datetime:
    """The expiry of ``openssl x509 -noout -enddate`` (``notAfter=Dec  5 00:00:00 2027 GMT``), naive UTC."""
    seconds = ssl.cert_time_to_seconds(openssl_enddate.strip().removeprefix("notAfter="))
    return datetime.fromtimestamp(seconds, UTC).replace(tzinfo=None)


def certificate_line(path: str, expires: datetime, days: int, now: datetime) -> tuple[str, bool]:
    """The certificate at ``path`` as a line, and whether it is valid for at least ``days`` more days after
    ``now`` (both naive UTC)."""
    left = expires - now
    short = left < timedelta(days=days)
    return f"{path} expires {expires.isoformat()} ({left.days} days) {f'UNDER {days}' if short else ''}", not short


def _expiry(path: str) -> datetime:
    result = subprocess.run(
        ["openssl", "x509", "-noout", "-enddate", "-in", path], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise ValueError(result.stderr.strip() or f"openssl exit {result.returncode}")
    return not_after(result.stdout)


def command_certificates(days: int) -> int:
    """Exit 0 when every certificate nginx serves is valid ``days`` more days, 1 when one is not, cannot
    be read, or nginx names none."""
    try:
        config = subprocess.run(["nginx", "-T"], capture_output=True, text=True, check=False).stdout
    except OSError:
        config = ""
    paths = served_certificates(config)
    if not paths:
        print("nginx -T names no ssl_certificate", file=sys.stderr)
        return 1
    moment = datetime.now(UTC).replace(tzinfo=None)
    bad = False
    for path in paths:
        try:
            expires = _expiry(path)
        except (OSError, ValueError) as exc:
            print(f"{path} cannot be read: {exc}")
            bad = True
            continue
        line, ok = certificate_line(path, expires, days, moment)
        print(line)
        bad = bad or not ok
    return 1 if bad else 0
