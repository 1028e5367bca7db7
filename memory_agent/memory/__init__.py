"""Long-term memory: namespaces, the service over a `BaseStore`, extraction, embeddings."""

from memory_agent.memory.embeddings import HashingEmbeddings, resolve_embeddings
from memory_agent.memory.extraction import MemoryDraft, extract_with_model, extract_with_rules
from memory_agent.memory.namespaces import decode_label, encode_label, user_namespace
from memory_agent.memory.service import Conversation, ForgetReceipt, MemoryService

__all__ = [
    "Conversation",
    "ForgetReceipt",
    "HashingEmbeddings",
    "MemoryDraft",
    "MemoryService",
    "decode_label",
    "encode_label",
    "extract_with_model",
    "extract_with_rules",
    "resolve_embeddings",
    "user_namespace",
]
