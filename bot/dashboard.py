"""The operations dashboard: GET /dashboard (HTML), /dashboard/data (the snapshot as JSON), /dashboard/stream
(server-sent events: a new snapshot whenever the figures change), the lists behind its numbers, sign-in, and
the task buttons. Figures come from services.ops_figures; sign-in rules are in bot/dashboard_auth.py;
docs/dashboard.md tells the whole story.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from fastapi import FastAPI, Form, HTTPException, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, RedirectResponse, Response, StreamingResponse

from bot import dashboard_lists, dashboard_view
from bot.dashboard_auth import COOKIE_PATH, Sessions, Viewer
from bot.dashboard_stream import Hub, stream
from bot.scopes import Needs
from services import ops_figures
from services.channels import list_staff
from services.context import Context

MAX_PK = 2**63 - 1
LOCAL_ONLY = ("The dashboard answers only this machine (127.0.0.1 / ::1) while no API token is set. "
              "Set api_token to sign in from elsewhere (docs/dashboard.md).")


def same_origin(request: Request) -> bool:
    """A browser names where a request comes from; an action from another site's page is refused.

    Sec-Fetch-Site is the browser's own verdict. Without it, Origin must be this host; the pages send no
    referrer, so a form's Origin is the opaque "null", which only counts when Sec-Fetch-Site vouches for it.
    API clients (curl, SDKs) send neither header and are not affected.
    """
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site in ("same-origin", "none")
    origin = request.headers.get("origin")
    return origin is None or urlsplit(origin).netloc == request.headers.get("host", "")


def mount(app: FastAPI, ctx: Context, needs: Needs, kick: Callable[[], None]) -> None:
    """The dashboard checks tokens itself (bot/dashboard_auth.py), so that it can also take its session cookie
    and answer a browser with the login form: looking needs `read`, acting `write`. `kick` wakes the worker."""
    del needs
    sessions = Sessions(ctx)
    hub = Hub(ctx, dashboard_view.figures)

    def refused(request: Request) -> Response:
        """Not signed in: the login form for a browser on a guarded app, else 401/403 with the reason."""
        wants_html = "text/html" in request.headers.get("accept", "")
        if sessions.guarded:
            if wants_html and request.method == "GET":
                return RedirectResponse(f"{COOKIE_PATH}/login", status_code=303)
            return JSONResponse({"detail": "sign in at /dashboard/login or send the bearer token"}, 401,
                                headers={"WWW-Authenticate": "Bearer"})
        if wants_html:
            return dashboard_view.page("dashboard_refused.html.j2", 403, message=LOCAL_ONLY)
        return JSONResponse({"detail": LOCAL_ONLY}, 403)

    @app.get(COOKIE_PATH, include_in_schema=False)
    async def dashboard(request: Request) -> Response:
        viewer = sessions.viewer(request)
        if viewer is None:
            return refused(request)
        seq, snap, html = await run_in_threadpool(hub.current)
        return dashboard_view.page(
            "dashboard.html.j2", s=snap, figures=html, seq=seq, staff_id=viewer.staff_id, via=viewer.via,
            csrf=sessions.csrf(viewer), guarded=sessions.guarded,
            refresh=ctx.settings.dashboard.refresh_seconds)

    @app.get(f"{COOKIE_PATH}/data")
    def dashboard_data(request: Request) -> Response:
        """Everything the dashboard shows, as JSON (services.ops_figures.snapshot)."""
        if sessions.viewer(request) is None:
            return refused(request)
        with ctx.engine.connect() as conn:
            return JSONResponse(ops_figures.snapshot(conn, ctx.now(), ctx.settings),
                                headers={"Cache-Control": "no-store"})

    @app.get(f"{COOKIE_PATH}/stream")
    def dashboard_stream(request: Request, seq: Annotated[int, Query(ge=0)] = 0) -> Response:
        """Server-sent events: `snapshot` {seq, snapshot, html} each time the figures change."""
        if sessions.viewer(request) is None:
            return refused(request)
        return StreamingResponse(stream(hub, request, seq), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    @app.get(f"{COOKIE_PATH}/app.js", include_in_schema=False)
    def script() -> Response:
        return Response(dashboard_view.SCRIPT.read_text(), media_type="text/javascript",
                        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"})

    def login_form(request: Request, error: str | None = None, status_code: int = 200) -> Response:
        if not sessions.guarded and sessions.viewer(request) is None:
            return refused(request)
        return dashboard_view.page("dashboard_login.html.j2", status_code, error=error, guarded=sessions.guarded)

    @app.get(f"{COOKIE_PATH}/login", include_in_schema=False)
    def login_page(request: Request) -> Response:
        return login_form(request)

    @app.post(f"{COOKIE_PATH}/login", include_in_schema=False)
    def login(request: Request, token: Annotated[str, Form(max_length=1000)] = "",
              staff_id: Annotated[str, Form(max_length=100)] = "") -> Response:
        if not same_origin(request):
            return login_form(request, "Sign in from the dashboard's own page.", 403)
        caller = sessions.login(token)
        if sessions.guarded and caller is None:
            return login_form(request, "That token is not the API token.", 401)
        if caller is not None and "read" not in caller.scopes:
            return login_form(request, f"The token {caller.name!r} lacks the 'read' scope the dashboard needs.", 403)
        staff_id = staff_id.strip()
        if staff_id:
            with ctx.engine.connect() as conn:
                if not any(m["staff_id"] == staff_id for m in list_staff(conn, ctx.settings)):
                    return login_form(request, f"No staff member {staff_id!r}: leave it empty to only look.", 422)
        response = RedirectResponse(COOKIE_PATH, status_code=303)
        sessions.set_cookie(response, request, sessions.issue(staff_id, caller))
        return response

    @app.post(f"{COOKIE_PATH}/logout", include_in_schema=False)
    def logout(request: Request, csrf: Annotated[str, Form(max_length=200)] = "") -> Response:
        viewer = sessions.viewer(request)
        if viewer is not None and (not same_origin(request) or not sessions.csrf_ok(viewer, csrf)):
            return JSONResponse({"detail": "the form's security token is missing or wrong"}, 403)
        response = RedirectResponse(f"{COOKIE_PATH}/login" if sessions.guarded else COOKIE_PATH, status_code=303)
        sessions.clear_cookie(response, request)
        return response

    def acting(request: Request) -> Viewer | Response:
        """The signed-in staff member, if this request may act for them: from the dashboard's own page."""
        viewer = sessions.viewer(request)
        if viewer is None:
            return refused(request)
        if not same_origin(request) or not sessions.csrf_ok(viewer, request.headers.get("x-csrf-token", "")):
            return JSONResponse({"detail": "an action must come from the dashboard's own page"}, 403)
        if "write" not in viewer.scopes:
            return JSONResponse({"detail": "acting on tasks needs a token with the 'write' scope"}, 403)
        if not viewer.staff_id:
            return JSONResponse({"detail": "sign in with your staff id to act on tasks"}, 403)
        return viewer

    @app.post(f"{COOKIE_PATH}/tasks/{{task_id}}/{{action}}")
    def task_action(request: Request, task_id: Annotated[int, Path(ge=1, le=MAX_PK)],
                    action: Literal["take", "finish", "reassign"],
                    to: Annotated[str | None, Query(min_length=1, max_length=100,
                                                    description="reassign: the staff member given the task")] = None,
                    ) -> Response:
        """Take, finish or reassign (`?to=`) a task as the signed-in staff member (services.tasks, as
        POST /tasks/{id}/take|finish|reassign)."""
        viewer = acting(request)
        if isinstance(viewer, Response):
            return viewer
        if action == "reassign" and to is None:
            return JSONResponse({"detail": [{"loc": ["query", "to"], "msg": "name who gets the task",
                                             "type": "missing"}]}, 422)
        return _act(ctx, task_id, action, viewer, kick, to)

    @app.get(f"{COOKIE_PATH}/tasks/{{task_id}}/choices")
    def task_choices(request: Request, task_id: Annotated[int, Path(ge=1, le=MAX_PK)]) -> Response:
        """Who the signed-in staff member may give this open task to (the Reassign picker)."""
        viewer = acting(request)
        if isinstance(viewer, Response):
            return viewer
        return _guarded(lambda: _choices(ctx, task_id, viewer))

    dashboard_lists.mount(app, ctx, sessions, refused)


def _act(ctx: Context, task_id: int, action: str, viewer: Viewer, kick: Callable[[], None],
         to: str | None) -> Response:
    from services import tasks  # the tasks part owns these; imported when used

    def run() -> Response:
        if action == "take":
            task = tasks.take(ctx, task_id, viewer.staff_id, via="dashboard")
        elif action == "reassign":
            task = tasks.reassign(ctx, task_id, viewer.staff_id, to or "", via="dashboard")
        else:
            task = tasks.finish(ctx, task_id, viewer.staff_id, via="dashboard")
        kick()  # the command may queue a message to the team
        return JSONResponse({"task": _jsonable(task)})

    return _guarded(run, giving=action == "reassign")


def _choices(ctx: Context, task_id: int, viewer: Viewer) -> Response:
    from services import tasks

    with ctx.engine.connect() as conn:
        who = tasks.actor(conn, ctx, viewer.staff_id, via="dashboard")
    task, people = tasks.reassign_choices(ctx, task_id, who)
    return JSONResponse({"task": _jsonable(task),
                         "choices": [{"staff_id": m.staff_id, "name": m.name or m.staff_id} for m in people]})


def _guarded(run: Callable[[], Response], giving: bool = False) -> Response:
    """A task command's refusals as HTTP answers, as POST /tasks/{id}/... gives them. `giving`: a reassignment,
    where someone who cannot work the task is a bad `to` (422), not a refusal of the viewer (403)."""
    from services import tasks

    try:
        return run()
    except tasks.TaskNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except (tasks.TaskClosed, tasks.TaskTaken) as exc:
        return JSONResponse({"detail": str(exc), "task": _jsonable(exc.task)}, 409)
    except tasks.CannotOwn as exc:
        if giving:
            return JSONResponse({"detail": [{"loc": ["query", "to"], "msg": str(exc), "type": "value_error"}]}, 422)
        raise HTTPException(403, str(exc)) from None
    except tasks.NotAllowed as exc:
        raise HTTPException(403, str(exc)) from None
    except tasks.UnknownStaff as exc:
        return JSONResponse({"detail": [{"loc": ["query", "to" if exc.field == "to" else "session"],
                                         "msg": str(exc), "type": "unknown_staff"}]}, 422)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, date):
        return value.isoformat()
    return value
