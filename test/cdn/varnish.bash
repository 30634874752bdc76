# A throwaway varnishd on loopback for the CDN tests. Source this file:
#
#   . test/cdn/varnish.bash
#   start_varnish PORT ORIGIN_PORT WORKDIR   # serves 127.0.0.1:PORT from 127.0.0.1:ORIGIN_PORT
#   ...
#   stop_varnish WORKDIR
#
# WORKDIR holds everything of the instance: the backend VCL, the varnishd
# working directory (-n), its pid file, its log and the secret of its CLI, so
# several instances can run at once and `varnishadm -n WORKDIR/n` reaches one.
# It uses test/cdn/varnish.vcl.
#
# Run as root (as here), varnishd's default "unix" jail runs the manager as
# user varnish and the cache process as vcache (both from the Debian package),
# so WORKDIR and the VCL must be readable by them: WORKDIR is made mode 755.
# As another user the jail keeps that user (there is nothing to switch to) and
# everything works the same. No system service is touched and no fixed path
# is used, so nothing here collides with a packaged varnish.service.
#
# VARNISHD overrides the binary (default: varnishd on PATH, else /usr/sbin/varnishd).

_varnish_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

_varnishd() {
	if [[ -n ${VARNISHD:-} ]]; then
		echo "$VARNISHD"
	elif command -v varnishd >/dev/null 2>&1; then
		command -v varnishd
	else
		echo /usr/sbin/varnishd
	fi
}

# start_varnish PORT ORIGIN_PORT WORKDIR: returns once varnishd answers on PORT.
start_varnish() {
	local port=${1:?start_varnish PORT ORIGIN_PORT WORKDIR} origin=${2:?} dir=${3:?} i
	local bin
	bin=$(_varnishd)
	[[ -x $bin ]] || {
		echo "start_varnish: no varnishd (Debian package varnish)" >&2
		return 1
	}
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	chmod 755 "$dir"
	cat >"$dir/cachekit_backend.vcl" <<-EOF
		backend origin {
		    .host = "127.0.0.1";
		    .port = "$origin";
		    .connect_timeout = 2s;
		    .first_byte_timeout = 10s;
		}
	EOF
	chmod 644 "$dir/cachekit_backend.vcl"
	# As root the VCL compiler runs as user varnish: every directory above
	# WORKDIR (a mktemp -d one is mode 700) and the VCL must be reachable by it.
	if ((EUID == 0)) && id varnish >/dev/null 2>&1 &&
		! runuser -u varnish -- test -r "$dir/cachekit_backend.vcl" -a -r "$_varnish_here/varnish.vcl"; then
		echo "start_varnish: user varnish cannot read $dir or $_varnish_here/varnish.vcl (make the directories above them searchable: chmod 755)" >&2
		return 1
	fi
	# The CLI secret: varnishadm reads it; the manager reads it before the jail.
	head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$dir/secret"
	chmod 600 "$dir/secret"
	# -F keeps varnishd (the manager) in the foreground so that its pid is ours
	# to stop; -T on an ephemeral loopback port for varnishadm.
	"$bin" -F -n "$dir/n" -a "127.0.0.1:$port" -T 127.0.0.1:0 -S "$dir/secret" \
		-f "$_varnish_here/varnish.vcl" -p "vcl_path=$dir:/usr/share/varnish/vcl" \
		-s malloc,32m -p ban_lurker_sleep=0.01 \
		>"$dir/varnishd.log" 2>&1 &
	echo $! >"$dir/varnishd.pid"
	# Up to 60 s: the VCL is compiled with cc first, slow on a loaded machine.
	local deadline=$((SECONDS + 60))
	while ((SECONDS < deadline)); do
		if ! kill -0 "$(cat "$dir/varnishd.pid")" 2>/dev/null; then
			echo "start_varnish: varnishd exited:" >&2
			cat "$dir/varnishd.log" >&2
			return 1
		fi
		# Any HTTP answer means the cache process is up (the ACL refuses
		# nothing here: a HEAD of a path is a normal cacheable request).
		if curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$port/_varnish_ready" 2>/dev/null; then
			return 0
		fi
		sleep 0.05
	done
	echo "start_varnish: varnishd did not answer on 127.0.0.1:$port in 60 s" >&2
	cat "$dir/varnishd.log" >&2
	stop_varnish "$dir"
	return 1
}

# stop_varnish WORKDIR: stops the instance started there (SIGTERM to the
# manager, which stops the cache process), and waits for it.
stop_varnish() {
	local dir=${1:?stop_varnish WORKDIR} pid i
	[[ -f $dir/varnishd.pid ]] || return 0
	pid=$(cat "$dir/varnishd.pid")
	if kill -0 "$pid" 2>/dev/null; then
		kill "$pid" 2>/dev/null || true
		# Up to 60 s: the VCL is compiled with cc first, slow on a loaded machine.
	local deadline=$((SECONDS + 60))
	while ((SECONDS < deadline)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.05
		done
		kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null || true
	fi
	rm -f "$dir/varnishd.pid"
}

# varnishadm_cmd WORKDIR CMD...: a CLI command to the instance (e.g. ban.list).
varnishadm_cmd() {
	local dir=${1:?varnishadm_cmd WORKDIR CMD...}
	shift
	# The secret file and CLI address are found through the instance's -n.
	varnishadm -n "$dir/n" "$@"
}
