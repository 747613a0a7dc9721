"""Public test support for flowkit and for packages that extend it.

- `flowkit.testing.conformance`: one `check_*` per extension point (data source, broker, model
  provider, tool, role); a plugin's tests call them on its implementations.
- `flowkit.testing.fakeserver`: an OpenAI-compatible chat server on 127.0.0.1 with scripted
  failures, for running real-model code paths with no key and no network.
- `flowkit.testing.models`: chat models that answer like the offline model and record what
  each agent saw: one that never yields, one that answers in shuffled order.

Nothing in flowkit's product modules imports this package."""
