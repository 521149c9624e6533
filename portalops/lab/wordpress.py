"""PHP run inside a lab site's WordPress as the site's own user: how the lab tests and benches change content
the way an editor would (posts, pages, categories, their dates), since Debian has no WP-CLI.

The script is :data:`BOOTSTRAP` (WordPress loaded for the site's domain, as the wordpress role's
portalops-wp.php loads it) followed by the caller's PHP, which finds its arguments in ``$args`` and prints
one JSON line last.
"""

from __future__ import annotations

import json
import shlex
from typing import Any

from portalops.lab.podman import Podman

BOOTSTRAP = r"""<?php
$host = $argv[1];
$args = array_slice($argv, 2);
$_SERVER['HTTP_HOST'] = $_SERVER['SERVER_NAME'] = $host;
$_SERVER['REQUEST_URI'] = '/';
$_SERVER['REQUEST_METHOD'] = 'GET';
$_SERVER['REMOTE_ADDR'] = '127.0.0.1';
define('WP_INSTALLING', true);
require '/usr/share/wordpress/wp-load.php';
global $wpdb;
"""
PHP = "/usr/bin/php8.2"  # Debian 12's
USER_PREFIX = "wp-"  # the wordpress role's wordpress_user_prefix


def run_php(container: str, site: str, domain: str, body: str, *args: str, timeout: float = 1800) -> Any:
    """``body`` run in ``container`` as the user of ``site`` (WordPress loaded for ``domain``); its last line's JSON."""
    words = " ".join(shlex.quote(word) for word in (domain, *args))
    line = f"cd /tmp && runuser -u {USER_PREFIX}{site} -- {PHP} -- {words} <<'PHP'\n{BOOTSTRAP}{body}PHP"
    result = Podman().exec(container, "/bin/sh", "-c", line, timeout=timeout)
    return json.loads(result.stdout.strip().splitlines()[-1])
