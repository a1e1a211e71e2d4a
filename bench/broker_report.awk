# broker_report.awk - turns the raw lines of bench/run.sh
#   <broker> <round> RESULT scen=<s> key=value ...
# into the Markdown section of BENCHMARKS.md. POSIX awk (mawk is enough).
# Variables: machine date rounds dur warmup idle mosq commit elapsed.

function add(br, sc, k, v,   id) {
	id = br SUBSEP sc SUBSEP k
	n[id]++
	val[id, n[id]] = v
}

# The median of the rounds: one disturbed run does not move it.
function median(br, sc, k,   id, i, j, m, t, a) {
	id = br SUBSEP sc SUBSEP k
	m = n[id]
	if (!m)
		return ""
	for (i = 1; i <= m; i++)
		a[i] = val[id, i]
	for (i = 2; i <= m; i++)
		for (j = i; j > 1 && a[j - 1] > a[j]; j--) {
			t = a[j]
			a[j] = a[j - 1]
			a[j - 1] = t
		}
	if (m % 2)
		return a[(m + 1) / 2]
	return (a[m / 2] + a[m / 2 + 1]) / 2
}

function sum(br, sc, k,   id, i, s) {
	id = br SUBSEP sc SUBSEP k
	s = 0
	for (i = 1; i <= n[id]; i++)
		s += val[id, i]
	return s
}

function human(x) {
	if (x == "")
		return "-"
	if (x >= 10000000)
		return sprintf("%.1f M", x / 1000000)
	if (x >= 1000000)
		return sprintf("%.2f M", x / 1000000)
	if (x >= 10000)
		return sprintf("%.1f k", x / 1000)
	if (x >= 100)
		return sprintf("%.0f", x)
	return sprintf("%.3g", x)
}

# "median (run1, run2, ...)"
function runs(br, sc, k,   id, i, s) {
	id = br SUBSEP sc SUBSEP k
	if (err[br, sc])
		return "**error**: " err[br, sc]
	if (!n[id])
		return "-"
	if (n[id] == 1)
		return human(val[id, 1])
	s = ""
	for (i = 1; i <= n[id]; i++)
		s = s (i > 1 ? ", " : "") human(val[id, i])
	return "**" human(median(br, sc, k)) "** (" s ")"
}

function ratio(a, b) {
	if (a == "" || b == "" || b == 0)
		return ""
	return a / b
}

# A row: higher_better 1 compares fieldmq/mosquitto >= target, else <= target.
function row(label, what, sc, k, target, higher_better, tlabel,   a, b, r, met) {
	a = median("fieldmq", sc, k)
	b = median("mosquitto", sc, k)
	r = ratio(a, b)
	if (r == "" || err["fieldmq", sc] || err["mosquitto", sc])
		met = "?"
	else if (target == "")
		met = ""
	else if (higher_better)
		met = r >= target ? "yes" : "**no**"
	else
		met = r <= target ? "yes" : "**no**"
	printf "| %s | %s | %s | %s | %s | %s | %s |\n", label, what, runs("fieldmq", sc, k),
		runs("mosquitto", sc, k), r == "" ? "-" : sprintf("%.2f×", r), tlabel, met
}

function cpurow(label, sc,   br, b, line, c, r) {
	line = "| " label
	for (b = 0; b < 2; b++) {
		br = b ? "mosquitto" : "fieldmq"
		c = median(br, sc, "broker_cpu")
		r = median(br, sc, "rate")
		line = line " | " (c == "" ? "-" : sprintf("%.0f %%", c)) \
			" | " (median(br, sc, "gen_cpu") == "" ? "-" : sprintf("%.0f %%", median(br, sc, "gen_cpu"))) \
			" | " (c == "" || c <= 0 ? "-" : human(r * 100 / c))
	}
	print line " |"
}

function checkrow(sc,   br, b, line) {
	line = "| " sc
	for (b = 0; b < 2; b++) {
		br = b ? "mosquitto" : "fieldmq"
		line = line " | " sum(br, sc, "lost") " / " sum(br, sc, "stalls") " / " sum(br, sc, "reorder")
	}
	print line " |"
}

$3 == "RESULT" {
	br = $1
	sc = ""
	for (i = 4; i <= NF; i++) {
		eq = index($i, "=")
		if (!eq)
			continue
		k = substr($i, 1, eq - 1)
		v = substr($i, eq + 1)
		if (k == "scen")
			sc = v
		else if (k == "error")
			err[br, sc] = v
		else
			add(br, sc, k, v + 0)
	}
}

END {
	print ""
	print "## Broker: fieldmq against Mosquitto"
	print ""
	printf "Measured %s by `make bench` (`bench/run.sh`, load generator `bench/mqtt_load.c`), " \
		"fieldmq at %s, Mosquitto %s, %d rounds interleaved fieldmq / mosquitto / fieldmq / " \
		"mosquitto, each run %s s measured after %s s of warm-up, brokers and load generator at " \
		"nice %s; %s s in all.\n", date, commit, mosq, rounds, dur, warmup, nice, elapsed
	print ""
	printf "Machine: %s. **A noisy 2-core VM**: other builds, tests and fuzzers of the project " \
		"ran at the same time, so a single run moves by tens of per cent and the broker and the " \
		"load generator share what is left of two cores. The CPU columns below show how much " \
		"each got; *per broker CPU-second* is the figure that noise disturbs least.\n", machine
	print ""
	printf "Method: one load-generator process (epoll, MQTT 3.1.1 encoded by hand, " \
		"TCP_NODELAY, 64-byte payloads) holds every connection. A QoS 0 publisher may be at most " \
		"1000 messages (s4: 200) ahead of what its subscribers have received, so the figures " \
		"count delivered messages, not messages piled up in socket buffers. s3: the publisher " \
		"keeps at most 100 PUBLISHes unacknowledged and the subscriber PUBACKs every delivery. " \
		"s5: latency = time of the read that brought the message - CLOCK_MONOTONIC stamp " \
		"written into its payload just before the write. s6: (VmRSS once %s idle clients " \
		"(keepalive 0) have their CONNACK, plus 2.5 s - VmRSS before) / %s, on a freshly started " \
		"broker. Mosquitto runs with persistence off, no $SYS, `max_inflight_messages 0`, " \
		"`max_queued_messages 1000000`, `set_tcp_nodelay true` (fieldmq sets TCP_NODELAY " \
		"always); fieldmq with `persist = no`, `sys_interval = 0`, `max_inflight = 65535`.\n", \
		idle, idle
	print ""
	print "Figures are the median of the rounds, each round in parentheses; ratios are of the medians."
	print ""
	print "| scenario | figure | fieldmq | mosquitto | fieldmq / mosquitto | target | met |"
	print "|---|---|---|---|---|---|---|"
	row("s1 1 → 1, QoS 0, 64 B", "msgs/s delivered", "s1", "rate", 1.5, 1, "≥ 1.5×")
	row("s2 4 → 4 on 4 topics, QoS 0", "msgs/s delivered", "s2", "rate", 1.5, 1, "≥ 1.5×")
	row("s3 1 → 1, QoS 1, 100 unacked", "msgs/s delivered", "s3", "rate", 1.5, 1, "≥ 1.5×")
	row("s4 fan-out 1 → 50, QoS 0", "deliveries/s", "s4", "rate", 1.5, 1, "≥ 1.5×")
	row("s5 fan-in 50 → 1 (wildcard), 200 msg/s each", "p99 latency µs", "s5", "p99_us", 1, 0, "≤ 1×")
	row("s5", "p50 latency µs", "s5", "p50_us", "", 0, "")
	row("s5", "max latency µs", "s5", "max_us", "", 0, "")
	row("s6 " idle " idle connections", "broker RSS per connection, bytes", "s6", "per_conn_bytes",
		1, 0, "≤ 1× (aim 0.5×)")
	row("s6", "time to connect all, s", "s6", "connect_s", "", 0, "")
	row("idle broker", "VmRSS kB after start", "idle", "rss_kb", "", 0, "")
	row("binary", "bytes (fieldmq stripped copy; mosquitto as packaged)", "size", "bytes", "", 0, "")
	row("binary", "shared libraries loaded (ldd lines)", "size", "libs", "", 0, "")
	print ""
	print "CPU during the measured window (median of the rounds; 100 % = one core; *msgs per CPU-second* = median rate / median CPU):"
	print ""
	print "| scenario | fieldmq CPU | load gen CPU | fieldmq msgs per CPU-second | " \
		"mosquitto CPU | load gen CPU | mosquitto msgs per CPU-second |"
	print "|---|---|---|---|---|---|---|"
	cpurow("s1", "s1")
	cpurow("s2", "s2")
	cpurow("s3", "s3")
	cpurow("s4 (deliveries)", "s4")
	cpurow("s5", "s5")
	print ""
	print "Checks, summed over the rounds: QoS 0 messages lost / publisher stalls (a window " \
		"forgiven after 500 ms without delivery) / deliveries out of order or duplicated:"
	print ""
	print "| scenario | fieldmq | mosquitto |"
	print "|---|---|---|"
	checkrow("s1")
	checkrow("s2")
	checkrow("s3")
	checkrow("s4")
	checkrow("s5")
	print ""
	print "Reproduce: `make bench` (or `ROUNDS=3 DUR=10 bench/run.sh`); raw lines in " \
		"`build/bench/broker_results.txt`."
	print ""
}
