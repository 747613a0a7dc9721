"""Brokers: orders in, fills out. `PaperBroker` simulates fills on bars; `CcxtBroker` places
orders on an exchange's sandbox (or live, when confirmed). Both implement the `Broker` contract
and are registered by name in `BROKERS`, as a plugin's broker would be."""

from flowkit.broker.base import BROKERS, Broker
from flowkit.broker.ccxt_broker import CcxtBroker
from flowkit.broker.orders import (
           Fill,
           OrderRecord,
           OrderRequest,
           Submission,
           client_order_id,
)
from flowkit.broker.paper import PaperBroker

__all__ = ["BROKERS", "Broker", "CcxtBroker", "Fill", "OrderRecord", "OrderRequest", "PaperBroker",
           "Submission", "client_order_id"]
