"""The reference's TaskRouter quickstart, then its voice resources (numbers, applications, queues,
calls), driven by the official twilio-python SDK pointed at a switchboard host.

Run by ``tests/tests/routing_wire.rs`` with an interpreter that has ``twilio`` installed, and with
SWITCHBOARD_URL, SWITCHBOARD_ACCOUNT_SID and SWITCHBOARD_AUTH_TOKEN in the environment. Nothing here
is adapted to switchboard except the domain's base URL: every request, header, form field and
answer is the SDK's own. Prints ALL STEPS PASSED at the end; any mismatch raises.
"""

import json
import os

from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

BASE = os.environ["SWITCHBOARD_URL"]
ACCOUNT = os.environ["SWITCHBOARD_ACCOUNT_SID"]
TOKEN = os.environ["SWITCHBOARD_AUTH_TOKEN"]


def step(name):
    print("==", name, flush=True)


def taskrouter(client):
    client.taskrouter.base_url = BASE
    return client.taskrouter.v1


def refused(call, status, code):
    try:
        call()
    except TwilioRestException as error:
        assert error.status == status, (error.status, error.msg)
        assert error.code == code, (error.code, error.msg)
        return error
    raise AssertionError(f"expected {status} {code}, the call succeeded")


tr = taskrouter(Client(ACCOUNT, TOKEN))

step("the account, as programs check their credentials")
client = Client(ACCOUNT, TOKEN)
client.api.base_url = BASE
account = client.api.accounts(ACCOUNT).fetch()
assert account.sid == ACCOUNT and account.status == "active", (account.sid, account.status)
assert account.date_created is not None, "an RFC 2822 date the SDK parses"

step("workspace with its default activities")
ws = tr.workspaces.create(friendly_name="sdk quickstart", multi_task_enabled=False)
assert ws.sid.startswith("WS") and len(ws.sid) == 34, ws.sid
assert ws.default_activity_name == "Offline", ws.default_activity_name
assert ws.multi_task_enabled is False
W = tr.workspaces(ws.sid)
activities = {a.friendly_name: a for a in W.activities.list()}
assert sorted(activities) == ["Available", "Offline", "Unavailable"], sorted(activities)
available = activities["Available"]
busy = W.activities.create(friendly_name="Busy", available=False)
reserved = W.activities.create(friendly_name="Reserved", available=False)
assert busy.available is False and busy.sid.startswith("WA")

step("workers with attributes")
alice = W.workers.create(
    friendly_name="alice",
    attributes=json.dumps({"languages": ["en", "es"], "level": 3}),
)
assert alice.activity_name == "Offline" and alice.available is False
alice = W.workers(alice.sid).update(activity_sid=available.sid)
assert alice.activity_name == "Available" and alice.available is True
bob = W.workers.create(
    friendly_name="bob",
    attributes=json.dumps({"languages": ["fr"], "level": 1}),
    activity_sid=available.sid,
)
listed = {w.friendly_name: w for w in W.workers.list(available=True)}
assert sorted(listed) == ["alice", "bob"], sorted(listed)
assert json.loads(listed["alice"].attributes)["level"] == 3, "lists carry attributes"
english_speakers = W.workers.list(target_workers_expression='languages HAS "en"')
assert [w.friendly_name for w in english_speakers] == ["alice"]
voice = W.workers(alice.sid).worker_channels("voice").update(capacity=2)
assert voice.configured_capacity == 2

step("queue and workflow")
queue = W.task_queues.create(
    friendly_name="english",
    target_workers='languages HAS "en"',
    reservation_activity_sid=reserved.sid,
    assignment_activity_sid=busy.sid,
)
assert queue.target_workers == 'languages HAS "en"' and queue.task_order == "FIFO"
configuration = {
    "task_routing": {
        "filters": [
            {
                "filter_friendly_name": "english",
                "expression": 'language == "en"',
                "targets": [{"queue": queue.sid, "timeout": 30}],
            }
        ],
        "default_filter": {"queue": queue.sid},
    }
}
workflow = W.workflows.create(
    friendly_name="router",
    configuration=json.dumps(configuration),
    task_reservation_timeout=120,
)
assert json.loads(workflow.configuration) == configuration
assert workflow.task_reservation_timeout == 120

step("task reserved for the right worker, accepted and completed")
task = W.tasks.create(
    attributes=json.dumps({"language": "en", "caller": "+15550100"}),
    workflow_sid=workflow.sid,
    priority=5,
    task_channel="voice",
)
assert task.assignment_status == "reserved", task.assignment_status
assert task.task_queue_sid == queue.sid and task.priority == 5
assert task.task_channel_unique_name == "voice"
pending = W.tasks(task.sid).reservations.list(reservation_status="pending")
assert [(r.worker_sid, r.reservation_status) for r in pending] == [(alice.sid, "pending")]
assert W.workers(alice.sid).fetch().activity_name == "Reserved"
accepted = W.tasks(task.sid).reservations(pending[0].sid).update(reservation_status="accepted")
assert accepted.reservation_status == "accepted"
mine = W.workers(alice.sid).reservations(pending[0].sid).fetch()
assert mine.reservation_status == "accepted"
assert mine.url.endswith(f"/Workers/{alice.sid}/Reservations/{pending[0].sid}"), mine.url
assert W.tasks(task.sid).fetch().assignment_status == "assigned"
assert W.workers(alice.sid).fetch().activity_name == "Busy"
done = W.tasks(task.sid).update(assignment_status="completed", reason="resolved")
assert done.assignment_status == "completed" and done.reason == "resolved"

step("statistics")
cumulative = W.cumulative_statistics().fetch(minutes=60)
assert cumulative.tasks_created == 1, cumulative.tasks_created
assert cumulative.reservations_accepted == 1 and cumulative.tasks_completed == 1
realtime = W.real_time_statistics().fetch()
assert realtime.total_workers == 2, realtime.total_workers
queue_stats = W.task_queues(queue.sid).cumulative_statistics().fetch()
assert queue_stats.reservations_accepted == 1
assert len(W.task_queues.statistics.list()) == 1

step("events and paging")
events = list(W.events.stream(page_size=2))
types = [e.event_type for e in events]
for expected in ("task.created", "reservation.created", "reservation.accepted", "task.completed"):
    assert expected in types, (expected, types)
for index in range(5):
    W.tasks.create(attributes=json.dumps({"language": "fr", "index": index}), workflow_sid=workflow.sid)
paged = list(W.tasks.stream(page_size=2))
assert len(paged) == 6, len(paged)
assert len({t.sid for t in paged}) == 6
waiting = W.tasks.list(assignment_status=["pending", "reserved"])
assert len(waiting) == 5, len(waiting)
by_priority = W.tasks.list(ordering="Priority:desc,DateCreated:asc")
assert len(by_priority) == 6
assert by_priority[0].sid == task.sid, "the priority 5 task comes first"
created = [t.date_created for t in by_priority[1:]]
assert created == sorted(created), "then the others, oldest first"

step("optimistic concurrency and errors")
refused(lambda: W.workers(bob.sid).update(friendly_name="robert", if_match='"999"'), 412, 20412)
assert W.workers(bob.sid).fetch().friendly_name == "bob"
error = refused(lambda: W.task_queues.create(friendly_name="bad", target_workers="languages HAS ("), 400, 20001)
assert "position" in error.msg, error.msg
refused(lambda: tr.workspaces("WS" + "0" * 32).fetch(), 404, 20404)

step("a task sent straight to a worker")
direct = W.tasks.create(
    routing_target=bob.sid,
    task_queue_sid=queue.sid,
    attributes=json.dumps({"language": "fr"}),
)
assert direct.assignment_status == "reserved", direct.assignment_status
assert (direct.routing_target, direct.ignore_capacity) == (bob.sid, True)
assert direct.workflow_sid is None and direct.task_queue_sid == queue.sid
assert [t.sid for t in W.tasks.list(routing_target=bob.sid)] == [direct.sid]
offer = W.tasks(direct.sid).reservations.list()[0]
assert offer.worker_sid == bob.sid
W.tasks(direct.sid).reservations(offer.sid).update(reservation_status="rejected")
declined = W.tasks(direct.sid).fetch()
assert declined.assignment_status == "canceled", declined.assignment_status
assert declined.reason == "Declined by its routing target worker", declined.reason
error = refused(lambda: W.tasks.create(routing_target=bob.sid), 400, 20001)
assert "TaskQueueSid" in error.msg, error.msg

step("API keys made and used through the SDK")
key = client.new_keys.create(friendly_name="sdk")
assert key.sid.startswith("SK") and key.secret, key.sid
assert [k.sid for k in client.keys.list()] == [key.sid]
assert client.keys(key.sid).update(friendly_name="backend").friendly_name == "backend"
key_client = Client(key.sid, key.secret, ACCOUNT)
key_client.api.base_url = BASE
by_key = taskrouter(key_client)
assert by_key.workspaces(ws.sid).fetch().friendly_name == "sdk quickstart"
refused(lambda: key_client.new_keys.create(friendly_name="successor"), 403, 20403)
assert client.keys(key.sid).delete() is True
refused(lambda: by_key.workspaces(ws.sid).fetch(), 401, 20003)

step("voice resources through the same SDK")
number = client.incoming_phone_numbers.create(phone_number="+14155550100", voice_url=f"{BASE}/nowhere")
assert number.sid.startswith("PN") and number.phone_number == "+14155550100"
application = client.applications.create(friendly_name="desk", voice_url="module:desk")
number = client.incoming_phone_numbers(number.sid).update(voice_application_sid=application.sid)
assert number.voice_application_sid == application.sid
queue = client.queues.create(friendly_name="support", max_size=10)
assert (queue.current_size, queue.max_size) == (0, 10)
assert client.queues(queue.sid).update(max_size=20).max_size == 20
assert [q.friendly_name for q in client.queues.list()] == ["support"]
assert client.queues(queue.sid).members.list() == []
call = client.calls.create(to="+14155550199", from_="+14155550100", url=f"{BASE}/nowhere")
assert call.sid.startswith("CA") and call.direction == "outbound-api", (call.sid, call.direction)
assert [c.sid for c in client.calls.list(to="+14155550199")] == [call.sid]
canceled = client.calls(call.sid).update(status="canceled")
assert canceled.status == "canceled", "the answer shows the end: " + canceled.status
assert client.calls(call.sid).fetch().status == "canceled"
refused(lambda: client.calls(call.sid).update(status="canceled"), 409, 31011)
assert client.queues(queue.sid).delete() is True
assert client.incoming_phone_numbers(number.sid).delete() is True

step("deletes")
assert W.tasks(paged[-1].sid).delete() is True
assert tr.workspaces(ws.sid).delete() is True
refused(lambda: tr.workspaces(ws.sid).fetch(), 404, 20404)

print("ALL STEPS PASSED")
