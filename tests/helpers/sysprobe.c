/* sysprobe: makes one system call that busybox has no applet for and prints how it ended.
 *
 *   sysprobe keyctl|add_key|bpf|perf_event_open|reboot|unshare_user|clone_newns
 *
 * prints "<name>: ok" or "<name>: <errno name>" and exits 0 either way (2 on bad usage). The arguments
 * are chosen so that the kernel itself would let the call through, or fail it with an error other than
 * EPERM, where it can: an EPERM then comes from the seccomp filter. Built static by the tests (gcc). */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define KEYCTL_GET_KEYRING_ID 0
#define KEY_SPEC_PROCESS_KEYRING -2
#define KEY_SPEC_SESSION_KEYRING -3
#define BPF_MAP_CREATE 0
#define REBOOT_BAD_MAGIC 1

static const char *errno_name(int e) {
    switch (e) {
    case EPERM: return "EPERM";
    case EACCES: return "EACCES";
    case EINVAL: return "EINVAL";
    case EFAULT: return "EFAULT";
    case ENOSYS: return "ENOSYS";
    case ENOENT: return "ENOENT";
    case E2BIG: return "E2BIG";
    case EDQUOT: return "EDQUOT";
    default: return "OTHER";
    }
}

int main(int argc, char **argv) {
    long result;
    if (argc != 2) {
        fprintf(stderr, "usage: sysprobe keyctl|add_key|bpf|perf_event_open|reboot|unshare_user|clone_newns\n");
        return 2;
    }
    const char *what = argv[1];
    errno = 0;
    if (!strcmp(what, "keyctl"))
        result = syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 1);
    else if (!strcmp(what, "add_key"))
        result = syscall(SYS_add_key, "user", "logship-probe", "x", 1, KEY_SPEC_PROCESS_KEYRING);
    else if (!strcmp(what, "bpf"))
        result = syscall(SYS_bpf, BPF_MAP_CREATE, NULL, 0);
    else if (!strcmp(what, "perf_event_open"))
        result = syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0); /* NULL attr: EFAULT from the kernel */
    else if (!strcmp(what, "reboot"))
        result = syscall(SYS_reboot, REBOOT_BAD_MAGIC, 0, 0, NULL); /* bad magic: EINVAL with CAP_SYS_BOOT */
    else if (!strcmp(what, "unshare_user"))
        result = unshare(CLONE_NEWUSER);
    else if (!strcmp(what, "clone_newns"))
        result = unshare(CLONE_NEWNS);
    else {
        fprintf(stderr, "sysprobe: unknown call %s\n", what);
        return 2;
    }
    if (result < 0)
        printf("%s: %s\n", what, errno_name(errno));
    else
        printf("%s: ok\n", what);
    return 0;
}
