"""Checking a listening address before a server prints its banner."""

from __future__ import annotations

import socket

from ghlsync.cli._engine_common import fail

__all__ = ["require_free_port"]


def require_free_port(command: str, host: str, port: int) -> None:
    """Exit 2 with one line when `host:port` cannot be listened on (in use, not allowed).

    A probe, not a reservation: it catches the usual case (a second `serve`, another program)
    before anything is printed; the server still reports a race lost after it.
    """
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise fail(command, f"cannot listen on {host}: {exc.strerror}; check --host") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise fail(command, _why(host, port, exc)) from None


def _why(host: str, port: int, exc: OSError) -> str:
    where = f"{host}:{port}"
    if exc.errno in (98, 48):  # EADDRINUSE on Linux, macOS
        return (
            f"port {port} on {host} is already in use (another `ghlsync` or another program "
            f"listens there); stop it or choose another --port"
        )
    if exc.errno == 13:  # EACCES: a privileged port
        return f"not allowed to listen on {where} (ports below 1024 need root); use --port 8080"
    return f"cannot listen on {where} ({exc.strerror}); check --host and --port"
