"""portalops_host: the code portalops runs on the managed hosts (Python standard library only, Debian 12's
Python 3.11), installed by the restic_backup and restore_drill roles as a package on the system Python's path.

Commands: `portalops-backup` (portalops_host.backup) and `portalops-drill` (portalops_host.drill). The
controller talks to them through their exit codes and JSON output; unit tests import the modules directly.
"""
