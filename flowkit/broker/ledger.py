"""What every broker keeps: its order records and fills, keyed by order id (the idempotency key),
exposed for the caller to log and saved in checkpoints."""

from __future__ import annotations

import datetime as dt
from types import MappingProxyType
from typing import Any, Mapping

from flowkit.broker.orders import Fill, OrderRecord, OrderRequest, OrderStatus, Submission
from flowkit.errors import BrokerError

_REQUEST_FIELDS = set(OrderRequest.model_fields)


class Ledger:
    name: str  # the `broker` column: paper | ccxt:<exchange>

    def __init__(self) -> None:
        self._orders: dict[str, OrderRecord] = {}
        self._fills: dict[str, Fill] = {}  # by order id

    @property
    def orders(self) -> Mapping[str, OrderRecord]:
        """Every order submitted, by order id, with its current status."""
        return MappingProxyType(self._orders)

    @property
    def fills(self) -> list[Fill]:
        return list(self._fills.values())

    def _known(self, order: OrderRequest) -> bool:
        """Whether `order` was submitted before. An id reused for a different order is refused:
        returning the other order's record would hide the conflict."""
        known = self._orders.get(order.order_id)
        if known is None:
            return False
        if known.model_dump(include=_REQUEST_FIELDS) != order.model_dump():
            raise BrokerError(f"order id {order.order_id} was already used for a different order "
                              f"({known.side} {known.quantity} {known.symbol}, {known.reason})")
        return True

    def _submission(self, order_id: str) -> Submission:
        return Submission(self._orders[order_id], self._fills.get(order_id))

    def _record(self, order: OrderRequest, status: OrderStatus,
                submitted_at: dt.datetime) -> OrderRecord:
        known = self._orders.get(order.order_id)
        record = OrderRecord(**order.model_dump(), status=status, broker=self.name,
                             submitted_at=known.submitted_at if known else submitted_at)
        self._orders[order.order_id] = record
        return record

    def _set_status(self, order_id: str, status: OrderStatus) -> None:
        self._orders[order_id] = self._orders[order_id].model_copy(update={"status": status})

    def _ledger_state(self) -> dict[str, Any]:
        return {"orders": [o.model_dump(mode="json") for o in self._orders.values()],
                "fills": [f.model_dump(mode="json") for f in self._fills.values()]}

    def _load_ledger(self, state: Mapping[str, Any]) -> None:
        self._orders = {o["order_id"]: OrderRecord.model_validate(o) for o in state["orders"]}
        self._fills = {f["order_id"]: Fill.model_validate(f) for f in state["fills"]}
