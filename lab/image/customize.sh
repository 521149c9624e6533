#!/bin/sh
# Runs inside the freshly debootstrapped root (chroot) of the lab image.
# Turns a generic Debian 12 root into a bootable systemd container host;
# the per-lab deploy user and SSH key are added at `lab up`, not here, so
# one image serves every lab and every molecule instance.
set -eu

# Every host must get its own SSH host keys on first boot, not share the
# ones debootstrap generated.
rm -f /etc/ssh/ssh_host_*
cat > /etc/systemd/system/lab-ssh-hostkeys.service <<'UNIT'
[Unit]
Description=Generate SSH host keys on first boot
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
WantedBy=multi-user.target ssh.service
UNIT
systemctl enable lab-ssh-hostkeys.service ssh.service

# Each container gets a fresh machine id from systemd.
: > /etc/machine-id
rm -f /var/lib/dbus/machine-id

# Units that make no sense in a container and would only mark it degraded.
systemctl mask getty@tty1.service console-getty.service \
    systemd-remount-fs.service sys-kernel-config.mount \
    systemd-modules-load.service 2>/dev/null || true

# apt sources: the same mirror the image was built from (written by the
# builder into /etc/apt/sources.list before this script runs). debootstrap
# installs the release as it was; a new host starts with today's security
# and stable updates, as a freshly installed server would.
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get -y -qq -o Dpkg::Options::=--force-confold dist-upgrade
apt-get clean
rm -rf /var/lib/apt/lists/* /var/log/*.log /var/cache/debconf/*-old
