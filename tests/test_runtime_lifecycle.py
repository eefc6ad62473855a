"""Starting containers, their streams and exit codes, and finding them again after a daemon restart.

Real namespaces, real busybox: these tests need root and /bin/busybox from busybox-static.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from logship.runtime import spawn, statedir
from tests.rootfs import (
    Containers,
    build_busybox_rootfs,
    container_problem,
    read_line,
    read_to_eof,
    run,
    run_scenario,
    wait_readable,
)

F_GETPIPE_SZ = 1032

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(bool(container_problem()), reason=container_problem() or "ok"),
]


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_busybox_rootfs(tmp_path_factory.mktemp("image") / "rootfs")


def test_stdout_and_stderr_arrive_on_their_own_streams(rootfs: Path, tmp_path: Path) -> None:
    result = run(["sh", "-c", "echo to-out; echo to-err >&2; echo more-out"], rootfs, tmp_path)
    assert result.stdout == b"to-out\nmore-out\n"
    assert result.stderr == b"to-err\n"
    assert result.exit == spawn.ExitStatus(0, oom_killed=False)


def test_the_commands_exit_code_is_reported_and_recorded_in_the_state_dir(rootfs: Path, tmp_path: Path) -> None:
    result = run(["sh", "-c", "exit 3"], rootfs, tmp_path, container_id="c" * 64)
    assert result.exit.exit_code == 3
    assert spawn.read_exit_code(tmp_path / ("c" * 12)) == 3


def test_sigkill_gives_exit_code_137_and_nothing_extra_on_the_streams(rootfs: Path, tmp_path: Path) -> None:
    async def scenario() -> tuple[spawn.ExitStatus, bytes, bytes]:
        async with Containers(rootfs, tmp_path) as containers:
            process = await containers.start(["sh", "-c", "echo up; exec sleep 1000"])
            assert await read_line(process.stdout_fd) == b"up\n"
            process.signal(signal.SIGKILL)
            assert process.stderr_fd is not None
            rest, errors = await asyncio.gather(read_to_eof(process.stdout_fd), read_to_eof(process.stderr_fd))
            return await process.wait(), rest, errors

    exit_status, rest, errors = run_scenario(scenario())
    assert exit_status.exit_code == 137
    assert (rest, errors) == (b"", b"")  # the supervisor shell's "Killed" goes to its own log


def test_a_signal_the_command_handles_reaches_it(rootfs: Path, tmp_path: Path) -> None:
    async def scenario() -> tuple[spawn.ExitStatus, bytes]:
        async with Containers(rootfs, tmp_path) as containers:
            script = "trap 'echo got-term; exit 7' TERM; echo ready; while :; do sleep 0.05; done"
            process = await containers.start(["sh", "-c", script])
            assert await read_line(process.stdout_fd) == b"ready\n"
            process.signal(signal.SIGTERM)
            rest = await read_to_eof(process.stdout_fd)
            return await process.wait(), rest

    exit_status, rest = run_scenario(scenario())
    assert rest == b"got-term\n"
    assert exit_status.exit_code == 7


@pytest.mark.parametrize(
    ("argv", "message", "exit_code"),
    [
        (["nosuchcmd"], 'exec: "nosuchcmd": executable file not found in $PATH', 127),
        (["/etc"], 'exec: "/etc": permission denied', 126),
        (["/etc/passwd"], 'exec: "/etc/passwd": permission denied', 126),
        (["/no/such"], 'exec: "/no/such": stat /no/such: no such file or directory', 127),
    ],
)
def test_a_command_that_cannot_run_fails_the_start_with_dockers_message(
    rootfs: Path, tmp_path: Path, argv: list[str], message: str, exit_code: int
) -> None:
    with pytest.raises(spawn.StartError) as raised:
        run(argv, rootfs, tmp_path, container_id="d" * 64)
    assert (raised.value.message, raised.value.exit_code) == (message, exit_code)
    assert spawn.read_exit_code(tmp_path / ("d" * 12)) == exit_code


def test_the_command_is_searched_in_the_containers_path_not_the_daemons(rootfs: Path, tmp_path: Path) -> None:
    assert run(["echo", "found"], rootfs, tmp_path, env=["PATH=/nowhere:/bin"]).stdout == b"found\n"
    with pytest.raises(spawn.StartError, match="executable file not found"):
        run(["echo", "found"], rootfs, tmp_path, env=["PATH=/usr/local/bin"])  # busybox links live in /bin


def test_environment_and_working_directory_are_the_containers(rootfs: Path, tmp_path: Path) -> None:
    result = run(
        ["sh", "-c", 'echo "$GREETING"; pwd; env | sort'],
        rootfs,
        tmp_path,
        env=["PATH=/bin", "GREETING=hello world"],
        workdir="/srv/app",
    )
    lines = result.stdout.decode().splitlines()
    assert lines[:2] == ["hello world", "/srv/app"]  # the missing working directory was created
    assert "GREETING=hello world" in lines
    assert not [line for line in lines if line.startswith(("LOGSHIP", "PYTHON", "VIRTUAL_ENV"))]


def test_open_stdin_delivers_what_the_daemon_writes(rootfs: Path, tmp_path: Path) -> None:
    async def scenario() -> tuple[bytes, spawn.ExitStatus]:
        async with Containers(rootfs, tmp_path) as containers:
            process = await containers.start(["cat"], open_stdin=True)
            assert process.stdin_fd is not None
            os.write(process.stdin_fd, b"line one\nline two\n")
            process.close_stdin()
            output = await read_to_eof(process.stdout_fd)
            return output, await process.wait()

    output, exit_status = run_scenario(scenario())
    assert output == b"line one\nline two\n"
    assert exit_status.exit_code == 0


def test_without_open_stdin_the_container_reads_dev_null(rootfs: Path, tmp_path: Path) -> None:
    result = run(["sh", "-c", "cat; echo cat-ended; readlink /proc/self/fd/0"], rootfs, tmp_path)
    assert result.stdout == b"cat-ended\n/dev/null\n"


def test_only_stdin_stdout_and_stderr_reach_the_command(rootfs: Path, tmp_path: Path) -> None:
    # Listing /proc/self/fd opens one more fd for the listing itself; nothing else may be there.
    result = run(["ls", "/proc/self/fd"], rootfs, tmp_path)
    assert result.stdout.split() == [b"0", b"1", b"2", b"3"]


def test_tty_gives_a_terminal_with_stdout_and_stderr_merged(rootfs: Path, tmp_path: Path) -> None:
    result = run(["sh", "-c", "[ -t 0 ] && [ -t 1 ] && echo tty; echo err >&2"], rootfs, tmp_path, tty=True)
    # The terminal turns "\n" into "\r\n", as Docker's tty logs show.
    assert result.stdout == b"tty\r\nerr\r\n"
    assert result.stderr == b""


def test_tty_with_open_stdin_reads_input_and_resize_sets_the_size(rootfs: Path, tmp_path: Path) -> None:
    async def scenario() -> bytes:
        async with Containers(rootfs, tmp_path) as containers:
            process = await containers.start(
                ["sh", "-c", "stty -echo; echo ready; read word; echo got-$word; stty size"],
                tty=True,
                open_stdin=True,
            )
            assert await read_line(process.stdout_fd) == b"ready\r\n"
            process.resize(33, 101)
            assert process.stdin_fd is not None
            os.write(process.stdin_fd, b"hello\n")
            output = await read_to_eof(process.stdout_fd)
            await process.wait()
            return output

    assert run_scenario(scenario()) == b"got-hello\r\n33 101\r\n"


def test_resize_without_a_tty_is_refused(rootfs: Path, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with Containers(rootfs, tmp_path) as containers:
            process = await containers.start(["sleep", "1000"])
            with pytest.raises(ValueError, match="not started with a tty"):
                process.resize(24, 80)

    run_scenario(scenario())


def test_the_output_fifos_are_as_large_as_the_system_allows(rootfs: Path, tmp_path: Path) -> None:
    async def scenario() -> list[int]:
        async with Containers(rootfs, tmp_path) as containers:
            process = await containers.start(["sleep", "1000"])
            assert process.stderr_fd is not None
            return [fcntl.fcntl(fd, F_GETPIPE_SZ) for fd in (process.stdout_fd, process.stderr_fd)]

    largest = int(Path("/proc/sys/fs/pipe-max-size").read_text())
    assert run_scenario(scenario()) == [largest, largest]


def test_the_container_does_not_get_sigpipe_when_the_daemon_closes_its_read_end(rootfs: Path, tmp_path: Path) -> None:
    # The writer is a child: pid 1 itself is spared default-action signals by the kernel.
    script = "read go; sh -c 'echo written-while-nobody-reads'; echo writer-exit=$? >&2; read until_checked; exit 0"

    async def scenario() -> tuple[bytes, bytes]:
        async with Containers(rootfs, tmp_path) as containers:
            process = await containers.start(["sh", "-c", script], open_stdin=True)
            os.close(process.stdout_fd)  # the daemon stops reading stdout, as if it had died
            process.stdout_fd = -1
            assert process.stdin_fd is not None and process.stderr_fd is not None
            os.write(process.stdin_fd, b"go\n")
            writer_exit = await read_line(process.stderr_fd)
            # The supervisor still holds the FIFO, so what was written (before the line just read) is
            # still there for a new reader.
            reopened = os.open(process.state_dir / statedir.STDOUT_FIFO, os.O_RDONLY | os.O_NONBLOCK)
            try:
                buffered = os.read(reopened, 4096)
            except BlockingIOError:
                buffered = b""
            finally:
                os.close(reopened)
            process.close_stdin()
            await process.wait()
            return writer_exit, buffered

    writer_exit, buffered = run_scenario(scenario())
    assert writer_exit == b"writer-exit=0\n"  # not 141 (128 + SIGPIPE)
    assert buffered == b"written-while-nobody-reads\n"


FIRST_DAEMON = """
import asyncio, json, os, signal, sys
from pathlib import Path
from logship.runtime import spawn

async def main():
    spec = json.loads(sys.argv[1])
    spec["state_dir"], spec["image_rootfs"] = Path(spec["state_dir"]), Path(spec["image_rootfs"])
    await spawn.start(spawn.ContainerSpec(**spec))
    os.kill(os.getpid(), signal.SIGKILL)  # die without closing anything, as with kill -9

asyncio.run(main())
"""


def _start_in_a_daemon_that_then_dies(spec: spawn.ContainerSpec) -> None:
    fields = {
        "container_id": spec.container_id,
        "state_dir": str(spec.state_dir),
        "image_rootfs": str(spec.image_rootfs),
        "argv": spec.argv,
        "env": spec.env,
        "tty": spec.tty,
        "open_stdin": spec.open_stdin,
    }
    finished = subprocess.run([sys.executable, "-c", FIRST_DAEMON, json.dumps(fields)], capture_output=True)
    assert finished.returncode == -signal.SIGKILL, finished.stderr.decode()


@pytest.mark.parametrize("tty", [False, True], ids=["fifos", "tty"])
def test_a_restarted_daemon_reattaches_and_gets_the_output_and_exit_code(
    rootfs: Path, tmp_path: Path, tty: bool
) -> None:
    # The container writes while no daemon exists, then waits until a daemon writes to its stdin again.
    # (It must not wait for stdin's EOF to learn the daemon died: a reattached daemon may already hold
    # the FIFO's write end again by then, and the EOF would never come.)
    script = (
        "echo before; sleep 0.5; echo while-daemon-away; until read again; do sleep 0.05; done; echo got-$again; exit 5"
    )

    async def scenario() -> tuple[bytes, spawn.ExitStatus]:
        async with Containers(rootfs, tmp_path) as containers:
            spec = containers.spec(["sh", "-c", script], open_stdin=True, tty=tty)
            containers.adopt(spec.state_dir)
            _start_in_a_daemon_that_then_dies(spec)
            await asyncio.sleep(1)  # no daemon while the container writes its second line
            process = spawn.reattach(spec.state_dir)
            assert process is not None
            assert process.stdin_fd is not None
            output = await read_line(process.stdout_fd)
            while b"while-daemon-away" not in output:
                output += await read_line(process.stdout_fd)
            os.write(process.stdin_fd, b"back\n")
            output += await read_to_eof(process.stdout_fd)
            exit_status = await process.wait()
            process.close_fds()
            return output, exit_status

    output, exit_status = run_scenario(scenario())
    if tty:
        text = output.decode().replace("\r\n", "\n")
        assert "before\n" in text and "while-daemon-away\n" in text and "got-back\n" in text
    else:
        # "before" was read by nobody before the first daemon died, and stayed in the held FIFO.
        assert output == b"before\nwhile-daemon-away\ngot-back\n"
    assert exit_status.exit_code == 5


def test_a_container_whose_output_cannot_be_recovered_is_still_under_control(rootfs: Path, tmp_path: Path) -> None:
    async def scenario() -> tuple[str | None, bytes, spawn.ExitStatus]:
        async with Containers(rootfs, tmp_path) as containers:
            spec = containers.spec(["sleep", "1000"], tty=True)
            containers.adopt(spec.state_dir)
            _start_in_a_daemon_that_then_dies(spec)
            record_path = spec.state_dir / statedir.PROCESS_JSON
            record = json.loads(record_path.read_text())
            record["pty_master_fd"] = 999  # damaged: the supervisor holds no such fd
            record_path.write_text(json.dumps(record))
            process = spawn.reattach(spec.state_dir)
            assert process is not None
            output = await read_to_eof(process.stdout_fd)
            process.signal(signal.SIGKILL)
            exit_status = await process.wait()
            process.close_fds()
            return process.output_lost, output, exit_status

    output_lost, output, exit_status = run_scenario(scenario())
    assert output_lost is not None and "pidfd_getfd of fd 999" in output_lost
    assert output == b""
    assert exit_status.exit_code == 137


def test_reattach_finds_nothing_once_the_container_has_ended_and_the_exit_code_remains(
    rootfs: Path, tmp_path: Path
) -> None:
    state_dir = tmp_path / "ended"
    run(["sh", "-c", "exit 4"], rootfs, tmp_path, state_dir=state_dir)
    assert spawn.reattach(state_dir) is None
    assert asyncio.run(spawn.collect_exit(state_dir)) == spawn.ExitStatus(4, oom_killed=False)


def test_killing_the_supervisor_takes_the_container_with_it(rootfs: Path, tmp_path: Path) -> None:
    async def scenario() -> tuple[spawn.ExitStatus, bool]:
        async with Containers(rootfs, tmp_path) as containers:
            process = await containers.start(["sleep", "1000"])
            init = os.pidfd_open(process.init_pid)
            try:
                os.kill(process.supervisor_pid, signal.SIGKILL)
                exit_status = await process.wait()
                await asyncio.wait_for(wait_readable(init), 30)  # a pidfd polls readable on exit
                return exit_status, True
            finally:
                os.close(init)

    exit_status, container_gone = run_scenario(scenario())
    assert container_gone
    assert exit_status.exit_code == spawn.EXIT_UNKNOWN  # nobody was left to record the status


def test_a_second_start_in_the_same_state_dir_keeps_the_writable_layer(rootfs: Path, tmp_path: Path) -> None:
    state_dir = tmp_path / "restarted"
    run(["sh", "-c", "echo kept > /data.txt"], rootfs, tmp_path, state_dir=state_dir, container_id="e" * 64)
    again = run(["cat", "/data.txt"], rootfs, tmp_path, state_dir=state_dir, container_id="e" * 64)
    assert again.stdout == b"kept\n"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"argv": []}, "No command specified"),
        ({"network": "bridge"}, 'network mode "bridge" is not supported'),
        ({"workdir": "relative"}, "it needs to be an absolute path"),
        ({"cap_add": ["CAP_FOO"]}, 'unknown capability: "CAP_FOO"'),
        ({"memory": 1000}, "Minimum memory limit allowed is 6MB"),
        ({"workdir": "/etc/passwd"}, 'cannot use working directory "/etc/passwd": not a directory'),
    ],
)
def test_a_bad_spec_is_refused_with_a_clear_message(
    rootfs: Path, tmp_path: Path, change: dict[str, object], message: str
) -> None:
    containers = Containers(rootfs, tmp_path)
    spec = containers.spec(["true"])
    for key, value in change.items():
        setattr(spec, key, value)
    with pytest.raises(spawn.StartError, match=message) as raised:
        asyncio.run(spawn.start(spec))
    assert raised.value.exit_code == 125
