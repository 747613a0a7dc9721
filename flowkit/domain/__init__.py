"""Value types every layer shares, in a leaf package that imports nothing from flowkit: the
portfolio, the risk engine and the brokers all speak orders and fills, so none of them may
own those types without importing the others back."""
