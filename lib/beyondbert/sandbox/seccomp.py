"""A seccomp filter that refuses the kernel keyring system calls inside the sandbox.

Kernel keyrings belong to a uid, not to a process or a sandbox: when the grader runs as root,
every sandbox runs its student code as the same unprivileged uid, so two submissions graded at
the same time could pass values through that uid's keyring. The filter makes ``add_key``,
``request_key`` and ``keyctl`` fail with ``EPERM``. It is a classic BPF program in the form
bubblewrap's ``--seccomp FD`` reads (what libseccomp's ``seccomp_export_bpf`` writes): an array
of ``struct sock_filter {u16 code; u8 jt; u8 jf; u32 k}``, run on ``struct seccomp_data``
(``nr`` at offset 0, ``arch`` at offset 4).
"""

from __future__ import annotations

import errno
import platform
import struct

# (AUDIT_ARCH_*, the numbers of add_key, request_key and keyctl) by machine.
KEYRING_CALLS = {"x86_64": (0xC000003E, (248, 249, 250)), "aarch64": (0xC00000B7, (217, 218, 219))}
X32_SYSCALL_BIT = 0x40000000  # x86_64's x32 ABI: the same calls with this bit set
LOAD_WORD, JUMP_IF_EQUAL, JUMP_IF_AT_LEAST, RETURN = 0x20, 0x15, 0x35, 0x06
ALLOW, REFUSE = 0x7FFF0000, 0x00050000 | errno.EPERM  # SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO


def _instruction(code: int, k: int, jump_if: int = 0, jump_else: int = 0) -> bytes:
    return struct.pack("=HBBI", code, jump_if, jump_else, k)


def keyring_filter(machine: str | None = None) -> bytes | None:
    """The compiled filter for ``machine`` (default: this one), or None where it is not known.

    Calls of another architecture (32-bit ones on a 64-bit kernel, whose numbers differ) and of
    the x32 ABI are refused as a whole: no course code makes them.
    """
    known = KEYRING_CALLS.get(machine or platform.machine())
    if known is None:
        return None
    arch, (add_key, request_key, keyctl) = known
    program = [                                        # index: jumps count from the next one
        _instruction(LOAD_WORD, 4),                    # 0: the architecture
        _instruction(JUMP_IF_EQUAL, arch, 0, 6),       # 1: another one -> 8 (refuse)
        _instruction(LOAD_WORD, 0),                    # 2: the system call's number
        _instruction(JUMP_IF_AT_LEAST, X32_SYSCALL_BIT, 4, 0),  # 3: x32 -> 8
        _instruction(JUMP_IF_EQUAL, add_key, 3, 0),    # 4: -> 8
        _instruction(JUMP_IF_EQUAL, request_key, 2, 0),  # 5: -> 8
        _instruction(JUMP_IF_EQUAL, keyctl, 1, 0),     # 6: -> 8
        _instruction(RETURN, ALLOW),                   # 7
        _instruction(RETURN, REFUSE),                  # 8
    ]
    return b"".join(program)
