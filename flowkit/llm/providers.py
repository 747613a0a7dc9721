"""flowkit's own model providers, registered through the `flowkit.providers` entry points.

A model id `<name>` or `<name>/<model>` goes to the provider registered as `<name>` (`offline`,
or a plugin's); any other id is a litellm id (`gpt-4o-mini`, `anthropic/...`, `ollama/...`):
see `flowkit.plugins.provider_name`. Providers import their model only in `create`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from flowkit.llm.base import ChatModel

if TYPE_CHECKING:
    from flowkit.llm.limits import Limiter
    from flowkit.spec.models import ModelProfile

class OfflineProvider:
    """`offline`: the deterministic rules-based stand-in (no key, no network)."""

    cacheable = False  # deterministic and local: nothing to cache or rate-limit

    def create(self, profile: ModelProfile, fallbacks: Sequence[ModelProfile],
               limiter: Limiter) -> ChatModel:
        from flowkit.llm.offline import OfflineModel

        return OfflineModel()


class LiteLLMProvider:
    """`litellm`: any litellm model id, with retries, rate limits and fallbacks; `openai/<model>`
    at an `api_base` travels over the lean transport (`flowkit.llm.transport`)."""

    cacheable = True

    def create(self, profile: ModelProfile, fallbacks: Sequence[ModelProfile],
               limiter: Limiter) -> ChatModel:
        from flowkit.llm.remote import RemoteModel

        return RemoteModel(profile, fallbacks, limiter=limiter)


offline = OfflineProvider()
litellm = LiteLLMProvider()
