#!/bin/sh
# Installs the peers replay-bench compares replay with, into $1 (default
# bin/peers): vegeta and GoReplay (which needs libpcap's headers: Debian's
# libpcap-dev, installed with apt-get when missing). A peer that cannot be
# installed leaves $1/<name>.err, whose last line says why; replay-bench
# then prints its line as unavailable. Never fails: the benchmarks run
# without the peers.
dir=${1:-bin/peers}
GO=${GO:-go}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

install() { # name module
	[ -x "$dir/$1" ] && return 0
	echo "bench-setup: installing $1 ($2)"
	if GOBIN="$dir" GOFLAGS= $GO install "$2" >"$dir/$1.err" 2>&1; then
		rm -f "$dir/$1.err"
	else
		echo "go install $2 failed: $(grep -v '^go: downloading' "$dir/$1.err" | tail -n 1)" >>"$dir/$1.err"
		echo "bench-setup: $1 not installed; see $dir/$1.err"
	fi
}

install vegeta github.com/tsenart/vegeta/v12@latest

if [ ! -x "$dir/goreplay" ] && [ ! -f /usr/include/pcap.h ]; then
	echo "bench-setup: installing libpcap-dev for GoReplay"
	if command -v apt-get >/dev/null 2>&1; then
		apt-get -o DPkg::Lock::Timeout=120 install -y libpcap-dev >"$dir/apt.log" 2>&1 ||
			{ apt-get -o DPkg::Lock::Timeout=120 update >>"$dir/apt.log" 2>&1 &&
				apt-get -o DPkg::Lock::Timeout=120 install -y libpcap-dev >>"$dir/apt.log" 2>&1; }
	fi
	if [ ! -f /usr/include/pcap.h ]; then
		{ cat "$dir/apt.log" 2>/dev/null; echo "libpcap-dev (pcap.h) is missing and apt-get could not install it; see $dir/apt.log"; } >"$dir/goreplay.err"
		echo "bench-setup: goreplay not installed; see $dir/goreplay.err"
		exit 0
	fi
fi
install goreplay github.com/buger/goreplay@latest
exit 0
