"""Test helpers shipped with the package: a loopback server speaking vLLM's OpenAI protocol."""

from .vllm_server import FAULT_KINDS, FakeVLLMServer, FaultPlan, RecordedRequest, lightonocr_style_page, looping

__all__ = ["FAULT_KINDS", "FakeVLLMServer", "FaultPlan", "RecordedRequest", "lightonocr_style_page", "looping"]
