"""Tasks over HTTP: POST /tasks/{id}/take, /tasks/{id}/finish and /tasks/{id}/reassign (docs/tasks.md).

The API's bearer token is the operator's; the body names the staff member acting ({"staff_id"}, or for a
reassignment {"by", "to"}), whose roles decide what they may do (services/tasks.py). Answers: 200 with the
task (and `changed`: false when the press changed nothing, a second Take by its owner); 404 no such task;
409 already finished (or taken by someone else), with the task as it stands; 403 the staff member may not
work the task; 422 an unknown staff member, or a reassignment to someone who cannot work it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Depends, FastAPI, HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from bot.drafts_api import same_origin
from bot.ids import RowId
from bot.scopes import Needs
from services import tasks
from services.context import Context


class ActorIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    staff_id: str = Field(min_length=1, max_length=100, description="who takes or finishes the task")


class ReassignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    by: str = Field(min_length=1, max_length=100, description="who reassigns (holds the task's role, or ops/admin)")
    to: str = Field(min_length=1, max_length=100, description="who gets the task (must be able to work it)")


def mount(app: FastAPI, ctx: Context, needs: Needs, kick: Callable[[], None]) -> None:
    """`kick`: wake the notification worker (a command's event may have planned a message)."""
    acting = [needs("write"), Depends(same_origin)]  # a browser page elsewhere must not act for a signed-in operator

    @app.post("/tasks/{task_id}/take", dependencies=acting)
    def take(task_id: RowId, body: ActorIn) -> Any:
        """The staff member takes the task: it becomes theirs (its owner)."""
        return _run(lambda: tasks.take(ctx, task_id, body.staff_id, via="api"), kick)

    @app.post("/tasks/{task_id}/finish", dependencies=acting)
    def finish(task_id: RowId, body: ActorIn) -> Any:
        """The staff member finishes the task (done)."""
        return _run(lambda: tasks.finish(ctx, task_id, body.staff_id, via="api"), kick)

    @app.post("/tasks/{task_id}/reassign", dependencies=acting)
    def reassign(task_id: RowId, body: ReassignIn) -> Any:
        """`by` gives the task to `to`."""
        return _run(lambda: tasks.reassign(ctx, task_id, body.by, body.to, via="api"), kick)


def _run(command: Callable[[], dict[str, Any]], kick: Callable[[], None]) -> Any:
    try:
        out = command()
    except tasks.TaskNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except (tasks.TaskClosed, tasks.TaskTaken) as exc:
        return JSONResponse({"detail": str(exc), "task": exc.task}, status_code=409)
    except tasks.NotAllowed as exc:
        raise HTTPException(403, str(exc)) from None
    except tasks.UnknownStaff as exc:
        raise HTTPException(422, [{"loc": ["body", exc.field], "msg": str(exc), "type": "value_error"}]) from None
    except tasks.CannotOwn as exc:
        raise HTTPException(422, [{"loc": ["body", "to"], "msg": str(exc), "type": "value_error"}]) from None
    if out.get("changed"):
        kick()
    return out
