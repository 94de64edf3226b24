"""Teachers served over HTTP by an OpenAI-compatible server (vLLM, or a hosted API): the spec and
its checks (spec.py, standard library only: the web process imports it), the client with retries,
limits and the API key kept out of every message (client.py), the capability probe (probe.py),
generation (generation.py), the generative judge (judge.py) and DCKD teacher signals from
prompt_logprobs (signals.py). Only spec.py may be imported without httpx; this file imports nothing."""
