"""multipart/related bodies (RFC 2387), as DICOMweb sends them: WADO-RS responses and STOW-RS requests.

Parts are split on the boundary named in the Content-Type; each part's headers are read and its content
is returned byte for byte (a DICOM part is a Part 10 file, never decoded here).
"""

from __future__ import annotations

from dataclasses import dataclass
from email.message import Message

CRLF = b"\r\n"


class MultipartError(ValueError):
    """A body that is not well-formed multipart: no boundary, no opening delimiter, or no closing one."""


@dataclass(frozen=True)
class Part:
    """One body part: its headers (names in lower case) and its content."""

    headers: dict[str, str]
    content: bytes

    @property
    def content_type(self) -> str:
        """The part's media type in lower case without parameters, e.g. "application/dicom"; "" when absent."""
        value = self.headers.get("content-type", "")
        return media_type(value) if value else ""


def _parsed(content_type: str) -> Message:
    message = Message()
    message["Content-Type"] = content_type
    return message


def media_type(content_type: str) -> str:
    """The media type of a Content-Type header value, in lower case: "multipart/related"."""
    return content_type.split(";", 1)[0].strip().lower()


def content_type_parameter(content_type: str, name: str) -> str | None:
    """A parameter of a Content-Type header value, unquoted (e.g. "boundary", "type"); None when absent."""
    value = _parsed(content_type).get_param(name, header="content-type")
    if value is None or isinstance(value, tuple):  # RFC 2231 encoded values do not occur in DICOMweb
        return None
    return str(value)


def parse_multipart(body: bytes, content_type: str) -> list[Part]:
    """The parts of a multipart body whose Content-Type header value is content_type (it names the boundary).

    The preamble before the first delimiter and the epilogue after the closing one are ignored.
    Raises MultipartError when content_type is not multipart or has no boundary, or when the body
    lacks its opening or closing delimiter.
    """
    if not media_type(content_type).startswith("multipart/"):
        raise MultipartError(f"not a multipart body: {media_type(content_type) or 'no content type'}")
    boundary = content_type_parameter(content_type, "boundary")
    if not boundary:
        raise MultipartError("the multipart Content-Type names no boundary")
    delimiter = CRLF + b"--" + boundary.encode("ascii")
    # The opening delimiter may start the body; a CRLF in front lets every delimiter be found alike.
    data = CRLF + body
    position = data.find(delimiter)
    if position < 0:
        raise MultipartError("the multipart body does not contain its boundary")
    parts: list[Part] = []
    while True:
        position += len(delimiter)
        if data.startswith(b"--", position):
            return parts
        line_end = data.find(CRLF, position)
        if line_end < 0 or data[position:line_end].strip(b" \t"):
            raise MultipartError("a multipart delimiter is not followed by a line break")
        start = line_end + len(CRLF)
        end = data.find(delimiter, start)
        if end < 0:
            raise MultipartError("the multipart body ends without its closing boundary")
        parts.append(_part(data[start:end]))
        position = end


def _part(raw: bytes) -> Part:
    """One body part: header lines up to the first empty line, then the content."""
    if raw.startswith(CRLF):  # no headers at all
        return Part({}, raw[len(CRLF):])
    head, separator, content = raw.partition(CRLF + CRLF)
    if not separator:
        raise MultipartError("a multipart body part has no empty line after its headers")
    headers: dict[str, str] = {}
    for line in head.decode("latin-1").split("\r\n"):
        if line[:1] in (" ", "\t") and headers:  # a folded header continues the previous one
            name = next(reversed(headers))
            headers[name] += " " + line.strip()
            continue
        name, colon, value = line.partition(":")
        if not colon:
            raise MultipartError("a multipart body part has a malformed header line")
        headers[name.strip().lower()] = value.strip()
    return Part(headers, content)
