"""`hilum cds rebuild`: the CDS results cache written again from the stored reports.

The cache is Redis, keyed by patient under the reference key: after a new reference key (or a Redis that lost its
data) the CDS Hooks service would find no result for a patient until their next study. Rebuilding writes each study's
current report's view again, as reporting wrote it; write_view keeps the newest per patient, whatever the order.
A report withdrawn (cancelled, entered in error) is left out, as its study's view was withdrawn with it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime

import redis
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from hilum.common.cds_view import write_view
from hilum.common.db import studies
from hilum.common.db.models import ReportRow, stored_utc
from hilum.common.reported_findings import reported_findings
from hilum.fhir_api.store import stored_status
from hilum.reporting.cds_summary import cds_view_of
from hilum.reporting.service import WITHDRAWN, diagnostic_report_entry
from hilum.v1 import messages_pb2


def rebuild_views(sessions: sessionmaker[Session], cache: redis.Redis, patient_system: str,
                  progress: Callable[[int, int], None] | None = None) -> int:
    """Write the view of each study's latest report not withdrawn (reports from before the comparison was kept are
    left out); the number of views written. progress, if given, is told (studies done, studies with a report) after
    each."""
    with sessions() as session:
        latest = select(func.max(ReportRow.id)).group_by(ReportRow.study_instance_uid)
        ids = list(session.scalars(select(ReportRow.id).where(ReportRow.id.in_(latest)).order_by(ReportRow.id)))
    written = 0
    for done, report_id in enumerate(ids, start=1):
        with sessions() as session:
            row = session.get(ReportRow, report_id)
            study = studies.study_info(session, row.study_instance_uid) if row is not None else None
            if row is not None and row.comparison and study is not None and stored_status(
                    session, "DiagnosticReport", row.diagnostic_report_id) not in WITHDRAWN:
                comparison = messages_pb2.PriorComparison.FromString(row.comparison)
                result = messages_pb2.PublishResult.FromString(row.payload)
                view = cds_view_of(study, reported_findings(comparison), result.draft, row.diagnostic_report_id,
                                   _issued(row), patient_system, result.amends_model_version or None)
                write_view(cache, view)
                written += 1
        if progress is not None:
            progress(done, len(ids))
    return written


def _issued(row: ReportRow) -> datetime:
    """When the report was issued, as its DiagnosticReport says (the instant reporting dated its view with); the
    row's creation for a bundle without one."""
    issued = diagnostic_report_entry(json.loads(row.bundle_json))["resource"].get("issued")
    return datetime.fromisoformat(issued) if issued else stored_utc(row.created_at)
