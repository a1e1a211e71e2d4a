# bench/lib.sh - what the bench scripts that start a fieldmq and a Mosquitto
# share (sourced, bash): the processes they start, stopped by PID, and free
# ports on 127.0.0.1.

# PIDs of the processes a script started; stop_pids stops them.
PIDS=()

# SIGTERM to every process in PIDS, SIGKILL to what is left 0.3 s later.
stop_pids() {
	local p
	for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
	sleep 0.3
	for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
	PIDS=()
}

# A TCP port free on 127.0.0.1 now.
port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

# Wait (at most about 25 s) until something accepts on 127.0.0.1:PORT.
wait_port() {
	local i
	for i in $(seq 1 100); do
		/usr/bin/python3 -c "import socket,sys; s=socket.socket(); s.settimeout(0.2); sys.exit(s.connect_ex(('127.0.0.1',$1)))" 2>/dev/null && return 0
		sleep 0.05
	done
	echo "nothing listens on $1" >&2
	return 1
}
