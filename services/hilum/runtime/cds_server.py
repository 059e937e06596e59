"""The CDS Hooks process (`hilum serve cds`): the app built from settings, served by uvicorn.

With HILUM_CDS__WORKERS above 1, uvicorn runs that many worker processes, each building its own app with
build_app (the replay store for JWT ids is Redis, shared by all of them).
"""

from __future__ import annotations

import uvicorn
from fastapi import FastAPI

from hilum.cds.app import create_app
from hilum.common.connections import open_redis
from hilum.common.logs import configure_logging
from hilum.common.settings import HilumSettings
from hilum.ingestion.wiring import build


def build_app() -> FastAPI:
    """The CDS Hooks app (carrying the STOW-RS door, /dicomweb/studies) from this process's settings."""
    settings = HilumSettings()
    configure_logging("cds")
    return create_app(open_redis(settings, timeout_s=settings.cds.redis_timeout_s), ingestion=build(settings),
                      patient_identifier_system=settings.fhir.patient_identifier_system,
                      trusted_issuers=settings.cds.trusted_issuers, public_url=settings.cds.base_url,
                      clock_skew_s=settings.cds.clock_skew_s, order_lookback_days=settings.cds.order_lookback_days)


def serve(settings: HilumSettings) -> None:
    """Serve until stopped, on HILUM_CDS__HOST:HILUM_CDS__PORT with HILUM_CDS__WORKERS processes."""
    uvicorn.run(f"{__name__}:build_app", factory=True, host=settings.cds.host, port=settings.cds.port,
                workers=settings.cds.workers, log_config=None)
