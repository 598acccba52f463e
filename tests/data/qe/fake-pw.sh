#!/bin/sh
# Stands in for pw.x in tests that replay recorded pw.x output without running pw.x.
# FAKE_PW_SCRIPT names files in this directory, one per attempt, separated by spaces:
# "si_max_cpu_time:255 si_scf_ok:0" replays si_max_cpu_time.out (+ .err and .crash, as
# stderr and ./CRASH, if present) and exits 255 on the first call, then si_scf_ok.out with
# exit 0. The last entry repeats. An exit of `sigN` ends the fake by signal N instead,
# `hang` waits (for a timeout to kill it); a
# third field names another stderr file (`si_scf_ok:1:mpi_teardown_noise` replays
# mpi_teardown_noise.err). The arguments are written to ./pw.args.
# The attempt number is the count of attempt-* directories beside the current one.
here=$(dirname "$0")
n=$(ls -d ../attempt-* 2>/dev/null | wc -l)
i=1
for entry in $FAKE_PW_SCRIPT; do
    last=$entry
    if [ "$i" -eq "$n" ]; then break; fi
    i=$((i + 1))
done
echo "$@" > pw.args
name=${last%%:*}
rest=${last#*:}
code=${rest%%:*}
err=$name
case "$rest" in *:*) err=${rest#*:} ;; esac
cat "$here/$name.out"
[ -f "$here/$err.err" ] && cat "$here/$err.err" >&2
[ -f "$here/$name.crash" ] && cp "$here/$name.crash" CRASH
# pw.x writes its XML and save directory into outdir; mimic the files a restart needs
mkdir -p out/pwscf.save && : > out/pwscf.save/charge-density.dat && : > out/pwscf.wfc1 \
    && head -c 65536 /dev/zero > out/pwscf.save/wfc1.dat
case "$code" in
    sig*) kill -"${code#sig}" $$; sleep 5 ;;
    hang) sleep 30; exit 0 ;;
esac
exit "$code"
