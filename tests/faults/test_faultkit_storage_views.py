"""The fault suite's end-state checks read the storage through a view (faultkit.LocalBlobs,
faultkit.S3Blobs). A view that looked in the wrong place would let every check pass on nothing:
here each one is shown a complete set of outputs, then a stray object, a source and an open
multipart upload, and must see each of them (on S3, only under the server's own prefix)."""

from __future__ import annotations

import uuid

import pytest
from faultkit import (
    LocalBlobs,
    S3Blobs,
    assert_outputs_complete,
    assert_storage_clean,
    source_exists,
    storage_view,
    wait_source_gone,
)

pytestmark = [pytest.mark.faults]

MASTER = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360\n360p/index.m3u8\n"
MEDIA = ("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\nseg_000.ts\n#EXTINF:1.5,\nseg_001.ts\n"
         "#EXT-X-ENDLIST\n")


def _put(view, key: str, data: bytes) -> None:
    if isinstance(view, LocalBlobs):
        path = view.root / "objects" / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    else:
        view.client.put_object(Bucket=view.bucket, Key=view._full(key), Body=data)


def _delete(view, key: str) -> None:
    if isinstance(view, LocalBlobs):
        (view.root / "objects" / key).unlink()
    else:
        view.client.delete_object(Bucket=view.bucket, Key=view._full(key))


@pytest.fixture(params=["local", "s3"])
def view(request, tmp_path, lab):
    env = lab.storage_env(request.param)
    home = tmp_path / "home"
    if request.param == "local":
        for sub in ("objects", "multipart", "tmp"):
            (home / "blobs" / sub).mkdir(parents=True)
    view = storage_view(env, home)
    assert view.kind == request.param
    return view


def test_views_see_outputs_strays_sources_and_open_uploads(view):
    vid = uuid.uuid4().hex
    base = f"videos/{vid}/"
    for key, data in {"hls/master.m3u8": MASTER, "hls/360p/index.m3u8": MEDIA,
                      "hls/360p/seg_000.ts": "x" * 10, "hls/360p/seg_001.ts": "y"}.items():
        _put(view, base + key, data.encode())
    _put(view, f"videos/{vid}x/hls/master.m3u8", b"another video's: not under videos/{vid}/")
    video = {"id": vid, "renditions": [{"height": 360}], "duration": 3.5, "poster_url": None}
    assert assert_outputs_complete(view, video) == {"hls/360p/index.m3u8": 2}

    _put(view, base + "hls/360p/seg_002.ts", b"stale")
    with pytest.raises(AssertionError, match="seg_002.ts"):
        assert_outputs_complete(view, video)
    _delete(view, base + "hls/360p/seg_002.ts")
    _put(view, base + "hls/360p/seg_001.ts", b"")  # empty segment
    with pytest.raises(AssertionError, match="seg_001.ts"):
        assert_outputs_complete(view, video)

    assert not source_exists(view, vid)
    _put(view, f"uploads/{vid}/source", b"lecture")
    assert source_exists(view, vid)
    with pytest.raises(AssertionError, match="to be deleted"):
        wait_source_gone(view, vid, timeout=0.3)
    _delete(view, f"uploads/{vid}/source")
    wait_source_gone(view, vid, timeout=1)

    assert_storage_clean(view)
    if isinstance(view, LocalBlobs):
        (view.root / "multipart" / "u1").mkdir()
        (view.root / "multipart" / "u1" / "00001.part").write_bytes(b"part")
    else:
        # An upload under another prefix (another test's server) is none of this one's.
        other = S3Blobs(view.bucket, f"{view.prefix}-other", view.endpoint_url)
        other.client.create_multipart_upload(Bucket=view.bucket, Key=other._full("a"))
        assert_storage_clean(view)
        assert other.leftovers()
        view.client.create_multipart_upload(Bucket=view.bucket,
                                            Key=view._full(f"uploads/{vid}/source"))
    with pytest.raises(AssertionError, match="leftovers"):
        assert_storage_clean(view)
