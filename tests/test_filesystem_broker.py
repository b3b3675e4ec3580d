"""The demo's embedded broker: a message file appears only complete."""

from __future__ import annotations

import os
import threading
import time
import uuid

import pytest
from kombu import Connection

from shop_search import filesystem_broker


def connection(folder) -> Connection:
    options = {"data_folder_in": str(folder), "data_folder_out": str(folder),
               "processed_folder": str(folder / "processed"), "control_folder": str(folder / "control"),
               "store_processed": False}
    (folder / "processed").mkdir(exist_ok=True)
    return Connection("atomicfs://localhost//", transport_options=options)


def test_messages_round_trip_in_order(tmp_path):
    with connection(tmp_path) as conn:
        queue = conn.SimpleQueue("default")
        for i in range(30):
            queue.put({"n": i, "pad": "x" * 2000})
        got = [queue.get(timeout=2) for _ in range(30)]
        assert [m.payload["n"] for m in got] == list(range(30))
        for message in got:
            message.ack()
        queue.close()
    assert not [name for name in os.listdir(tmp_path) if name.endswith((".msg", ".partial"))]


def test_a_message_is_renamed_into_place_only_once_written(tmp_path, monkeypatch):
    seen = []
    real_replace = os.replace

    def checked_replace(src, dst):
        src, dst = str(src), str(dst)
        if not dst.endswith(".msg"):  # exchange tables are renamed into place too
            return real_replace(src, dst)
        # At the rename the content is complete, and no consumer-visible file exists yet.
        with open(src, "rb") as handle:
            seen.append(handle.read())
        assert not os.path.exists(dst)
        assert os.path.basename(src).startswith(".") and not src.endswith(".msg")
        real_replace(src, dst)

    monkeypatch.setattr(filesystem_broker.os, "replace", checked_replace)
    with connection(tmp_path) as conn:
        queue = conn.SimpleQueue("gpu")
        queue.put({"task": "suggestions.ml.understand_pending", "pad": "y" * 50_000})
        import json

        assert len(seen) == 1 and json.loads(seen[0])["properties"]["delivery_info"]["routing_key"] == "gpu"
        assert queue.get(timeout=2).payload["pad"] == "y" * 50_000
        queue.close()


def test_a_thread_that_finds_the_queue_bound_publishes_only_once_its_table_is_on_disk(tmp_path, monkeypatch):
    # kombu records a binding in the process-wide state before it writes the
    # exchange's table file. A second thread declaring the same queue in that
    # window saw "already bound", published, found no table and kombu dropped
    # the message silently (sent 300, received 202 under CI's load).
    name = f"q{uuid.uuid4().hex}"
    writing, real_bind = threading.Event(), filesystem_broker.Channel._queue_bind

    def slow_bind(self, *args):
        writing.set()
        time.sleep(0.5)  # the first thread is preempted between the two steps
        return real_bind(self, *args)

    def publish(n: int) -> None:
        with connection(tmp_path) as conn:
            conn.SimpleQueue(name).put({"n": n})

    monkeypatch.setattr(filesystem_broker.Channel, "_queue_bind", slow_bind)
    first = threading.Thread(target=publish, args=(0,))
    first.start()
    assert writing.wait(5)
    publish(1)  # the queue is declared "already" by the first thread
    first.join(10)
    with connection(tmp_path) as conn:
        queue = conn.SimpleQueue(name)
        got = sorted(queue.get(timeout=2).payload["n"] for _ in range(2))
        queue.close()
    assert got == [0, 1]


@pytest.mark.slow
def test_messages_sent_while_a_consumer_polls_all_arrive_whole(tmp_path):
    # A load check of the transport as a whole: a producer and a consumer thread
    # that declare the same queue at the same moment (the binding race above).
    total, received, errors = 300, [], []
    # A queue name of its own: kombu keeps exchange bindings per process, across connections.
    name = f"q{uuid.uuid4().hex}"

    sent = []

    def produce() -> None:
        try:
            with connection(tmp_path) as conn:
                queue = conn.SimpleQueue(name)
                for i in range(total):
                    queue.put({"n": i, "pad": "z" * 200_000})
                    sent.append(i)
                queue.close()
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    def consume() -> None:
        try:
            with connection(tmp_path) as conn:
                queue = conn.SimpleQueue(name)
                while len(received) < total:
                    message = queue.get(timeout=20)
                    received.append(message.payload["n"])
                    message.ack()
                queue.close()
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=produce), threading.Thread(target=consume)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    # On a failure, say where the missing messages are: never sent, still waiting
    # in the folder (not picked up), or gone.
    waiting = sorted(f.name for f in tmp_path.iterdir() if f.name.endswith(f".{name}.msg"))
    state = {"sent": len(sent), "received": len(received), "waiting in the folder": len(waiting),
             "first waiting": waiting[:3]}
    assert not errors, (errors, state)
    assert sorted(received) == list(range(total)), state


def test_an_exchange_table_is_never_seen_empty_while_it_is_rewritten(tmp_path, monkeypatch):
    # kombu's own _queue_bind truncates the table file and then writes it: a
    # publisher reading in between got "" and a JSONDecodeError. Here a reader
    # that looks at the moment of the rename sees the old whole table.
    seen = []
    real_replace = os.replace

    with connection(tmp_path) as conn:
        channel = conn.default_channel
        exchange = "shop"
        channel._queue_bind(exchange, "default", "", "default")
        before = channel.get_table(exchange)
        assert [b.queue for b in before] == ["default"]

        def checked_replace(src, dst):
            if str(dst).endswith(".exchange"):
                seen.append([b.queue for b in channel.get_table(exchange)])  # mid-rewrite read
            real_replace(src, dst)

        monkeypatch.setattr(filesystem_broker.os, "replace", checked_replace)
        channel._queue_bind(exchange, "gpu", "", "gpu")
        channel._queue_bind(exchange, "gpu", "", "gpu")  # already bound: nothing rewritten
    assert seen == [["default"]]
    with connection(tmp_path) as conn:
        assert sorted(b.queue for b in conn.default_channel.get_table(exchange)) == ["default", "gpu"]
