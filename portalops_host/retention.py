"""Retention: restic forget's --keep-* policy, checked before a snapshot is made, and the pin tag every forget keeps."""

from __future__ import annotations

import re
from typing import Any

from portalops_host.errors import ConfigError

KEEP_COUNTS = ("last", "hourly", "daily", "weekly", "monthly", "yearly")


# restic's duration: years, months, days, hours ("m" is months, not minutes), e.g. 48h, 7d, 1y6m.
KEEP_WITHIN = re.compile(r"(?:\d+y)?(?:\d+m)?(?:\d+d)?(?:\d+h)?")


def keep_policy(keep: dict[str, Any]) -> list[str]:
    """restic forget's --keep-* arguments. ``within`` (a duration, e.g. 48h) keeps every snapshot that
    close to the newest, ``last`` the newest N: a second backup the same day (a "back up now" after an
    unnoticed deletion, a re-run of the nightly) must not prune the day's earlier, good snapshot, which
    daily/weekly/monthly alone (one per day) would. A zero, a negative or an unknown entry is refused,
    never read as "not set": restic would then keep less than the policy seems to say."""
    unknown = sorted(set(keep) - {"within", *KEEP_COUNTS})
    if unknown:
        raise ConfigError(f"retention: unknown keep.{unknown[0]} (known: within, {', '.join(KEEP_COUNTS)})")
    policy = []
    if "within" in keep:
        value = keep["within"]
        if not isinstance(value, str) or not KEEP_WITHIN.fullmatch(value) or not re.search(r"[1-9]", value):
            raise ConfigError(f"retention: keep.within {value!r} is not a duration such as 48h, 7d or 1y6m")
        policy += ["--keep-within", value]
    for unit in KEEP_COUNTS:
        if unit in keep:
            value = keep[unit]
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"retention: keep.{unit} {value!r} must be a whole number of snapshots, 1 or more")
            policy += [f"--keep-{unit}", str(value)]
    if not policy:
        # restic forget without a policy keeps everything; a policy of zeros would delete everything.
        raise ConfigError("retention keeps nothing: set keep.within and keep.last, daily, weekly or monthly")
    return policy


def forget_args(job_name: str, keep: dict[str, int]) -> list[str]:
    return [
        "forget",
        "--json",
        "--tag",
        f"job:{job_name}",
        "--group-by",
        "host,tags",
        *keep_policy(keep),
        "--keep-tag",
        PIN_TAG,
    ]


# A database snapshot whose manifest shows mass loss against its predecessor's (mass_loss, the same
# thresholds as check-database) pins the predecessor: restic tag --add PIN_TAG, which every forget
# (here and on the backup host's second copy) keeps, until a person runs `portalops-backup release`.
# restic tag rewrites a snapshot: the pinned one has a new id, its first id stays in 'original'.
PIN_TAG = "portalops-pinned"
