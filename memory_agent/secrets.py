"""Keeping secrets out of what is stored.

LangGraph copies every string, number and boolean of `config["configurable"]` and
`config["metadata"]` into the metadata of each checkpoint, where it stays for the life of the
thread. Secrets (API keys, tokens, passwords) therefore belong in the run context
(`AgentContext`, passed as `context=`), which is never checkpointed; its secret fields are marked
with `metadata={"secret": True}` and hidden from `repr`. A config key that looks like a secret is
refused by the agent's boundary and scrubbed from checkpoint metadata by our checkpointer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import fields, is_dataclass
from typing import Any

from memory_agent.errors import ConfigurationError

_SECRET_WORDS = frozenset(
    {
        "apikey",
        "authorization",
        "cookie",
        "credential",
        "credentials",
        "passphrase",
        "passwd",
        "password",
        "pwd",
        "secret",
        "token",
    }
)
_SECRET_PAIRS = frozenset({("api", "key"), ("access", "key"), ("private", "key"), ("auth", "key")})
_PART = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")


def _parts(key: str) -> list[str]:
    return [p.lower() for p in _PART.findall(key)]


def is_secret_key(key: str) -> bool:
    """Whether a config or metadata key names a secret ("api_key", "openaiApiKey", "token").

    Words, not substrings: "max_tokens" and "tokenizer" are not secrets, "access_token" is.
    """
    parts = _parts(key)
    if any(p in _SECRET_WORDS or p.endswith("apikey") for p in parts):
        return True
    return any(pair in _SECRET_PAIRS for pair in zip(parts, parts[1:], strict=False))


def secret_fields(obj: Any) -> frozenset[str]:
    """The fields of a dataclass (type or instance) marked `metadata={"secret": True}`."""
    if not is_dataclass(obj):
        return frozenset()
    return frozenset(f.name for f in fields(obj) if f.metadata.get("secret"))


def refuse_secret_keys(config: Mapping[str, Any] | None) -> None:
    """Raise ConfigurationError if `configurable` or `metadata` carries a secret-looking key."""
    for section in ("configurable", "metadata"):
        values = (config or {}).get(section) or {}
        bad = sorted(k for k in values if isinstance(k, str) and is_secret_key(k))
        if bad:
            raise ConfigurationError(
                f"config[{section!r}] has {bad}, which look like secrets; LangGraph copies "
                "those values into every checkpoint. Pass secrets in the run context "
                "(AgentContext, e.g. api_key=...), which is never stored."
            )


def scrub_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """`metadata` without its secret-looking keys (what a checkpointer should store)."""
    return {k: v for k, v in metadata.items() if not (isinstance(k, str) and is_secret_key(k))}
