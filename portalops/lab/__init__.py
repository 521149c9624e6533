"""The lab: real Debian 12 hosts in systemd containers on one machine."""
