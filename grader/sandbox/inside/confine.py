"""Confining a freshly forked child before any job code runs (INSIDE the box).

Order matters and is fixed here: limits while still privileged, then the unprivileged uid (every
capability gone), then no_new_privs, then one seccomp filter. The filter denies every socket but
AF_UNIX (the network namespace already has no route out), io_uring (whose operations do not pass
through the socket rule), namespace and mount changes, tracing, kernel keyrings and modules, and
System V / POSIX IPC objects, which would outlive a child and reach the next one.
"""

from __future__ import annotations

import ctypes
import errno
import os
import resource

from grader.sandbox.protocol import Limits

PR_SET_NO_NEW_PRIVS = 38
AF_UNIX = 1
DENIED_SYSCALLS = (
    "ptrace", "unshare", "setns", "mount", "umount2", "pivot_root", "chroot", "bpf",
    "perf_event_open", "kexec_load", "kexec_file_load", "init_module", "finit_module",
    "delete_module", "keyctl", "add_key", "request_key", "userfaultfd", "process_vm_readv",
    "process_vm_writev", "open_by_handle_at", "name_to_handle_at", "swapon", "swapoff", "reboot",
    "acct", "io_uring_setup", "io_uring_enter", "io_uring_register", "fanotify_init",
    "shmget", "msgget", "semget", "mq_open", "move_mount", "open_tree", "fsopen", "fsmount",
    "fspick", "mount_setattr", "quotactl", "vhangup", "personality",
)  # fmt: skip
CLONE_NAMESPACE_FLAGS = (
    0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000,
    0x00000080,
)  # fmt: skip
"""CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET, NEWTIME."""


def set_limits(limits: Limits, *, base_vm_mb: int) -> None:
    """The job's rlimits; RLIMIT_AS counts what the forked supervisor already maps (torch)."""
    mb = 1024 * 1024
    address_space = (base_vm_mb + limits.memory_mb) * mb
    resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))
    resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_s, limits.cpu_s))
    resource.setrlimit(resource.RLIMIT_NPROC, (limits.nproc, limits.nproc))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits.fsize_mb * mb, limits.fsize_mb * mb))
    resource.setrlimit(resource.RLIMIT_NOFILE, (limits.nofile, limits.nofile))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def drop_privileges(uid: int) -> None:
    """Become ``uid`` for good (real, effective and saved ids), then set no_new_privs."""
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)  # all ids non-zero: every capability is gone
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")


def apply_seccomp() -> None:
    """Load the job's seccomp filter (see the module docstring); denied calls fail with EPERM."""
    import pyseccomp as seccomp

    filt = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
    filt.add_rule(seccomp.ERRNO(errno.EACCES), "socket", seccomp.Arg(0, seccomp.NE, AF_UNIX))
    filt.add_rule(seccomp.ERRNO(errno.EACCES), "socketpair", seccomp.Arg(0, seccomp.NE, AF_UNIX))
    for flag in CLONE_NAMESPACE_FLAGS:
        is_set = seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag)
        filt.add_rule(seccomp.ERRNO(errno.EPERM), "clone", is_set)
    # clone3 passes its flags in memory a filter cannot read: ENOSYS makes libc fall back to clone.
    filt.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")
    for name in DENIED_SYSCALLS:
        try:
            filt.add_rule(seccomp.ERRNO(errno.EPERM), name)
        except (RuntimeError, ValueError, OSError):
            continue  # a syscall this architecture does not have
    filt.load()


def confine(uid: int, limits: Limits, *, base_vm_mb: int) -> None:
    """Everything a child does before its job: limits, uid, no_new_privs, seccomp."""
    set_limits(limits, base_vm_mb=base_vm_mb)
    drop_privileges(uid)
    apply_seccomp()
