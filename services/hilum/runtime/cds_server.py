"""The CDS Hooks process (`hilum serve cds`): the app built from settings, served by uvicorn.

With HILUM_CDS__WORKERS above 1, uvicorn runs that many worker processes, each building its own app with
build_app (the replay store for JWT ids is Redis, shared by all of them).
"""

from __future__ import annotations

import socket

import uvicorn
from fastapi import FastAPI
from uvicorn.supervisors.multiprocess import Multiprocess

from hilum.audit.trail import audit_trail
from hilum.cds.app import create_app
from hilum.common.connections import open_redis, open_sessions
from hilum.common.logs import configure_logging
from hilum.common.settings import HilumSettings
from hilum.common.startup_objects import freeze_startup_objects
from hilum.common.tracing import configure_tracing
from hilum.fhir_api.app import fhir_api_from_settings
from hilum.ingestion.wiring import build


def build_app() -> FastAPI:
    """The CDS Hooks app (carrying the STOW-RS door, /dicomweb/studies, and the FHIR read API, /fhir) from this
    process's settings."""
    settings = HilumSettings()
    configure_logging("cds")
    configure_tracing("cds", settings.telemetry)
    redis_client = open_redis(settings, timeout_s=settings.cds.redis_timeout_s)
    sessions = open_sessions(settings)
    fhir_api = fhir_api_from_settings(settings, redis_client, sessions)
    app = create_app(redis_client, ingestion=build(settings), fhir_api=fhir_api, sessions=sessions,
                     readiness_timeout_s=settings.cds.redis_timeout_s,
                     patient_identifier_system=settings.fhir.patient_identifier_system,
                     trusted_issuers=settings.cds.trusted_issuers, public_url=settings.cds.base_url,
                     clock_skew_s=settings.cds.clock_skew_s, order_lookback_days=settings.cds.order_lookback_days,
                     audit=audit_trail(settings, "cds"))
    freeze_startup_objects()  # a full collection would otherwise pause a hook's response for the whole app's objects
    return app


def listening_socket(host: str, port: int) -> socket.socket:
    """The socket the workers share, made with protocol IPPROTO_TCP so that asyncio sets TCP_NODELAY on each
    accepted connection. (uvicorn's own multi-worker socket has protocol 0; asyncio then leaves Nagle on, and
    a small response waits about 40 ms for the client's delayed ACK.)"""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def serve(settings: HilumSettings) -> None:
    """Serve until stopped, on HILUM_CDS__HOST:HILUM_CDS__PORT with HILUM_CDS__WORKERS processes."""
    config = uvicorn.Config(f"{__name__}:build_app", factory=True, host=settings.cds.host, port=settings.cds.port,
                            workers=settings.cds.workers, log_config=None)
    if config.workers == 1:
        uvicorn.Server(config).run()
    else:
        Multiprocess(config, sockets=[listening_socket(settings.cds.host, settings.cds.port)]).run()
