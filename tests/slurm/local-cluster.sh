#!/usr/bin/env bash
# local-cluster.sh: a real single-node Slurm cluster (munged + slurmctld + slurmd from Debian 12's
# slurm-wlm 22.05, with pmix and Open MPI) so tests can submit slurm/sweep.sh with `sbatch`.
#
#   start    install missing packages, write the config, start the daemons, wait until usable
#   stop     cancel leftover jobs, then stop the daemons this script started (by pidfile PID)
#   status   show the daemons and `sinfo`; exit 0 only if all three run
#
# Run as root (CI does); needs no stdin. Everything (config, a private munge key and socket, state,
# logs, pidfiles) lives under $QSWEEP_SLURM_DIR (default /tmp/qsweep-slurm); nothing in /etc is
# changed, and a system munged or Slurm, if any, is left alone. munged runs as user munge, so
# every parent of that directory must be searchable by others (mktemp -d makes it 0700). Clients find this cluster through
# SLURM_CONF, so after `start`:   . "$QSWEEP_SLURM_DIR/env.sh"
#
# Where the facts come from: the config and daemon flags are those of the team's proven
# single-node setup (shared/reference/slurm-local-cluster.sh, checked on Debian 12 in containers);
# each non-obvious line says why it is there.
set -euo pipefail
umask 022                                  # munged rejects group/other-writable directories
export PATH=${PATH:-/usr/bin:/bin}:/usr/sbin:/sbin   # the daemons live in /usr/sbin

DIR=$(realpath -m "${QSWEEP_SLURM_DIR:-/tmp/qsweep-slurm}")
# Not Slurm's default 6817, so a site or a colleague's test cluster on the same host is left alone.
PORT=${QSWEEP_SLURM_PORT:-6837}            # slurmctld port; slurmd listens on PORT+1
HOST=$(hostname -s)
CPUS=$(( $(nproc) > 4 ? $(nproc) : 4 ))  # advertise >= 4 CPUs so 3-4 rank jobs fit on a 2-core runner
MEM=$(( $(awk '/^MemTotal/ {print $2}' /proc/meminfo) / 1024 ))   # MiB, so `--mem` requests fit
# libpmix-dev on purpose: Slurm's mpi/pmix plugin dlopens the unversioned libpmix.so.
PKGS=(slurm-wlm munge libpmix-dev openmpi-bin libopenmpi-dev)
export SLURM_CONF=$DIR/slurm.conf

say() { echo "local-cluster: $*"; }
die() {   # say why on stderr with the daemons' log tails, and fail
  say "$*" >&2
  tail -n 15 "$DIR"/log/slurm*.log "$DIR/munge/munged.log" >&2 2>/dev/null || true
  exit 1
}

# alive NAME PIDFILE: the pidfile names a live, non-zombie process called NAME. The name check
# keeps a stale pidfile whose PID was reused from making us skip a start or kill a stranger.
alive() {
  local pid; pid=$(cat "$2" 2>/dev/null) || return 1
  [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$1" ] &&
    [ "$(cut -d' ' -f3 "/proc/$pid/stat" 2>/dev/null)" != Z ]
}

install_pkgs() {
  local p missing=()
  for p in "${PKGS[@]}"; do
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" = installed ] || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=300 update -qq
  apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

write_config() {
  mkdir -p "$DIR"/{state,spool,log,run}
  cat >"$SLURM_CONF" <<CONF
ClusterName=qsweeptest
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$DIR/munge/munge.socket
# No cgroups: works in containers and unprivileged CI runners.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=pmix
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
ReturnToService=2
# Start batch jobs at once, not on the next 3 s scheduling pass (the default batch_sched_delay).
SchedulerParameters=batch_sched_delay=0
EnforcePartLimits=ALL
# Finished jobs vanish from squeue after MinJobAge s; sbatch --wait polls every 2 s, well within it.
MinJobAge=4
KillWait=5
MailProg=/bin/true
JobCompType=jobcomp/filetxt
JobCompLoc=$DIR/log/jobcomp.log
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
  # slurmd 22.05 always loads a cgroup plugin, and "autodetect" fails where /sys/fs/cgroup is
  # missing or a read-only cgroup v2 without systemd (containers). cgroup/v1 loads without
  # touching the cgroup filesystem, and with the plugins above nothing else uses it.
  echo "CgroupPlugin=cgroup/v1" >"$DIR/cgroup.conf"
  echo "export SLURM_CONF=$SLURM_CONF" >"$DIR/env.sh"
}

# A private munged (own key, socket, pidfile) so the script never touches a system munge.
start_munge() {
  local m=$DIR/munge
  alive munged "$m/munged.pid" && return 0
  mkdir -p "$m"; chown munge:munge "$m"; chmod 0755 "$m"
  [ -s "$m/munge.key" ] || dd if=/dev/urandom of="$m/munge.key" bs=1024 count=1 status=none
  chown munge:munge "$m/munge.key"; chmod 0400 "$m/munge.key"
  # --origin: skip the hostname lookup (a CI container's hostname often does not resolve).
  runuser -u munge -- /usr/sbin/munged --key-file="$m/munge.key" --socket="$m/munge.socket" \
    --pid-file="$m/munged.pid" --log-file="$m/munged.log" --seed-file="$m/munged.seed" \
    --origin=127.0.0.1 || die "munged failed to start"
}

# Ready means the node is up and a one-task job step runs (or jobs are already running on it).
wait_ready() {
  local state="" deadline=$((SECONDS + 60)) grace=$((SECONDS + 5))
  while [ $SECONDS -lt $deadline ]; do
    if [ $SECONDS -ge $grace ]; then   # fail fast if a daemon died (pidfiles exist by now)
      alive slurmctld "$DIR/run/slurmctld.pid" || die "slurmctld exited"
      alive slurmd "$DIR/run/slurmd.pid" || die "slurmd exited"
    fi
    state=$(timeout 10 sinfo -h -N -n "$HOST" -o %T 2>/dev/null | head -n1) || true
    case $state in
      idle|mixed|allocated)   # a busy node is proof enough; an idle one must run a job step
        if [ "$state" != idle ] || timeout 60 srun -n1 -t1 -J ready-probe true; then
          say "up: node $HOST $state, $CPUS CPUs; clients need: . $DIR/env.sh"; return 0
        fi ;;
      down*|drain*|fail*) timeout 10 scontrol update nodename="$HOST" state=resume 2>/dev/null || true ;;
    esac
    sleep 1
  done
  die "not ready after 60 s (node state: '${state:-no answer}')"
}

start() {
  install_pkgs
  write_config
  start_munge
  local ctld=$DIR/run/slurmctld.pid d=$DIR/run/slurmd.pid
  if ! alive slurmctld "$ctld" && ! alive slurmd "$d"; then
    # Fresh start: no jobs, node state or logs from a past run (job IDs restart at 1). The
    # slurmd spool stays, so slurmd finds job steps orphaned by a crash and slurmctld kills them.
    rm -rf "$DIR/state" "$DIR/log" "$ctld" "$d"
    mkdir -p "$DIR/state" "$DIR/log"
  fi
  alive slurmctld "$ctld" || slurmctld || die "slurmctld failed to start"
  alive slurmd "$d" || slurmd -N "$HOST" || die "slurmd failed to start"
  wait_ready
}

# stop_pid NAME PIDFILE: SIGTERM, wait up to 15 s, then SIGKILL.
stop_pid() {
  if alive "$1" "$2"; then
    local pid; pid=$(cat "$2")
    kill "$pid"
    for _ in $(seq 75); do alive "$1" "$2" || break; sleep 0.2; done
    if alive "$1" "$2"; then say "$1 ($pid) ignored SIGTERM, sending SIGKILL"; kill -9 "$pid"; fi
  fi
  rm -f "$2"
}

stop() {
  # Cancel jobs first so that no job processes (slurmstepd and its tasks) outlive slurmd.
  if alive slurmctld "$DIR/run/slurmctld.pid"; then
    timeout 10 squeue -h -o %A 2>/dev/null | xargs -r timeout 10 scancel 2>/dev/null || true
    for _ in $(seq 30); do [ -z "$(timeout 10 squeue -h -o %A 2>/dev/null)" ] && break; sleep 1; done
  fi
  stop_pid slurmd "$DIR/run/slurmd.pid"
  stop_pid slurmctld "$DIR/run/slurmctld.pid"
  stop_pid munged "$DIR/munge/munged.pid"
  say "stopped"
}

status() {
  local n f rc=0
  for n in munged:munge/munged.pid slurmctld:run/slurmctld.pid slurmd:run/slurmd.pid; do
    f=$DIR/${n#*:}; n=${n%%:*}
    if alive "$n" "$f"; then echo "$n running, pid $(cat "$f")"; else echo "$n stopped"; rc=1; fi
  done
  [ $rc -eq 0 ] && timeout 10 sinfo
  return $rc
}

case ${1:-} in
  start|stop) [ "$(id -u)" -eq 0 ] || { say "$1 needs root" >&2; exit 1; }; "$1" ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
