"""Long-term memory: namespaces, records, the service over a `BaseStore`, extraction, dates,
lexical and vector recall, embeddings.

- `service.MemoryService`: the facade over any `BaseStore` (save a turn, recall, manage).
- `plan`: what a turn writes (dedupe, supersession, provenance, episodes), decided without I/O.
- `conversation`: a thread's record (`Conversation`); `recall`: ranked search; `audit`.
"""

from memory_agent.embeddings import (
    HashingEmbeddings,
    LocalEmbeddings,
    embedder_name,
    resolve_embeddings,
)
from memory_agent.memory.audit import AuditReport
from memory_agent.memory.conversation import Conversation
from memory_agent.memory.dates import resolve_dates
from memory_agent.memory.extraction import MemoryDraft, extract_with_model, extract_with_rules
from memory_agent.memory.plan import EpisodeDraft
from memory_agent.memory.ranking import RecallWeights
from memory_agent.memory.records import Memory, MemoryKind
from memory_agent.memory.service import MemoryService
from memory_agent.persistence.namespaces import decode_label, encode_label, user_namespace
from memory_agent.persistence.retention import ForgetReceipt

__all__ = [
    "AuditReport",
    "Conversation",
    "EpisodeDraft",
    "ForgetReceipt",
    "HashingEmbeddings",
    "LocalEmbeddings",
    "Memory",
    "MemoryDraft",
    "MemoryKind",
    "MemoryService",
    "RecallWeights",
    "decode_label",
    "embedder_name",
    "encode_label",
    "extract_with_model",
    "extract_with_rules",
    "resolve_dates",
    "resolve_embeddings",
    "user_namespace",
]
