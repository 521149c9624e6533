"""Judge testssl.sh's JSON findings against the portal's TLS policy."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

BANNED_PROTOCOLS = ("SSLv2", "SSLv3", "TLS1", "TLS1_1")
WANTED_PROTOCOLS = ("TLS1_2", "TLS1_3")
# testssl.sh 3.0 cipher categories; AVERAGE holds the obsolete CBC suites.
WEAK_CIPHER_LISTS = (
    "cipherlist_NULL",
    "cipherlist_aNULL",
    "cipherlist_EXPORT",
    "cipherlist_LOW",
    "cipherlist_3DES_IDEA",
    "cipherlist_AVERAGE",
)


@dataclass(frozen=True)
class TlsVerdict:
    offered_protocols: list[str]
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def judge(findings: list[dict[str, Any]]) -> TlsVerdict:
    """No SSLv2/3 or TLS 1.0/1.1, no weak cipher category, TLS 1.2 or 1.3 offered."""
    by_id = {str(f.get("id")): str(f.get("finding", "")) for f in findings}
    offered = [p for p in (*BANNED_PROTOCOLS, *WANTED_PROTOCOLS) if by_id.get(p, "").startswith("offered")]
    problems = [f"{p} offered" for p in BANNED_PROTOCOLS if p in offered]
    if not any(p in offered for p in WANTED_PROTOCOLS):
        problems.append("neither TLS 1.2 nor TLS 1.3 offered")
    for key in WEAK_CIPHER_LISTS:
        if key not in by_id:
            problems.append(f"{key}: not tested")
        elif not by_id[key].startswith("not offered"):
            problems.append(f"{key.removeprefix('cipherlist_')} ciphers {by_id[key]}")
    return TlsVerdict(offered, problems)
