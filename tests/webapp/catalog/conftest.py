"""The `vllm` marker (tests against a real vLLM server, the `vllm_server` fixture of tests/conftest.py),
registered here too so this directory collects under --strict-markers on its own."""


def pytest_configure(config):
    config.addinivalue_line("markers", "vllm: needs a real vLLM server (the vllm_server fixture)")
