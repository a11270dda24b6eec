"""GET /substitutes and the staff/API side of substitution offers (accept, decline)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from bot.scopes import Needs
from services import substitutions as subs
from services.context import Context

MAX_PK = 2**63 - 1  # a BIGINT: a larger id cannot name a row, and PostgreSQL would refuse the parameter
OfferId = Annotated[int, Path(ge=1, le=MAX_PK, description="the substitution offer's id")]


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    customer_id: str | None = Field(default=None, min_length=1, max_length=100,
                                    description="when given, the offer must be this customer's (else 404)")
    actor: str | None = Field(default=None, min_length=1, max_length=100, description="who decided; default api")


def _bad(field: str, msg: str) -> HTTPException:
    return HTTPException(422, [{"loc": ["query", field], "msg": msg, "type": "value_error"}])


def _line_ref(line_id: str | None, order_id: str | None) -> tuple[int | None, str | None, str | None]:
    """(pk, order_id, line_id) from ?line_id=PK, ?line_id=ORDER/LINE or ?order_id=ORDER&line_id=LINE."""
    line_id = (line_id or "").strip()
    if order_id is not None:
        order_id = order_id.strip()
        if not order_id:
            raise _bad("order_id", "must not be empty")
        if not line_id:
            raise _bad("line_id", "required with order_id: the order's line id")
        return None, order_id, line_id
    if not line_id:
        raise _bad("line_id", "required: the order line's numeric id, or ORDER_ID/LINE_ID")
    if "/" in line_id:
        order, _, line = line_id.rpartition("/")  # order ids may hold a slash; line ids rarely do
        if not order.strip() or not line.strip():
            raise _bad("line_id", "ORDER_ID/LINE_ID needs both parts")
        return None, order.strip(), line.strip()
    if line_id.isdigit() and len(line_id) <= 19 and int(line_id) <= MAX_PK:
        return int(line_id), None, None
    raise _bad("line_id", "must be the order line's numeric id, or ORDER_ID/LINE_ID")


def _closed(exc: subs.OfferClosed) -> HTTPException:
    return HTTPException(409, {"msg": str(exc), "offer_id": exc.offer_id, "status": exc.status,
                               "decided_at": exc.decided_at.isoformat() if exc.decided_at else None})


def mount(app: FastAPI, ctx: Context, needs: Needs) -> None:

    @app.get("/substitutes", dependencies=[needs("read")], tags=["substitutions"])
    def get_substitutes(
        line_id: Annotated[str | None, Query(max_length=201, description="numeric id, or ORDER_ID/LINE_ID")] = None,
        order_id: Annotated[str | None, Query(max_length=100, description="with line_id: the order's id")] = None,
    ) -> dict[str, Any]:
        """Products that could replace a waiting line's units sooner, best first, with the reasons."""
        pk, order, line = _line_ref(line_id, order_id)
        try:
            with ctx.engine.connect() as conn:
                if pk is None:
                    pk = subs.load_line(conn, order_id=order, line_id=line).pk
                return subs.candidates_for_line(conn, ctx, pk)
        except subs.UnknownLine as exc:
            raise HTTPException(404, str(exc)) from exc

    @app.post("/substitutions/{offer_id}/accept", dependencies=[needs("write")], tags=["substitutions"])
    def accept_offer(offer_id: OfferId, body: DecisionIn | None = None) -> dict[str, Any]:
        """Switch the line to the offered substitute (as if the customer accepted); 409 when decided."""
        return _decide(subs.accept, ctx, offer_id, body)

    @app.post("/substitutions/{offer_id}/decline", dependencies=[needs("write")], tags=["substitutions"])
    def decline_offer(offer_id: OfferId, body: DecisionIn | None = None) -> dict[str, Any]:
        """Decline the offer: the line keeps waiting, the substitute is not offered again; 409 when decided."""
        return _decide(subs.decline, ctx, offer_id, body)


def _decide(decision: Callable[..., dict[str, Any]], ctx: Context, offer_id: int,
            body: DecisionIn | None) -> dict[str, Any]:
    """subs.accept or subs.decline through the API: 404 for an unknown offer, 409 for one already decided."""
    body = body or DecisionIn()
    try:
        return decision(ctx, offer_id, customer_id=body.customer_id, via="api", actor=body.actor or "api")
    except subs.UnknownOffer as exc:
        raise HTTPException(404, str(exc)) from exc
    except subs.OfferClosed as exc:
        raise _closed(exc) from exc
