"""Schemathesis hooks for scripts/test's `schemathesis` stage (SCHEMATHESIS_HOOKS).

The plan JSON Schema cannot say three things the API enforces (shared/plan/src/validate.rs):
every object of a plan has the same `_org`, objectIds are unique within the plan (and across
plans), and `creationDate` is a real calendar day. Bodies generated from the schema alone are
therefore almost always refused with 400, so the stateful phase would never get a plan to walk
the links with. These hooks make *some* of the generated whole-plan bodies satisfy those rules,
so that creates succeed and the links (GET, PUT, PATCH, DELETE of the created plan) are
exercised; the rest stay as generated, and the refusals are still checked. Nothing here
switches a check off.
"""

import datetime
import itertools

import schemathesis

_counter = itertools.count()


def _objects(value):
    if isinstance(value, dict):
        if "objectId" in value or "_org" in value:
            yield value
        for inner in value.values():
            yield from _objects(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from _objects(inner)


def _real_date(raw):
    for layout in ("%m-%d-%Y", "%Y-%m-%d"):
        try:
            datetime.datetime.strptime(raw, layout)
            return True
        except (TypeError, ValueError):
            pass
    return False


@schemathesis.hook
def map_body(ctx, body):
    operation = ctx.operation
    whole_plan = (operation.method.upper(), operation.path) in (("POST", "/v1/plan"), ("PUT", "/v1/plan/{id}"))
    if not whole_plan or not isinstance(body, dict) or body.get("objectType") != "plan":
        return body
    n = next(_counter)
    if n % 4 == 3:
        return body  # one in four as generated: the API's own refusals stay under test
    org = body.get("_org") if isinstance(body.get("_org"), str) else "example.com"
    seen = set()
    for obj in _objects(body):
        obj["_org"] = org
        oid = obj.get("objectId")
        if isinstance(oid, str) and oid in seen:
            obj["objectId"] = f"{oid[:100]}-st{n}-{len(seen)}"
        if isinstance(obj.get("objectId"), str):
            seen.add(obj["objectId"])
    if "creationDate" in body and not _real_date(body["creationDate"]):
        body["creationDate"] = "12-12-2017"
    return body
