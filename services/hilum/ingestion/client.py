"""A small client for the ingestion gRPC API, used by the CLI, the demo and the tests."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from hilum.common import study_state
from hilum.common.grpc_server import channel_options
from hilum.common.grpc_tls import client_channel
from hilum.common.polling import wait_until
from hilum.common.settings import GrpcSection
from hilum.v1 import ingestion_pb2, ingestion_pb2_grpc


def rejection_line(result: ingestion_pb2.InstanceResult) -> str:
    """A rejected instance for a person: "REJECTED  <label>: <reason> [<CODE>]"."""
    code = ingestion_pb2.RejectionCode.Name(result.rejection.code).removeprefix("REJECTION_CODE_")
    return f"REJECTED  {result.label}: {result.rejection.reason} [{code}]"


class IngestionClient:
    """Submits DICOM files and asks for study status over one channel."""

    def __init__(self, address: str, max_message_bytes: int = 256 * 1024 * 1024,
                 section: GrpcSection | None = None) -> None:
        """A channel to address; over TLS when section (the [grpc] settings) names a CA or certificate."""
        self._channel = client_channel(address, section, channel_options(max_message_bytes))
        self._stub = ingestion_pb2_grpc.IngestionServiceStub(self._channel)

    def submit_files(self, paths: Iterable[Path], timeout_s: float = 60.0) -> list[ingestion_pb2.InstanceResult]:
        """Submit each file in its own call (radiographs are large); the label is the file name."""
        return list(self.submit_each(paths, timeout_s))

    def submit_each(self, paths: Iterable[Path], timeout_s: float = 60.0) -> Iterator[ingestion_pb2.InstanceResult]:
        """submit_files, yielding each file's result as soon as it is known (a batch shows its progress)."""
        for path in paths:
            request = ingestion_pb2.SubmitInstancesRequest(
                instances=[ingestion_pb2.DicomInstance(label=path.name, content=path.read_bytes())]
            )
            yield from self._stub.SubmitInstances(request, timeout=timeout_s).results

    def status(self, study_instance_uid: str, timeout_s: float = 10.0) -> ingestion_pb2.StudyStatus:
        request = ingestion_pb2.GetStudyStatusRequest(study_instance_uid=study_instance_uid)
        response: ingestion_pb2.StudyStatus = self._stub.GetStudyStatus(request, timeout=timeout_s)
        return response

    def wait_for(self, uids: Iterable[str], timeout_s: float = 300.0, poll_s: float = 0.25,
                 check: Callable[[], None] | None = None) -> dict[str, ingestion_pb2.StudyStatus]:
        """Poll until every study is REPORTED or FAILED; raises TimeoutError naming how many are left.

        check, if given, runs on every poll and may raise to stop waiting (e.g. a stage process died).
        """
        pending = list(dict.fromkeys(uids))
        done: dict[str, ingestion_pb2.StudyStatus] = {}

        def all_finished() -> bool:
            for uid in list(pending):
                status = self.status(uid)
                if status.state in study_state.TERMINAL:
                    done[uid] = status
                    pending.remove(uid)
            return not pending

        wait_until(all_finished, timeout_s, poll_s, lambda: f"{len(done) + len(pending)} studies to finish "
                   f"({len(pending)} studies not finished)", on_poll=check)
        return done

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> IngestionClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
