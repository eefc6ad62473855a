# The long-lived supervisor of one container (POSIX sh, deliberately not Python: it stays resident).
#
# Started by the daemon as
#     unshare --pid -- /bin/sh supervisor.sh <python> <init.py> fifo-held|fifo|tty
# with the container's state directory as working directory, 0/1/2 on supervisor.log there (what sh,
# unshare or Python print must not reach the container's output), and as extra inherited fds (never 7, 8
# or 9, which this script uses): the read ends of stdout.fifo and stderr.fifo and the container's stdin,
# or the pty master and slave. dash cannot name fds above 9, so sh passes them all on untouched and init
# closes (close-on-exec) everything but the container's three.
#
# `unshare --pid` without --fork puts this shell's children, not the shell, in a new pid namespace:
# init becomes pid 1 there while this shell stays in the host's and sees init's real exit status
# (128+N after signal N, so SIGKILL gives 137 as in Docker). (`unshare --fork` cannot do this: util-linux
# 2.38 exits 1 with "sigprocmask unblock failed" on the container's stderr when its child is SIGKILLed.)
#
# Holding the FIFO read ends is what this shell does for the daemon: while it lives, a container writing
# to its stdout never gets SIGPIPE, even when the daemon is gone, and a restarted daemon can re-open the
# FIFOs with the output still buffered. With FIFOs, the write ends are opened here for init only (fds 8
# and 9 of init's command line), so once the container's processes are gone the daemon reads EOF while
# this shell still holds the read ends. In fifo-held mode (the daemon's) it then waits, holding them,
# until the daemon has moved every byte to its spool and says so on release.fifo (fd 7, opened
# read-write so that neither side's open blocks). A container that ends while the daemon is away thus keeps its last output until a daemon is
# back. A pty has no such wait: this shell holds the slave too, so its master only ends when we do.
#
# Once init has exited, its pid namespace is dead and this shell can no longer fork: everything after
# the command below must be a builtin.

# Stray terminal or group signals must not kill the supervisor (init resets these for the container).
trap '' HUP INT QUIT TERM PIPE

if [ "$3" = fifo-held ]; then
    exec 7<>release.fifo
    "$1" -I -S "$2" init.json "$$" 8>stdout.fifo 9>stderr.fifo
    code=$?
    # A restarted daemon reads this file; a single small write is atomic.
    echo "$code" > exitcode 2>/dev/null
    read -r _ <&7
    exit "$code"
fi
if [ "$3" = fifo ]; then  # the same without waiting to be released (runtime tests, tools)
    "$1" -I -S "$2" init.json "$$" 8>stdout.fifo 9>stderr.fifo
    code=$?
    echo "$code" > exitcode 2>/dev/null
    exit "$code"
fi

"$1" -I -S "$2" init.json "$$"
code=$?
echo "$code" > exitcode 2>/dev/null
exit "$code"
