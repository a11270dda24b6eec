"""Rules first: which intent a message is, from weighted patterns (English and Spanish) and the
entities found in it. Patterns run on folded text (lower case, no accents, no emoji)."""

from __future__ import annotations

import re
from datetime import date
from functools import lru_cache

from intents.entities import Matcher, extract, fold
from intents.model import CUSTOMER_INTENTS, SHARED_INTENTS, STAFF_INTENTS, UNKNOWN, Asker, Catalog, Understanding

Rule = tuple[str, float, re.Pattern[str]]


def _r(intent: str, weight: float, pattern: str) -> Rule:
    return intent, weight, re.compile(pattern)


CUSTOMER_RULES: tuple[Rule, ...] = (
    _r("opt_out", 3.2, r"\b(stop (texting|messaging|sending|emailing|contacting)( me)?|"
                       r"(dont|do not) want (any )?(more )?(notifications|messages|texts|updates|alerts)|"
                       r"no mas (mensajes|avisos|notificaciones)|ya no quiero (recibir )?\w*|"
                       r"no quiero (recibir )?(mas )?(avisos|alertas|actualizaciones))\b"),
    _r("opt_in", 2.6, r"(^\W*start\b|\b((get|receive) (the |my )?(notifications|updates|messages|alerts) again|"
                      r"turn (my |the )?(notifications|updates|messages|alerts) (back )?on|opt me back in|"
                      r"resubscribe|vuelve a enviar\w*|vuelvan a enviar\w*|suscribir\w* (otra vez|de nuevo)|"
                      r"otra vez|de nuevo los avisos|quiero (los|las|recibir) (avisos|alertas|notificaciones)))"),
    _r("set_preferences", 3.0, r"\b(de noche|por la noche|at night|"
                               r"(after|before|despues de las|antes de las) \d{1,2}(:\d\d)?\s*(am|pm|h)\b|"
                               r"(after|before) \d{1,2}:\d\d|de \d+ a \d+|"
                               r"from \d+ to \d+|between \d+|weekly|summary|resumen)\b"),
    _r("set_preferences", 2.3, r"(^\W*(whatsapp|sms|email|e-?mail|texts?|english|spanish|espanol|ingles)"
                               r"( please| pls| plz| por favor)?\W*$|\b(send|text) me (texts|sms|whatsapps?|emails?)"
                               r"|\b(switch|move) (me )?to \w+)"),
    _r("list_backorders", 2.5, r"\b((what|which) of (mine|my (items|orders|things))|"
                               r"(any|my|of mine|mis)\b.{0,25}\b(backorder\w*|back orders?)|"
                               r"everything (that'?s|thats|that is) backordered|do i have any backorders|"
                               r"(items|things|products) (am i|i'?m|im|i am) (still )?waitin\w* (on|for)|"
                               r"what (items|things|products) am i (still )?waitin\w*|"
                               r"things i'?m waiting for|list all|sigo esperando|"
                               r"(still )?pending (on|in|for) my (account|orders)|tengo algo (en espera|pendiente)|"
                               r"que (productos|cosas) (sigo|estoy) esperando)\b"),
    _r("subscribe_back_in_stock", 2.6, r"\b(ya volvio|volvio el|ha vuelto|han vuelto|vuelve el)\b"),
    _r("help", 1.8, r"\bwhat (kind of )?(things )?can (i|you) (ask|do|help)"),
    _r("thanks", 1.5, r"^\W*(ta|tks|tx|ty)\W*$"),
    _r("eta", 2.0, r"\b(whens|when'?s|(get|have|receive) (it|them|order \d+|my order|the order).{0,25}(before|by))\b"),
    _r("opt_out", 3.0, r"^\W*(stop|unsubscribe|baja|darme de baja|cancel(ar)? (suscripcion|mensajes)|parar?)\W*$"),
    _r("opt_out", 2.5, r"\b(unsubscribe|opt[\s-]?out|stop (all |sending |the )?(messages|texts|msgs|notifications|"
                       r"alerts|updates|emails)|no more (messages|texts|notifications|updates|emails)|"
                       r"dont (text|message|email|contact) me( anymore| again)?|"
                       r"(no|deja de|dejen de) (me )?(envie|enviar|mandar|mandes|escrib)\w*( mas)?|"
                       r"no quiero (recibir )?(mas )?(mensajes|notificaciones)|darme de baja|dar de baja)\b"),
    _r("opt_in", 3.0, r"^\W*(start|unstop|resume|alta|reanudar|volver a empezar)\W*$"),
    _r("opt_in", 2.5, r"\b(start (sending|messaging|texting)|resume (the )?(messages|notifications|updates|alerts)|"
                      r"(send|text|message) me (updates|messages|notifications) again|opt[\s-]?in|"
                      r"subscribe me (again|back)|turn (notifications|messages|alerts|updates) (back )?on|"
                      r"(quiero|volver a) recibir (los )?(mensajes|notificaciones|avisos)|reactiva\w*|"
                      r"dame de alta)\b"),
    _r("handoff", 2.5, r"\b(human|person|persona|agent|agente|representative|someone real|real person|somebody|"
                       r"operator|operador|call me|llamadme|llamame|speak to|talk to|hablar con|humano|"
                       r"customer service|atencion al cliente)\b"),
    _r("help", 2.0, r"^\W*(help|ayuda|menu|info)\W*$"),
    _r("help", 1.6, r"\b(what can you do|how does (this|it) work|what do you do|que puedes hacer|como funciona|"
                    r"necesito ayuda|help me|commands|comandos|que sabes hacer)\b"),
    _r("thanks", 1.5, r"\b(thanks?|thank you|thx|ty|cheers|gracias|muchas gracias|appreciate it|merci|great,? thanks)"
                      r"\b"),
    _r("greeting", 1.2, r"^\W*(hi+|hello+|hey+|hola+|buenas( tardes| noches)?|buenos dias|good (morning|afternoon|"
                        r"evening)|yo|hiya|greetings|que tal)\b"),
    _r("set_preferences", 2.2, r"\b((send|contact|message|notify|write|text|reach|email) me (by|on|via|through|"
                               r"using|only|in)|prefer|preference|preferencias?|digest|daily summary|once a day|"
                               r"resumen|quiet hours|at night|por la noche|after \d|before \d|"
                               r"(reply|answer|write|talk|speak|messages?) (to me )?in (spanish|english)|"
                               r"en (espanol|ingles)|in (spanish|english)|language|idioma|"
                               r"(switch|change|cambia\w*) (to|a|my|mi|el|de)|por (whatsapp|sms|correo|email|mail)|"
                               r"(only|solo) (by |por )?(whatsapp|sms|email|text|correo)|"
                               r"(use|usa|usad) (whatsapp|sms|email|mail|correo|texto)|"
                               r"instead of (whatsapp|sms|email|texts?)|en vez de|"
                               r"every (update|change) (right away|immediately)|instant|de inmediato)\b"),
    _r("subscribe_back_in_stock", 2.4, r"\b((tell|let|notify|alert|ping|message|text|email) me (know )?when|"
                                       r"back in stock|in stock again|restock\w*|is (the |your )?.{0,40}\bback\b|"
                                       r"(are|is) .{0,30} available (again|yet)|when .{0,30}(back|available again)|"
                                       r"avis\w* cuando|av[ií]s\w*me|cuando (vuelva|vuelvan|haya|tengan)|"
                                       r"vuelve a haber|hay stock|ya (hay|tienen|teneis)|de nuevo disponible|"
                                       r"back yet)\b"),
    _r("list_backorders", 2.4, r"\b((my|mis) (open |pending )?(backorders?|back orders?|pedidos pendientes|"
                               r"orders? on backorder|pending orders|open orders|outstanding)|"
                               r"what (am i|are we|do i) (still )?(waiting|wait) (for|on)|"
                               r"what('s| is)? (still )?(on backorder|backordered|pending|outstanding)|"
                               r"everything (i'?m|im|i am) waiting|all my (orders|backorders)|"
                               r"(que|cuales) (me )?(falta|faltan|pedidos tengo|tengo pendiente)|"
                               r"(mis|todos mis) pedidos|list (my )?(orders|backorders)|"
                               r"que (cosas|articulos|productos) (estoy esperando|me faltan))\b"),
    _r("eta", 2.0, r"\b(when|eta|arrive|arrival|arriving|deliver(y|ed)? (date|by)|delivery date|expected|how long|"
                   r"cuando|cuanto (falta|tarda)|llega|llegara|llegan|fecha( de entrega)?|entrega|ship date)\b"),
    _r("eta", 1.2, r"\b(get(ting)? here|come in|coming)\b"),
    _r("order_status", 1.8, r"\b(where|status|update|news|track|tracking|what'?s happening|any word|progress|"
                            r"donde|estado|novedades|noticias|como va|que pasa|seguimiento|info(rmation)? on)\b"),
    _r("order_status", 1.0, r"\b(my order|mi pedido|order|pedido)\b"),
)

STAFF_RULES: tuple[Rule, ...] = (
    _r("waiting_on_sku", 2.6, r"\b(who'?s? (wants|needs|ordered|wait\w*)|whos wait\w*|customers (still )?waiting|"
                              r"which orders are waiting)\b"),
    _r("sku_stock", 2.3, r"\b(ordenes de compra|entrantes|compras pendientes)\b"),
    _r("open_tasks", 2.5, r"^\W*(tasks?|tareas?)\W*$"),
    _r("run_allocation", 3.0, r"\b(allocate|allocation|re-?allocate|asigna\w*|reparte|run the allocator)\b"),
    _r("complete_task", 3.0, r"\b((mark|close|complete|finish|resolve|set|tick)\b.{0,20}\b(task|tarea)|"
                             r"(task|tarea)\s*#?\d+\s*(is |as |esta )?(done|complete|completed|finished|closed|"
                             r"hecha|terminada|cerrada|completada|lista)|(cierra|cerrar|completa|completar|"
                             r"termina|terminar|marca|marcar) (la )?(tarea))\b"),
    _r("open_tasks", 2.5, r"\b((open|pending|outstanding|my|our) (tasks|todo|to-?dos)|tasks?( are)? (open|pending)|"
                          r"what tasks|which tasks|list( the)? tasks|tareas( abiertas| pendientes)?|"
                          r"any tasks|show tasks|task list)\b"),
    _r("revenue_at_risk", 2.5, r"\b(revenue|money|value|at risk|aging|ageing|dinero|ingresos|facturacion|en riesgo|"
                               r"antiguedad|how much .{0,30}(stuck|waiting|tied|late)|cuanto dinero|\$|eur|importe|"
                               r"how old|oldest backorders?)\b"),
    _r("waiting_on_sku", 2.5, r"\b(who('?s| is| are)? (still )?waiting|which customers|whose orders|"
                              r"quien(es)? (esta|estan)? ?(esperando|espera|esperan)|que clientes|"
                              r"who needs|who ordered)\b"),
    _r("sku_stock", 2.2, r"\b(stock|how many|on hand|inventory|inbound|incoming|purchase orders?|pos|po|"
                         r"existencias|inventario|cuantos|cuantas|cuanto stock|quedan|do we have|tenemos|"
                         r"available|disponible)\b"),
    _r("backorders_query", 2.0, r"\b(backorders?|back orders?|backordered|what('?s| is) waiting|waiting (on|for)|"
                                r"pendientes|atrasad\w*|retrasad\w*|en espera|outstanding|late orders|"
                                r"que (hay|esta) pendiente|que espera|show (me )?(the )?(open )?orders)\b"),
)


@lru_cache(maxsize=8)
def _matcher(catalog: Catalog) -> Matcher:
    return Matcher(catalog)


def understand(text: str, catalog: Catalog, asker: Asker | None = None) -> Understanding:
    """The intent of `text` for this asker, with the entities found; `unknown` when no rule fits."""
    asker = asker or Asker()
    today = asker.today or date.today()
    folded = fold(text).strip()
    entities, ambiguous = extract(text, catalog, today, _matcher(catalog))
    allowed = set(STAFF_INTENTS + SHARED_INTENTS) if asker.audience == "staff" else set(CUSTOMER_INTENTS)
    rules = (STAFF_RULES + CUSTOMER_RULES) if asker.audience == "staff" else CUSTOMER_RULES
    scores: dict[str, float] = {}
    for intent, weight, pattern in rules:
        if intent in allowed and pattern.search(folded):
            scores[intent] = max(scores.get(intent, 0.0), weight)
    _adjust(scores, entities, ambiguous, asker.audience, folded)
    if not scores:
        return Understanding(UNKNOWN, _keep(UNKNOWN, entities), 0.0, ambiguous)
    intent = max(scores, key=lambda k: (scores[k], k))
    total = sum(scores.values())
    return Understanding(intent, _keep(intent, entities), round(scores[intent] / total, 2), ambiguous)


def _adjust(scores: dict[str, float], entities: dict[str, object], ambiguous: dict[str, list[str]],
            audience: str, folded: str) -> None:
    """What the entities say about the intent, beyond the words."""
    has_product = "sku" in entities or "sku" in ambiguous
    if audience == "customer":
        if "order_id" in entities:
            scores["order_status"] = max(scores.get("order_status", 0.0), 1.5)
            if has_product and scores.get("eta", 0.0) < 2.0 and "subscribe_back_in_stock" not in scores:
                scores["item_status"] = 2.1
        if "subscribe_back_in_stock" in scores and "order_id" not in entities:
            scores["subscribe_back_in_stock"] += 0.5
        if "eta" in scores and "subscribe_back_in_stock" in scores and has_product and "order_id" not in entities:
            scores["eta"] -= 1.0
        if ("channel" in entities or "locale" in entities) and "set_preferences" in scores:
            scores["set_preferences"] += 0.5
        if "opt_out" in scores and ("channel" in entities and "only" in folded):
            scores["opt_out"] -= 2.0
        # A greeting or thanks beside a real question yields to the question.
        for weak in ("greeting", "thanks"):
            if weak in scores and any(v > scores[weak] for k, v in scores.items() if k != weak):
                del scores[weak]
    else:
        if "waiting_on_sku" in scores and "backorders_query" in scores:
            scores["backorders_query"] -= 1.0
        if "task_id" in entities and "complete_task" not in scores and "open_tasks" not in scores:
            scores["complete_task"] = 1.5
        if ("warehouse_id" in entities or "supplier_id" in entities) and "sku_stock" not in scores:
            scores["backorders_query"] = max(scores.get("backorders_query", 0.0), 1.5)
        for weak in ("greeting", "thanks", "help"):
            if weak in scores and any(v > scores[weak] for k, v in scores.items() if k != weak):
                del scores[weak]
    for k in [k for k, v in scores.items() if v <= 0]:
        del scores[k]


def _keep(intent: str, entities: dict[str, object]) -> dict[str, object]:
    """Entities that mean something for this intent (a channel word in an order question does not)."""
    out = dict(entities)
    if intent != "set_preferences":
        out.pop("channel", None)
        out.pop("locale", None)
    if intent != "complete_task":
        out.pop("task_id", None)
    return out
