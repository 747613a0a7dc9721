"""Model providers by name (`flowkit.providers` entry points) and the routing of a model id.

A model id `<name>` or `<name>/<model>` goes to the provider registered as `<name>` (`offline`,
or a plugin's); any other id is a litellm id (`gpt-4o-mini`, `anthropic/...`, `ollama/...`).
Providers import their model only in `create`, so routing and `flowkit validate` stay light."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from flowkit.llm.base import ChatModel, ModelProvider
from flowkit.plugins import Registry, instance_of

if TYPE_CHECKING:
    from flowkit.llm.limits import Limiter
    from flowkit.spec.models import ModelProfile

DEFAULT = "litellm"  # serves every id no registered provider claims

PROVIDERS: Registry[ModelProvider] = Registry("providers", "model provider",
                                              instance_of(ModelProvider))


def provider_name(model_id: str) -> str:
    """The name of the provider that serves `model_id`."""
    prefix = model_id.split("/", 1)[0]
    return prefix if prefix != DEFAULT and prefix in PROVIDERS else DEFAULT


class OfflineProvider:
    """`offline`: the deterministic rules-based stand-in (no key, no network)."""

    cacheable = False  # deterministic and local: nothing to cache or rate-limit

    def create(self, profile: ModelProfile, fallbacks: Sequence[ModelProfile],
               limiter: Limiter) -> ChatModel:
        from flowkit.llm.offline import OfflineModel

        return OfflineModel()


class LiteLLMProvider:
    """`litellm`: any litellm model id, with retries, rate limits and fallbacks."""

    cacheable = True

    def create(self, profile: ModelProfile, fallbacks: Sequence[ModelProfile],
               limiter: Limiter) -> ChatModel:
        from flowkit.llm.litellm_model import LiteLLMModel

        return LiteLLMModel(profile, fallbacks, limiter=limiter)


offline = OfflineProvider()
litellm = LiteLLMProvider()
