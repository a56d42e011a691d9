"""The audit log's writer, without a server: entries kept with the operator, the
time and the cut detail; a store that cannot keep one leaves an error in the log."""

from __future__ import annotations

import asyncio
import dataclasses
import logging

import pytest

from imserver.core.errors import StoreError
from imserver.http.audit import MAX_DETAIL, Audit, audit_json
from imserver.storage.base import AuditEntry


class Store:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.kept: list[AuditEntry] = []

    def record_audit(self, entry: AuditEntry) -> asyncio.Future[AuditEntry]:
        future = asyncio.get_running_loop().create_future()
        if self.fail:
            future.set_exception(StoreError("away"))
        else:
            self.kept.append(entry)
            future.set_result(dataclasses.replace(entry, id=len(self.kept)))
        return future


@pytest.mark.gen_test
async def test_an_entry_is_kept_and_told_to_the_listeners():
    store = Store()
    audit = Audit(store, clock=lambda: 1234.56789)  # type: ignore[arg-type]
    told: list[AuditEntry] = []
    audit.on_record.append(told.append)
    entry = await audit.record("alice", "ban", "bob", reason="raid", detail="x" * 1000)
    assert entry is not None and entry.id == 1 and told == [entry]
    assert (entry.ts, entry.operator, entry.action, entry.target, entry.reason) == (
        1234.568, "alice", "ban", "bob", "raid")
    assert len(entry.detail) == MAX_DETAIL
    assert audit_json(entry) == {"id": 1, "ts": 1234.568, "operator": "alice", "action": "ban",
                                 "target": "bob", "reason": "raid", "detail": "x" * MAX_DETAIL}


@pytest.mark.gen_test
async def test_an_entry_the_store_cannot_keep_goes_to_the_log(caplog):
    audit = Audit(Store(fail=True))  # type: ignore[arg-type]
    told: list[AuditEntry] = []
    audit.on_record.append(told.append)
    with caplog.at_level(logging.ERROR, logger="imserver.audit"):
        assert await audit.record("admin", "mute", "general/bob", reason="shouting") is None
    assert told == []
    (line,) = [r.getMessage() for r in caplog.records]
    assert "audit entry not kept (away): admin mute general/bob, reason 'shouting'" in line
