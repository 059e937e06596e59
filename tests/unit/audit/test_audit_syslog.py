"""RFC 5424 messages and their framing, as a strict loopback repository reads them."""

from __future__ import annotations

from pathlib import Path

import pytest

from hilum.audit.syslog import BOM, SyslogSender, octet_counted, syslog_message
from tests.syslog_receiver import parse_message


def test_a_message_has_the_atna_header_and_a_bom_prefixed_payload() -> None:
    raw = syslog_message(b"<AuditMessage/>", timestamp="2026-12-07T09:00:00.000Z", hostname="hilum-0.cluster",
                         app_name="hilum", procid="42")
    assert raw.startswith(b"<85>1 2026-12-07T09:00:00.000Z hilum-0.cluster hilum 42 IHE+RFC-3881 - " + BOM)
    parsed = parse_message(raw)
    assert (parsed.pri, parsed.msgid, parsed.payload) == (85, "IHE+RFC-3881", b"<AuditMessage/>")


def test_header_fields_are_printable_ascii_within_their_limits_or_nil() -> None:
    raw = syslog_message(b"x", timestamp="2026-12-07T09:00:00Z", hostname="host with spaces\u00e9" + "h" * 300,
                         app_name="", procid="1\n2")
    parsed = parse_message(raw)
    assert parsed.hostname == ("hostwithspaces" + "h" * 300)[:255]
    assert (parsed.app_name, parsed.procid) == ("-", "12")


def test_frames_are_octet_counted_in_bytes_and_urls_are_checked() -> None:
    assert octet_counted("é".encode()) == b"2 \xc3\xa9"
    with pytest.raises(ValueError, match="tls://, tcp:// or udp://"):
        SyslogSender("https://siem.example")
    with pytest.raises(ValueError, match="set together"):
        SyslogSender("tls://siem.example", key_file=Path("key.pem"))
    assert SyslogSender("udp://siem.example").address == ("siem.example", 514)
    assert SyslogSender("tls://[::1]:7514").address == ("::1", 7514)
