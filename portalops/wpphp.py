"""PHP run inside a site's WordPress as the site's own user on a CMS host, since Debian 12 has no WP-CLI.

How the runbooks change content the way an editor would (``l1_sensitive_content`` sets a post back to
draft), and how the lab tests and benches seed it (:mod:`portalops.lab.wordpress`). The script is
:data:`BOOTSTRAP` (WordPress loaded for the site's domain, as the wordpress role's portalops-wp.php
loads it: Debian's wp-config reads ``/etc/wordpress/config-<domain>.php``) followed by the caller's PHP,
which finds its arguments in ``$args`` and prints one JSON line last.
"""

from __future__ import annotations

import json
import shlex
from typing import Any

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
PHP = "/usr/bin/php8.2"  # Debian 12's (the wordpress role's wordpress_php_version)
USER_PREFIX = "wp-"  # the wordpress role's wordpress_user_prefix
CMS_GROUP = "cms"  # where the sites' WordPress runs (every CMS host shares the sites' databases)


def command(site: str, domain: str, body: str, *args: str, then: str = "") -> str:
    """The shell command (run as root on a CMS host) that runs ``body`` as the user of ``site`` for ``domain``;
    ``then`` goes on the same line, after the script's here-document opens (`` | tail -n 1 && ...``)."""
    words = " ".join(shlex.quote(word) for word in (domain, *args))
    after = f" {then}" if then else ""
    return f"cd /tmp && runuser -u {USER_PREFIX}{site} -- {PHP} -- {words} <<'PHP'{after}\n{BOOTSTRAP}{body}PHP"


def last_json(stdout: str) -> Any:
    """The JSON line the script printed last."""
    lines = stdout.strip().splitlines()
    if not lines:
        raise ValueError("the PHP script printed nothing")
    return json.loads(lines[-1])
