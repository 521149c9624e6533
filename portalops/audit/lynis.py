"""Parse Lynis's machine-readable report (``/var/log/lynis-report.dat``)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class LynisResult:
    """What an auditor reads first: the index, then warnings, then suggestions."""

    hardening_index: int
    tests_performed: int
    warnings: list[str] = field(default_factory=list)
    suggestions: list[str] = field(default_factory=list)


def parse_report(text: str) -> LynisResult:
    """``key=value`` lines; ``key[]=`` lines repeat, with ``|``-separated fields.

    A report without ``hardening_index`` means Lynis did not finish: that is
    an error, never an index of 0 that could be mistaken for a result.
    """
    index: int | None = None
    tests = 0
    warnings: list[str] = []
    suggestions: list[str] = []
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if not sep or key.startswith("#"):
            continue
        if key == "hardening_index":
            index = int(value)
        elif key == "lynis_tests_done":
            tests = int(value or 0)
        elif key in ("warning[]", "suggestion[]"):
            parts = value.split("|")
            test_id, text_ = parts[0], parts[1] if len(parts) > 1 else ""
            detail = parts[2] if len(parts) > 2 and parts[2] not in ("", "-") else ""
            entry = f"{test_id}: {text_}" + (f" ({detail})" if detail else "")
            (warnings if key == "warning[]" else suggestions).append(entry)
    if index is None:
        raise ValueError("not a finished Lynis report: no hardening_index line")
    return LynisResult(index, tests, warnings, suggestions)
