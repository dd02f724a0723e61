#!/usr/bin/env bash
# Installs the .deb into a scratch root and checks what it made, then purges it.
#
#   bash .ci/deb-install.sh target/debian/lrci_VERSION_amd64.deb
#
# The scratch root is an overlay of this machine's / in a private mount namespace
# (unshare -m, root only): dpkg, adduser and the maintainer scripts run for real
# inside a chroot of it, and every change lands in a temporary upper directory that
# is thrown away; this machine is not modified. Where overlay mounts are refused the
# check says SKIPPED (the dpkg-deb content checks of .ci/run still ran).
set -euo pipefail

deb=$(realpath "$1")
if [ "$(id -u)" != 0 ] || ! command -v unshare >/dev/null 2>&1; then
  echo "deb install: SKIPPED (needs root and unshare)"; exit 0
fi
s=$(mktemp -d)
trap 'rm -rf "$s"' EXIT
mkdir -p "$s/upper" "$s/work" "$s/root"
cp "$deb" "$s/upper/lrci.deb"

# Runs inside the chroot: install, check owners, modes, the user and the binary,
# then purge and check that the data directories are gone.
cat >"$s/upper/check.sh" <<'EOF'
set -eu
fail() { echo "deb install: $*"; exit 1; }
dpkg -i /lrci.deb >/tmp/dpkg-i.log 2>&1 || { cat /tmp/dpkg-i.log; fail "dpkg -i failed"; }
getent passwd lrci >/dev/null || fail "no lrci user"
shell=$(getent passwd lrci | cut -d: -f7)
case $shell in */nologin|*/false) ;; *) fail "lrci user has a login shell: $shell" ;; esac
want() { # PATH MODE OWNER:GROUP
  got=$(stat -c '%a %U:%G' "$1") || fail "$1 missing"
  [ "$got" = "$2 $3" ] || fail "$1 is $got, want $2 $3"
}
want /etc/lrci 750 root:lrci
want /etc/lrci/config.toml 640 root:lrci
want /var/lib/lrci 750 lrci:lrci
want /var/log/lrci 750 lrci:lrci
want /usr/bin/lrci 755 root:root
for u in lrci.service lrci.timer lrci@.service lrci@.timer; do
  want /lib/systemd/system/$u 644 root:root
done
runuser -u lrci -- /usr/bin/lrci --version | grep -q '^lrci ' || fail "lrci --version as lrci"
# The example config parses as the lrci user (keys come from the environment).
runuser -u lrci -- env LOGRHYTHM_API_URL=https://pm.example:8501 LOGRHYTHM_API_KEY=k RF_API_KEY=0123456789abcdef0123456789abcdef \
  /usr/bin/lrci --config /etc/lrci/config.toml config check >/tmp/check.log 2>&1 \
  || { cat /tmp/check.log; fail "config check of the installed example config"; }
# Upgrade in place keeps an edited config (a conffile).
echo '# edited' >>/etc/lrci/config.toml
dpkg -i /lrci.deb >/tmp/dpkg-u.log 2>&1 || { cat /tmp/dpkg-u.log; fail "reinstall failed"; }
tail -1 /etc/lrci/config.toml | grep -q '^# edited' || fail "reinstall replaced the edited config"
dpkg --purge lrci >/tmp/dpkg-p.log 2>&1 || { cat /tmp/dpkg-p.log; fail "dpkg --purge failed"; }
for d in /var/lib/lrci /var/log/lrci /etc/lrci /usr/bin/lrci; do
  [ ! -e "$d" ] || fail "$d left after purge"
done
echo "deb install: installed, checked and purged in a scratch root"
EOF

set +e
unshare -m --fork sh -c '
  s=$1
  mount -t overlay overlay -o "lowerdir=/,upperdir=$s/upper,workdir=$s/work" "$s/root" || exit 90
  mount --bind /proc "$s/root/proc" && mount --bind /dev "$s/root/dev" || exit 90
  mount -t tmpfs tmpfs "$s/root/tmp" && mount -t tmpfs tmpfs "$s/root/run" || exit 90
  chroot "$s/root" sh /check.sh
' sh "$s"
rc=$?
set -e
if [ $rc = 90 ]; then echo "deb install: SKIPPED (overlay mount refused here)"; exit 0; fi
exit $rc
