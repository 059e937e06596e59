"""Loopback or not, and the host of an address."""

from __future__ import annotations

import pytest

from hilum.common.addresses import host_of, is_loopback


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.8.9.10", True), ("localhost", True), ("::1", True), ("[::1]", True),
    ("0.0.0.0", False), ("10.0.0.5", False), ("::", False), ("hilum.hospital.example", False), ("", False)])
def test_only_loopback_addresses_are_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_the_host_of_an_address() -> None:
    assert host_of("127.0.0.1:50051") == "127.0.0.1"
    assert host_of("[::1]:50051") == "::1"
    assert host_of("0.0.0.0:8086") == "0.0.0.0"
