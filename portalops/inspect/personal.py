"""Personal data in published text: resident ID-card numbers (GB 11643-1999) and mainland mobile numbers.

A number is only reported when it can be one: an ID number's birth date must exist and its check
character must match (ISO 7064 MOD 11-2), so order numbers and phone numbers of 18 digits are not
flagged. What is reported is masked: the report itself must not leak what it found.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
_ID_NUMBER = re.compile(
    r"(?<![0-9A-Za-z])([1-9]\d{5}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[\dXx])(?![0-9A-Za-z])"
)
# 11 digits from 13x to 19x, written whole or as 3-4-4 with spaces or hyphens, optionally after +86/86;
# not inside a longer run of digits (an ID number, an account number).
_MOBILE = re.compile(r"(?<![\d+])(?:\+?86[- ]?)?(1[3-9]\d)[- ]?(\d{4})[- ]?(\d{4})(?![\d])")


@dataclass(frozen=True)
class PersonalData:
    kind: str  # "id_card" or "mobile"
    masked: str


def id_check_character(first17: str) -> str:
    """The check character of an 18-character ID number from its first 17 digits."""
    total = sum(int(c) * w for c, w in zip(first17, _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11]


def valid_id_number(number: str) -> bool:
    """An 18-character resident ID number with a real birth date and the right check character."""
    if not re.fullmatch(r"[1-9]\d{16}[\dXx]", number):
        return False
    try:
        dt.date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        return False
    return id_check_character(number[:17]) == number[17].upper()


def mask(value: str, keep_start: int, keep_end: int) -> str:
    return value[:keep_start] + "*" * (len(value) - keep_start - keep_end) + value[len(value) - keep_end :]


def find_personal_data(text: str) -> list[PersonalData]:
    """ID-card and mobile numbers in ``text``, masked, in order of appearance."""
    found: list[tuple[int, PersonalData]] = []
    taken: list[tuple[int, int]] = []
    for match in _ID_NUMBER.finditer(text):
        if valid_id_number(match.group(1)):
            found.append((match.start(), PersonalData("id_card", mask(match.group(1).upper(), 6, 4))))
            taken.append(match.span())
    for match in _MOBILE.finditer(text):
        if any(start <= match.start() < end for start, end in taken):
            continue
        number = "".join(match.groups())
        found.append((match.start(), PersonalData("mobile", mask(number, 3, 4))))
    return [item for _, item in sorted(found, key=lambda pair: pair[0])]
