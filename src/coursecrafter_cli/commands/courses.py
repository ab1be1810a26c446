"""``coursecrafter courses create | list | show | publish | unpublish | rename | delete``.

Stable output (stdout):

==============  ==============================================  =============================================
command         human                                           ``--json``
==============  ==============================================  =============================================
courses create  ``Created course <id>: <title>``                the course ``{id, title, description,
                                                                published, created_at, updated_at,
                                                                lecture_count, attachment_count}``
courses list    one line per course: ``<id>  <draft|published>  a JSON array of course records
                <n> lecture(s)  <title>`` (plus ``, <n>
                attachment(s)`` when any); none: nothing on
                stdout, ``No courses yet.`` on stderr
courses show    ``<id>  <draft|published>  <title>``, then      ``{"course": <course>, "lectures": [...],
                ``Lectures:`` and ``Attachments:`` with one      "attachments": [...]}`` (video records)
                video line each
publish,        ``Published course <id>: <title>`` /            the course
unpublish,      ``Unpublished …`` / ``Renamed course <id>:
rename          <title>``
courses delete  ``Deleted course <id>.`` (asks first, unless    ``{"id": <id>, "deleted": true}``
                ``--yes``; without a terminal ``--yes`` is
                required)
==============  ==============================================  =============================================
"""

from typing import Annotated, Any

import typer

from coursecrafter_cli.client import Client
from coursecrafter_cli.commands.common import (
    ApiUrlOption,
    ProfileOption,
    JsonOption,
    YesOption,
    delete_confirmed,
    emit,
    emit_json,
    handle_errors,
    info,
    make_client,
)

app = typer.Typer(
    name="courses",
    help="Create, list, publish, rename and delete your courses.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)

CourseIdArgument = Annotated[str, typer.Argument(metavar="COURSE_ID", help="The course id.",
                                                 show_default=False)]


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def state(course: dict[str, Any]) -> str:
    return "published" if course.get("published") else "draft"


def course_line(course: dict[str, Any]) -> str:
    counts = _plural(int(course.get("lecture_count") or 0), "lecture")
    attachments = int(course.get("attachment_count") or 0)
    if attachments:
        counts += f", {_plural(attachments, 'attachment')}"
    return f"{course.get('id')}  {state(course)}  {counts}  {course.get('title')}"


@app.command("create")
@handle_errors
def create(
    title: Annotated[str, typer.Argument(metavar="TITLE", help="The course title.",
                                         show_default=False)],
    description: Annotated[
        str, typer.Option("--description", "-d", help="A longer description.")
    ] = "",
    api_url: ApiUrlOption = None,
    profile: ProfileOption = None,
    json_output: JsonOption = False,
) -> None:
    """Create a course (prints its id: pass it to `upload --course`)."""
    with make_client(api_url) as client:
        course = client.create_course(title, description)
    if json_output:
        emit_json(course)
    else:
        emit(f"Created course {course.get('id')}: {course.get('title', title)}")


@app.command("list")
@handle_errors
def list_courses(
    api_url: ApiUrlOption = None,
    profile: ProfileOption = None,
    json_output: JsonOption = False,
) -> None:
    """List your courses: draft or published, and how many lectures each has."""
    with make_client(api_url) as client:
        courses = client.list_courses()
    if json_output:
        emit_json(courses)
        return
    if not courses:
        info("No courses yet.")
    for course in courses:
        emit(course_line(course))


@app.command("show")
@handle_errors
def show(
    course_id: CourseIdArgument,
    api_url: ApiUrlOption = None,
    profile: ProfileOption = None,
    json_output: JsonOption = False,
) -> None:
    """Show a course with its lectures and attachments."""
    from coursecrafter_cli.commands.videos import video_line

    with make_client(api_url) as client:
        course = client.get_course(course_id)
        videos = client.list_videos(course_id)
    lectures = [v for v in videos if v.get("kind") != "attachment"]
    attachments = [v for v in videos if v.get("kind") == "attachment"]
    if json_output:
        emit_json({"course": course, "lectures": lectures, "attachments": attachments})
        return
    emit(f"{course.get('id')}  {state(course)}  {course.get('title')}")
    for label, items in (("Lectures", lectures), ("Attachments", attachments)):
        emit(f"{label}:" if items else f"{label}: none")
        for video in items:
            emit(f"  {video_line(video)}")


def _change(course_id: str, api_url: str | None, json_output: bool, verb: str,
            **changes: Any) -> None:
    with make_client(api_url) as client:
        course = client.update_course(course_id, **changes)
    if json_output:
        emit_json(course)
    else:
        emit(f"{verb} course {course.get('id')}: {course.get('title')}")


@app.command("publish")
@handle_errors
def publish(course_id: CourseIdArgument, api_url: ApiUrlOption = None,
            profile: ProfileOption = None, json_output: JsonOption = False) -> None:
    """Publish a course: students see it and its ready lectures."""
    _change(course_id, api_url, json_output, "Published", published=True)


@app.command("unpublish")
@handle_errors
def unpublish(course_id: CourseIdArgument, api_url: ApiUrlOption = None,
              profile: ProfileOption = None, json_output: JsonOption = False) -> None:
    """Turn a course back into a draft: students no longer see it."""
    _change(course_id, api_url, json_output, "Unpublished", published=False)


@app.command("rename")
@handle_errors
def rename(
    course_id: CourseIdArgument,
    title: Annotated[str, typer.Argument(metavar="TITLE", help="The new title.",
                                         show_default=False)],
    api_url: ApiUrlOption = None,
    profile: ProfileOption = None,
    json_output: JsonOption = False,
) -> None:
    """Give a course a new title."""
    _change(course_id, api_url, json_output, "Renamed", title=title)


@app.command("delete")
@handle_errors
def delete(
    course_id: CourseIdArgument,
    yes: YesOption = False,
    api_url: ApiUrlOption = None,
    profile: ProfileOption = None,
    json_output: JsonOption = False,
) -> None:
    """Delete a course (its videos stay, without a course). Asks first unless --yes."""
    delete_confirmed("course", course_id, yes=yes, api_url=api_url, json_output=json_output,
                     fetch=Client.get_course, remove=Client.delete_course)
