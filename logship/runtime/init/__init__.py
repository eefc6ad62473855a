"""pid 1 of a new container (see `main`): a package run by path (`python -I -S .../init`), one module per
step: `rootfs` (the image, /proc, /dev...), `mounts` (the user's binds, volumes, tmpfs), `identity`
(--user), `confine` (ulimits, capabilities, no_new_privs, seccomp), `command` (finding and exec'ing it)."""
