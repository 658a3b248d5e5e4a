"""Sockets for the servers: port checks, loopback detection and binding before serving.

Shared by ``attnx serve`` (:mod:`attnx.deploy.serving.cli`) and the gRPC frontend
(:mod:`attnx.deploy.serving.grpc_server`), so that bad ports fail as one line before any bundle loads.
"""

from __future__ import annotations

import socket

from attnx.core.errors import UserError


def check_port(port: int, option: str = "--port") -> None:
    """TCP ports are 0..65535; 0 asks the system for any free port (the serving line prints which)."""
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise UserError(f"{option} must be 0..65535 (0: any free port), got {port}")


def is_loopback(address: str) -> bool:
    """True for any loopback address: 127.0.0.0/8, ::1, and IPv4-mapped ones (::ffff:127.x.y.z)."""
    import ipaddress

    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return bool(ip.is_loopback or (mapped is not None and mapped.is_loopback))


def bind(host: str, port: int) -> socket.socket:
    """A listening socket (port 0: any free port), bound before serving so errors are one clear line."""
    check_port(port)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise UserError(f"cannot resolve host '{host}': {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    # proto must say TCP: asyncio turns Nagle off (TCP_NODELAY) only on sockets whose proto is IPPROTO_TCP,
    # and with Nagle on, a response written as headers + body waits ~40 ms for the client's delayed ACK.
    sock = socket.socket(family, kind, proto or socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock
