"""Bounded schemathesis fuzzing of the CDS Hooks app: no operation in its OpenAPI schema may answer 5xx.

Every call to a CDS service or its feedback endpoint is signed as the EHR signs it (a fresh JWT, so a fresh
jti, whose aud is the service URL), so generated bodies reach the handlers instead of stopping at the 401.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from hilum.cds.app import create_app
from hilum.runtime.local_issuer import LocalIssuer

PUBLIC_URL = "http://testserver"  # the in-process ASGI client's base URL: the address this EHR calls
SERVICES_PREFIX = "/cds-services/"
MRN_SYSTEM = "urn:oid:1.2.36.146.595.217.0.1"

# Only the fuzzing phase (valid and invalid data, max_examples per operation): the coverage phase's ~100 fixed
# cases per operation would more than double the run time. An explicit config also ignores any schemathesis.toml.
FUZZ_CONFIG = schemathesis.Config.from_dict({"phases": {"coverage": {"enabled": False}}})

# The operations come from the app's own schema, built at import so pytest collects one test per operation. The
# schema needs neither Redis nor an issuer, so a never-connected client stands in; calls go to `cds_app`.
OPENAPI = create_app(redis.Redis(), public_url=PUBLIC_URL).openapi()
schema = schemathesis.openapi.from_dict(OPENAPI, config=FUZZ_CONFIG)
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}

# Status codes seen per operation label ("POST /cds-services/..."), across the whole fuzzing run.
STATUSES: defaultdict[str, Counter[int]] = defaultdict(Counter)


@pytest.fixture(scope="module")
def issuer() -> Iterator[LocalIssuer]:
    """The EHR's JWT issuer, serving its JWKS on loopback for the module."""
    with LocalIssuer() as local:
        yield local


@pytest.fixture
def cds_app(redis_client: redis.Redis, issuer: LocalIssuer) -> FastAPI:
    """The app under test, on the session's Redis (flushed for each operation) and trusting `issuer`."""
    return create_app(redis_client, patient_identifier_system=MRN_SYSTEM, trusted_issuers=[issuer.trusted_issuer],
                      public_url=PUBLIC_URL)


def ehr_headers(case: schemathesis.Case[Any], issuer: LocalIssuer) -> dict[str, str]:
    """The Authorization header of a service or feedback call (aud: the service URL); none for open paths."""
    path = case.formatted_path  # templated path parameters filled in
    if not path.startswith(SERVICES_PREFIX):
        return {}
    audience = f"{PUBLIC_URL}{path.rstrip('/').removesuffix('/feedback')}"
    return {"Authorization": f"Bearer {issuer.token(audience)}"}


@schema.parametrize()
@settings(max_examples=30, deadline=None, database=None,
          # cds_app is per operation on purpose (fresh Redis); the data checks would only make the run flaky.
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                 HealthCheck.filter_too_much, HealthCheck.data_too_large])
def test_no_operation_answers_5xx(case: schemathesis.Case[Any], cds_app: FastAPI, issuer: LocalIssuer) -> None:
    """Generated requests, valid and invalid, to every operation: any status but a server error."""
    headers = ehr_headers(case, issuer)
    response = case.call(app=cds_app, headers=headers)
    STATUSES[case.operation.label][response.status_code] += 1
    case.validate_response(response, checks=[not_a_server_error], headers=headers)


def test_fuzzing_reached_every_operation_and_the_handlers() -> None:
    """Every operation was called, and some signed call got a 2xx: the fuzzing got past the JWT check.

    It reads what test_no_operation_answers_5xx recorded, so it runs after it (pytest keeps file order).
    """
    operations = {f"{method.upper()} {path}" for path, item in OPENAPI["paths"].items() for method in item
                  if method in HTTP_METHODS}
    seen = {label: dict(statuses) for label, statuses in STATUSES.items()}
    assert set(seen) == operations, f"operations never called: {sorted(operations - set(seen))}"
    signed = [statuses for label, statuses in seen.items() if f" {SERVICES_PREFIX}" in label]
    assert any(200 <= status < 300 for statuses in signed for status in statuses), seen
