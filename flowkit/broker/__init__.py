"""Brokers: orders in, fills out. `PaperBroker` simulates fills on bars; `CcxtBroker` places
orders on an exchange's sandbox (or live, when confirmed). Both share the `Broker` interface."""

from flowkit.broker.base import Broker
from flowkit.broker.ccxt_broker import CcxtBroker
from flowkit.domain.orders import (
           Fill,
           OrderRecord,
           OrderRequest,
           Submission,
           client_order_id,
)
from flowkit.broker.paper import PaperBroker

__all__ = ["Broker", "CcxtBroker", "Fill", "OrderRecord", "OrderRequest", "PaperBroker",
           "Submission", "client_order_id"]
