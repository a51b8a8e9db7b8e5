"""Checks of where a sweep runs, made before anything heavy is imported or started: the
local Ray's CPU count and the address of a cluster to join."""

from __future__ import annotations

import math
import socket
import threading

from engine.errors import ConfigError

CONNECT_TIMEOUT_S = 30.0  # how long --address may stay silent before the sweep gives up


def check_resources(num_cpus: int | None, connect_timeout: float) -> None:
    """Refuse CPU counts and time limits Ray cannot work with, before anything starts.

    Raises:
        ConfigError: ``num_cpus`` below 1 (0 would wait forever for a free CPU), or a
            ``connect_timeout`` that is not a positive number of seconds.
    """
    if num_cpus is not None and (isinstance(num_cpus, bool) or num_cpus < 1):
        raise ConfigError(f"--num-cpus {num_cpus}: give a whole number of CPUs >= 1 for the "
                          "local Ray, or leave it out to use every core")
    if not (math.isfinite(connect_timeout) and connect_timeout > 0):
        raise ConfigError(f"--connect-timeout {connect_timeout:g}: give a number of seconds "
                          "> 0, such as 30")


def check_address(address: str, timeout: float) -> None:
    """Make sure something answers at ``address`` (``host:port`` or ``ray://host:port``)
    within ``timeout`` seconds: Ray itself would retry for many minutes.

    Raises:
        ConfigError: The address is malformed, refused or silent; the message says what
            to check.
    """
    if address in ("auto", "local"):
        return  # Ray finds those on this machine itself
    target = address.split("://", 1)[1] if "://" in address else address
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--address {address} is not host:port (such as 10.0.0.5:6379), "
                          "ray://host:port or auto")
    failure: list[str] = []

    def connect() -> None:
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
        except TimeoutError:
            failure.append(f"no answer within {timeout:g} s")
        except OSError as exc:
            failure.append(exc.strerror or str(exc))

    # A thread bounds the name lookup too, which the socket's own timeout does not.
    probe = threading.Thread(target=connect, daemon=True)
    probe.start()
    probe.join(timeout + 1.0)
    if probe.is_alive():
        failure.append(f"no answer within {timeout:g} s")
    if failure:
        raise ConfigError(f"--address {address}: cannot reach a Ray cluster there "
                          f"({failure[0]}); check that its head node runs (`ray start --head` "
                          "prints the address to use) and that this machine can reach that "
                          "host and port, or drop --address to start a local Ray "
                          "(--connect-timeout sets how long to wait)")
