# The long-lived supervisor of one container (POSIX sh, deliberately not Python: it stays resident).
#
# Started by the daemon as
#     unshare --pid -- /bin/sh supervisor.sh <python> <init.py>
# with the container's state directory as working directory, 0/1/2 on supervisor.log there (what sh,
# unshare or Python print must not reach the container's output), and as extra inherited fds: the
# container's stdin/stdout/stderr (init makes them its 0/1/2) and the read ends of stdout.fifo and
# stderr.fifo (or the pty master). dash cannot name fds above 9, so sh passes them all on untouched and
# init closes (close-on-exec) everything but the container's three.
#
# `unshare --pid` without --fork puts this shell's children, not the shell, in a new pid namespace:
# init becomes pid 1 there while this shell stays in the host's and sees init's real exit status
# (128+N after signal N, so SIGKILL gives 137 as in Docker). (`unshare --fork` cannot do this: util-linux
# 2.38 exits 1 with "sigprocmask unblock failed" on the container's stderr when its child is SIGKILLed.)
# Holding the FIFO read ends is all this shell
# does for the daemon: while it lives, a container writing to its stdout never gets SIGPIPE, even when
# the daemon is gone, and a restarted daemon can re-open the FIFOs with the output still buffered.
#
# Once init has exited, its pid namespace is dead and this shell can no longer fork: everything after
# the command below must be a builtin.

# Stray terminal or group signals must not kill the supervisor (init resets these for the container).
trap '' HUP INT QUIT TERM PIPE

"$1" -I -S "$2" init.json "$$"
code=$?
# A restarted daemon reads this file once the supervisor is gone; a single small write is atomic.
echo "$code" > exitcode 2>/dev/null
exit "$code"
