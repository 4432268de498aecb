#!/usr/bin/env bash
# Benchmark (not a test): what the shared remote cache saves a team. Two
# copies of the bundled example stand for two machines sharing a WebDAV
# cache (Apache mod_dav on loopback, as in tests/remote_cache.rs):
#   A: clean release build, renders everything, uploads (--wait-uploads);
#   B: clean release build with an empty local cache: downloads everything;
#   baseline: a clean release build with no remote at all.
# Prints wall times and B's ratio to the baseline, measured in one run.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
cargo build --release --quiet
BIN=$ROOT/target/release/parender
work=$(mktemp -d /tmp/prbench.XXXX)
apache_pid=""
cleanup() { [ -n "$apache_pid" ] && kill "$apache_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

# Apache with mod_dav on a free loopback port, config and data in $work.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$work/dav/htdocs" "$work/dav/lock"
chmod 755 "$work" "$work/dav"
chown -R www-data:www-data "$work/dav/htdocs" "$work/dav/lock"
M=/usr/lib/apache2/modules
cat > "$work/dav/httpd.conf" <<CONF
ServerRoot "$work/dav"
PidFile "$work/dav/httpd.pid"
ErrorLog "$work/dav/error.log"
Listen 127.0.0.1:$port
ServerName 127.0.0.1
User www-data
Group www-data
LoadModule mpm_event_module $M/mod_mpm_event.so
LoadModule authz_core_module $M/mod_authz_core.so
LoadModule dav_module $M/mod_dav.so
LoadModule dav_fs_module $M/mod_dav_fs.so
DocumentRoot "$work/dav/htdocs"
<Directory />
    AllowOverride None
    Require all denied
</Directory>
DavLockDB "$work/dav/lock/DavLock"
DavDepthInfinity On
<Directory "$work/dav/htdocs">
    AllowOverride None
    Require all granted
    Dav On
</Directory>
CONF
/usr/sbin/apache2 -f "$work/dav/httpd.conf" -DFOREGROUND &
apache_pid=$!
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done

copy() { # copy NAME REMOTE: the example as its own project
  mkdir -p "$work/$1"
  cp -r examples "$work/$1/"
  printf 'python = "%s"\n' "$ROOT/.venv/bin/python" > "$work/$1/parender.toml"
  grep -v '^python = ' parender.toml >> "$work/$1/parender.toml"
  if [ -n "$2" ]; then printf '\n[cache]\nremote = "%s"\n' "$2" >> "$work/$1/parender.toml"; fi
}
secs() { # secs DIR ARGS...: wall seconds of a build
  local t0 t1
  t0=$(date +%s%N)
  (cd "$1" && shift && "$BIN" build "$@" >/dev/null 2>"$work/last.log") || { cat "$work/last.log" >&2; exit 1; }
  t1=$(date +%s%N)
  awk -v n=$(( (t1 - t0) / 1000000 )) 'BEGIN { printf "%.2f", n / 1000 }'
}
url="http://127.0.0.1:$port/team"
copy base ""; copy a "$url"; copy b "$url"
base=$(secs "$work/base" --release)
a=$(secs "$work/a" --release --wait-uploads)
b=$(secs "$work/b" --release)
mb=$(du -sm "$work/dav/htdocs" | cut -f1)
printf '\n| build (example, --release) | wall s | vs baseline |\n|---|---:|---:|\n'
printf '| baseline: no remote, renders all | %s | 1.00x |\n' "$base"
awk -v a="$a" -v b="$base" 'BEGIN { printf "| A: renders all, uploads (--wait-uploads) | %s | %.2fx |\n", a, a / b }'
awk -v a="$b" -v b="$base" 'BEGIN { printf "| B: empty local cache, all from the remote | %s | %.2fx |\n", a, a / b }'
printf '\nremote holds %s MB; B rendered nothing:\n' "$mb"
grep -E "Remote|Finished" "$work/last.log" | sed 's/^/  /'
