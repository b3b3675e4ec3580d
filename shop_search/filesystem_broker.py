"""The demo's server-less Celery broker: kombu's filesystem transport, with
messages that appear whole.

kombu's ``filesystem://`` transport creates a message file, then writes it; a
worker polling the folder may move and read the file in between, get an empty
payload, and die on the JSON error ("Unrecoverable error: JSONDecodeError"),
which took the demo's GPU-queue worker down under the simulated shoppers'
traffic. Here a message is written under a name no consumer picks up
(``.<uuid>.partial``) and renamed into place once complete: a rename within a
folder is atomic, so a consumer sees the whole message or none of it. The
exchanges' binding tables are written the same way (kombu truncates one, then
writes it, so a process publishing at that moment read an empty table).

A binding is also declared under a lock shared by the process's threads.
kombu keeps the filesystem transport's bindings in one per-process state and
records a binding there *before* it writes the table file; a second thread
that declared the same queue in between saw "already bound", published at
once, found no table on disk and kombu dropped the message without a word
(no dead-letter queue is configured). Under CPU load that lost a third of
the messages of the load test below, and a demo process that publishes
from several threads at start lost its first tasks the same way.

Registered as the ``atomicfs://`` transport when this module is imported
(``shop_search/celery.py`` imports it before any connection is made).
"""

from __future__ import annotations

import itertools
import os
import threading
import uuid
from time import monotonic

from kombu.exceptions import ChannelError
from kombu.transport import TRANSPORT_ALIASES, filesystem, virtual
from kombu.utils.encoding import bytes_to_str, str_to_bytes
from kombu.utils.json import dumps, loads

ALIAS = "atomicfs"
_SEQUENCE = itertools.count()
# One per process, like kombu's state of the transport's bindings it guards.
_BIND_LOCK = threading.RLock()


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        """Put ``payload`` onto ``queue``: written aside, then renamed into place."""
        # Consumers take files in name order: the millisecond, then this
        # process's sequence number keeps its messages in the order sent.
        name = f"{int(round(monotonic() * 1000))}_{next(_SEQUENCE):08d}-{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        # A leading dot and no ".msg" ending: no queue's consumer matches it.
        partial = os.path.join(self.data_folder_out, f".{uuid.uuid4().hex}.partial")
        try:
            with open(partial, "wb") as handle:
                handle.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as exc:
            try:
                os.unlink(partial)
            except OSError:
                pass
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


    # -- exchange tables ------------------------------------------------------
    # kombu opens an exchange's binding table with "wb" (truncating it) and
    # only then locks and writes it: another process publishing at that moment
    # reads an empty table and fails with a JSON error (seen in the load test
    # below under CI's load). Here the table, too, is written aside and renamed
    # into place, under an exclusive lock on a lock file of its own.

    def queue_bind(self, queue, exchange=None, routing_key="", arguments=None, **kwargs):
        """Bind as kombu does, but no thread sees the binding before its table is on disk."""
        with _BIND_LOCK:
            return super().queue_bind(queue, exchange, routing_key, arguments, **kwargs)

    def queue_unbind(self, queue, exchange=None, routing_key="", arguments=None, **kwargs):
        with _BIND_LOCK:
            return super().queue_unbind(queue, exchange, routing_key, arguments, **kwargs)

    def _read_table(self, path) -> list:
        with open(path, "rb") as handle:
            return [filesystem.exchange_queue_t(*q) for q in loads(bytes_to_str(handle.read()))]

    def get_table(self, exchange):
        """The exchange's bindings: always a whole table (or none yet)."""
        path = self._exchange_file(exchange)
        try:
            return self._read_table(path)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise ChannelError(f"Cannot open {path}") from exc

    def _rewrite_table(self, exchange, change) -> None:
        """Apply ``change`` (old table -> new table, or None for no change) to the
        exchange's table under its lock file, and rename the new table into place."""
        path = self._exchange_file(exchange)
        self.control_folder.mkdir(exist_ok=True)
        try:
            with open(f"{path}.lock", "a+b") as guard:
                filesystem.lock(guard, filesystem.LOCK_EX)
                try:
                    try:
                        table = self._read_table(path)
                    except FileNotFoundError:
                        table = []
                    table = change(table)
                    if table is None:
                        return
                    partial = self.control_folder / f".{uuid.uuid4().hex}.partial"
                    with open(partial, "wb") as handle:
                        handle.write(str_to_bytes(dumps(table)))
                    os.replace(partial, path)
                finally:
                    filesystem.unlock(guard)
        except OSError as exc:
            raise ChannelError(f"Cannot open {path}") from exc

    def _queue_bind(self, exchange, routing_key, pattern, queue):
        """Add a binding to the exchange's table, replacing the table atomically."""
        binding = filesystem.exchange_queue_t(routing_key or "", pattern or "", queue or "")
        self._rewrite_table(exchange, lambda table: None if binding in table else [binding, *table])

    def _delete(self, queue, exchange, routing_key, pattern, *args, **kwargs):
        """Remove a binding from the exchange's table, replacing the table atomically
        (kombu rewrites it in place: seek, write, truncate, and a reader in between
        got a partial table)."""
        virtual.Channel._delete(self, queue, exchange, routing_key, pattern, *args, **kwargs)
        binding = filesystem.exchange_queue_t(routing_key or "", pattern or "", queue or "")
        self._rewrite_table(
            exchange, lambda table: [b for b in table if b != binding] if binding in table else None)


class Transport(filesystem.Transport):
    Channel = Channel


TRANSPORT_ALIASES.setdefault(ALIAS, f"{__name__}:Transport")
