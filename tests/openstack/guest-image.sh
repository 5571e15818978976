#!/bin/bash
# The guest image of the test cloud's real VMs (make test-cloud): Debian 12 from Debian's own
# packages with debootstrap, booted by Nova's libvirt driver under QEMU emulation.
#
#   guest-image.sh OUT_DIR      writes OUT_DIR/{vmlinuz,initrd.img,root.img}
#
# The root file system is an ext4 image without a partition table or boot loader, made with
# `mkfs.ext4 -d` from the debootstrap tree: no loop device, no mount on the host. Nova boots it
# with the kernel and initrd given as Glance images (the root image's kernel_id, ramdisk_id and
# os_command_line), as OpenStack's own CI boots its small test images.
#
# What is in it: the cloud kernel, cloud-init (the config drive only: no metadata service, no
# wait for one), sshd, python3 for Ansible, sudo, and the Docker engine preinstalled (Debian's
# docker.io), so that a guest under emulation does not spend minutes installing it. Run as root
# (debootstrap chroots and makes device nodes); the tree is built beside OUT_DIR and removed.
set -euo pipefail

out=${1:?usage: guest-image.sh OUT_DIR}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
[ "$(id -u)" = 0 ] || { echo "guest-image.sh: needs root (debootstrap)" >&2; exit 2; }
for tool in debootstrap mkfs.ext4; do
  command -v "$tool" >/dev/null || { echo "guest-image.sh: $tool is missing (apt-get install debootstrap e2fsprogs)" >&2; exit 2; }
done

[ ! -e "$out" ] || { echo "guest-image.sh: $out exists: not replaced" >&2; exit 2; }
parent=$(dirname "$out")
mkdir -p "$parent"
work=$(mktemp -d "$parent/.guest-image.tmp-XXXXXX")
root="$work/root"
cleanup() {
  # debootstrap mounts proc and sys inside the tree while it configures packages
  for m in proc sys dev/pts; do umount "$root/$m" 2>/dev/null || true; done
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

packages=linux-image-cloud-amd64,initramfs-tools,cloud-init,openssh-server,python3,sudo
packages+=,ifupdown,isc-dhcp-client,net-tools,iproute2,python3-cffi-backend,ca-certificates
packages+=,docker.io,python3-requests,python3-apt,curl,gnupg,systemd-sysv,dbus,netbase
echo "guest-image.sh: debootstrap bookworm (minbase + $packages)"
debootstrap --variant=minbase --include="$packages" bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1 \
  || { tail -n 30 "$work/debootstrap.log" >&2; exit 1; }

# cloud-init: the config drive only (Nova's force_config_drive), so boot does not wait on a
# metadata service that the test cloud does not run; the console on the serial port
cat >"$root/etc/cloud/cloud.cfg.d/90-higgsbench-test.cfg" <<'EOF'
datasource_list: [ConfigDrive, None]
# the image has no locales package: the module would fail and cloud-init report an error
locale: false
system_info:
  default_user:
    name: debian
    lock_passwd: true
    gecos: Debian
    groups: [sudo]
    sudo: ["ALL=(ALL) NOPASSWD:ALL"]
    shell: /bin/bash
EOF
# host keys made at first boot, before sshd's own check of them (cloud-init makes them too
# when it runs first; this covers an sshd started before it)
install -d "$root/etc/systemd/system/ssh.service.d"
cat >"$root/etc/systemd/system/ssh.service.d/host-keys.conf" <<'EOF'
[Service]
ExecStartPre=
ExecStartPre=/usr/bin/ssh-keygen -A
ExecStartPre=/usr/sbin/sshd -t
EOF
cat >"$root/etc/fstab" <<'EOF'
/dev/vda / ext4 defaults,errors=remount-ro 0 1
EOF
printf 'auto lo\niface lo inet loopback\nsource /etc/network/interfaces.d/*\n' >"$root/etc/network/interfaces"
# no host keys baked in: each guest makes its own at first boot (cloud-init), as a cloud image
rm -f "$root"/etc/ssh/ssh_host_*
# apt's lists are not kept: the roles update them through the test cloud's proxy
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/archives/*.deb

# made beside OUT_DIR and moved into place whole: an interrupted build leaves no OUT_DIR
made="$work/out"
install -d "$made"
cp "$root"/boot/vmlinuz-* "$made/vmlinuz"
cp "$root"/boot/initrd.img-* "$made/initrd.img"
chmod 0644 "$made/vmlinuz" "$made/initrd.img"
# raw and sparse: Glance stores it as it is, Nova's qcow2 overlays grow it to the flavor's disk
# and cloud-init's resizefs grows the file system at first boot
size_mb=$(( $(du -sm "$root" | cut -f1) + 512 ))
mkfs.ext4 -q -L root -d "$root" "$made/root.img" "${size_mb}M"
[ ! -e "$out" ] || { echo "guest-image.sh: $out exists: not replaced" >&2; exit 2; }
mv -T "$made" "$out"
echo "guest-image.sh: $out: root file system ${size_mb} MB ($(du -sh "$out/root.img" | cut -f1) used), kernel $(basename "$root"/boot/vmlinuz-*)"
