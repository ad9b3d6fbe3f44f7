#!/bin/sh
# Runs inside the test container (systemd-nspawn --boot) as a oneshot unit: installs the
# shipped unit with a test drop-in, drives it, writes what systemctl saw to /results, and
# powers the container off. The host test reads /results.
set -u
out=/results
show() { systemctl show subtitled -p ActiveState -p SubState -p StatusText -p NRestarts \
             -p Result -p ExecMainStatus -p InvocationID; }
wait_for() {  # wait_for SECONDS COMMAND...
    limit=$1; shift
    i=0
    while [ "$i" -lt "$((limit * 5))" ]; do
        if "$@"; then return 0; fi
        sleep 0.2; i=$((i + 1))
    done
    return 1
}
active() { [ "$(systemctl show -p ActiveState --value subtitled)" = active ]; }
restarted() { [ "$(systemctl show -p NRestarts --value subtitled)" -ge 1 ]; }
# systemd 252 ends a reload when ExecReload's kill returns, before the daemon has read the
# file: the journal and the status line tell when it has.
logged() { journalctl -u subtitled --no-pager | grep -q "$1"; }
status_says() { systemctl show -p StatusText --value subtitled | grep -q "$1"; }

{
    ln -sf "$SUBTITLED_BIN" /usr/local/bin/subtitled
    mkdir -p /etc/subtitled
    cp /srv/fixtures/config.yaml /etc/subtitled/config.yaml
    systemctl daemon-reload
    started=$(date +%s.%N)
    systemctl start --no-block subtitled
    # Type=notify: `activating` until READY=1, after the model has loaded.
    sleep 0.5
    echo "while_starting $(systemctl show -p ActiveState --value subtitled)" >> $out/log
    wait_for 120 active && awk "BEGIN { print \"active_after\", $(date +%s.%N) - $started }" >> $out/log
    show > $out/after_start
    systemctl reload subtitled && echo "reload ok" >> $out/log
    wait_for 30 logged "configuration reloaded"
    wait_for 30 active
    show > $out/after_reload
    # A mistyped model name: the reload fails, the running model stays.
    sed 's/name: tiny.en/name: tiny.em/' /srv/fixtures/config.yaml > /etc/subtitled/config.yaml
    systemctl reload subtitled
    wait_for 30 status_says "reload failed"  # slow-load holds the attempt 5 s
    wait_for 30 active
    show > $out/after_bad_reload
    cp /srv/fixtures/config.yaml /etc/subtitled/config.yaml
    cp /srv/fixtures/stuck.mkv /srv/media/stuck.mkv   # the engine hangs on this one
    wait_for 120 restarted && echo "restarted" >> $out/log
    rm -f /srv/media/stuck.mkv
    show > $out/after_watchdog
    journalctl -u subtitled --no-pager > $out/journal 2>&1
    wait_for 120 active
    stop_begin=$(date +%s)
    systemctl stop subtitled
    echo "stop_seconds $(( $(date +%s) - stop_begin ))" >> $out/log
    show > $out/after_stop
    journalctl -u subtitled --no-pager > $out/journal 2>&1
    journalctl -u subtitled -p warning --no-pager > $out/warnings 2>&1
    # A configuration error (exit status 2) stops the unit without a restart loop.
    printf 'watch: 5\n' > /etc/subtitled/config.yaml
    systemctl start subtitled
    sleep 5  # RestartSec=1s: a loop would have restarted it several times by now
    show > $out/after_config_error
    echo done >> $out/log
} 2>> $out/errors
systemctl poweroff --no-block
