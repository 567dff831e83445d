"""The container's terminal: a pty made inside the container, its master sent to the caller.

The pty must come from the container's own devpts instance (``/dev/ptmx`` -> ``pts/ptmx``):
a pty made on the host is not a tty inside the container. The master goes to the caller over
``--console-socket`` in one sendmsg with exactly one SCM_RIGHTS fd, as runc does.
"""

import array
import fcntl
import os
import socket
import struct
import termios

_TIOCGPTN = 0x80045430
_TIOCSPTLCK = 0x40045431


def open_pty() -> tuple[int, str]:
    """Open a new pty master in the current /dev/pts; return (master fd, slave path)."""
    master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    fcntl.ioctl(master, _TIOCSPTLCK, struct.pack("i", 0))
    number = struct.unpack("I", fcntl.ioctl(master, _TIOCGPTN, struct.pack("I", 0)))[0]
    return master, f"/dev/pts/{number}"


def set_size(fd: int, height: int, width: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))


def send_master(console_socket: socket.socket, master: int) -> None:
    console_socket.sendmsg(
        [b"/dev/ptmx"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [master]))]
    )


def become_tty_session_leader(slave_path: str) -> None:
    """Open the slave as stdin/stdout/stderr and make it our controlling terminal."""
    slave = os.open(slave_path, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    if slave > 2:
        os.close(slave)
