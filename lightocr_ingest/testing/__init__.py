"""Stand-ins for the GPU side, for tests, benchmarks and trying the vLLM path on a laptop."""

from .vllm_server import FakeVLLMServer, RecordedRequest, lightonocr_style_page

__all__ = ["FakeVLLMServer", "RecordedRequest", "lightonocr_style_page"]
