#!/usr/bin/python3
"""portalops-drill: the restore drill on the drill host, portalops_host.drill (the package the role installs)."""

import sys

from portalops_host.drill import main

sys.exit(main())
