"""``coursecrafter courses create | list``.

Stable output (stdout):

==============  ==============================================  =============================================
command         human                                           ``--json``
==============  ==============================================  =============================================
courses create  ``Created course <id>: <title>``                the course ``{id, title, description,
                                                                published, created_at, updated_at}``
courses list    one line per course: ``<id>  <title>`` (plus    a JSON array of course records
                ``  [published]``); none: nothing on stdout,
                ``No courses yet.`` on stderr
==============  ==============================================  =============================================
"""

from typing import Annotated

import typer

from coursecrafter_cli.commands.common import (
    ApiUrlOption,
    JsonOption,
    emit,
    emit_json,
    handle_errors,
    info,
    make_client,
)

app = typer.Typer(
    name="courses",
    help="Create and list your courses.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.command("create")
@handle_errors
def create(
    title: Annotated[str, typer.Argument(help="The course title.", show_default=False)],
    description: Annotated[
        str, typer.Option("--description", "-d", help="A longer description.")
    ] = "",
    api_url: ApiUrlOption = None,
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
    json_output: JsonOption = False,
) -> None:
    """List your courses."""
    with make_client(api_url) as client:
        courses = client.list_courses()
    if json_output:
        emit_json(courses)
        return
    if not courses:
        info("No courses yet.")
    for course in courses:
        published = "  [published]" if course.get("published") else ""
        emit(f"{course.get('id')}  {course.get('title')}{published}")
