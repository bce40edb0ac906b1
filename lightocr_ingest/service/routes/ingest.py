"""``POST /v1/ingest`` and ``GET /v1/jobs/{job_id}``: files queued for ingestion, then polled.

The uploads are saved and checked (size, files, type, pages of the whole request, pixels a
page, the collection's mode) before the 202, so what can be refused is refused at once; the
rest is the job's to report (``jobs.py``). Job records outlive the process (``job_store.py``).
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path

from fastapi import APIRouter, File, Form, UploadFile
from fastapi.responses import JSONResponse

from ...errors import ConfigError
from ..errors import ServiceError, overloaded
from ..jobs import Job, JobFile, known_names, new_job_id
from ..state import COLLECTION_NAME, ServiceDep
from ..slots import retry_after
from ..uploads import check_upload, request_pages_over, save_upload

router = APIRouter(prefix="/v1", tags=["ingest"])  # the API key: checked by the middleware


@router.post("/ingest", status_code=202, summary="Queue files for ingestion; poll the job")
async def ingest(service: ServiceDep, file: list[UploadFile] = File(..., description="one or more PDFs or images"),
                 collection: str | None = Form(None, pattern=COLLECTION_NAME, max_length=64)):
    settings = service.settings
    collection = collection or settings.config.qdrant.collection
    if service.runner.queue.full():  # before saving and opening the uploads (the body is parsed by now)
        raise overloaded(retry_after(service.workload.seconds_until_the_job_ends()), "ingest jobs")
    if len(file) > settings.max_files:
        raise ServiceError(413, "too_many_files", f"the request brings {len(file)} files, over the limit of "
                                                  f"{settings.max_files} a request",
                           "send the files in several requests, or start the service with a larger --max-files")
    folder = Path(tempfile.mkdtemp(dir=service.upload_root))
    try:
        files, pages, peak = [], 0, 0
        for index, (upload, known_as) in enumerate(zip(file, known_names([u.filename or "" for u in file]))):
            path = await save_upload(upload, folder, f"{index:05d}", settings.max_upload_bytes,
                                     settings.max_upload_mb)
            cost = await asyncio.to_thread(check_upload, path, upload.filename or known_as, settings)
            pages, peak = pages + cost.pages, max(peak, cost.peak_pixels)
            if pages > settings.max_pages:  # the job is the request: its pages together are budgeted
                raise request_pages_over(pages, settings.max_pages, index + 1)
            files.append(JobFile(file_name=upload.filename or path.name, path=str(path), known_as=known_as))
        job = Job(job_id=new_job_id(), collection=collection, folder=folder, files=files, pages_expected=pages,
                  peak_pixels=peak)
        try:
            await asyncio.to_thread(service.ingestor_for, collection)  # a mode mismatch fails now, not later
            service.runner.submit(job)
        except asyncio.QueueFull:
            raise overloaded(retry_after(service.workload.seconds_until_the_job_ends()), "ingest jobs") from None
    except ConfigError as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise ServiceError(422, "invalid_request", str(exc), "see the message") from None
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return JSONResponse({"job_id": job.job_id, "status": job.status}, status_code=202,
                        headers={"Location": f"/v1/jobs/{job.job_id}"})


@router.get("/jobs/{job_id}", summary="A job's status, pages and problems")
async def job_status(job_id: str, service: ServiceDep):
    job = await asyncio.to_thread(service.runner.get, job_id)
    if job is None:
        raise ServiceError(404, "not_found", f"no job {job_id[:80]!r}",
                           "use the job_id that POST /v1/ingest answered; the last 1,000 finished jobs are kept")
    return job
