"""PHP run inside a lab site's WordPress as the site's own user: how the lab tests and benches change content
the way an editor would (posts, pages, categories, their dates), since Debian has no WP-CLI
(:mod:`portalops.wpphp`, which the runbooks use over SSH, here through podman).
"""

from __future__ import annotations

from typing import Any

from portalops import wpphp
from portalops.lab.podman import Podman


def run_php(container: str, site: str, domain: str, body: str, *args: str, timeout: float = 1800) -> Any:
    """``body`` run in ``container`` as the user of ``site`` (WordPress loaded for ``domain``); its last line's JSON."""
    result = Podman().exec(container, "/bin/sh", "-c", wpphp.command(site, domain, body, *args), timeout=timeout)
    return wpphp.last_json(result.stdout)
