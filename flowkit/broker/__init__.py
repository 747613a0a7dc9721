"""Brokers: orders in, fills out. `PaperBroker` simulates fills on bars; `CcxtBroker` places
orders on an exchange's sandbox (or live, when confirmed). Both implement the `Broker` contract
(broker/base.py) and are registered by name in `BROKERS`, as a plugin's broker would be."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from flowkit.plugins import Registry, subclass_of

if TYPE_CHECKING:
    from flowkit.broker.base import Broker

# `portfolio.broker` names: the `flowkit.brokers` entry points. Declared without importing the
# brokers, so `flowkit validate` checks names at no cost.
BROKERS: Registry[type[Broker]] = Registry("brokers", "broker",
                                           subclass_of("flowkit.broker.base:Broker"))

_LAZY = {"Broker": "base", "CcxtBroker": "ccxt_broker", "PaperBroker": "paper",
         **dict.fromkeys(["Fill", "OrderRecord", "OrderRequest", "Submission",
                          "client_order_id"], "orders")}

__all__ = ["BROKERS", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"flowkit.broker.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'flowkit.broker' has no attribute {name!r}")
