"""The sweeper wired to a real container: dead letters of the in-process queue reach the store."""

from __future__ import annotations

import threading
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from coursecrafter_server.bootstrap import build_container
from coursecrafter_server.domain import JobStatus, Video, VideoKind, VideoStatus
from coursecrafter_server.sweeper import Sweeper
from coursecrafter_worker.queue.base import Requeue


def _enqueued_and_consumed(container, handler):
    """An uploaded video enqueued, then its message consumed by `handler` until the in-process
    queue has nothing left (acked or dead-lettered)."""
    now = datetime.now(timezone.utc)
    video = Video(id=uuid.uuid4().hex, owner_id="u1", course_id=None, kind=VideoKind.VIDEO,
                  title="t", filename="t.mp4", content_type="video/mp4", size=10, sha256=None,
                  status=VideoStatus.UPLOADED, created_at=now, updated_at=now)
    container.store.add_video(video)
    job = container.jobs.enqueue(video)
    stop = threading.Event()
    consumer = threading.Thread(target=container.queue.consume, args=(handler,),
                                kwargs={"concurrency": 1, "stop": stop})
    consumer.start()
    try:
        assert container.queue.join(timeout=10)
    finally:
        stop.set()
        consumer.join()
    return video, job


def test_a_job_the_queue_gave_up_on_fails_its_video(settings_factory):
    container = build_container(settings_factory(max_attempts=2, transcode_concurrency=0))

    def never_finishes(message):  # e.g. a transcoder that cannot report, every time
        raise Requeue("outcome not reported")

    video, job = _enqueued_and_consumed(container, never_finishes)
    sweeper = Sweeper(container, interval=3600)
    assert sweeper.settle_dead_letters() == 1
    assert sweeper.settle_dead_letters() == 0  # each letter is settled once
    failed = container.store.get_video(video.id)
    assert failed.status is VideoStatus.FAILED and failed.error_code == "worker_lost"
    assert "coursecrafter retry" in failed.error_message
    assert container.store.get_job(job.id).status is JobStatus.FAILED
    container.close()


def test_a_dead_letter_whose_settling_failed_is_settled_by_the_next_sweep(settings_factory):
    container = build_container(settings_factory(max_attempts=1, transcode_concurrency=0))
    video, _ = _enqueued_and_consumed(container, _crash)

    real_get_job = container.store.get_job
    container.store.get_job = lambda job_id: (_ for _ in ()).throw(OSError("store away"))
    sweeper = Sweeper(container, interval=3600)
    with pytest.raises(OSError):
        sweeper.settle_dead_letters()
    assert container.store.get_video(video.id).status is VideoStatus.QUEUED  # not yet...
    container.store.get_job = real_get_job
    assert sweeper.settle_dead_letters() == 1  # ...but the letter was kept, not dropped
    failed = container.store.get_video(video.id)
    assert failed.status is VideoStatus.FAILED and failed.error_code == "worker_error"
    container.close()


def _crash(message):
    raise RuntimeError("transcoder bug")


def test_the_sweep_forgets_webhook_event_ids_after_a_week(settings_factory):
    container = build_container(settings_factory(transcode_concurrency=0))
    now = datetime.now(timezone.utc)
    container.store.record_event("old", now - timedelta(days=8))
    container.store.record_event("recent", now - timedelta(days=1))
    Sweeper(container, interval=3600).sweep_once()
    assert not container.store.has_event("old")
    assert container.store.has_event("recent")  # a late retry of it is still a duplicate
    container.close()


# Storage-vs-store reconciliation (issue "Hardening" #2) ------------------------------------------
@pytest.fixture(params=["local", "s3"])
def storage_settings(request):
    if request.param == "s3":
        endpoint = request.getfixturevalue("moto_endpoint")
        bucket = request.getfixturevalue("s3_bucket")
        return {"storage_url": f"s3://{bucket}/sw-{uuid.uuid4().hex[:8]}",
                "s3_endpoint_url": endpoint}
    return {}


def _put_object(container, tmp_path, key: str) -> None:
    (tmp_path / "obj").write_bytes(b"bytes of " + key.encode())
    container.storage.upload_file(tmp_path / "obj", key, "application/octet-stream")


def _open_upload_with_a_part(container, key: str) -> str:
    import httpx

    storage = container.storage
    upload_id = storage.create_multipart_upload(key, "video/mp4")
    url = storage.presign_upload_part(key, upload_id, 1, 60, content_length=4)
    if "/blobs/" in url:  # the local adapter's URLs are served by the API: store it directly
        storage.write_part(key, upload_id, 1, b"part")
    else:
        assert httpx.put(url, content=b"part", timeout=30).status_code == 200
    return upload_id


def _stored(container) -> set[str]:
    storage = container.storage
    return ({o.key for root in ("uploads/", "videos/", "attachments/")
             for o in storage.list_objects(root)}
            | {f"open:{u.key}" for root in ("uploads/", "attachments/")
               for u in storage.list_multipart_uploads(root)})


def test_reconciliation_removes_what_no_video_owns_once_past_the_grace(
        settings_factory, storage_settings, tmp_path):
    container = build_container(settings_factory(transcode_concurrency=0, **storage_settings))
    now = datetime.now(timezone.utc)
    live = Video(id=uuid.uuid4().hex, owner_id="u1", course_id=None, kind=VideoKind.VIDEO,
                 title="t", filename="t.mp4", content_type="video/mp4", size=10, sha256=None,
                 status=VideoStatus.PROCESSING, created_at=now, updated_at=now)
    container.store.add_video(live)
    gone, gone_too = uuid.uuid4().hex, uuid.uuid4().hex
    for key in (f"uploads/{live.id}/source", f"videos/{live.id}/hls/master.m3u8",
                f"videos/{gone}/hls/720p/seg0.ts", f"videos/{gone}/poster.jpg",
                f"uploads/{gone}/source", f"attachments/{gone_too}/source"):
        _put_object(container, tmp_path, key)
    _open_upload_with_a_part(container, f"uploads/{live.id}/source")
    _open_upload_with_a_part(container, f"uploads/{gone_too}/source")
    live_keys = {f"uploads/{live.id}/source", f"videos/{live.id}/hls/master.m3u8",
                 f"open:uploads/{live.id}/source"}
    everything = _stored(container)
    assert len(everything) == 8

    sweeper = Sweeper(container, interval=3600)
    # Young orphans are left alone: a new upload exists in storage a moment before its record.
    young = sweeper.reconcile_storage(now)
    assert young[0] == 0
    assert _stored(container) >= everything - {f"open:uploads/{gone_too}/source"}
    # moto reports every multipart upload as started in 2010, so on S3 only objects are young.
    assert young[1] == (1 if "s3_endpoint_url" in storage_settings else 0)

    deleted, aborted = sweeper.reconcile_storage(now + timedelta(hours=2))
    assert (deleted, young[1] + aborted) == (4, 1)
    assert _stored(container) == live_keys
    assert sweeper.reconcile_storage(now + timedelta(hours=2)) == (0, 0)
    container.close()


def test_the_sweep_reconciles_at_its_own_interval(settings_factory, tmp_path):
    container = build_container(settings_factory(transcode_concurrency=0, orphan_grace=0,
                                                 orphan_sweep_interval=3600))
    orphan = f"videos/{uuid.uuid4().hex}/poster.jpg"
    _put_object(container, tmp_path, orphan)
    sweeper = Sweeper(container, interval=3600)
    sweeper.sweep_once()  # the first sweep reconciles...
    assert container.storage.head(orphan) is None
    _put_object(container, tmp_path, orphan)
    sweeper.sweep_once()  # ...the next ones only once the interval has passed
    assert container.storage.head(orphan) is not None
    container.close()
