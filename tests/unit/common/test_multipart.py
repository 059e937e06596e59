"""multipart/related parsing: parts split on the boundary, headers read, content kept byte for byte."""

from __future__ import annotations

import pytest

from hilum.common.multipart import MultipartError, content_type_parameter, media_type, parse_multipart

CONTENT_TYPE = 'multipart/related; type="application/dicom"; boundary=b0und4ry'
# Binary content that holds CRLFs, dashes and a near-miss of the delimiter.
DICOM_LIKE = b"\x00" * 128 + b"DICM\r\n--b0und4r\r\n\r\n\xff\xfe"


def _body(*parts: tuple[bytes, bytes], preamble: bytes = b"", epilogue: bytes = b"") -> bytes:
    body = preamble
    for headers, content in parts:
        body += b"--b0und4ry\r\n" + headers + b"\r\n" + content + b"\r\n"
    return body + b"--b0und4ry--\r\n" + epilogue


def test_parts_keep_their_bytes_and_headers() -> None:
    body = _body((b"Content-Type: application/dicom\r\nContent-Length: 140\r\n", DICOM_LIKE),
                 (b"content-type: Application/DICOM; transfer-syntax=1.2.840.10008.1.2.1\r\n", b"second"))
    first, second = parse_multipart(body, CONTENT_TYPE)
    assert first.content == DICOM_LIKE and second.content == b"second"
    assert first.headers == {"content-type": "application/dicom", "content-length": "140"}
    assert first.content_type == second.content_type == "application/dicom"


def test_preamble_epilogue_and_headerless_parts() -> None:
    body = _body((b"", b"no headers"), preamble=b"ignored preamble\r\n", epilogue=b"ignored epilogue")
    [part] = parse_multipart(body, CONTENT_TYPE)
    assert part.headers == {} and part.content == b"no headers" and part.content_type == ""


def test_an_empty_multipart_has_no_parts() -> None:
    assert parse_multipart(b"--b0und4ry--\r\n", CONTENT_TYPE) == []


def test_quoted_boundary_and_folded_headers() -> None:
    content_type = 'multipart/related; boundary="a b:c"; type="application/dicom"'
    body = b'--a b:c\r\nContent-Type: application/dicom;\r\n transfer-syntax=*\r\n\r\nX\r\n--a b:c--'
    [part] = parse_multipart(body, content_type)
    assert part.headers["content-type"] == "application/dicom; transfer-syntax=*" and part.content == b"X"


@pytest.mark.parametrize(("body", "content_type", "message"), [
    (b"--b0und4ry--", "application/dicom", "not a multipart body"),
    (b"--b0und4ry--", "multipart/related", "names no boundary"),
    (b"nothing here", CONTENT_TYPE, "does not contain its boundary"),
    (b"--b0und4ry\r\n\r\nX\r\n", CONTENT_TYPE, "without its closing boundary"),
    (b"--b0und4ry\r\nno empty line\r\n--b0und4ry--", CONTENT_TYPE, "no empty line"),
    (b"--b0und4ry\r\nno colon\r\n\r\nX\r\n--b0und4ry--", CONTENT_TYPE, "malformed header"),
    (b"--b0und4ryX\r\n\r\nX\r\n--b0und4ry--", CONTENT_TYPE, "not followed by a line break"),
])
def test_malformed_bodies_are_refused(body: bytes, content_type: str, message: str) -> None:
    with pytest.raises(MultipartError, match=message):
        parse_multipart(body, content_type)


def test_content_type_helpers() -> None:
    assert media_type(' Multipart/Related ; boundary=x') == "multipart/related"
    assert content_type_parameter(CONTENT_TYPE, "type") == "application/dicom"
    assert content_type_parameter(CONTENT_TYPE, "boundary") == "b0und4ry"
    assert content_type_parameter(CONTENT_TYPE, "start") is None
