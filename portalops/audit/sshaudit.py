"""Parse ssh-audit's text report (``ssh-audit -n``); its JSON omits the verdicts."""

from __future__ import annotations

import re
from dataclasses import dataclass

_LINE = re.compile(r"^\((?P<kind>\w+)\)\s+(?P<name>\S+)\s+--\s+\[(?P<level>fail|warn)\]\s+(?P<why>.*)$")


@dataclass(frozen=True)
class Finding:
    kind: str  # kex, key, enc, mac, ...
    name: str
    level: str  # fail or warn
    why: str


def parse_output(text: str) -> list[Finding]:
    """Every ``[fail]`` and ``[warn]`` verdict ssh-audit printed, once each."""
    found: dict[tuple[str, str, str], Finding] = {}
    for line in text.splitlines():
        match = _LINE.match(line.strip())
        if match:
            finding = Finding(match["kind"], match["name"], match["level"], match["why"].strip())
            found.setdefault((finding.kind, finding.name, finding.level), finding)
    return list(found.values())
