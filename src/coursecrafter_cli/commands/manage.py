"""``coursecrafter videos rename | delete`` and ``coursecrafter open``.

Stable output (stdout):

=============  ==============================================  ===================================
command        human                                           ``--json``
=============  ==============================================  ===================================
videos rename  ``Renamed video <id>: <title>``                 the video record
videos delete  ``Deleted video <id>.`` (asks first, unless     ``{"id": <id>, "deleted": true}``
               ``--yes``; without a terminal ``--yes`` is
               required)
open           the watch page's URL ``<api_url>/watch/<id>``   ``{"id": <id>, "url": <url>,
               (and a browser opens it, unless                 "opened": <bool>}``
               ``--no-browser`` or there is no display)
=============  ==============================================  ===================================
"""

from __future__ import annotations

import os
import sys
import webbrowser
from typing import Annotated

import typer

from coursecrafter_cli.commands import videos
from coursecrafter_cli.client import Client
from coursecrafter_cli.commands.common import (
    ApiUrlOption,
    ProfileOption,
    JsonOption,
    YesOption,
    emit,
    emit_json,
    delete_confirmed,
    handle_errors,
    info,
    make_client,
)
from coursecrafter_cli.commands.videos import VideoIdArgument


@handle_errors
def rename(
    video_id: VideoIdArgument,
    title: Annotated[str, typer.Argument(metavar="TITLE", help="The new title.",
                                         show_default=False)],
    api_url: ApiUrlOption = None,
    profile: ProfileOption = None,
    json_output: JsonOption = False,
) -> None:
    """Give a video (or attachment) a new title."""
    with make_client(api_url) as client:
        video = client.rename_video(video_id, title)
    if json_output:
        emit_json(video)
    else:
        emit(f"Renamed video {video.get('id')}: {video.get('title')}")


@handle_errors
def delete(
    video_id: VideoIdArgument,
    yes: YesOption = False,
    api_url: ApiUrlOption = None,
    profile: ProfileOption = None,
    json_output: JsonOption = False,
) -> None:
    """Delete a video or attachment and everything stored for it. Asks first unless --yes."""
    delete_confirmed("video", video_id, yes=yes, api_url=api_url, json_output=json_output,
                     fetch=Client.get_video, remove=Client.delete_video)


def has_display() -> bool:
    """Whether a browser could show a window: on Linux and the BSDs only with an X11 or
    Wayland display (over SSH or in CI there is none)."""
    if sys.platform.startswith(("linux", "freebsd", "openbsd", "netbsd")):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


@handle_errors
def open_video(
    video_id: VideoIdArgument,
    no_browser: Annotated[
        bool, typer.Option("--no-browser", help="Only print the URL; do not open a browser.")
    ] = False,
    api_url: ApiUrlOption = None,
    profile: ProfileOption = None,
    json_output: JsonOption = False,
) -> None:
    """Print the watch page's URL of a video and open it in a browser (when there is one)."""
    with make_client(api_url) as client:
        client.get_video(video_id)  # yours (or published)? "video not found" otherwise
        url = client.watch_url(video_id)
    opened = False
    if not no_browser and has_display():
        try:
            opened = bool(webbrowser.open(url))
        except webbrowser.Error:
            opened = False
        if not opened:
            info("could not open a browser; open the URL yourself")
    if json_output:
        emit_json({"id": video_id, "url": url, "opened": opened})
    else:
        emit(url)


def add_to(main: typer.Typer) -> None:
    """Register ``videos rename``, ``videos delete`` and the top-level ``open``."""
    videos.app.command("rename")(rename)
    videos.app.command("delete")(delete)
    main.command("open")(open_video)
