#!/usr/bin/env bash
# An emulated aarch64 "board" on loopback: a real arm64 Debian root (python3, numpy, LiteRT,
# ONNX Runtime, OpenSSH) run under qemu-user, reachable with ssh on 127.0.0.1.
#
#   bash scripts/arm_board.sh build                  build the root once (cached; ~10-20 min)
#   bash scripts/arm_board.sh start --cpu cortex-a72 sshd in the root, emulating a Pi 4's core
#   bash scripts/arm_board.sh start --cpu cortex-a76 ... a Pi 5's core (ARMv8.2, SDOT)
#   bash scripts/arm_board.sh status                 which boards run, with their --host
#   bash scripts/arm_board.sh stop [--cpu CPU]       stop one board (or all) and unmount
#
# start prints the --host to use and the ssh config holding it:
#   export EDGECOMPRESS_SSH_CONFIG=~/.cache/edgecompress/arm-board/ssh_config
#   edgecompress bench --device rpi4 --host ec-cortex-a72 --artifact model.tflite
#
# Emulated latency is NOT device latency: the root carries /etc/edgecompress-emulated and the
# device runner marks every result from it as emulated. What the board is good for is running
# the device's own kernels (XNNPACK picks NEON / SDOT paths from the emulated core's features):
# parity on ARM, the ssh harness end to end, cleanup.
#
# Needs root (debootstrap, chroot, mounts), qemu-user-static and binfmt_misc. Every command is
# idempotent: build skips a finished root, start reuses a running board.
set -euo pipefail

CACHE=${EDGECOMPRESS_CACHE:-$HOME/.cache/edgecompress}
ROOT=$CACHE/arm64-root
WHEELS=$CACHE/arm64-wheels
STATE=$CACHE/arm-board
SUITE=${ARM_BOARD_SUITE:-bookworm}  # python3.11, like the host venv
MIRROR=${ARM_BOARD_MIRROR:-http://deb.debian.org/debian}
# The host's runtime versions, so that ARM and x86 parity compare the same releases.
PINS=(numpy==1.26.4 onnxruntime==1.23.0 ai-edge-litert==2.1.0)
CPUS="cortex-a72 cortex-a76"

die() { echo "arm_board: $*" >&2; exit 2; }
say() { echo "arm_board: $*" >&2; }

need_root() { [ "$(id -u)" = 0 ] || die "needs root (debootstrap, chroot and mounts); run it with sudo"; }

# Every way qemu-user can be unusable, each with the command that fixes it.
check_qemu() {
  command -v qemu-aarch64-static >/dev/null 2>&1 \
    || die "qemu-aarch64-static not found; fix: apt-get install -y qemu-user-static binfmt-support"
  [ -e /proc/sys/fs/binfmt_misc/status ] \
    || die "binfmt_misc is not mounted; fix: mount binfmt_misc -t binfmt_misc /proc/sys/fs/binfmt_misc && update-binfmts --enable qemu-aarch64"
  [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] \
    || die "no qemu-aarch64 handler in binfmt_misc; fix: update-binfmts --enable qemu-aarch64 (or: apt-get install -y qemu-user-static binfmt-support)"
  grep -q '^enabled' /proc/sys/fs/binfmt_misc/qemu-aarch64 \
    || die "the qemu-aarch64 binfmt handler is disabled; fix: update-binfmts --enable qemu-aarch64"
  # The F flag opens the interpreter when it is registered, so it works inside a chroot too;
  # without it the chroot would need its own copy of qemu.
  grep -q '^flags:.*F' /proc/sys/fs/binfmt_misc/qemu-aarch64 \
    || die "the qemu-aarch64 handler lacks the F (fix-binary) flag needed inside a chroot; fix: apt-get install --reinstall qemu-user-static && update-binfmts --enable qemu-aarch64"
}

check_cpu() {
  case " $CPUS " in *" $1 "*) ;; *) die "--cpu $1 is not allowed (allowed: ${CPUS// /, })";; esac
}

mount_root() {
  mountpoint -q "$ROOT/proc" || mount -t proc proc "$ROOT/proc"
  # /sys read-only: the runner reads thermal zones and cpufreq, nothing may write the host's.
  mountpoint -q "$ROOT/sys" || { mount --bind /sys "$ROOT/sys" && mount -o remount,bind,ro "$ROOT/sys"; }
  mountpoint -q "$ROOT/dev" || mount --bind /dev "$ROOT/dev"
}

umount_root() {
  local m
  for m in dev sys proc; do
    if mountpoint -q "$ROOT/$m"; then umount "$ROOT/$m" || umount -l "$ROOT/$m"; fi
  done
}

# ------------------------------------------------------------------------------ build

build() {
  need_root
  check_qemu
  if [ -f "$ROOT/etc/edgecompress-emulated" ]; then
    say "root already built: $ROOT ($(cat "$ROOT/etc/edgecompress-build-seconds" 2>/dev/null || echo '?') s to build)"
    return 0
  fi
  command -v debootstrap >/dev/null 2>&1 || die "debootstrap not found; fix: apt-get install -y debootstrap"
  local start partial=$ROOT.partial
  start=$(date +%s)
  mkdir -p "$CACHE" "$WHEELS"
  # A half-built root from an interrupted run is not trusted: start it over.
  if [ -d "$partial" ] && [ ! -f "$partial/.debootstrap-done" ]; then
    for m in dev sys proc; do mountpoint -q "$partial/$m" && umount -l "$partial/$m"; done
    rm -rf "$partial"
  fi
  if [ ! -f "$partial/.debootstrap-done" ]; then
    say "debootstrap $SUITE arm64 into $partial (the second stage runs under qemu: slow)"
    debootstrap --arch=arm64 --variant=minbase \
      --include=python3,python3-venv,python3-pip,openssh-server,ca-certificates,procps \
      "$SUITE" "$partial" "$MIRROR"
    touch "$partial/.debootstrap-done"
  fi
  # Wheels are fetched on the host (fast, native pip) and only installed under emulation.
  say "downloading aarch64 wheels: ${PINS[*]}"
  local pip=(python3 -m pip)
  [ -x "$(dirname "$0")/../.venv/bin/python" ] && pip=("$(dirname "$0")/../.venv/bin/python" -m pip)
  local plats=()
  for p in manylinux2014_aarch64 manylinux_2_17_aarch64 manylinux_2_27_aarch64 manylinux_2_28_aarch64 manylinux_2_31_aarch64 manylinux_2_34_aarch64 manylinux_2_35_aarch64 manylinux_2_36_aarch64; do
    plats+=(--platform "$p")
  done
  "${pip[@]}" download -q --disable-pip-version-check "${plats[@]}" --python-version 3.11 --implementation cp \
    --only-binary=:all: -d "$WHEELS" "${PINS[@]}"
  rm -rf "$partial/opt/wheels" && cp -r "$WHEELS" "$partial/opt/wheels"
  say "installing the wheels inside the root (under qemu)"
  # System-wide (PEP 668 override): on the board `python3` alone must find the runtimes, as
  # on a Pi where the user pip-installed them.
  chroot "$partial" /usr/bin/python3 -m pip install -q --no-index --find-links /opt/wheels \
    --break-system-packages --disable-pip-version-check "${PINS[@]}"
  rm -rf "$partial/opt/wheels"
  chroot "$partial" /usr/sbin/useradd -m -s /bin/sh pi 2>/dev/null || true
  # "*": no password can ever match, but the account is not "locked" ("!"), which sshd refuses
  # even for key logins when PAM is off.
  chroot "$partial" /usr/sbin/usermod -p '*' pi
  mkdir -p "$partial/run/sshd"
  [ -f "$partial/etc/ssh/ssh_host_ed25519_key" ] || ssh-keygen -q -t ed25519 -N "" -f "$partial/etc/ssh/ssh_host_ed25519_key"
  # The device runner reads this marker: results from this root say they are emulated.
  echo "qemu-user aarch64 root built by scripts/arm_board.sh" > "$partial/etc/edgecompress-emulated"
  echo $(( $(date +%s) - start )) > "$partial/etc/edgecompress-build-seconds"
  mv "$partial" "$ROOT"
  say "root built in $(cat "$ROOT/etc/edgecompress-build-seconds") s: $ROOT"
}

# ------------------------------------------------------------------------------ start / stop

board_dir() { echo "$STATE/$1"; }
alias_for() { echo "ec-$1"; }

running() {  # running CPU -> 0 when its sshd is alive
  local pidf="$ROOT/run/ec-sshd-$1.pid"
  [ -f "$pidf" ] && kill -0 "$(cat "$pidf")" 2>/dev/null
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# One client config holding every running board's alias, so one EDGECOMPRESS_SSH_CONFIG serves both.
write_client_config() {
  local cpu out=$STATE/ssh_config
  : > "$out.tmp"
  for cpu in $CPUS; do
    [ -f "$(board_dir "$cpu")/alias" ] && cat "$(board_dir "$cpu")/alias" >> "$out.tmp"
  done
  mv "$out.tmp" "$out"
}

start() {
  local cpu=$1 dir port alias
  need_root
  check_cpu "$cpu"
  check_qemu
  [ -f "$ROOT/etc/edgecompress-emulated" ] || die "no arm64 root at $ROOT; build it first: bash $0 build"
  dir=$(board_dir "$cpu")
  alias=$(alias_for "$cpu")
  if running "$cpu" && [ -f "$dir/port" ]; then
    say "board $cpu already running on 127.0.0.1:$(cat "$dir/port")"
    print_host "$cpu"
    return 0
  fi
  mkdir -p "$dir"
  mount_root
  [ -f "$dir/client_key" ] || ssh-keygen -q -t ed25519 -N "" -f "$dir/client_key"
  install -d -m 700 -o "$(chroot "$ROOT" id -u pi)" -g "$(chroot "$ROOT" id -g pi)" "$ROOT/home/pi/.ssh"
  cat "$STATE"/*/client_key.pub > "$ROOT/home/pi/.ssh/authorized_keys"
  chroot "$ROOT" chown pi:pi /home/pi/.ssh/authorized_keys
  chmod 600 "$ROOT/home/pi/.ssh/authorized_keys"
  port=$(free_port)
  # SetEnv: sshd gives sessions a clean environment, and qemu reads QEMU_CPU at every exec,
  # so the commands the harness runs must get it again to see the same core.
  cat > "$ROOT/etc/ssh/ec-$cpu.conf" <<EOF
Port $port
ListenAddress 127.0.0.1
HostKey /etc/ssh/ssh_host_ed25519_key
PidFile /run/ec-sshd-$cpu.pid
AllowUsers pi
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
SetEnv QEMU_CPU=$cpu EDGECOMPRESS_EMULATED_CPU=$cpu
EOF
  mkdir -p "$ROOT/run/sshd"
  rm -f "$ROOT/run/ec-sshd-$cpu.pid"
  # setsid: the board outlives this script; sshd daemonizes and writes its pid file itself.
  QEMU_CPU=$cpu setsid chroot "$ROOT" /usr/sbin/sshd -f "/etc/ssh/ec-$cpu.conf" -E "/var/log/ec-sshd-$cpu.log" </dev/null
  local i
  for i in $(seq 1 120); do
    if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $port), 0.5)" 2>/dev/null; then break; fi
    [ "$i" = 120 ] && die "sshd for $cpu did not listen on 127.0.0.1:$port within 60 s: $(tail -3 "$ROOT/var/log/ec-sshd-$cpu.log" 2>/dev/null)"
    sleep 0.5
  done
  echo "$port" > "$dir/port"
  echo "[127.0.0.1]:$port $(cut -d' ' -f1,2 "$ROOT/etc/ssh/ssh_host_ed25519_key.pub")" > "$dir/known_hosts"
  cat > "$dir/alias" <<EOF
Host $alias
  HostName 127.0.0.1
  Port $port
  User pi
  IdentityFile $dir/client_key
  IdentitiesOnly yes
  IdentityAgent none
  UserKnownHostsFile $dir/known_hosts
  GlobalKnownHostsFile /dev/null
  BatchMode yes

EOF
  write_client_config
  # One real login proves the board answers as the emulated core before anyone relies on it.
  local seen
  seen=$(ssh -F "$STATE/ssh_config" "$alias" -- 'uname -m; echo "$QEMU_CPU"' 2>&1 | tr '\n' ' ') \
    || die "board $cpu started but ssh $alias failed: $seen"
  say "board $cpu up on 127.0.0.1:$port ($seen)"
  print_host "$cpu"
}

print_host() {
  echo "export EDGECOMPRESS_SSH_CONFIG=$STATE/ssh_config"
  echo "--host $(alias_for "$1")"
}

stop_one() {
  local cpu=$1 pidf="$ROOT/run/ec-sshd-$1.pid"
  if running "$cpu"; then
    kill "$(cat "$pidf")" 2>/dev/null || true
    local i
    for i in $(seq 1 20); do running "$cpu" || break; sleep 0.25; done
    say "board $cpu stopped"
  fi
  rm -f "$pidf" "$(board_dir "$cpu")/port" "$(board_dir "$cpu")/alias"
}

stop() {
  local only=${1:-} cpu any=0
  need_root
  [ -d "$ROOT" ] || { say "no root at $ROOT: nothing to stop"; return 0; }
  for cpu in $CPUS; do
    if [ -z "$only" ] || [ "$only" = "$cpu" ]; then stop_one "$cpu"; fi
  done
  [ -d "$STATE" ] && write_client_config
  for cpu in $CPUS; do running "$cpu" && any=1; done
  # The mounts are shared by both boards: only the last one out unmounts.
  [ "$any" = 1 ] || umount_root
}

status() {
  local cpu
  [ -f "$ROOT/etc/edgecompress-emulated" ] || { echo "root: not built ($ROOT)"; return 0; }
  echo "root: $ROOT (built in $(cat "$ROOT/etc/edgecompress-build-seconds" 2>/dev/null || echo '?') s)"
  for cpu in $CPUS; do
    if running "$cpu"; then
      echo "$cpu: running, --host $(alias_for "$cpu") (127.0.0.1:$(cat "$(board_dir "$cpu")/port"), EDGECOMPRESS_SSH_CONFIG=$STATE/ssh_config)"
    else
      echo "$cpu: stopped"
    fi
  done
}

cmd=${1:-}
shift || true
cpu=""
while [ $# -gt 0 ]; do
  case $1 in
    --cpu) [ $# -ge 2 ] || die "--cpu needs a value (${CPUS// /, })"; cpu=$2; shift 2;;
    --cpu=*) cpu=${1#--cpu=}; shift;;
    *) die "unknown argument $1 (usage: $0 build | start --cpu CPU | stop [--cpu CPU] | status)";;
  esac
done
case $cmd in
  build) build;;
  start) [ -n "$cpu" ] || die "start needs --cpu (${CPUS// /, })"; check_cpu "$cpu"; build; start "$cpu";;
  stop) [ -z "$cpu" ] || check_cpu "$cpu"; stop "$cpu";;
  status) status;;
  *) die "usage: $0 build | start --cpu cortex-a72|cortex-a76 | stop [--cpu CPU] | status";;
esac
