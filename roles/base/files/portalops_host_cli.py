#!/usr/bin/python3
"""portalops-host: the checks runbooks run on a host, portalops_host.cli (the package the role installs)."""

import sys

from portalops_host.cli import main

sys.exit(main())
