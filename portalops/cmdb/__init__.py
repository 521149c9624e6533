"""The CMDB, derived from the inventory and the hosts' own answers (playbooks/cmdb.yml), never typed."""
