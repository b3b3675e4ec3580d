"""The demo's server-less Celery broker: kombu's filesystem transport, with
messages that appear whole.

kombu's ``filesystem://`` transport creates a message file, then writes it; a
worker polling the folder may move and read the file in between, get an empty
payload, and die on the JSON error ("Unrecoverable error: JSONDecodeError"),
which took the demo's GPU-queue worker down under the simulated shoppers'
traffic. Here a message is written under a name no consumer picks up
(``.<uuid>.partial``) and renamed into place once complete: a rename within a
folder is atomic, so a consumer sees the whole message or none of it.

Registered as the ``atomicfs://`` transport when this module is imported
(``shop_search/celery.py`` imports it before any connection is made).
"""

from __future__ import annotations

import itertools
import os
import uuid
from time import monotonic

from kombu.exceptions import ChannelError
from kombu.transport import TRANSPORT_ALIASES, filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

ALIAS = "atomicfs"
_SEQUENCE = itertools.count()


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


class Transport(filesystem.Transport):
    Channel = Channel


TRANSPORT_ALIASES.setdefault(ALIAS, f"{__name__}:Transport")
