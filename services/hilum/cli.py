"""The `hilum` command: up and demo, ingestion from files, status, the service processes, models, CDS feedback,
retention and the database."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from functools import partial
from pathlib import Path
from typing import Any

from hilum.common.settings import HilumSettings
from hilum.common.wording import CLI_DEMO_MODEL, CLI_DEMO_RESULT
from hilum.inference.labels import OperatingThresholds
from hilum.inference.weights_download import PUBLISHED_WEIGHTS_URL
from hilum.runtime.entrypoints import COMPANIONS, STAGE_NAMES


def _stack_command(command: str, run: Callable[[], int]) -> int:
    """Run `hilum up` or `hilum demo`; what a person can act on is one message on stderr, not a traceback."""
    from hilum.runtime.up import STACK_ERRORS, Stopped

    try:
        return run()
    except STACK_ERRORS as exc:
        print(f"hilum {command}: {exc}", file=sys.stderr)
        return 1
    except Stopped as exc:
        print(f"hilum {command}: {exc}", file=sys.stderr)
        return 128 + exc.signal
    except KeyboardInterrupt:  # before the stack started: nothing to stop
        print(f"hilum {command}: interrupted", file=sys.stderr)
        return 130


def _up(args: argparse.Namespace, settings: HilumSettings) -> int:
    from hilum.runtime.up import run_up

    return _stack_command("up", lambda: run_up(settings))


def _demo(args: argparse.Namespace, settings: HilumSettings) -> int:
    from hilum.runtime.demo import run_demo

    return _stack_command("demo", lambda: run_demo(settings, keep_running=args.keep_running, fresh=args.fresh))


def _ingest(args: argparse.Namespace, settings: HilumSettings) -> int:
    """Submit files (folders are walked) to a running ingestion service; exit 2 if any was rejected."""
    from hilum.ingestion.client import IngestionClient, rejection_line

    paths = sorted(p for root in args.paths for p in ([root] if root.is_file() else root.rglob("*")) if p.is_file())
    address = args.address or settings.grpc.address(settings.grpc.ingestion_port)
    rejected = 0
    width = len(str(len(paths)))
    with IngestionClient(address, settings.grpc.max_message_bytes, section=settings.grpc) as client:
        for done, result in enumerate(client.submit_each(paths), start=1):
            progress = f"[{done:{width}d}/{len(paths)}] "  # each line as its file is stored: a batch shows progress
            if result.accepted:
                note = " (already stored)" if result.duplicate else ""
                print(f"{progress}accepted  {result.label}  study {result.study_instance_uid}{note}", flush=True)
            else:
                rejected += 1
                print(progress + rejection_line(result), flush=True)
    print(f"{len(paths) - rejected} accepted, {rejected} rejected")
    return 2 if rejected else 0


def _status(args: argparse.Namespace, settings: HilumSettings) -> int:
    from hilum.common.study_state import name_of
    from hilum.ingestion.client import IngestionClient

    if args.study_instance_uid is None:
        return _pipeline_status(settings)
    address = args.address or settings.grpc.address(settings.grpc.ingestion_port)
    with IngestionClient(address, section=settings.grpc) as client:
        status = client.status(args.study_instance_uid)
    state = name_of(status.state)
    print(f"{status.study_instance_uid}: {state}" + (f" — {status.error}" if status.error else ""))
    if status.HasField("result"):
        print(f"bundle: {status.result.bundle_path}")
        if status.result.model.demo_weights:
            print(CLI_DEMO_RESULT)
    return 0


def _pipeline_status(settings: HilumSettings) -> int:
    """`hilum status` without a study: queues, studies by state, failures, dead letters (Redis and the database)."""
    from hilum.common.connections import open_redis, open_sessions
    from hilum.runtime.pipeline_status import pipeline_status, status_lines

    status = pipeline_status(open_sessions(settings), open_redis(settings, timeout_s=5.0), datetime.now(UTC))
    print("\n".join(status_lines(status)))
    return 0


def _dead_letters(args: argparse.Namespace, settings: HilumSettings) -> int:
    """`hilum dead-letters list|replay`: the queue messages that can never succeed, and handing them on again."""
    from hilum.common.connections import open_sessions
    from hilum.common.db import records
    from hilum.common.dead_letters import replay
    from hilum.common.logs import study_ref
    from hilum.common.queue import Stage, create_celery_app, send_payload

    sessions = open_sessions(settings)
    stage = Stage(args.stage) if args.stage else None
    if args.action == "list":
        with sessions() as session:
            rows = records.dead_letters(session, stage=args.stage, include_replayed=args.all)
            lines = [f"{row.id:6d}  {row.created_at:%Y-%m-%d %H:%M:%S}  {row.stage:10s}  "
                     f"study {study_ref(row.study_instance_uid) if row.study_instance_uid else '-':12s}  "
                     + (f"replayed {row.replayed_at:%Y-%m-%d %H:%M:%S}  " if row.replayed_at else "") + row.error
                     for row in rows]
        print("\n".join(lines) if lines else "no dead letters waiting")
        return 0
    app = create_celery_app(settings, name="hilum-dead-letters")

    def send(to: Stage, payload: bytes, uid: str) -> None:
        send_payload(app, to, payload, "dead letter", uid)

    replayed = replay(sessions, send, datetime.now(UTC), stage=stage, ids=args.id or (),
                      progress=_progress_line("replayed"))
    print(f"{len(replayed)} dead letters handed to their queues again")
    return 0


def _progress_line(what: str) -> Callable[[int, int], None] | None:
    """A progress line on a terminal's stderr ("replayed 120/2000"), rewritten in place; None when stderr is not a
    terminal (a log or a pipe wants the summary only)."""
    if not sys.stderr.isatty():
        return None

    def show(done: int, total: int) -> None:
        print(f"\r{what} {done}/{total}", end="\n" if done == total else "", file=sys.stderr, flush=True)

    return show


def _serve(args: argparse.Namespace, settings: HilumSettings) -> int:
    others = [name for name in args.service if name not in (*STAGE_NAMES, *COMPANIONS)]
    if len(args.service) > 1 and others:
        raise SystemExit(f"hilum serve: several names are for stages ({', '.join(STAGE_NAMES)}) and "
                         f"{' and '.join(COMPANIONS)} only, not {others[0]}")
    if args.service == ["cds"]:
        from hilum.runtime.cds_server import serve as serve_cds

        serve_cds(settings)  # the same HTTP service carries the STOW-RS door (/dicomweb/studies)
        return 0
    if args.service == ["dicom"]:
        from hilum.ingestion.dimse_scp import serve as serve_dicom

        serve_dicom(settings)
        return 0
    if args.service == ["assembler"]:
        from hilum.runtime.entrypoints import serve_assembler

        serve_assembler(settings)
        return 0
    from hilum.runtime.entrypoints import serve

    serve(args.service, settings)
    return 0


def _worker(args: argparse.Namespace, settings: HilumSettings) -> int:
    from hilum.runtime.entrypoints import work, worker_pools

    try:
        worker_pools(args.service, settings)
    except ValueError as refused:
        raise SystemExit(f"hilum worker: {refused}") from refused
    work(args.service, settings)
    return 0


def _models(args: argparse.Namespace, settings: HilumSettings) -> int:
    from hilum.inference.devices_export import DEVICES_MODEL_NAME, export_devices_model
    from hilum.inference.model_export import FINDINGS_MODEL_NAME, WeightsManifest, export_findings_model

    exports: dict[str, Callable[..., WeightsManifest]] = {
        FINDINGS_MODEL_NAME: partial(export_findings_model, op_threshs=args.op_threshs),
        DEVICES_MODEL_NAME: export_devices_model,
    }
    weights: Path | None = args.weights
    if args.models_command == "fetch" and weights is None:  # the published checkpoint, from the internet
        from hilum.inference.weights_download import DownloadFailed, download_weights

        try:
            weights = download_weights(args.url, settings.storage.data_dir / "weights")
        except DownloadFailed as exc:
            raise SystemExit(f"hilum models fetch: {exc}") from exc
    # `demo`: both models; `fetch` (and `import` without --model): cxr_findings; `import --model`: the one named.
    names = list(exports) if weights is None else [args.model]
    for name in names:
        version_dir = settings.triton.model_repository / name / "1"
        manifest = exports[name](version_dir, weights=weights)
        print(f"{name} version {manifest.version} written to {version_dir}")
        if manifest.demo:
            print(CLI_DEMO_MODEL)
    return 0


def _op_threshs_file(value: str) -> OperatingThresholds:
    """--op-threshs: the operator's operating thresholds, read and checked when the command line is parsed."""
    from hilum.inference.model_export import read_op_threshs

    try:
        return read_op_threshs(Path(value))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


class _FindingsOnlyOption(argparse.Action):
    """Stores `models import`'s --model or --op-threshs, refusing --op-threshs beside --model cxr_devices (in either
    order): operating thresholds are the findings model's."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: str | Sequence[Any] | None, option_string: str | None = None) -> None:
        setattr(namespace, self.dest, values)
        if namespace.op_threshs is not None and namespace.model != "cxr_findings":
            parser.error(f"--op-threshs is for --model cxr_findings only, not {namespace.model}")


def _samples(args: argparse.Namespace, settings: HilumSettings) -> int:
    from hilum.samples.dicom_files import write_sample_studies
    from hilum.samples.rejectable_inputs import write_rejectable_inputs

    files = write_sample_studies(args.out_dir)
    files += list(write_rejectable_inputs(args.out_dir / "rejectable").values())
    for path in files:
        print(path)
    return 0


def _pull(args: argparse.Namespace, settings: HilumSettings) -> int:
    """Pull new CR and DX studies from the configured PACS: once, or every --every seconds until SIGTERM.

    Exit 1 when the PACS cannot be searched or a study could not be retrieved (it is tried again next time).
    """
    import logging
    import signal
    from datetime import UTC, datetime, time

    from hilum.common.connections import open_sessions
    from hilum.common.dicom.pacs_client import PacsError, study_source
    from hilum.common.heartbeat import stop_event
    from hilum.common.logs import configure_logging
    from hilum.ingestion.pacs_pull import LOOKBACK, PacsPuller
    from hilum.ingestion.wiring import build

    configure_logging("pull")
    for chatty in ("pynetdicom", "httpx"):  # their INFO lines quote UIDs (in requests and URLs)
        logging.getLogger(chatty).setLevel(logging.WARNING)
    try:
        puller = PacsPuller(study_source(settings.pacs, settings.dicom.ae_title), build(settings),
                            open_sessions(settings), move_to=args.move_to)
    except ValueError as exc:
        print(f"hilum pull: {exc}", file=sys.stderr)
        return 1
    since = datetime.combine(args.since, time()) if args.since else datetime.now(UTC) - LOOKBACK
    if args.every is None:
        try:
            report = puller.poll_once(since)
        except PacsError as exc:
            print(f"hilum pull: {exc}", file=sys.stderr)
            return 1
        print(report.line())
        return 1 if report.failed else 0
    stop = stop_event(settings.health)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    puller.poll_every(args.every or settings.pacs.poll_interval_s, since, stop,
                      on_report=lambda report: print(report.line(), flush=True))
    return 0


def _positive_seconds(value: str) -> float:
    seconds = float(value)
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {value}")
    return seconds


def _quarantine(args: argparse.Namespace, settings: HilumSettings) -> int:
    """List, show, release or delete refused instances; exit 1 for an unknown id, 2 if a release is refused."""
    from hilum.common.connections import open_object_store, open_sessions
    from hilum.ingestion import quarantine
    from hilum.ingestion.service import QuarantineNotFound
    from hilum.ingestion.wiring import build

    sessions = open_sessions(settings)
    try:
        if args.action == "list":
            lines = quarantine.list_lines(sessions, everything=args.all)
            print("\n".join(lines) if lines else "the quarantine is empty")
        elif args.action == "show":
            print("\n".join(quarantine.show_lines(sessions, open_object_store(settings), args.id)))
        elif args.action == "release":
            line, accepted = quarantine.release_line(build(settings), args.id)
            print(line)
            return 0 if accepted else 2
        else:
            build(settings).delete_quarantined(args.id)
            print(f"deleted {args.id}: its bytes are gone, the record of why it was refused stays")
    except QuarantineNotFound as missing:
        print(f"hilum quarantine: {missing}", file=sys.stderr)
        return 1
    return 0


def _reprocess(args: argparse.Namespace, settings: HilumSettings) -> int:
    """Hand chosen studies to inference again under the served model version; one line per study, then a summary.
    Exit 1 when a study named by UID is not held."""
    from hilum.common.connections import open_sessions
    from hilum.common.queue import Stage, create_celery_app, enqueue
    from hilum.inference.model_export import FINDINGS_MODEL_NAME
    from hilum.inference.repository import served_version
    from hilum.ingestion import reprocess

    if args.until is not None and args.since is None:
        print("hilum reprocess: --until goes with --since", file=sys.stderr)
        return 2
    sessions = open_sessions(settings)
    uids: list[str] = list(args.study or [])
    if args.since is not None:
        with sessions() as session:
            uids += reprocess.studies_dated(session, args.since, args.until or date.today())
    version = served_version(settings.triton.model_repository, FINDINGS_MODEL_NAME)
    app = create_celery_app(settings, name="hilum-reprocess")
    chosen = reprocess.reprocess(sessions, lambda reference: enqueue(app, Stage.INFERENCE, reference), uids, version,
                                 dry_run=args.dry_run)
    print(f"served model version: {version or 'unknown here (the stages skip what they have already reported)'}")
    for study in chosen:
        verb = "would be queued" if args.dry_run and study.outcome == reprocess.Outcome.QUEUED else study.outcome.value
        print(f"study {study.ref}  {verb}")
    queued = sum(study.outcome == reprocess.Outcome.QUEUED for study in chosen)
    print(f"{queued} of {len(chosen)} studies {'would be ' if args.dry_run else ''}handed to inference")
    return 1 if any(study.outcome == reprocess.Outcome.NOT_FOUND for study in chosen) else 0


def _study_date(value: str) -> date:
    """A date as YYYY-MM-DD (or DICOM's YYYYMMDD)."""
    for layout in ("%Y-%m-%d", "%Y%m%d"):
        try:
            return datetime.strptime(value, layout).date()
        except ValueError:
            continue
    raise argparse.ArgumentTypeError(f"must be a date as YYYY-MM-DD, not {value}")


def _purge_images(args: argparse.Namespace, settings: HilumSettings) -> int:
    """Delete the stored images of studies past retention (--dry-run: only say which); one line per study."""
    from datetime import UTC, datetime, timedelta

    from hilum.audit.trail import audit_trail
    from hilum.common.connections import open_object_store, open_sessions
    from hilum.ingestion.retention import purge_images, study_line, summary_line

    purged = []
    for study in purge_images(open_sessions(settings), open_object_store(settings), timedelta(days=args.older_than),
                              datetime.now(UTC), dry_run=args.dry_run, audit=audit_trail(settings, "retention")):
        purged.append(study)
        print(study_line(study, args.dry_run), flush=True)
    print(summary_line(purged, args.dry_run))
    return 0


def _days(value: str) -> int:
    """A whole number of days, at least 1 (purging what arrived today is never a retention schedule)."""
    try:
        days = int(value)
    except ValueError:
        days = 0
    if days < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of days, at least 1, not {value}")
    return days


def _labels(args: argparse.Namespace, settings: HilumSettings) -> int:
    """Label one free-text radiology report (FILE, or stdin): its findings and devices, as a table or one JSON object.
    Exit 1 when FILE cannot be read."""
    import json

    from hilum.priors.report_labeler import label_report

    try:
        text = args.file.read_text(errors="replace") if args.file else sys.stdin.read()
    except OSError as exc:
        print(f"hilum labels: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 1
    labels = label_report(text)
    print(json.dumps(labels.as_json()) if args.json else labels.as_text())
    return 0


def _cds_rebuild(args: argparse.Namespace, settings: HilumSettings) -> int:
    """`hilum cds rebuild`: each study's current report's CDS view written to Redis again."""
    from hilum.common.connections import open_redis, open_sessions
    from hilum.reporting.cds_rebuild import rebuild_views

    written = rebuild_views(open_sessions(settings), open_redis(settings, timeout_s=10.0),
                            settings.fhir.patient_identifier_system, progress=_progress_line("rebuilt"))
    print(f"{written} CDS views written")
    return 0


def _cds_feedback(args: argparse.Namespace, settings: HilumSettings) -> int:
    """Card feedback for monitoring: counts per service, outcome and override reason; --last N records as JSON."""
    from hilum.cds.feedback import outcome_counts, read_feedback
    from hilum.common.connections import open_redis

    client = open_redis(settings)
    counts = outcome_counts(read_feedback(client))
    if not counts:
        print("no CDS card feedback stored")
    for (service, outcome, reason), count in sorted(counts.items()):
        print(f"{count:6d}  {service}  {outcome}  {reason}")
    for record in read_feedback(client, last=args.last) if args.last else []:
        print(record.model_dump_json(exclude_none=True))
    return 0


def _publish(args: argparse.Namespace, settings: HilumSettings) -> int:
    """List deliveries, or replay the dead-lettered (and overdue) ones onto the publishing queue."""
    from datetime import UTC, datetime

    from hilum.common.connections import open_redis, open_sessions
    from hilum.common.destinations import DeliveryEvent, DeliveryState, Destination, configured_destinations
    from hilum.common.queue import Stage, create_celery_app, enqueue
    from hilum.publishing import admin

    sessions = open_sessions(settings)
    if args.action == "list":
        state = DeliveryState(args.state) if args.state else None
        lines = admin.list_lines(sessions, state, limit=args.limit)
        print("\n".join(lines) if lines else "no deliveries")
        return 0
    app = create_celery_app(settings, name="hilum-publish")
    if args.action == "status":
        try:
            planned = admin.change_status(
                sessions, lambda request: enqueue(app, Stage.PUBLISHING, request), args.study, args.model_version,
                DeliveryEvent(args.status), configured_destinations(settings.publish), datetime.now(UTC),
                open_redis(settings), settings.fhir.patient_identifier_system,
            )
        except admin.ReportNotFound as missing:
            print(f"hilum publish: {missing}", file=sys.stderr)
            return 1
        print(f"{args.status}: {len(planned)} deliveries handed to the publishing queue")
        return 0
    replayed = admin.replay(
        sessions, lambda request: enqueue(app, Stage.PUBLISHING, request), datetime.now(UTC),
        study_instance_uid=args.study or "", destination=Destination(args.destination) if args.destination else None,
    )
    print(f"{len(replayed)} deliveries handed to the publishing queue")
    return 0


def _db_upgrade(args: argparse.Namespace, settings: HilumSettings) -> int:
    from hilum.common.db.session import upgrade_database

    upgrade_database(settings.database_url)
    print("database schema is at the latest revision")
    return 0


def _db_wait(args: argparse.Namespace, settings: HilumSettings) -> int:
    """Wait until the database answers and its schema is at the latest revision (a Kubernetes init container runs
    this, so pods start only after the migration Job); exit 1 with the last reason after --timeout seconds."""
    from sqlalchemy.exc import SQLAlchemyError

    from hilum.common.db.session import schema_is_current

    deadline = time.monotonic() + args.timeout
    while True:
        remaining = deadline - time.monotonic()
        try:
            if schema_is_current(settings.database_url, connect_timeout_s=max(1, min(5, round(remaining)))):
                print("database schema is at the latest revision")
                return 0
            reason = "the schema is not at the latest revision (the migration, `hilum db upgrade`, has not run)"
        except SQLAlchemyError as error:  # its message names the host and user: only the kind is said
            reason = f"the database cannot be reached ({type(error).__name__})"
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            print(f"hilum db wait: gave up after {args.timeout:g} s: {reason}", file=sys.stderr)
            return 1
        time.sleep(min(1.0, remaining))


OP_THRESHS_HELP = ("the operating thresholds for these weights: a JSON list of 18 probabilities in [0, 1] in "
                   "labels.json order, null for an output they were not trained for (never reported); wins over "
                   "an op_threshs buffer in the weights file")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hilum", description="Hilum: decision support for chest radiographs.")
    commands = parser.add_subparsers(dest="command", required=True)

    up = commands.add_parser("up", help="run the embedded stack in the foreground until SIGTERM or Ctrl-C; "
                             "its doors are written to endpoints.json in the data directory")
    up.set_defaults(handler=_up)

    demo = commands.add_parser("demo", help="start the embedded stack and run the sample studies end to end")
    demo.add_argument("--keep-running", action="store_true", help="leave the stack up and print its doors")
    demo.add_argument("--fresh", action="store_true", help="delete the data and output folders first")
    demo.set_defaults(handler=_demo)

    ingest = commands.add_parser("ingest", help="submit DICOM files or folders to the ingestion service")
    ingest.add_argument("paths", nargs="+", type=Path)
    ingest.add_argument("--address", help="ingestion gRPC address (default from settings)")
    ingest.set_defaults(handler=_ingest)

    status = commands.add_parser("status", help="show where a study stands; without one, the whole pipeline "
                                 "(queues, studies by state, failures, dead letters)")
    status.add_argument("study_instance_uid", nargs="?")
    status.add_argument("--address", help="ingestion gRPC address (default from settings)")
    status.set_defaults(handler=_status)

    serve = commands.add_parser("serve", help="run a stage's gRPC server (several stages: their servers in one "
                                "process, each on its port, with the DICOM SCP and the assembler in threads if "
                                "named), or the CDS app, the DICOM SCP or the assembler alone")
    serve.add_argument("service", nargs="+", choices=[*STAGE_NAMES, "cds", "assembler", "dicom"])
    serve.set_defaults(handler=_serve)

    worker = commands.add_parser("worker", help="run a stage's Celery worker (several stages that each run a threads "
                                 "pool: one worker on their queues)")
    worker.add_argument("service", nargs="+", choices=list(STAGE_NAMES))
    worker.set_defaults(handler=_worker)

    models = commands.add_parser("models", help="build the ONNX models (cxr_findings, cxr_devices) and their manifests")
    models_commands = models.add_subparsers(dest="models_command", required=True)
    models_demo = models_commands.add_parser("demo", help="seeded demo weights, both models (version demo-untrained)")
    models_demo.set_defaults(handler=_models, weights=None, model=None, op_threshs=None)
    models_file = models_commands.add_parser(
        "fetch", help="the published torchxrayvision densenet121-res224-all weights: downloaded, or from a file")
    models_file.add_argument("--weights", type=Path,
                             help="a provisioned densenet121-res224-all checkpoint (nothing is downloaded)")
    models_file.add_argument("--url", default=PUBLISHED_WEIGHTS_URL,
                             help="where to download the checkpoint from without --weights (default: its release)")
    models_file.add_argument("--op-threshs", type=_op_threshs_file, metavar="FILE", help=OP_THRESHS_HELP)
    models_file.set_defaults(handler=_models, model="cxr_findings")
    models_import = models_commands.add_parser("import", help="a weights file for one model (its state_dict layout)")
    models_import.add_argument("--model", choices=["cxr_findings", "cxr_devices"], default="cxr_findings",
                               action=_FindingsOnlyOption)
    models_import.add_argument("--weights", type=Path, required=True, help="the state_dict (or checkpoint) file")
    models_import.add_argument("--op-threshs", type=_op_threshs_file, metavar="FILE", action=_FindingsOnlyOption,
                               help=f"cxr_findings only: {OP_THRESHS_HELP}")
    models_import.set_defaults(handler=_models)

    samples = commands.add_parser("samples", help="write the synthetic sample studies to a folder")
    samples.add_argument("out_dir", type=Path)
    samples.set_defaults(handler=_samples)

    pull = commands.add_parser("pull", help="pull new chest radiographs (CR, DX) from the configured PACS")
    pull.add_argument("--since", type=date.fromisoformat, help="Study Date to look from, YYYY-MM-DD "
                      "(default: a day ago; later polls look back a day from the previous one)")
    pull.add_argument("--every", type=_positive_seconds, nargs="?", const=0.0, metavar="SECONDS",
                      help="poll until SIGTERM, every SECONDS (default HILUM_PACS__POLL_INTERVAL_S)")
    pull.add_argument("--move-to", metavar="AE_TITLE", help="DIMSE PACS: C-MOVE to this AE (Hilum's DICOM door) "
                      "instead of C-GET")
    pull.set_defaults(handler=_pull)

    quarantine = commands.add_parser("quarantine", help="refused instances: list, show, release, delete")
    actions = quarantine.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="held entries, oldest first")
    listing.add_argument("--all", action="store_true", help="also released and deleted entries")
    for action, text in (("show", "one entry in full"), ("release", "run acceptance again on the kept bytes"),
                         ("delete", "delete the kept bytes (the record stays)")):
        actions.add_parser(action, help=text).add_argument("id", type=int)
    quarantine.set_defaults(handler=_quarantine)

    purge = commands.add_parser("purge", help="retention: delete stored data past its time")
    purge_commands = purge.add_subparsers(dest="purge_command", required=True)
    purge_images = purge_commands.add_parser(
        "images", help="delete the stored images of studies received more than DAYS ago whose processing has ended "
        "(reports, findings and deliveries stay)")
    purge_images.add_argument("--older-than", type=_days, required=True, metavar="DAYS",
                              help="purge studies whose every image arrived more than DAYS ago (at least 1)")
    purge_images.add_argument("--dry-run", action="store_true", help="print what would be purged; change nothing")
    purge_images.set_defaults(handler=_purge_images)

    reprocess = commands.add_parser(
        "reprocess", help="run chosen studies again under the model version now served; the new report supersedes "
        "the earlier one (FHIR amended, HL7 v2 correction, CDS)")
    chosen = reprocess.add_mutually_exclusive_group(required=True)
    chosen.add_argument("--study", action="append", metavar="UID", help="a Study Instance UID (repeat for more)")
    chosen.add_argument("--since", type=_study_date, metavar="DATE", help="studies whose study date is DATE or later")
    reprocess.add_argument("--until", type=_study_date, metavar="DATE",
                           help="with --since: up to and including DATE (default: today)")
    reprocess.add_argument("--dry-run", action="store_true", help="print what would be handed on; change nothing")
    reprocess.set_defaults(handler=_reprocess)

    labels = commands.add_parser("labels", help="label a radiology report (FILE or stdin) offline: cxr_findings "
                                 "findings and devices, each present/absent/uncertain, with side, severity, change")
    labels.add_argument("file", nargs="?", type=Path, metavar="FILE", help="the report as text (default: stdin)")
    labels.add_argument("--json", action="store_true", help="print one JSON object: findings and devices")
    labels.set_defaults(handler=_labels)

    cds = commands.add_parser("cds", help="CDS Hooks service data")
    cds_commands = cds.add_subparsers(dest="cds_command", required=True)
    feedback = cds_commands.add_parser("feedback", help="card feedback counts per service, outcome and override "
                                       "reason (drift monitoring)")
    feedback.add_argument("--last", type=int, default=0, metavar="N", help="also print the N latest records as JSON")
    feedback.set_defaults(handler=_cds_feedback)
    rebuild = cds_commands.add_parser(
        "rebuild", help="write the CDS results cache again from the stored reports (after a new reference key, or "
        "a Redis that lost its data)")
    rebuild.set_defaults(handler=_cds_rebuild)

    publish = commands.add_parser("publish", help="deliveries to the FHIR server, HL7 v2 interface and PACS")
    publish_actions = publish.add_subparsers(dest="action", required=True)
    publish_list = publish_actions.add_parser("list", help="deliveries, newest first")
    publish_list.add_argument("--state", choices=["pending", "delivered", "dead"])
    publish_list.add_argument("--limit", type=int, default=100)
    publish_replay = publish_actions.add_parser(
        "replay", help="retry dead-lettered deliveries (and overdue pending ones) with fresh attempts")
    publish_replay.add_argument("--study", help="only this Study Instance UID")
    publish_replay.add_argument("--destination", choices=["fhir_server", "mllp", "pacs"])
    publish_status = publish_actions.add_parser(
        "status", help="send a status change of a published report (FHIR: versioned PUT; HL7 v2: OBR-25 C or X)")
    publish_status.add_argument("study", help="Study Instance UID")
    publish_status.add_argument("status", choices=["amended", "cancelled"])
    publish_status.add_argument("--model-version", required=True)
    publish.set_defaults(handler=_publish)

    dead = commands.add_parser("dead-letters", help="queue messages that can never succeed (their studies FAILED)")
    dead_actions = dead.add_subparsers(dest="action", required=True)
    dead_list = dead_actions.add_parser("list", help="the dead letters waiting for replay, oldest first")
    dead_list.add_argument("--all", action="store_true", help="replayed ones too")
    dead_replay = dead_actions.add_parser(
        "replay", help="hand the waiting dead letters to their queues again, once the cause is mended")
    dead_replay.add_argument("--id", type=int, action="append", help="only this dead letter (repeatable)")
    for dead_action in (dead_list, dead_replay):
        dead_action.add_argument("--stage", choices=["ingestion", "inference", "priors", "reporting", "publishing"])
    dead.set_defaults(handler=_dead_letters)

    db = commands.add_parser("db", help="database schema")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    db_commands.add_parser("upgrade", help="migrate to the latest revision").set_defaults(handler=_db_upgrade)
    db_wait = db_commands.add_parser("wait", help="wait until the database answers at the latest revision (exit 1 "
                                     "on timeout)")
    db_wait.add_argument("--timeout", type=_positive_seconds, default=300.0, metavar="SECONDS",
                         help="give up after this long (default 300)")
    db_wait.set_defaults(handler=_db_wait)
    return parser


# numpy's BLAS and OpenMP pools start a busy-waiting thread per core in every process that imports numpy. Hilum
# runs many processes per host and Triton's onnxruntime owns the model's threads, so each of Hilum's processes does
# its numerics on one thread instead of oversubscribing the cores. Set before numpy is imported; an operator's
# value wins.
NUMERIC_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def main(argv: list[str] | None = None) -> int:
    for variable in NUMERIC_THREAD_VARIABLES:
        os.environ.setdefault(variable, "1")
    args = build_parser().parse_args(argv)
    code: int = args.handler(args, HilumSettings())
    return code


if __name__ == "__main__":
    sys.exit(main())
