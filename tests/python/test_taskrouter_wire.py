#!/usr/bin/env python3
"""Wire-compatibility test: the reference's TaskRouter quickstart through a client that speaks
the reference wire format exactly as twilio-python does (see taskrouter_client.py).

Environment:
    SWITCHBOARD_URL           e.g. http://127.0.0.1:8080
    SWITCHBOARD_ACCOUNT_SID   the tenant's AC... sid
    SWITCHBOARD_AUTH_TOKEN    the tenant's auth token

Prints one line per step and exits non-zero if any check failed. Only the standard library.
"""

import json
import os
import sys
import traceback
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from taskrouter_client import (  # noqa: E402
    Client,
    TwilioRestError,
    WireFormatError,
    check_sid,
    parse_date,
)


class StepFailed(Exception):
    pass


class Run:
    """Runs named steps in order; records every failed check and keeps going where it can."""

    def __init__(self):
        self.failures = []
        self.current = None
        self.number = 0
        self.step_failures = 0

    def step(self, name, function):
        self.number += 1
        self.current = "{:02d} {}".format(self.number, name)
        before = len(self.failures)
        try:
            function()
        except StepFailed:
            pass
        except Exception as error:  # noqa: BLE001 - any failure is this step's failure
            self.failures.append((self.current, "{}: {}".format(type(error).__name__, error)))
            traceback.print_exc(file=sys.stderr)
        failed = len(self.failures) - before
        if failed:
            self.step_failures += 1
            print("[FAIL] {} ({} failed check{})".format(self.current, failed, "s" if failed > 1 else ""))
            for _, message in self.failures[before:]:
                print("       - {}".format(message))
        else:
            print("[ ok ] {}".format(self.current))
        sys.stdout.flush()
        return not failed

    def check(self, condition, message, *args):
        """A soft check: recorded, the step goes on."""
        if not condition:
            self.failures.append((self.current, message.format(*args) if args else message))
        return bool(condition)

    def require(self, condition, message, *args):
        """A hard check: the rest of the step depends on it."""
        if not self.check(condition, message, *args):
            raise StepFailed()

    def equal(self, got, expected, what):
        return self.check(got == expected, "{}: expected {!r}, got {!r}", what, expected, got)

    def sid(self, value, prefix, what):
        try:
            check_sid(value, prefix)
            return True
        except WireFormatError as error:
            return self.check(False, "{}: {}", what, error)

    def date(self, resource, field, what):
        """The field parses as twilio-python's deserialize.iso8601_datetime parses it."""
        value = resource.get(field) if isinstance(resource, dict) else None
        try:
            parse_date(value)
            return True
        except (TypeError, ValueError):
            return self.check(
                False,
                "{}.{} = {!r} does not parse with strptime(value, '%Y-%m-%dT%H:%M:%SZ') as "
                "twilio-python's deserialize.iso8601_datetime does",
                what, field, value,
            )

    def expect_error(self, call, status, what):
        """Runs `call`, which must fail with a reference error body of `status`."""
        try:
            call()
        except TwilioRestError as error:
            self.equal(error.status, status, "{}: HTTP status".format(what))
            body = error.body
            if not self.check(isinstance(body, dict),
                              "{}: the error body is not a JSON object: {!r}", what, body):
                return error
            for key in ("code", "message", "more_info", "status"):
                self.check(key in body, "{}: the error body has no {!r}: {!r}", what, key, body)
            self.check(isinstance(body.get("code"), int) and not isinstance(body.get("code"), bool),
                       "{}: error code must be an integer, got {!r}", what, body.get("code"))
            self.check(isinstance(body.get("message"), str) and body.get("message"),
                       "{}: error message must be a non-empty string, got {!r}", what,
                       body.get("message"))
            self.check(isinstance(body.get("more_info"), str) and body.get("more_info"),
                       "{}: more_info must be a non-empty string, got {!r}", what,
                       body.get("more_info"))
            self.equal(body.get("status"), status, "{}: the body's status".format(what))
            return error
        self.check(False, "{}: expected an HTTP {} error, the call succeeded", what, status)
        return None


def absolute_url(value):
    parts = urllib.parse.urlsplit(value) if isinstance(value, str) else None
    return bool(parts and parts.scheme in ("http", "https") and parts.netloc)


def main():
    base_url = os.environ.get("SWITCHBOARD_URL")
    account_sid = os.environ.get("SWITCHBOARD_ACCOUNT_SID")
    auth_token = os.environ.get("SWITCHBOARD_AUTH_TOKEN")
    if not (base_url and account_sid and auth_token):
        print("set SWITCHBOARD_URL, SWITCHBOARD_ACCOUNT_SID and SWITCHBOARD_AUTH_TOKEN",
              file=sys.stderr)
        return 2

    client = Client(base_url, account_sid, auth_token)
    run = Run()
    s = {}  # state shared between steps
    base_netloc = urllib.parse.urlsplit(base_url).netloc

    def ws(rest=""):
        return "/Workspaces/{}{}".format(s["ws"], ("/" + rest) if rest else "")

    def created(what):
        run.equal(client.last_response.status, 201, "{}: create answers 201 Created".format(what))

    def common(resource, prefix, what):
        """Checks every resource carries: its sid, the account, dates, an absolute url."""
        run.sid(resource.get("sid"), prefix, "{}.sid".format(what))
        run.equal(resource.get("account_sid"), account_sid, "{}.account_sid".format(what))
        run.date(resource, "date_created", what)
        run.date(resource, "date_updated", what)
        run.check(absolute_url(resource.get("url")),
                  "{}.url must be an absolute URL, got {!r}", what, resource.get("url"))
        if prefix != "WS":
            run.equal(resource.get("workspace_sid"), s.get("ws"), "{}.workspace_sid".format(what))

    # --- 1. workspace -------------------------------------------------------------------------
    def create_workspace():
        w = client.create("Workspaces", FriendlyName="wire-quickstart", MultiTaskEnabled=True)
        created("workspace")
        run.require(run.sid(w.get("sid"), "WS", "workspace.sid"), "no workspace sid")
        s["ws"] = w["sid"]
        common(w, "WS", "workspace")
        run.equal(w.get("friendly_name"), "wire-quickstart", "workspace.friendly_name")
        run.sid(w.get("default_activity_sid"), "WA", "workspace.default_activity_sid")
        run.sid(w.get("timeout_activity_sid"), "WA", "workspace.timeout_activity_sid")
        run.check(w.get("multi_task_enabled") is True,
                  "workspace.multi_task_enabled must be JSON true, got {!r}",
                  w.get("multi_task_enabled"))
        run.equal(w.get("prioritize_queue_order"), "FIFO", "workspace.prioritize_queue_order")
        s["default_activity"] = w.get("default_activity_sid")
        s["timeout_activity"] = w.get("timeout_activity_sid")
        fetched, _ = client.fetch(ws())
        run.equal(fetched.get("sid"), s["ws"], "fetched workspace sid")
        run.date(fetched, "date_created", "fetched workspace")
        listed = client.list("Workspaces", FriendlyName="wire-quickstart")
        run.equal([x.get("sid") for x in listed], [s["ws"]],
                  "GET /Workspaces?FriendlyName=wire-quickstart")

    run.step("create workspace (MultiTaskEnabled=true): 201, WS sid, default/timeout activity, "
             "multi_task_enabled, prioritize_queue_order FIFO", create_workspace)
    if "ws" not in s:
        return finish(run)

    # --- 2. activities ------------------------------------------------------------------------
    def activities():
        page = client.page(ws("Activities"))
        run.equal(page.meta.get("key"), "activities", "Activities meta.key")
        everything = client.list(ws("Activities"))
        names = {a.get("friendly_name"): a for a in everything}
        for name in ("Offline", "Available", "Unavailable"):
            run.check(name in names, "default activity {!r} missing: {}", name, sorted(names))
        for a in everything:
            common(a, "WA", "activity {}".format(a.get("friendly_name")))
        sids = {a.get("sid") for a in everything}
        run.check(s["default_activity"] in sids,
                  "default_activity_sid {} is not one of the workspace's activities",
                  s["default_activity"])
        run.check(s["timeout_activity"] in sids,
                  "timeout_activity_sid {} is not one of the workspace's activities",
                  s["timeout_activity"])
        available = client.list(ws("Activities"), Available=True)
        run.require(len(available) == 1,
                    "GET Activities?Available=true: expected exactly one activity, got {}",
                    [a.get("friendly_name") for a in available])
        run.equal(available[0].get("friendly_name"), "Available", "the available activity's name")
        run.check(available[0].get("available") is True,
                  "activity.available must be JSON true, got {!r}", available[0].get("available"))
        run.check("Available=true" in client.last_response.url,
                  "the client did not send Available=true: {}", client.last_response.url)
        s["available"] = available[0]["sid"]
        busy = client.create(ws("Activities"), FriendlyName="Busy", Available=False)
        created("activity")
        common(busy, "WA", "activity Busy")
        run.check(busy.get("available") is False,
                  "Busy.available must be JSON false, got {!r}", busy.get("available"))

    run.step("list activities, then Available=true -> exactly the 'Available' activity",
             activities)

    # --- 3. task queue ------------------------------------------------------------------------
    def task_queue():
        q = client.create(ws("TaskQueues"), FriendlyName="English",
                          TargetWorkers='languages HAS "english"')
        created("task queue")
        run.require(run.sid(q.get("sid"), "WQ", "task_queue.sid"), "no task queue sid")
        s["queue"] = q["sid"]
        common(q, "WQ", "task_queue")
        run.equal(q.get("friendly_name"), "English", "task_queue.friendly_name")
        run.equal(q.get("target_workers"), 'languages HAS "english"', "task_queue.target_workers")
        run.equal(q.get("task_order"), "FIFO", "task_queue.task_order")
        run.equal(q.get("max_reserved_workers"), 1, "task_queue.max_reserved_workers")
        fetched, _ = client.fetch(ws("TaskQueues/" + s["queue"]))
        run.equal(fetched.get("target_workers"), 'languages HAS "english"',
                  "fetched task_queue.target_workers")
        queues = client.list(ws("TaskQueues"))
        run.equal([x.get("sid") for x in queues], [s["queue"]], "GET TaskQueues")

    run.step("create TaskQueue TargetWorkers='languages HAS \"english\"'", task_queue)

    # --- 4. workflow --------------------------------------------------------------------------
    def workflow():
        configuration = {
            "task_routing": {
                "filters": [
                    {
                        "filter_friendly_name": "support",
                        "expression": 'type == "support"',
                        "targets": [{"queue": s["queue"], "timeout": 300}],
                    }
                ],
                "default_filter": {"queue": s["queue"]},
            }
        }
        text = json.dumps(configuration)
        wf = client.create(ws("Workflows"), FriendlyName="Support", Configuration=text,
                           TaskReservationTimeout=120)
        created("workflow")
        run.require(run.sid(wf.get("sid"), "WW", "workflow.sid"), "no workflow sid")
        s["workflow"] = wf["sid"]
        common(wf, "WW", "workflow")
        config = wf.get("configuration")
        run.check(isinstance(config, str),
                  "workflow.configuration must be a JSON string, got {}", type(config).__name__)
        if isinstance(config, str):
            run.equal(json.loads(config), configuration, "workflow.configuration (decoded)")
        run.equal(wf.get("task_reservation_timeout"), 120, "workflow.task_reservation_timeout")
        run.equal(wf.get("friendly_name"), "Support", "workflow.friendly_name")

    run.step("create Workflow with a Configuration JSON (filters + default_filter)", workflow)

    # --- 5. workers ---------------------------------------------------------------------------
    def workers():
        s["workers"] = []
        for name, languages in (("Bob", ["spanish"]), ("Alice", ["english"])):
            attributes = {"languages": languages, "contact_uri": "client:" + name.lower()}
            w = client.create(ws("Workers"), FriendlyName=name, ActivitySid=s["available"],
                              Attributes=attributes)
            created("worker " + name)
            run.require(run.sid(w.get("sid"), "WK", "worker.sid"), "no worker sid")
            common(w, "WK", "worker " + name)
            run.date(w, "date_status_changed", "worker " + name)
            run.equal(w.get("friendly_name"), name, "worker.friendly_name")
            run.equal(w.get("activity_sid"), s["available"], "worker.activity_sid")
            run.equal(w.get("activity_name"), "Available", "worker.activity_name")
            run.check(w.get("available") is True,
                      "worker.available must be JSON true, got {!r}", w.get("available"))
            attrs = w.get("attributes")
            run.check(isinstance(attrs, str),
                      "worker.attributes must be a JSON string, got {!r}", attrs)
            if isinstance(attrs, str):
                run.equal(json.loads(attrs), attributes, "worker.attributes (decoded)")
            s[name.lower()] = w["sid"]
            s["workers"].append(w["sid"])
        fetched, etag = client.fetch(ws("Workers/" + s["alice"]))
        run.check(etag, "GET Workers/{WK} has no ETag header")
        run.equal(fetched.get("sid"), s["alice"], "fetched worker sid")

    run.step("create two workers, Alice (english, matching) and Bob (spanish)", workers)

    # --- 6. task ------------------------------------------------------------------------------
    def create_task():
        attributes = {"type": "support", "customer": "Carol"}
        t = client.create(ws("Tasks"), Attributes=attributes, WorkflowSid=s["workflow"],
                          Priority=5, Timeout=3600, TaskChannel="voice")
        created("task")
        run.require(run.sid(t.get("sid"), "WT", "task.sid"), "no task sid")
        s["task"] = t["sid"]
        common(t, "WT", "task")
        run.date(t, "task_queue_entered_date", "task")
        run.date(t, "virtual_start_time", "task")
        run.equal(t.get("assignment_status"), "reserved", "task.assignment_status (Alice is free)")
        run.equal(t.get("task_channel_unique_name"), "voice", "task.task_channel_unique_name")
        run.sid(t.get("task_channel_sid"), "TC", "task.task_channel_sid")
        run.equal(t.get("priority"), 5, "task.priority")
        run.equal(t.get("timeout"), 3600, "task.timeout")
        run.equal(t.get("workflow_sid"), s["workflow"], "task.workflow_sid")
        run.equal(t.get("task_queue_sid"), s["queue"], "task.task_queue_sid")
        attrs = t.get("attributes")
        run.check(isinstance(attrs, str),
                  "task.attributes must be a JSON *string*, got {} {!r}",
                  type(attrs).__name__, attrs)
        if isinstance(attrs, str):
            run.equal(json.loads(attrs), attributes, "task.attributes (decoded)")
        run.check(isinstance(t.get("age"), int), "task.age must be an integer, got {!r}",
                  t.get("age"))
        s["task_created_etag"] = client.last_response.etag

    run.step("create Task (Attributes JSON, Priority=5, Timeout=3600, TaskChannel=voice) "
             "-> reserved", create_task)
    if "task" not in s:
        return finish(run)

    # --- 7. reservations ----------------------------------------------------------------------
    def task_reservations():
        page = client.page(ws("Tasks/{}/Reservations".format(s["task"])))
        run.equal(page.meta.get("key"), "reservations", "task Reservations meta.key")
        reservations = client.list(ws("Tasks/{}/Reservations".format(s["task"])))
        run.require(len(reservations) == 1,
                    "expected one reservation for the task, got {}", reservations)
        r = reservations[0]
        run.require(run.sid(r.get("sid"), "WR", "reservation.sid"), "no reservation sid")
        s["reservation"] = r["sid"]
        common(r, "WR", "reservation")
        run.equal(r.get("reservation_status"), "pending", "reservation.reservation_status")
        run.equal(r.get("worker_sid"), s.get("alice"), "reservation.worker_sid")
        run.equal(r.get("worker_name"), "Alice", "reservation.worker_name")
        run.equal(r.get("task_sid"), s["task"], "reservation.task_sid")

    run.step("list the task's reservations: one pending, for Alice", task_reservations)
    if "reservation" not in s:
        return finish(run)

    def worker_reservation():
        path = ws("Workers/{}/Reservations/{}".format(s["alice"], s["reservation"]))
        r, etag = client.fetch(path)
        run.require(etag, "GET {} has no ETag header", path)
        s["reservation_etag"] = etag
        run.equal(r.get("sid"), s["reservation"], "worker reservation sid")
        run.equal(r.get("reservation_status"), "pending", "worker reservation status")
        run.equal(r.get("worker_sid"), s["alice"], "worker reservation worker_sid")
        common(r, "WR", "worker reservation")
        listed = client.list(ws("Workers/{}/Reservations".format(s["alice"])),
                             ReservationStatus="pending")
        run.equal([x.get("sid") for x in listed], [s["reservation"]],
                  "GET Workers/{Alice}/Reservations?ReservationStatus=pending")

    run.step("fetch the reservation via /Workers/{WK}/Reservations/{WR} (ETag)",
             worker_reservation)

    def accept():
        path = ws("Workers/{}/Reservations/{}".format(s["alice"], s["reservation"]))
        r = client.update(path, if_match=s.get("reservation_etag"), ReservationStatus="accepted")
        run.equal(client.last_response.status, 200, "reservation update answers 200")
        run.equal(r.get("reservation_status"), "accepted", "accepted reservation status")
        run.date(r, "date_updated", "accepted reservation")
        t, etag = client.fetch(ws("Tasks/" + s["task"]))
        run.equal(t.get("assignment_status"), "assigned", "task after accept")
        run.require(etag, "GET Tasks/{WT} has no ETag header")
        s["task_etag"] = etag

    run.step("accept: ReservationStatus=accepted with the reservation's ETag as If-Match",
             accept)

    # --- 8. If-Match on the task ----------------------------------------------------------------
    def task_if_match():
        stale = s["task_etag"]
        new_attributes = {"type": "support", "customer": "Carol", "note": "vip"}
        t = client.update(ws("Tasks/" + s["task"]), if_match=stale, Attributes=new_attributes)
        run.equal(client.last_response.status, 200, "task update answers 200")
        current = client.last_response.etag
        run.require(current, "POST Tasks/{WT} answered without an ETag")
        run.require(current != stale,
                    "the task's ETag did not change after an update ({!r}), so If-Match can't "
                    "detect a stale version", current)
        if isinstance(t.get("attributes"), str):
            run.equal(json.loads(t["attributes"]), new_attributes, "updated task.attributes")
        s["task_etag"] = current
        error = run.expect_error(
            lambda: client.update(ws("Tasks/" + s["task"]), if_match=stale,
                                  AssignmentStatus="completed", Reason="stale"),
            412, "POST Tasks/{WT} with a stale If-Match")
        if error is not None:
            print("       412 body: {}".format(json.dumps(error.body)))
        t, etag = client.fetch(ws("Tasks/" + s["task"]))
        run.equal(t.get("assignment_status"), "assigned", "task after the refused update")
        run.equal(etag, current, "ETag after the refused update")

    run.step("update the task with If-Match; a stale If-Match answers 412 {code, message}",
             task_if_match)

    def complete():
        t = client.update(ws("Tasks/" + s["task"]), if_match=s["task_etag"],
                          AssignmentStatus="completed", Reason="resolved by Alice")
        run.equal(t.get("assignment_status"), "completed", "task.assignment_status")
        run.equal(t.get("reason"), "resolved by Alice", "task.reason")
        run.date(t, "date_updated", "completed task")
        r, _ = client.fetch(ws("Tasks/{}/Reservations/{}".format(s["task"], s["reservation"])))
        run.equal(r.get("reservation_status"), "completed", "reservation after task completion")

    run.step("complete the task with the current If-Match (AssignmentStatus=completed, Reason)",
             complete)

    # --- 9. list tasks with a repeated AssignmentStatus ---------------------------------------
    def task_filters():
        canceled = client.create(ws("Tasks"), Attributes={"type": "support"},
                                 WorkflowSid=s["workflow"], TaskChannel="voice")
        s["canceled_task"] = canceled["sid"]
        t = client.update(ws("Tasks/" + canceled["sid"]), AssignmentStatus="canceled",
                          Reason="caller hung up")
        run.equal(t.get("assignment_status"), "canceled", "canceled task status")
        open_task = client.create(ws("Tasks"), Attributes={"type": "billing"},
                                  WorkflowSid=s["workflow"], TaskChannel="chat")
        s["open_task"] = open_task["sid"]
        run.check(open_task.get("assignment_status") in ("pending", "reserved"),
                  "third task is {!r}", open_task.get("assignment_status"))

        finished = client.list(ws("Tasks"), AssignmentStatus=["completed", "canceled"])
        sent = client.last_response.url
        run.check("AssignmentStatus=completed&AssignmentStatus=canceled" in sent,
                  "the client did not send a repeated key: {}", sent)
        got = sorted(x.get("sid") for x in finished)
        run.equal(got, sorted([s["task"], s["canceled_task"]]),
                  "GET Tasks?AssignmentStatus=completed&AssignmentStatus=canceled")
        by_sid = {x.get("sid"): x for x in finished}
        if s["task"] in by_sid:
            run.equal(by_sid[s["task"]].get("assignment_status"), "completed", "listed task 1")
        if s["canceled_task"] in by_sid:
            run.equal(by_sid[s["canceled_task"]].get("assignment_status"), "canceled",
                      "listed task 2")
        for x in finished:
            common(x, "WT", "listed task")
        unfinished = client.list(ws("Tasks"), AssignmentStatus=["pending", "reserved"])
        run.equal([x.get("sid") for x in unfinished], [s["open_task"]],
                  "GET Tasks?AssignmentStatus=pending&AssignmentStatus=reserved")
        everything = client.list(ws("Tasks"))
        run.equal(len(everything), 3, "GET Tasks (no filter): task count")

    run.step("list tasks with AssignmentStatus=completed&AssignmentStatus=canceled",
             task_filters)

    # --- 10. paging through workers -------------------------------------------------------------
    def paging():
        pagers = []
        for n in range(1, 8):
            w = client.create(ws("Workers"), FriendlyName="pager{}".format(n),
                              Attributes={"batch": "paging", "n": n})
            created("worker pager{}".format(n))
            run.equal(w.get("activity_sid"), s["default_activity"],
                      "a worker created without ActivitySid gets default_activity_sid")
            pagers.append(w["sid"])
        everyone = s["workers"] + pagers

        def walk(filters, expected, label):
            sizes = []
            seen = []
            numbers = []
            for page in client.pages(ws("Workers"), PageSize=3, **filters):
                meta = page.meta
                run.equal(meta.get("key"), "workers", "{}: meta.key".format(label))
                run.equal(meta.get("page_size"), 3, "{}: meta.page_size".format(label))
                numbers.append(meta.get("page"))
                sizes.append(len(page.records))
                seen.extend(r.get("sid") for r in page.records)
                for r in page.records:
                    run.date(r, "date_created", "{}: listed worker".format(label))
                nxt = meta.get("next_page_url")
                if nxt is not None:
                    run.check(absolute_url(nxt),
                              "{}: meta.next_page_url must be absolute, got {!r}", label, nxt)
                    run.equal(urllib.parse.urlsplit(nxt).netloc, base_netloc,
                              "{}: next_page_url host".format(label))
                    query = urllib.parse.parse_qs(urllib.parse.urlsplit(nxt).query)
                    run.equal(query.get("PageSize"), ["3"],
                              "{}: PageSize kept in next_page_url".format(label))
                for field in ("first_page_url", "url"):
                    run.check(absolute_url(meta.get(field)),
                              "{}: meta.{} must be absolute, got {!r}", label, field,
                              meta.get(field))
                if len(sizes) > 10:
                    run.check(False, "{}: more than 10 pages, next_page_url never ends", label)
                    break
            full, rest = divmod(len(expected), 3)
            want = [3] * full + ([rest] if rest else [])
            run.equal(sizes, want, "{}: page sizes".format(label))
            run.equal(numbers, list(range(len(want))), "{}: meta.page numbers".format(label))
            run.equal(len(seen), len(set(seen)), "{}: no worker listed twice".format(label))
            run.equal(sorted(seen), sorted(expected), "{}: every worker exactly once".format(label))

        walk({}, everyone, "GET Workers?PageSize=3 (7 new + Alice + Bob)")
        walk({"TargetWorkersExpression": 'batch == "paging"'}, pagers,
             "GET Workers?TargetWorkersExpression=batch == \"paging\"&PageSize=3")
        s["workers"] = everyone

    run.step("page through 9 workers (PageSize=3, following meta.next_page_url), then the 7 "
             "new ones by filter (3, 3, 1)", paging)

    # --- 11. errors -----------------------------------------------------------------------------
    def not_found():
        unknown = "WT" + "0" * 32
        error = run.expect_error(lambda: client.fetch(ws("Tasks/" + unknown)), 404,
                                 "GET Tasks/{unknown WT}")
        if error is not None:
            run.equal(error.code, 20404, "GET Tasks/{unknown WT}: code")
            print("       404 body: {}".format(json.dumps(error.body)))
        error = run.expect_error(lambda: client.fetch("Workspaces/WS" + "0" * 32), 404,
                                 "GET Workspaces/{unknown WS}")
        if error is not None:
            run.equal(error.code, 20404, "GET Workspaces/{unknown WS}: code")
        intruder = Client(base_url, account_sid, auth_token + "x")
        run.expect_error(lambda: intruder.fetch(ws()), 401, "GET Workspaces/{WS} with a wrong token")

    run.step("errors: unknown task sid -> 404 {code 20404, message, more_info, status 404}; "
             "bad credentials -> 401", not_found)

    # --- 12. delete a worker ------------------------------------------------------------------
    def delete_worker():
        path = ws("Workers/" + s["bob"])
        _, stale = client.fetch(path)
        run.require(stale, "GET Workers/{Bob} has no ETag")
        w = client.update(path, if_match=stale, FriendlyName="Robert")
        run.equal(w.get("friendly_name"), "Robert", "renamed worker")
        current = client.last_response.etag
        run.require(current and current != stale,
                    "the worker's ETag did not change on update: {!r} -> {!r}", stale, current)
        run.expect_error(lambda: client.delete(path, if_match=stale), 412,
                         "DELETE Workers/{WK} with a stale If-Match")
        run.check(client.delete(path, if_match=current) is True, "DELETE Workers/{WK}")
        run.equal(client.last_response.status, 204, "DELETE Workers/{WK}: status")
        run.equal(client.last_response.text, "", "DELETE Workers/{WK}: body")
        error = run.expect_error(lambda: client.fetch(path), 404, "GET a deleted worker")
        if error is not None:
            run.equal(error.code, 20404, "GET a deleted worker: code")
        left = [x.get("sid") for x in client.list(ws("Workers"))]
        run.check(s["bob"] not in left, "the deleted worker is still listed")
        run.equal(len(left), len(s["workers"]) - 1, "workers left")

    run.step("delete a worker with If-Match (stale -> 412, current -> 204), then fetch -> 404",
             delete_worker)

    # --- 13. delete the workspace -----------------------------------------------------------------
    def delete_workspace():
        run.check(client.delete(ws()) is True, "DELETE Workspaces/{WS}")
        run.equal(client.last_response.status, 204, "DELETE Workspaces/{WS}: status")
        error = run.expect_error(lambda: client.fetch(ws()), 404, "GET a deleted workspace")
        if error is not None:
            run.equal(error.code, 20404, "GET a deleted workspace: code")

    run.step("delete the workspace (204), then fetch -> 404", delete_workspace)

    return finish(run)


def finish(run):
    print()
    if run.failures:
        print("{} FAILED CHECK(S) in {} step(s):".format(len(run.failures), run.step_failures))
        for step, message in run.failures:
            print("  [{}] {}".format(step, message))
        return 1
    print("ALL STEPS PASSED ({} steps)".format(run.number))
    return 0


if __name__ == "__main__":
    sys.exit(main())
