"""References to resources Hilum does not own (the hospital's Patient and order), and conditional criteria.

A conditional reference ("Patient?identifier=system|value") is resolved by the receiving server when it
processes the transaction, so Hilum never creates a second Patient or order; the identifier is kept on
the reference as well, so a reader that does not resolve it still knows whom and what it names.
"""

from __future__ import annotations

from urllib.parse import quote

from fhir.resources.R4B.identifier import Identifier
from fhir.resources.R4B.reference import Reference


def escape_token(text: str) -> str:
    """FHIR search escaping of one token part (\\ | , $), for a search parameter value."""
    for char in ("\\", "|", ",", "$"):
        text = text.replace(char, "\\" + char)
    return text


def _escape_token_part(text: str) -> str:
    """A token part escaped for search, then percent-encoded for a URL (conditional criteria are URLs)."""
    return quote(escape_token(text), safe=":/.-_~")


def token_criteria(parameter: str, system: str, value: str) -> str:
    """Search criteria "<parameter>=<system>|<value>" matching exactly that system and value."""
    if not system or not value:
        raise ValueError(f"a {parameter} search needs both system and value")
    return f"{parameter}={_escape_token_part(system)}|{_escape_token_part(value)}"


def if_none_exist(identifier: Identifier) -> str:
    """Conditional-create criteria "identifier=<system>|<value>" matching exactly `identifier`."""
    if not identifier.system or not identifier.value:
        raise ValueError("conditional create needs an identifier with both system and value")
    return token_criteria("identifier", identifier.system, identifier.value)


def conditional_reference(resource_type: str, identifier: Identifier, *, resolve: bool = True) -> Reference:
    """A reference to the `resource_type` with `identifier`: resolved by the server (resolve) or logical only."""
    logical = Identifier(type=identifier.type, system=identifier.system, value=identifier.value)
    return Reference(
        reference=f"{resource_type}?{if_none_exist(identifier)}" if resolve else None,
        type=resource_type,
        identifier=logical,
    )
