#!/bin/sh
# logship's main job on its defaults: install it, import a busybox image, run a container whose stdout
# and stderr go to the json-file driver, and read them back with `logship logs`. Run as root.
set -eu
cd "$(dirname "$0")"
sh .ci/setup
logship=".venv/bin/logship"

# A busybox image built from Debian's busybox-static, no registry involved.
rootfs=$(mktemp -d /tmp/logship-busybox.XXXXXX)
mkdir -p "$rootfs/bin" "$rootfs/etc" "$rootfs/tmp" "$rootfs/proc" "$rootfs/sys" "$rootfs/dev"
cp /bin/busybox "$rootfs/bin/busybox"
chroot "$rootfs" /bin/busybox --install -s /bin
echo 'root:x:0:0:root:/root:/bin/sh' > "$rootfs/etc/passwd"

set -x
$logship import "$rootfs" busybox   # the first command starts the daemon in the background
$logship rm -f web >/dev/null 2>&1 || true
$logship run -d --name web --log-opt max-size=1m --log-opt max-file=3 busybox \
    sh -c 'for i in 1 2 3 4 5 6 7 8; do date; echo "tick $i on stderr" >&2; sleep 1; done'
$logship ps
$logship logs -f --tail 5 -t web    # follows until the container exits
$logship inspect --format '{{.State.Status}} exit={{.State.ExitCode}} log={{.LogPath}}' web
$logship info
$logship rm web
set +x
rm -rf "$rootfs"
