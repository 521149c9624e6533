#!/usr/bin/python3
"""portalops-backup: the host-side backup wrapper, portalops_host.backup (the package the role installs)."""

import sys

from portalops_host.backup import main

sys.exit(main())
